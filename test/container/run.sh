#!/usr/bin/env bash
# Builds the Containerfile with podman and runs `purge-cache-agent --version`
# in the image. The base image is made locally — the systemd test's cached
# Debian bookworm root filesystem plus this machine's node and npm — so only
# the npm registry and Debian are needed. Needs root.
#
#   sudo npm run test:container        (or: sudo bash test/container/run.sh)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SAY_AS=container-test
# shellcheck source=../systemd/lib.sh
source "$REPO/test/systemd/lib.sh"
# shellcheck source=../systemd/rootfs.sh
source "$REPO/test/systemd/rootfs.sh"
CACHE_DIR=${PCA_SYSTEMD_CACHE:-/var/cache/purge-cache-agent-ci}
((EUID == 0)) || { echo "container-test: needs root: sudo bash test/container/run.sh" >&2; exit 2; }
cd "$REPO"

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
if ((${#need[@]})); then
  say "installing ${need[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; } ||
    fail "could not install ${need[*]} (apt-get); install them and run again"
fi

BASE=localhost/pca-test-node-base:$$
IMAGE=localhost/pca-test-image:$$
WORK=
images_before=$(podman images -qa --no-trunc | sort)
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # Every image this run made, the build stage's included; nothing older.
  comm -13 <(echo "$images_before") <(podman images -qa --no-trunc | sort) | xargs -r podman rmi -f >/dev/null 2>&1 || true
  [[ -z $WORK ]] || rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

WORK=$(mktemp -d /var/tmp/pca-container-test.XXXXXX)
ROOTFS=$(ensure_rootfs "$CACHE_DIR")

# The base: the root filesystem, node and npm at /usr/local (as in the node
# images), and the host's CA bundle, which npm in the build may need.
extra=$WORK/extra
mkdir -p "$extra/usr/local/bin" "$extra/usr/local/lib/node_modules" "$extra/etc/ssl/certs"
cp "$(readlink -f "$(command -v node)")" "$extra/usr/local/bin/node"
cp -a "$(npm root -g)/npm" "$extra/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$extra/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$extra/usr/local/bin/npx"
ca_bundle=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
[[ ! -f $ca_bundle ]] || cp "$ca_bundle" "$extra/etc/ssl/certs/ca-certificates.crt"
# Only files and new directories from the extras: a directory the root
# filesystem has already would be a duplicate entry, which podman refuses.
tar -c -C "$ROOTFS" --exclude=./.complete . \
  -C "$extra" ./usr/local/bin/node ./usr/local/bin/npm ./usr/local/bin/npx ./usr/local/lib/node_modules ./etc/ssl/certs |
  podman import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' - "$BASE" >/dev/null ||
  fail "podman import of $ROOTFS failed"
say "imported $BASE from $ROOTFS"

# --isolation=chroot: RUN steps need no container runtime. --format docker
# keeps the HEALTHCHECK, which the OCI format drops.
podman build --isolation=chroot --format docker --build-arg NODE_IMAGE="$BASE" -f Containerfile -t "$IMAGE" . >"$WORK/build.log" 2>&1 ||
  { tail -n 40 "$WORK/build.log" >&2; fail "podman build -f Containerfile failed (last lines above)"; }
say "built $IMAGE"

# Running needs limits this process may set (podman's defaults exceed this
# machine's hard limits), and runc where cgroups are in hybrid mode, which crun refuses.
run_opts=(--rm --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
runtime=()
[[ ! -d /sys/fs/cgroup/unified ]] || runtime=(--runtime runc)
version=$(node -p 'require("./package.json").version')
# --no-healthcheck: podman would schedule the checks with systemd timers.
got=$(podman "${runtime[@]}" run --no-healthcheck "${run_opts[@]}" "$IMAGE" --version 2>"$WORK/run.log") ||
  fail "podman run $IMAGE --version: $(cat "$WORK/run.log")"
expect "purge-cache-agent --version in the image" "$got" "$version"
[[ $(podman image inspect --format '{{.Config.Healthcheck}}' "$IMAGE") == *healthz* ]] || fail "the image has no HEALTHCHECK"
say "ok: purge-cache-agent --version in the image says $got; its HEALTHCHECK asks /healthz (${SECONDS}s in all)"
