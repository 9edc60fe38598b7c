#!/usr/bin/env bash
# The shipped systemd units under a real systemd. Boots a Debian bookworm
# root filesystem (debootstrap, cached outside the repository) with
# systemd-nspawn, installs the package inside exactly as an operator does
# (npm pack, npm install -g of the tarball, scripts/install-systemd.sh) against
# an embedded purge-cache service on the host's 127.0.0.1, and checks the
# daemon, the one-shot unit and its timer, and the --user variant with
# systemctl and journalctl inside. Needs root.
#
#   sudo npm run test:systemd          (or: sudo bash test/systemd/run.sh)
#
# PCA_SKIP_BUILD=1 uses dist/ as it is; PCA_SYSTEMD_CACHE (default
# /var/cache/purge-cache-agent-ci) holds the root filesystem and an npm cache;
# PCA_DEBIAN_MIRROR picks another Debian mirror.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"
# shellcheck source=rootfs.sh
source "$HERE/rootfs.sh"
# shellcheck source=checks.sh
source "$HERE/checks.sh"

CACHE_DIR=${PCA_SYSTEMD_CACHE:-/var/cache/purge-cache-agent-ci}
POOL=ci-prov/ci-worker
AGENT_CLIENT=worker/ci-prov/ci-worker
OPS_CLIENT=ops/ci
DIAG_UNITS="purge-cache-agent.service purge-cache-agent-once.service"

((EUID == 0)) || { echo "systemd-test: needs root (it boots a container): sudo bash test/systemd/run.sh" >&2; exit 2; }
cd "$REPO"
started=$SECONDS

# --- cleanup on any exit: the container, the service, the work directory ----
NSPAWN_PID= SERVE_PID= WORK=
stop_pid() { # PID SECONDS: SIGTERM, then SIGKILL if it has not exited in time
  local pid=$1 limit=$2 deadline
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + limit))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    say "pid $pid did not exit within ${limit}s of SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM ERR
  # SIGTERM makes systemd-nspawn power the container off; its overlay goes with it.
  [[ -z $NSPAWN_PID ]] || stop_pid "$NSPAWN_PID" 60
  [[ -z $SERVE_PID ]] || stop_pid "$SERVE_PID" 15
  [[ -z $WORK ]] || rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
