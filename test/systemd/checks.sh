# What test/systemd/run.sh checks inside the booted container, in order.
# Sourced by run.sh, whose globals (WORK, TARBALL, VERSION, SERVICE_URL, POOL,
# the clients and their tokens, request) these use.

AGENT=purge-cache-agent.service
ONCE=purge-cache-agent-once.service
TIMER=purge-cache-agent-once.timer
CONFIG=/etc/purge-cache-agent/agent.yaml
STATE=/var/lib/purge-cache-agent/state.json
SOCKET=/run/purge-cache-agent/api.sock
TASK_CACHES=/var/cache/tasks
USER_CACHES=/var/cache/builder
declare -A EXPOSURE

run_checks() {
  install_package
  check_oneshot
  ct_quiet systemctl enable --now "$AGENT" || fail "systemctl enable --now $AGENT failed"
  check_daemon_hardened root
  check_sync_purges "$TASK_CACHES" ci-task ci-sync
  check_in_use_deferred "$TASK_CACHES" ci-task ci-held
  check_journal_json
  check_stop_saves_state
  check_restart_after_crash
  check_config_error_not_restarted
  check_timer
  measure_exposure root
  check_user_variant
  measure_exposure user
  check_readme_quotes_exposure
}

# make_cache ROOT NAME OWNER: a cache with a private subdirectory, as a task leaves one.
make_cache() {
  in_ct sh -c 'mkdir -p "$1/objects/ab" && echo x >"$1/objects/ab/cd" && chmod 0700 "$1/objects" && chown -R "$2:" "$1"' \
    sh "$1/$2" "$3" || fail "could not make the cache $1/$2"
}
absent() { in_ct test ! -e "$1"; }
agent_answers() { in_ct purge-cache-agent status; }

install_package() {
  # This machine's node and npm, copied in; then the tarball, as the README says.
  in_ct install -D -m 0755 /mnt/host-node/node /usr/local/bin/node
  in_ct mkdir -p /usr/local/lib/node_modules
  in_ct cp -a /mnt/host-node/npm /usr/local/lib/node_modules/npm
  in_ct ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
  CT_ENV=$NPM_ENV in_ct npm install -g --cache=/var/cache/pca-npm --prefer-offline --no-audit --no-fund "$TARBALL" >"$WORK/npm-install.log" 2>&1 ||
    { cat "$WORK/npm-install.log" >&2; fail "npm install -g $TARBALL inside the container"; }
  expect "purge-cache-agent --version inside the container" "$(in_ct purge-cache-agent --version)" "$VERSION"
  INSTALLER=$(in_ct npm root -g)/purge-cache-agent/scripts/install-systemd.sh
  # The worker's side: a task user, and the cache root.
  in_ct useradd --system --user-group ci-task
  in_ct install -d -m 0755 "$TASK_CACHES"
  in_ct "$INSTALLER" --root-url "$SERVICE_URL" --worker-pool-id "$POOL" --cache-root "$TASK_CACHES" >"$WORK/install.log" 2>&1 ||
    { cat "$WORK/install.log" >&2; fail "install-systemd.sh failed"; }
  # The credentials, written into agent.env as an operator edits it.
  in_ct sh -c 'printf "TASKCLUSTER_CLIENT_ID=%s\nTASKCLUSTER_ACCESS_TOKEN=%s\n" "$1" "$2" >/etc/purge-cache-agent/agent.env' \
    sh "$AGENT_CLIENT" "$AGENT_TOKEN"
  expect "agent.env's owner and mode" "$(in_ct stat -c '%U:%G %a' /etc/purge-cache-agent/agent.env)" "root:root 600"
  # For this test only: restart 1 s after a crash instead of the shipped 30 s,
  # so the crash check need not wait. Whether it restarts is the shipped unit's.
  in_ct mkdir -p "/etc/systemd/system/$AGENT.d"
  in_ct sh -c 'printf "[Service]\nRestartSec=1s\n" >"$1"' sh "/etc/systemd/system/$AGENT.d/99-test-restart-sooner.conf"
  in_ct systemctl daemon-reload
  say "ok: npm install -g of the packed tarball and install-systemd.sh, inside the container"
}

