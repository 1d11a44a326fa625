#!/usr/bin/env bash
# Runs examples/math-service and examples/math-client against each other and checks the answer.
set -euo pipefail
service=$1 client=$2
# NESTC_WRAP: run both under a tool, e.g. valgrind (its error exit code fails the test)
wrap=()
[[ -n ${NESTC_WRAP:-} ]] && read -ra wrap <<<"$NESTC_WRAP"
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
"${wrap[@]}" "$service" "tcp://127.0.0.1:$port" >/dev/null &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid || true' EXIT
# wait until it listens: up to 60 s × NESTC_TEST_TIMEOUT_FACTOR (it usually takes milliseconds)
deadline=$((SECONDS + 60 * ${NESTC_TEST_TIMEOUT_FACTOR:-1}))
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
  ((SECONDS < deadline)) && kill -0 $pid 2>/dev/null || { echo "run-examples.sh: the service did not listen" >&2; exit 1; }
  sleep 0.05
done
out=$("${wrap[@]}" "$client" "tcp://127.0.0.1:$port" 1 2 3 4 5)
echo "$out"
[[ $out == "sum = 15" ]]
out=$("${wrap[@]}" "$client" "tcp://127.0.0.1:$port" 0.5 0.25)
echo "$out"
[[ $out == "sum = 0.75" ]]
kill -TERM $pid
wait $pid   # graceful shutdown exits 0
trap - EXIT