set -E
trap 'on_error $? "$BASH_COMMAND" "${FUNCNAME[0]:-}"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# --- tools -------------------------------------------------------------------
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
if ((${#need[@]})); then
  say "installing ${need[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; } ||
    fail "could not install ${need[*]} (apt-get); install them and run again"
fi

# --- the root filesystem, booted while the package is packed ------------------
[[ ${PCA_SKIP_BUILD:-} == 1 ]] || npm run -s build
[[ -x dist/cli.js ]] || fail "dist/cli.js is missing: run npm ci (or npm run build)"
WORK=$(mktemp -d /var/tmp/pca-systemd-test.XXXXXX)
chmod 0755 "$WORK"
mkdir "$WORK/pkg"
ROOTFS=$(ensure_rootfs "$CACHE_DIR")
mkdir -p "$CACHE_DIR/npm"
node_bin=$(readlink -f "$(command -v node)")
npm_dir=$(npm root -g)/npm
[[ -f $npm_dir/bin/npm-cli.js ]] || fail "npm is not at $npm_dir"
# npm inside reaches the registry as the host's npm does: same registry, the
# host's CA bundle (a TLS-inspecting proxy's CA may be in it) and proxies.
NPM_ENV="npm_config_registry=$(npm config get registry)"
for var in HTTPS_PROXY HTTP_PROXY NO_PROXY https_proxy http_proxy no_proxy; do
  [[ -z ${!var:-} ]] || NPM_ENV+=" $var=${!var}"
done
ca_binds=()
ca_bundle=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
if [[ -f $ca_bundle ]]; then
  ca_binds=(--bind-ro="$(readlink -f "$ca_bundle"):/etc/ssl/certs/ca-certificates.crt")
  NPM_ENV+=" NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt"
fi
# --volatile=overlay: the cached tree stays untouched; every change goes to a
# tmpfs that vanishes with the container. The host's network is shared.
systemd-nspawn --quiet --directory="$ROOTFS" --boot --register=no --keep-unit --volatile=overlay \
  --machine="pca-ci-$$" --console=read-only \
  --bind-ro="$node_bin:/mnt/host-node/node" --bind-ro="$npm_dir:/mnt/host-node/npm" \
  --bind-ro="$WORK/pkg:/mnt/pkg" --bind="$CACHE_DIR/npm:/var/cache/pca-npm" "${ca_binds[@]}" \
  </dev/null >"$WORK/console.log" 2>&1 &
NSPAWN_PID=$!

# --- the package, as `npm pack` makes it -------------------------------------
npm pack --ignore-scripts --pack-destination "$WORK/pkg" >/dev/null 2>"$WORK/pack.log" || { cat "$WORK/pack.log" >&2; fail "npm pack"; }
VERSION=$(node -p 'require("./package.json").version')
TARBALL=/mnt/pkg/purge-cache-agent-$VERSION.tgz
[[ -f $WORK/pkg/${TARBALL##*/} ]] || fail "npm pack did not make ${TARBALL##*/}"

# --- the purge-cache service on the host's loopback ---------------------------
AGENT_TOKEN=agent-$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
OPS_TOKEN=ops-$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
# Each client gets exactly the scopes the README tells operators to grant.
cat >"$WORK/clients.json" <<JSON
{"$AGENT_CLIENT": {"accessToken": "$AGENT_TOKEN", "scopes": ["purge-cache:purge-requests::$POOL"]},
 "$OPS_CLIENT": {"accessToken": "$OPS_TOKEN", "scopes": ["purge-cache:$POOL:*"]}}
JSON
node dist/cli.js serve --host 127.0.0.1 --port 0 --clients "$WORK/clients.json" >"$WORK/serve.url" 2>"$WORK/serve.log" &
SERVE_PID=$!
serve_up() { test -s "$WORK/serve.url" || { kill -0 "$SERVE_PID" 2>/dev/null || fail "purge-cache-agent serve exited: $(tail -n 5 "$WORK/serve.log")"; false; }; }
wait_until 60 "the purge-cache service to print its URL" serve_up
SERVICE_URL=$(head -n1 "$WORK/serve.url")

# File a purge request as an operator elsewhere would (host side, own client).
request() {
  TASKCLUSTER_CLIENT_ID=$OPS_CLIENT TASKCLUSTER_ACCESS_TOKEN=$OPS_TOKEN LOG_LEVEL=warn \
    node "$REPO/dist/cli.js" request "$1" --root-url "$SERVICE_URL" --worker-pool-id "$POOL" >/dev/null ||
    fail "could not file a purge request for $1 at $SERVICE_URL"
}

# --- the container, once booted ----------------------------------------------
container_init() { # the container's PID 1: systemd-nspawn's child running systemd
  local pid
  kill -0 "$NSPAWN_PID" 2>/dev/null || fail "systemd-nspawn exited before systemd started"
  for pid in $(ps --ppid "$NSPAWN_PID" -o pid=); do
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == systemd ]] && { echo "$pid"; return 0; }
  done
  return 1
}
wait_until 60 "systemd to start in the container" container_init
CT_PID=$(container_init)
wait_until 60 "systemd's socket in the container" in_ct test -S /run/systemd/private
boot_state=$(in_ct systemctl is-system-running --wait || true)
[[ $boot_state == running ]] || fail "the container booted to '$boot_state', not 'running': $(in_ct systemctl --failed --no-legend --plain | tr '\n' ' ')"
say "booted systemd $(in_ct systemctl --version | head -n1 | cut -d' ' -f2) in $ROOTFS (container PID 1: $CT_PID)"

run_checks
say "passed in $((SECONDS - started))s"