check_oneshot() {
  make_cache "$TASK_CACHES" ci-once ci-task
  request ci-once
  in_ct systemctl start "$ONCE" || fail "systemctl start $ONCE failed"
  expect "$ONCE's result" "$(prop "$ONCE" Result)" success
  absent "$TASK_CACHES/ci-once" || fail "$ONCE succeeded but left $TASK_CACHES/ci-once, which a request condemns"
  say "ok: systemctl start $ONCE purged a requested cache and succeeded"
}

# check_daemon_hardened root|user: active under the shipped hardening, state
# in StateDirectory=, socket in RuntimeDirectory=.
check_daemon_hardened() {
  local variant=$1 pid status
  wait_until 60 "$AGENT to be active" prop_is "$AGENT" ActiveState active
  wait_until 90 "the agent's API socket $SOCKET (RuntimeDirectory=)" in_ct test -S "$SOCKET"
  wait_until 90 "the agent's state $STATE (StateDirectory=)" in_ct test -s "$STATE"
  wait_until 60 "purge-cache-agent status to answer through $SOCKET" agent_answers
  pid=$(prop "$AGENT" MainPID)
  status=$(in_ct cat "/proc/$pid/status")
  local want_caps=000000000008000a # CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_SYS_PTRACE
  [[ $variant == user ]] && want_caps=0000000000000000
  expect "the agent's capability bounding set" "$(awk '/^CapBnd:/ {print $2}' <<<"$status")" "$want_caps"
  expect "NoNewPrivs" "$(awk '/^NoNewPrivs:/ {print $2}' <<<"$status")" 1
  expect "the agent's seccomp mode (SystemCallFilter=)" "$(awk '/^Seccomp:/ {print $2}' <<<"$status")" 2
  # ProtectSystem=strict, seen from inside the agent's own mount namespace.
  ! in_ct nsenter -t "$pid" -m touch /etc/.pca-probe 2>/dev/null || fail "the agent's /etc is writable: ProtectSystem=strict is not in force"
  local root=$TASK_CACHES
  [[ $variant == user ]] && root=$USER_CACHES
  in_ct nsenter -t "$pid" -m sh -c 'touch "$1/.pca-probe" && rm "$1/.pca-probe"' sh "$root" ||
    fail "the cache root $root is not writable for the agent: ReadWritePaths= does not list it"
  expect "the state directory's mode" "$(in_ct stat -c %a /var/lib/purge-cache-agent)" 700
  say "ok: $AGENT active ($variant) with CapBnd=$want_caps, NoNewPrivs, seccomp, read-only /, state in /var/lib, socket in /run"
}

# check_sync_purges ROOT OWNER NAME: a requested cache is purged by `sync --wait` through the socket.
check_sync_purges() {
  local root=$1 owner=$2 name=$3 out
  make_cache "$root" "$name" "$owner"
  request "$name"
  out=$(in_ct purge-cache-agent sync --wait --json) || fail "purge-cache-agent sync --wait failed: $out"
  absent "$root/$name" || fail "sync --wait finished but $root/$name, which a request condemns, is still there: $out"
  say "ok: purge-cache-agent sync --wait purged the requested cache $root/$name"
}

# check_in_use_deferred ROOT OWNER NAME: a cache that OWNER's process works in is
# deferred, then purged once that process ends.
check_in_use_deferred() {
  local root=$1 owner=$2 name=$3 out
  make_cache "$root" "$name" "$owner"
  in_ct systemd-run --quiet --unit=pca-test-holder --uid="$owner" --gid="$owner" \
    -p WorkingDirectory="$root/$name" sleep infinity || fail "could not start a process in $root/$name"
  wait_until 30 "the process holding $root/$name to run" prop_is pca-test-holder.service ActiveState active
  request "$name"
  out=$(in_ct purge-cache-agent sync --wait --json) || fail "purge-cache-agent sync --wait failed: $out"
  in_ct test -d "$root/$name" || fail "$root/$name was purged while $owner's process had its working directory there"
  json_ok 'JSON.stringify(j).includes(arg) && /deferred/i.test(JSON.stringify(j))' "$name" <<<"$out" ||
    fail "sync --wait did not report $root/$name as deferred: $out"
  in_ct systemctl stop pca-test-holder.service
  wait_until 120 "the deferred purge of $root/$name once its process ended" absent "$root/$name"
  say "ok: a cache in use by $owner's process was deferred, and purged once the process ended"
}

