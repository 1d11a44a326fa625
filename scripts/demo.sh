#!/usr/bin/env bash
# The demo: builds nestc, starts the math service (a NestJS-style {cmd:'sum'} microservice written in
# C), calls it with the math client, prints the result and stops the service. No broker needed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
build="$root/build-demo"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNESTC_BUILD_TESTS=OFF >/dev/null
if ! cmake --build "$build" --target math-service math-client nestc_cli >"$build/build.log" 2>&1; then
  cat "$build/build.log" >&2
  exit 1
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 3000)
"$build/bin/math-service" "tcp://127.0.0.1:$port" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
echo "\$ math-client tcp://127.0.0.1:$port 1 2 3 4 5"
"$build/bin/math-client" "tcp://127.0.0.1:$port" 1 2 3 4 5
echo "\$ nestc send tcp://127.0.0.1:$port '{\"cmd\":\"sum\"}' '[10,20,30]'"
"$build/bin/nestc" send "tcp://127.0.0.1:$port" '{"cmd":"sum"}' '[10,20,30]'
