#!/usr/bin/env bash
# Runs the examples against each other and checks what they print:
#   math-client and embed-poll (a client driven from a plain poll() loop) against math-service;
#   async-reply-client against async-reply-service (replies from a libuv timer, a call timing out).
# Each service must then shut down gracefully (exit 0) on SIGTERM.
#   run-examples.sh <math-service> <math-client> <async-reply-service> <async-reply-client> <embed-poll>
set -euo pipefail
math_service=$1 math_client=$2 async_service=$3 async_client=$4 embed_poll=$5
# NESTC_WRAP: run every program under a tool, e.g. valgrind (its error exit code fails the test)
wrap=()
[[ -n ${NESTC_WRAP:-} ]] && read -ra wrap <<<"$NESTC_WRAP"

pid=
trap '[[ -n $pid ]] && { kill -TERM $pid 2>/dev/null || true; wait $pid || true; }' EXIT
# start_service <program>: starts it on a free port (sets $port and $pid) and waits until it listens
start_service() {
  port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  "${wrap[@]}" "$1" "tcp://127.0.0.1:$port" >/dev/null &
  pid=$!
  # up to 60 s × NESTC_TEST_TIMEOUT_FACTOR (it usually takes milliseconds)
  local deadline=$((SECONDS + 60 * ${NESTC_TEST_TIMEOUT_FACTOR:-1}))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    ((SECONDS < deadline)) && kill -0 $pid 2>/dev/null || { echo "run-examples.sh: $1 did not listen" >&2; exit 1; }
    sleep 0.05
  done
}
stop_service() {
  kill -TERM $pid
  wait $pid # graceful shutdown exits 0
  pid=
}
# expect <expected output> <command...>: runs the command (wrapped) and compares what it prints
expect() {
  local want=$1 out
  shift
  out=$("${wrap[@]}" "$@")
  echo "$out"
  [[ $out == "$want" ]] || { printf 'run-examples.sh: %s printed the above, expected:\n%s\n' "$*" "$want" >&2; exit 1; }
}

start_service "$math_service"
expect "sum = 15" "$math_client" "tcp://127.0.0.1:$port" 1 2 3 4 5
expect "sum = 0.75" "$math_client" "tcp://127.0.0.1:$port" 0.5 0.25
expect "sum = 6" "$embed_poll" "tcp://127.0.0.1:$port" 1 2 3
stop_service
# the poll() loop also sees failures: nobody listens on that port now
if "${wrap[@]}" "$embed_poll" "tcp://127.0.0.1:$port" 2>/dev/null; then
  echo "run-examples.sh: embed-poll succeeded without a service" >&2
  exit 1
fi

start_service "$async_service"
# in the order the answers are ready: the timeout (50 ms), then the 150 ms reply, then the 400 ms one
expect $'double_later(3): timed out\ndouble_later(2) = 4\ndouble_later(1) = 2' "$async_client" "tcp://127.0.0.1:$port"
stop_service
trap - EXIT