# journal_check UNIT MODE: MODE "all" wants every line of UNIT to be a JSON
# log line; "logs" lets a one-shot run's report (its stdout) stand between them.
journal_check() {
  in_ct journalctl --no-pager -o cat "_SYSTEMD_UNIT=$1" | node -e '
    const lines = require("fs").readFileSync(0, "utf8").split("\n").filter((l) => l.trim() !== "");
    const isLog = (l) => {
      try {
        const j = JSON.parse(l);
        return Boolean(j) && typeof j.msg === "string" && ["number", "string"].includes(typeof j.level) && j.time !== undefined;
      } catch { return false; }
    };
    const logs = lines.filter(isLog);
    const bad = process.argv[1] === "all" ? lines.filter((l) => !isLog(l)) : [];
    if (logs.length === 0 || bad.length > 0) {
      console.error(`${lines.length} line(s), ${logs.length} JSON log line(s) with level, time and msg; not JSON:\n${bad.slice(0, 5).join("\n")}`);
      process.exit(1);
    }
    console.log(logs.length);
  ' "$2"
}

check_journal_json() {
  local daemon once
  daemon=$(journal_check "$AGENT" all) || fail "the journal's lines for $AGENT are not all JSON log lines (above)"
  once=$(journal_check "$ONCE" logs) || fail "the journal holds no JSON log line for $ONCE (above)"
  in_ct journalctl --no-pager -o cat "_SYSTEMD_UNIT=$AGENT" | grep -q '"ci-sync"' || fail "no journal line of $AGENT names the purged cache ci-sync"
  ! in_ct journalctl --no-pager -o cat | grep -qF "$AGENT_TOKEN" || fail "the journal holds the agent's access token"
  say "ok: the journal holds the agent's logs as JSON lines ($daemon from the daemon, $once from the one-shot run), without its access token"
}

check_stop_saves_state() {
  in_ct systemctl stop "$AGENT" || fail "systemctl stop $AGENT failed"
  # `success` means it exited by itself on SIGTERM, not killed at TimeoutStopSec=.
  expect "$AGENT's result after systemctl stop" "$(prop "$AGENT" Result)" success
  expect "$AGENT's exit status after systemctl stop" "$(prop "$AGENT" ExecMainStatus)" 0
  in_ct cat "$STATE" | json_ok 'j.version === 2 && typeof j.cursor === "number"' ||
    fail "$STATE after stop is not a saved state with a cursor: $(in_ct cat "$STATE" | head -c 300)"
  say "ok: systemctl stop returned with the agent exited 0 on SIGTERM and its state (cursor) saved"
}

restarted_from() { # PID: a new main process is running
  local now
  now=$(prop "$AGENT" MainPID)
  [[ $now != 0 && $now != "$1" ]] && prop_is "$AGENT" ActiveState active
}

check_restart_after_crash() {
  local pid
  in_ct systemctl start "$AGENT"
  wait_until 60 "$AGENT to be active" prop_is "$AGENT" ActiveState active
  wait_until 60 "purge-cache-agent status to answer" agent_answers
  pid=$(prop "$AGENT" MainPID)
  in_ct systemctl kill --kill-whom=main --signal=SIGKILL "$AGENT"
  wait_until 90 "Restart=on-failure to start a new agent after SIGKILL" restarted_from "$pid"
  expect "NRestarts after one crash" "$(prop "$AGENT" NRestarts)" 1
  wait_until 60 "the restarted agent to answer on its socket" agent_answers
  say "ok: after SIGKILL, Restart=on-failure brought the agent back (pid $pid → $(prop "$AGENT" MainPID))"
}

