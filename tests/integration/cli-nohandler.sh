#!/usr/bin/env bash
# cli-nohandler.sh — `nestc send` to a pattern nobody handles is an error reply on every transport: exit 1
# and the error value as one line of JSON on stderr, at once (not after --timeout). TCP: the server's
# no-handler error; Redis (nobody subscribed to the channel) and NATS (no responders): a JSON string.
# Before, NATS exited 2 and Redis waited for the timeout. Runs under tests/interop/with-redis.sh and
# with-nats.sh (started here when REDIS_PORT / NATS_PORT are not set).
set -euo pipefail
interop=$(cd "$(dirname "$0")/../interop" && pwd)
if [[ -z ${REDIS_PORT:-} ]]; then exec "$interop/with-redis.sh" -- "$0" "$@"; fi
if [[ -z ${NATS_PORT:-} ]]; then exec "$interop/with-nats.sh" -- "$0" "$@"; fi
: "${NESTC_BIN:?NESTC_BIN must name the nestc binary}"
factor=${NESTC_TEST_TIMEOUT_FACTOR:-1}
fails=0
log=$(mktemp)
pid=
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -f "$log"' EXIT

"$NESTC_BIN" conformance tcp://127.0.0.1:0 >"$log" 2>&1 &
pid=$!
for ((i = 0; i < 600 * factor; i++)); do
  grep -q 'listening on port' "$log" && break
  sleep 0.05
done
port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$log")
[[ -n $port ]] || { echo "FAIL: nestc conformance did not start: $(cat "$log")" >&2; exit 1; }

check() { # <url>
  local url=$1 rc=0 err start=$SECONDS
  err=$(timeout $((20 * factor)) "$NESTC_BIN" send "$url" no.such.pattern 1 --timeout $((8000 * factor)) 2>&1 >/dev/null) || rc=$?
  local took=$((SECONDS - start))
  if ((rc != 1)); then
    echo "FAIL: $url: exit $rc after $took s (want 1): $err" >&2
    fails=$((fails + 1))
  elif [[ $err != '"'*'"' || $err == *$'\n'* ]]; then
    echo "FAIL: $url: stderr is not one JSON string: $err" >&2
    fails=$((fails + 1))
  elif ((took >= 6 * factor)); then
    echo "FAIL: $url: took $took s: waited for the timeout" >&2
    fails=$((fails + 1))
  else
    echo "ok: $url → exit 1: $err"
  fi
}
check "tcp://127.0.0.1:$port"
check "redis://127.0.0.1:$REDIS_PORT"
check "nats://127.0.0.1:$NATS_PORT"
exit $((fails > 0))
