#!/usr/bin/env bash
# Install purge-cache-agent's systemd units, a commented example configuration
# and the credentials file, with the right owners and modes.
#
#   sudo scripts/install-systemd.sh [options]
#   sudo "$(npm root -g)/purge-cache-agent/scripts/install-systemd.sh" [options]
#
# Writes (under --root DIR / $DESTDIR, if given):
#   /etc/systemd/system/purge-cache-agent.service            as shipped (0644)
#   /etc/systemd/system/purge-cache-agent-once.service       as shipped (0644)
#   /etc/systemd/system/purge-cache-agent-once.timer         as shipped (0644)
#   /etc/systemd/system/<each service>.d/10-install.conf     this host's settings, if any (0644)
#   /etc/purge-cache-agent/                                  root:<group> 0750
#   /etc/purge-cache-agent/agent.yaml                        root:<group> 0640, unless it exists
#   /etc/purge-cache-agent/agent.env                         root:root 0600, unless it exists
#                                                            (its owner and mode are fixed either way)
# The units are copied unchanged, so an upgrade can replace them; what is
# particular to this host goes in the drop-in, which this script rewrites
# each run. agent.yaml and agent.env are never overwritten.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: install-systemd.sh [options]

  --root DIR            install under DIR instead of / (also: DESTDIR=DIR)
  --bin PATH            the purge-cache-agent executable (default: found on PATH)
  --cache-root DIR      a cache root: the units' ReadWritePaths= and, for a new
                        agent.yaml, its cacheRoots (repeatable)
  --root-url URL        rootUrl for a new agent.yaml
  --worker-pool-id ID   workerPoolId for a new agent.yaml
  --user USER           run the agent as USER (the caches' owner) with no
                        capabilities, instead of as root
  --group GROUP         the agent's group (default: USER's group, or root);
                        members may read agent.yaml and use the API socket
  --enable service|timer
                        enable (and, on a running system, start) the daemon
                        or the one-shot timer
  -h, --help            this help
EOF
}

die() { echo "install-systemd: $*" >&2; exit 2; }
say() { echo "install-systemd: $*"; }

ROOT=${DESTDIR:-}
BIN=
RUN_USER=
RUN_GROUP=
ROOT_URL=
POOL=
ENABLE=
CACHE_ROOTS=()
while (($#)); do
  opt=$1
  case $opt in
    --*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue ;;
    -h | --help) usage; exit 0 ;;
    --root | --bin | --cache-root | --root-url | --worker-pool-id | --user | --group | --enable)
      (($# >= 2)) || die "$opt needs a value"
      case $opt in
        --root) ROOT=$2 ;;
        --bin) BIN=$2 ;;
        --cache-root) CACHE_ROOTS+=("$2") ;;
        --root-url) ROOT_URL=$2 ;;
        --worker-pool-id) POOL=$2 ;;
        --user) RUN_USER=$2 ;;
        --group) RUN_GROUP=$2 ;;
        --enable) ENABLE=$2 ;;
      esac
      shift 2 ;;
    *) usage >&2; die "unknown option: $opt" ;;
  esac
done