check_config_error_not_restarted() {
  in_ct cp -p "$CONFIG" "$CONFIG.good"
  in_ct sh -c 'echo "noSuchSetting: 1" >>"$1"' sh "$CONFIG"
  in_ct systemctl restart "$AGENT"
  # `failed` is where systemd goes only when it decides not to restart.
  wait_until 60 "$AGENT to fail on a configuration error" prop_is "$AGENT" ActiveState failed
  expect "$AGENT's exit status on a configuration error" "$(prop "$AGENT" ExecMainStatus)" 2
  expect "$AGENT's restarts after a configuration error" "$(prop "$AGENT" NRestarts)" 0
  in_ct journalctl --no-pager -o cat "_SYSTEMD_INVOCATION_ID=$(prop "$AGENT" InvocationID)" | grep -q noSuchSetting ||
    fail "the journal does not say which setting is wrong (noSuchSetting)"
  in_ct mv "$CONFIG.good" "$CONFIG"
  in_ct systemctl reset-failed "$AGENT"
  in_ct systemctl start "$AGENT"
  wait_until 60 "$AGENT to be back after the configuration was fixed" agent_answers
  say "ok: a configuration error (exit 2) left $AGENT failed, not restarting; fixed, it starts"
}

timer_scheduled() { # NextElapseUSecMonotonic is a time, not 0 or infinity
  local next
  next=$(prop "$TIMER" NextElapseUSecMonotonic)
  [[ -n $next && $next != 0 && $next != infinity ]]
}

check_timer() {
  ct_quiet systemctl enable --now "$TIMER" || fail "systemctl enable --now $TIMER failed"
  wait_until 30 "$TIMER to be active" prop_is "$TIMER" ActiveState active
  # Its first run may be due already (OnBootSec=); after it, the next is scheduled.
  wait_until 150 "$TIMER to schedule its next run" timer_scheduled
  wait_until 60 "the daemon to stop (the timer's Conflicts=)" prop_is "$AGENT" ActiveState inactive
  say "ok: $TIMER active with its next run scheduled; the daemon stopped (Conflicts=)"
  ct_quiet systemctl disable --now "$TIMER"
  in_ct systemctl stop "$ONCE"
}

measure_exposure() { # root|user
  local line
  line=$(in_ct systemd-analyze security --no-pager "$AGENT" | grep 'Overall exposure level') ||
    fail "systemd-analyze security $AGENT gave no overall exposure level"
  EXPOSURE[$1]=$(sed -E 's/.*: ([0-9.]+ [A-Z]+).*/\1/' <<<"$line")
  say "measured: systemd-analyze security $AGENT ($1): ${EXPOSURE[$1]}"
}

check_user_variant() {
  # A worker whose caches all belong to one user: the agent runs as that user.
  in_ct useradd --system --user-group ci-builder
  in_ct install -d -o ci-builder -g ci-builder -m 0755 "$USER_CACHES"
  # A fresh agent.yaml for the new cache root (the installer never overwrites one).
  in_ct rm "$CONFIG"
  in_ct "$INSTALLER" --user ci-builder --root-url "$SERVICE_URL" --worker-pool-id "$POOL" \
    --cache-root "$USER_CACHES" --enable service >"$WORK/install-user.log" 2>&1 ||
    { cat "$WORK/install-user.log" >&2; fail "install-systemd.sh --user ci-builder --enable service failed"; }
  check_daemon_hardened user
  local uid
  uid=$(in_ct id -u ci-builder)
  expect "the agent's uid (--user)" "$(in_ct awk '/^Uid:/ {print $2}' "/proc/$(prop "$AGENT" MainPID)/status")" "$uid"
  expect "the state directory's owner (--user)" "$(in_ct stat -c %U /var/lib/purge-cache-agent)" ci-builder
  check_sync_purges "$USER_CACHES" ci-builder ci-user-sync
  check_in_use_deferred "$USER_CACHES" ci-builder ci-user-held
  in_ct systemctl stop "$AGENT"
  expect "$AGENT's result after stop (--user)" "$(prop "$AGENT" Result)" success
  say "ok: --user ci-builder: no capabilities, state chowned to it, its caches purged (and deferred while in use)"
}

check_readme_quotes_exposure() {
  local quoted
  quoted=$(grep -F 'systemd-analyze security' "$REPO/README.md" || true)
  grep -qF "${EXPOSURE[root]}" <<<"$quoted" && grep -qF "${EXPOSURE[user]}" <<<"$quoted" ||
    fail "the README's Deploy section must quote the measured exposure on the line naming systemd-analyze security: ${EXPOSURE[root]} for the daemon, ${EXPOSURE[user]} with --user (systemd $(in_ct systemctl --version | head -n1 | cut -d' ' -f2))"
  say "ok: the README quotes the measured exposure (${EXPOSURE[root]}; --user ${EXPOSURE[user]})"
}
