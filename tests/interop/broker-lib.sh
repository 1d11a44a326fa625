# shellcheck shell=bash disable=SC2034,SC2154  # sourced: the scripts set broker_script/broker_what and read broker_certdir
# broker-lib.sh — sourced by with-redis.sh, with-nats.sh, with-mosquitto.sh and with-kafka.sh: what a throw-away broker needs
# whatever its kind. The script sets `broker_script` (its name, for messages) and `broker_what` (the broker's
# name, for messages), then:
#   broker_parse_args "$@"        [--tls CERTDIR] -- command...  → broker_certdir, broker_command (array)
#   broker_find BIN [SBIN]        the binary on PATH (SBIN: also /usr/sbin) → broker_bin, or exit 2
#   broker_free_port              prints a free loopback port
#   broker_start LOG DIR CMD...   starts CMD as our child (log LOG), removes DIR and stops it by PID at exit;
#                                 its standard input is broker_stdin if set (a file or FIFO), else /dev/null
#   broker_wait_ready PROBE WHAT  calls PROBE until it succeeds; exits 1 (with WHAT and the log) if the broker
#                                 died or the readiness wait ran out
#   broker_run NAME=VALUE...      replaces every {NAME} in the command's arguments, runs it, exits with its
#                                 status (showing the broker's log when it failed)
# It sets broker_pid and broker_cmd (the command line, shell-quoted, for restarting from a test).

broker_certdir=''
broker_command=()
broker_parse_args() {
  while (($#)); do
    case $1 in
      --tls) broker_certdir=$2; shift 2 ;;
      --) shift; break ;;
      *) echo "$broker_script: unexpected argument '$1'" >&2; exit 2 ;;
    esac
  done
  if (($# == 0)); then
    echo "usage: $broker_script [--tls CERTDIR] -- <command...>" >&2
    exit 2
  fi
  broker_command=("$@")
}

broker_find() {
  broker_bin=$1
  if [[ ${2:-} == SBIN ]] && ! command -v "$broker_bin" >/dev/null; then
    # Debian installs some brokers in /usr/sbin, which is not on every user's PATH.
    [[ -x /usr/sbin/$broker_bin ]] && broker_bin=/usr/sbin/$broker_bin
  fi
  command -v "$broker_bin" >/dev/null || { echo "$broker_script: $broker_bin not found" >&2; exit 2; }
}

# Free ports: let the kernel pick, then release them (a small race we accept on a test machine).
broker_free_port() {
  "${NODE:-node}" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

broker_pid=''
broker_log=''
broker_dir=''
broker_show_log() {
  echo "$broker_script: $broker_what log (last 30 lines):" >&2
  tail -n 30 "$broker_log" >&2 2>/dev/null || true
}
# SIGTERM, up to 5 s, then SIGKILL; `wait` reaps it (keep brokers as direct children).
# shellcheck disable=SC2317  # (called from the EXIT trap)
broker_cleanup() {
  # Still our child? (After a restart by the test the PID is gone and could have been reused.)
  if [[ -n $broker_pid && $(ps -o ppid= -p "$broker_pid" 2>/dev/null | tr -d ' ') == "$$" ]]; then
    kill -TERM "$broker_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$broker_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
  [[ -n $broker_dir ]] && rm -rf "$broker_dir"
}

broker_start() {
  broker_log=$1 broker_dir=$2
  shift 2
  broker_cmd=$(printf '%q ' "$@")
  trap broker_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  echo "$broker_script: starting: $broker_cmd" >&2
  # Started directly (not in a subshell), so $! is the broker itself and it stays our child.
  "$@" <"${broker_stdin:-/dev/null}" >>"$broker_log" 2>&1 &
  broker_pid=$!
}

broker_wait_ready() {
  local probe=$1 what=$2
  # a readiness wait (it ends once the broker answers), scaled by NESTC_TEST_TIMEOUT_FACTOR (set by CMake)
  local deadline=$((SECONDS + 60 * ${NESTC_TEST_TIMEOUT_FACTOR:-1}))
  until "$probe"; do
    if ! kill -0 "$broker_pid" 2>/dev/null || ((SECONDS >= deadline)); then
      echo "$broker_script: $what" >&2
      broker_show_log
      exit 1
    fi
    sleep 0.05
  done
}

broker_run() {
  local args=() a kv
  for a in "${broker_command[@]}"; do
    for kv in "$@"; do
      a=${a//"{${kv%%=*}}"/"${kv#*=}"}
    done
    args+=("$a")
  done
  local rc=0
  "${args[@]}" || rc=$?
  if ((rc != 0)); then
    echo "$broker_script: command exited with status $rc" >&2
    broker_show_log
  fi
  exit "$rc"
}
