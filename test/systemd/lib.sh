# Helpers for test/systemd/run.sh: messages, bounded waits, and commands run
# inside the booted container. Sourced, not run.

say() { printf '%s: [%3ss] %s\n' "${SAY_AS:-systemd-test}" "$SECONDS" "$*" >&2; }

# Any command that fails unchecked stops the test with its name, not silently.
# (Reported once, by the main shell; a subshell just passes its status on.)
on_error() { # STATUS COMMAND FUNCTION
  [[ $BASHPID == "$$" ]] || exit "$1"
  fail "'$2' exited with status $1 (in ${3:-the main script})"
}

# A command inside the container whose output matters only when it fails.
ct_quiet() {
  local out
  out=$(in_ct "$@" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
}

# The test's own stderr, kept for failure reports raised where stderr is
# silenced (inside a condition that wait_until polls).
exec {REPORT_FD}>&2

# Print what went wrong, then what the container's systemd knows about it.
fail() {
  exec 2>&"$REPORT_FD"
  printf '\n%s: FAILED: %s\n' "${SAY_AS:-systemd-test}" "$*" >&2
  if [[ -z ${CT_PID:-} && -s ${WORK:-/nonexistent}/console.log ]]; then
    printf '\n--- the container console (last 30 lines)\n' >&2
    tail -n 30 "$WORK/console.log" >&2
  fi
  if [[ -n ${CT_PID:-} ]] && kill -0 "$CT_PID" 2>/dev/null; then
    local unit
    for unit in ${DIAG_UNITS:-}; do
      printf '\n--- systemctl status %s\n' "$unit" >&2
      in_ct systemctl status --no-pager --full --lines=0 "$unit" >&2 || true
      printf -- '--- journalctl -u %s (last 40 lines)\n' "$unit" >&2
      in_ct journalctl --no-pager -o short-precise -n 40 -u "$unit" >&2 || true
    done
  fi
  exit 1
}

# A command inside the container, in all its namespaces, with a clean
# environment, never running longer than CT_TIMEOUT seconds.
in_ct() {
  timeout --kill-after=5 "${CT_TIMEOUT:-120}" \
    nsenter -t "$CT_PID" -a \
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    SYSTEMD_PAGER= SYSTEMD_COLORS=0 ${CT_ENV:-} "$@"
}

# wait_until SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds;
# fail, naming DESCRIPTION, if it has not after SECONDS. The timeouts are
# generous on purpose: they bound a hang, they do not measure speed.
wait_until() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "waited ${limit}s for: $what"
    sleep 0.2
  done
}

# One property of a unit (systemctl show --value).
prop() { in_ct systemctl show --value -p "$2" "$1"; }
# prop_is UNIT PROPERTY VALUE
prop_is() { [[ $(prop "$1" "$2") == "$3" ]]; }

# expect DESCRIPTION ACTUAL WANTED
expect() { [[ $2 == "$3" ]] || fail "$1: expected '$3', got '$2'"; }

# json_ok EXPRESSION [ARG]: the JSON on stdin, judged by a JavaScript
# expression over `j` (and `arg`), with the host's node.
json_ok() {
  node -e 'const j = JSON.parse(require("fs").readFileSync(0, "utf8")); const arg = process.argv[2]; process.exit(eval(process.argv[1]) ? 0 : 1)' "$1" "${2:-}"
}
