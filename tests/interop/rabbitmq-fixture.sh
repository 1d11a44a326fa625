#!/usr/bin/env bash
# rabbitmq-fixture.sh start STATEDIR [--tls CERTDIR]
# rabbitmq-fixture.sh stop STATEDIR
#
# One RabbitMQ broker shared by a whole test run (starting one takes seconds): the ctest fixture "rabbitmq"
# (tests/interop/rabbitmq.cmake) runs `start` before the first test that needs it and `stop` after the last.
#
# start  starts with-rabbitmq.sh (plain listener, and with --tls the AMQPS one) in the background, in a
#        session of its own, holding the broker until `stop`; returns once the broker is ready, after writing
#        STATEDIR/env, or fails with the broker's log. A broker left by an earlier run (an interrupted ctest)
#        is stopped first.
# stop   asks the holder to end (with-rabbitmq.sh then stops the broker and epmd by PID and removes their
#        directory), waits until both processes are gone, and removes STATEDIR/env. If they outlive the
#        wait, it kills them by PID and fails.
#
# STATEDIR/env: one NAME=VALUE per line, no quoting (a C test can read it with fgets; values hold no newline):
#   NESTC_RMQ_URL   amqp://127.0.0.1:P
#   NESTC_RMQS_URL  amqps://localhost:PT   (with --tls)
#   NESTC_RMQ_CA    CERTDIR/ca.pem         (with --tls: the CA to trust for NESTC_RMQS_URL)
#   RMQ_URL, RMQS_URL, RMQ_PORT, RMQ_TLS_PORT, RMQ_NODE, RMQ_DIR, RMQ_CTL   as in with-rabbitmq.sh
#   RMQ_PID, RMQ_EPMD_PID, RMQ_HOLDER_PID   the broker, its epmd, the holder (for `stop`)
# with-shared-rabbitmq.sh reads it for a test's command. Tests share the broker: each uses queue (and
# exchange) names of its own, and none restarts or reconfigures it (a test that must, starts its own with
# with-rabbitmq.sh).
#
# (Internal) rabbitmq-fixture.sh hold STATEDIR — the command with-rabbitmq.sh runs: writes STATEDIR/env and
# waits for SIGTERM (or 6 hours, so a broker forgotten by an interrupted run does not live forever).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
action=${1:-}
state=${2:-}
if [[ -z $action || -z $state ]]; then
  echo "usage: rabbitmq-fixture.sh start STATEDIR [--tls CERTDIR] | stop STATEDIR" >&2
  exit 2
fi
envfile=$state/env
factor=${NESTC_TEST_TIMEOUT_FACTOR:-1}

# The value of NAME in the env file (empty if absent).
envget() { sed -n "s/^$1=//p" "$envfile" 2>/dev/null | head -n 1; }

# Is PID alive and not a zombie? (A zombie still answers kill -0.)
alive() {
  local s
  s=$(ps -o stat= -p "$1" 2>/dev/null | tr -d ' ') || return 1
  [[ -n $s && $s != Z* ]]
}

stop() {
  [[ -f $envfile ]] || { echo "rabbitmq-fixture.sh: no shared broker to stop ($envfile)"; return 0; }
  local holder beam epmd dir
  holder=$(envget RMQ_HOLDER_PID) beam=$(envget RMQ_PID) epmd=$(envget RMQ_EPMD_PID) dir=$(envget RMQ_DIR)
  if [[ -n $holder ]]; then kill -TERM "$holder" 2>/dev/null || true; fi
  # with-rabbitmq.sh: SIGTERM to the broker, up to 5 s, then SIGKILL; then epmd. A readiness wait: it ends
  # as soon as both are gone.
  local deadline=$((SECONDS + 30 * factor)) rc=0
  while { [[ -n $beam ]] && alive "$beam"; } || { [[ -n $epmd ]] && alive "$epmd"; } || [[ -n $dir && -d $dir ]]; do
    if ((SECONDS >= deadline)); then
      echo "rabbitmq-fixture.sh: the broker did not stop within $((30 * factor)) s; killing it by PID" >&2
      for p in $beam $epmd; do
        # only if the PID still is a broker or an epmd (not a process that reused it)
        if alive "$p" && ps -o args= -p "$p" | grep -qE "beam|epmd"; then kill -KILL "$p" 2>/dev/null || true; fi
      done
      [[ -n $dir && $dir == */with-rabbitmq.* ]] && rm -rf "$dir"
      rc=1
      break
    fi
    sleep 0.1
  done
  rm -f "$envfile"
  ((rc == 0)) && echo "rabbitmq-fixture.sh: shared broker stopped (pid $beam, epmd $epmd)"
  return "$rc"
}