ROOT=${ROOT%/}
[[ -z $ROOT || $ROOT == /* ]] || ROOT=$(pwd)/$ROOT
[[ -z $ENABLE || $ENABLE == service || $ENABLE == timer ]] || die "--enable takes service or timer"
for dir in "${CACHE_ROOTS[@]}"; do
  [[ $dir == /* ]] || die "--cache-root must be an absolute path: $dir"
  [[ $dir != *[[:space:]]* ]] || die "--cache-root must not contain white space: $dir"
done
if [[ -n $RUN_USER ]]; then
  getent passwd "$RUN_USER" >/dev/null || die "no such user: $RUN_USER"
  [[ -n $RUN_GROUP ]] || RUN_GROUP=$(id -gn "$RUN_USER")
fi
[[ -z $RUN_GROUP ]] || getent group "$RUN_GROUP" >/dev/null || die "no such group: $RUN_GROUP"
CONF_GROUP=${RUN_GROUP:-root}

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../systemd" && pwd)
UNITS=(purge-cache-agent.service purge-cache-agent-once.service purge-cache-agent-once.timer)
SERVICES=(purge-cache-agent.service purge-cache-agent-once.service)
for f in "${UNITS[@]}" agent.yaml.example purge-cache-agent.env.example; do
  [[ -f $SRC/$f ]] || die "missing $SRC/$f"
done

# systemd looks a bare ExecStart= name up in this fixed path, not in $PATH.
SYSTEMD_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
in_systemd_path() { [[ ":$SYSTEMD_PATH:" == *":$(dirname "$1"):"* ]]; }

# Where systemd would find a bare `purge-cache-agent` (under --root, if given).
systemd_finds() {
  local dir
  for dir in ${SYSTEMD_PATH//:/ }; do
    if [[ -x $ROOT$dir/purge-cache-agent ]]; then echo "$dir/purge-cache-agent"; return; fi
  done
}

# Which executable the units start: the shipped units name it bare, which
# works for npm's usual global prefixes (/usr/local, /usr). Anywhere else
# (nvm, a custom prefix) the drop-in names it, and puts node on the PATH.
EXEC=
EXEC_PATH=
if [[ -z $BIN ]]; then
  if [[ -n $ROOT ]]; then BIN=$(systemd_finds); else BIN=$(command -v purge-cache-agent || true); fi
  [[ -n $BIN ]] || say "warning: purge-cache-agent is not installed; install the package first (npm install -g purge-cache-agent-<version>.tgz)"
fi
if [[ -n $BIN ]]; then
  [[ $BIN == /* ]] || die "--bin must be an absolute path: $BIN"
  [[ -x $ROOT$BIN || -x $BIN ]] || die "not executable: $BIN"
  if [[ $BIN != "$(systemd_finds)" ]]; then
    EXEC=$BIN
    node=$(command -v node || true)
    if [[ -n $node ]] && ! in_systemd_path "$node"; then EXEC_PATH=$(dirname "$node"):$SYSTEMD_PATH; fi
  fi
fi

AS_ROOT=false
[[ $(id -u) == 0 ]] && AS_ROOT=true
$AS_ROOT || say "note: not running as root; files keep your ownership (owners are set only when run as root)"

# put MODE OWNER:GROUP SRC DEST
put() {
  install -m "$1" "$3" "$4"
  if $AS_ROOT; then chown "$2" "$4"; fi
}
mkdir_owned() { # MODE OWNER:GROUP DIR
  install -d -m "$1" "$3"
  if $AS_ROOT; then chown "$2" "$3"; fi
}

UNIT_DIR=$ROOT/etc/systemd/system
CONF_DIR=$ROOT/etc/purge-cache-agent
mkdir -p "$UNIT_DIR"
for unit in "${UNITS[@]}"; do
  put 0644 root:root "$SRC/$unit" "$UNIT_DIR/$unit"
  say "wrote $UNIT_DIR/$unit"
done

# The drop-in: only what differs from the shipped units.
for service in "${SERVICES[@]}"; do
  dropin_dir=$UNIT_DIR/$service.d
  dropin=$dropin_dir/10-install.conf
  body=
  if [[ -n $EXEC ]]; then
    mode=run
    [[ $service == purge-cache-agent-once.service ]] && mode=once
    body+="# The executable is not the one systemd's search path finds."$'\n'
    body+="ExecStart="$'\n'"ExecStart=$EXEC $mode --config /etc/purge-cache-agent/agent.yaml"$'\n'
  fi
  [[ -z $EXEC_PATH ]] || body+="Environment=PATH=$EXEC_PATH"$'\n'
  if ((${#CACHE_ROOTS[@]})); then
    body+="# The cache roots: the only places besides its state the agent may write."$'\n'
    body+="ReadWritePaths="$'\n'"ReadWritePaths=${CACHE_ROOTS[*]}"$'\n'
  fi
  if [[ -n $RUN_USER ]]; then
    body+="# Runs as the caches' owner, so it needs no capabilities."$'\n'
    body+="User=$RUN_USER"$'\n'"Group=$RUN_GROUP"$'\n'"CapabilityBoundingSet="$'\n'
  elif [[ -n $RUN_GROUP ]]; then
    body+="# Members of this group may use the API socket and read agent.yaml."$'\n'
    body+="Group=$RUN_GROUP"$'\n'
  fi
  if [[ -n $body ]]; then
    mkdir -p "$dropin_dir"
    tmp=$(mktemp)
    printf '# Written by install-systemd.sh; rerun it (or edit this file) to change.\n[Service]\n%s' "$body" >"$tmp"
    put 0644 root:root "$tmp" "$dropin"
    rm -f "$tmp"
    say "wrote $dropin"
  elif [[ -e $dropin ]]; then
    rm -f "$dropin"
    rmdir "$dropin_dir" 2>/dev/null || true
    say "removed $dropin (nothing to override)"
  fi
done

mkdir_owned 0750 "root:$CONF_GROUP" "$CONF_DIR"

if [[ -e $CONF_DIR/agent.yaml ]]; then
  say "kept $CONF_DIR/agent.yaml"
else
  tmp=$(mktemp)
  roots=
  for dir in "${CACHE_ROOTS[@]}"; do roots+="  - $dir"$'\n'; done
  # Fill in what was given; the rest stays as the commented example.
  ROOT_URL=$ROOT_URL POOL=$POOL ROOTS=$roots awk '
    /^rootUrl: / && ENVIRON["ROOT_URL"] != "" { print "rootUrl: " ENVIRON["ROOT_URL"]; next }
    /^workerPoolId: / && ENVIRON["POOL"] != "" { print "workerPoolId: " ENVIRON["POOL"]; next }
    /^cacheRoots:/ && ENVIRON["ROOTS"] != "" { print; printf "%s", ENVIRON["ROOTS"]; skip = 1; next }
    skip && /^  - / { next }
    { skip = 0; print }
  ' "$SRC/agent.yaml.example" >"$tmp"
  put 0640 "root:$CONF_GROUP" "$tmp" "$CONF_DIR/agent.yaml"
  rm -f "$tmp"
  say "wrote $CONF_DIR/agent.yaml (edit it)"
fi
if $AS_ROOT; then chown "root:$CONF_GROUP" "$CONF_DIR/agent.yaml"; fi

if [[ -e $CONF_DIR/agent.env ]]; then
  say "kept $CONF_DIR/agent.env"
else
  put 0600 root:root "$SRC/purge-cache-agent.env.example" "$CONF_DIR/agent.env"
  say "wrote $CONF_DIR/agent.env (put the credentials in it)"
fi
# Credentials: only root may read them, whatever an earlier hand did.
chmod 0600 "$CONF_DIR/agent.env"
if $AS_ROOT; then chown root:root "$CONF_DIR/agent.env"; fi

SYSTEMD_RUNNING=false
[[ -z $ROOT && -d /run/systemd/system ]] && SYSTEMD_RUNNING=true
$SYSTEMD_RUNNING && systemctl daemon-reload

if [[ -n $ENABLE ]]; then
  unit=purge-cache-agent.service
  [[ $ENABLE == timer ]] && unit=purge-cache-agent-once.timer
  if [[ -n $ROOT ]]; then
    systemctl --root="$ROOT" enable "$unit"
  elif $SYSTEMD_RUNNING; then
    systemctl enable --now "$unit"
  else
    systemctl enable "$unit"
  fi
  say "enabled $unit"
fi

cat <<EOF

Next:
  1. Edit /etc/purge-cache-agent/agent.yaml (rootUrl, workerPoolId, cacheRoots)
     and /etc/purge-cache-agent/agent.env (the credentials).
  2. Let the units write to the cache roots, if not given here with --cache-root:
     systemctl edit purge-cache-agent purge-cache-agent-once   # ReadWritePaths=
  3. Try one sync:  systemctl start purge-cache-agent-once && journalctl -u purge-cache-agent-once
  4. Then either the daemon:  systemctl enable --now purge-cache-agent
     or the timer:            systemctl enable --now purge-cache-agent-once.timer
EOF