case $action in
  start)
    shift 2
    tls=()
    if [[ ${1:-} == --tls ]]; then tls=(--tls "$2"); fi
    mkdir -p "$state"
    if [[ -f $envfile ]]; then
      echo "rabbitmq-fixture.sh: stopping the broker an earlier run left running" >&2
      stop || true
    fi
    rm -f "$envfile"
    log=$state/broker.log
    : >"$log"
    # setsid: the holder leaves ctest's process group (ctest does not wait for it, and signals meant for the
    # test process do not reach the broker); its output goes to the log, so ctest does not wait for a pipe.
    # (--wait: setsid stays the holder's parent if it had to fork, so $! tells whether it is still alive.)
    setsid --wait "$here/with-rabbitmq.sh" "${tls[@]}" -- "$here/rabbitmq-fixture.sh" hold "$state" </dev/null >>"$log" 2>&1 &
    starter=$!
    # with-rabbitmq.sh waits for readiness itself (60 s × factor); this only outlasts it.
    deadline=$((SECONDS + 120 * factor))
    until [[ -f $envfile ]]; do
      if ! alive "$starter" || ((SECONDS >= deadline)); then
        echo "rabbitmq-fixture.sh: the shared broker did not start; its log:" >&2
        cat "$log" >&2
        kill -TERM "$starter" 2>/dev/null || true
        exit 1
      fi
      sleep 0.1
    done
    cat "$log"
    echo "rabbitmq-fixture.sh: shared broker ready in $SECONDS s: $envfile"
    cat "$envfile"
    ;;
  stop)
    stop
    ;;
  hold)
    tmp=$envfile.tmp.$$
    # (RMQ_URL, RMQ_PID, …: from with-rabbitmq.sh, whose command this is)
    # shellcheck disable=SC2153
    {
      echo "NESTC_RMQ_URL=$RMQ_URL"
      if [[ -n ${RMQS_URL:-} ]]; then
        echo "NESTC_RMQS_URL=$RMQS_URL"
        # with-rabbitmq.sh was given --tls CERTDIR: its ssl_options name the CA
        echo "NESTC_RMQ_CA=$(sed -n 's/^ssl_options.cacertfile = //p' "$RMQ_DIR/rabbitmq.conf")"
        echo "RMQS_URL=$RMQS_URL"
        echo "RMQ_TLS_PORT=$RMQ_TLS_PORT"
      fi
      echo "RMQ_URL=$RMQ_URL"
      echo "RMQ_PORT=$RMQ_PORT"
      echo "RMQ_NODE=$RMQ_NODE"
      echo "RMQ_DIR=$RMQ_DIR"
      echo "RMQ_CTL=$RMQ_CTL"
      echo "RMQ_PID=$RMQ_PID"
      echo "RMQ_EPMD_PID=$RMQ_EPMD_PID"
      echo "RMQ_HOLDER_PID=$$"
    } >"$tmp"
    mv "$tmp" "$envfile" # atomically: `start` and the tests never see half a file
    sleeper=''
    trap '[[ -n $sleeper ]] && kill "$sleeper" 2>/dev/null; exit 0' TERM INT
    sleep 6h &
    sleeper=$!
    wait "$sleeper" || true
    ;;
  *)
    echo "rabbitmq-fixture.sh: unknown action '$action' (start, stop)" >&2
    exit 2
    ;;
esac
