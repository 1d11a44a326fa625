#!/usr/bin/env bash
# Without ICU (NESTC_ICU_LIBRARY names a library that does not exist), patterns with non-ASCII keys still
# work: `nestc conformance` answers a raw NestJS request whose pattern has several such keys, and `nestc send`
# with such a pattern gets the server's answer (here: no handler), not a local failure.
#   no-icu.sh NESTC_BIN
set -euo pipefail
nestc=$1
# NESTC_WRAP: run nestc under a tool, e.g. valgrind (its error exit code fails the test)
wrap=()
[[ -n ${NESTC_WRAP:-} ]] && read -ra wrap <<<"$NESTC_WRAP"
export NESTC_ICU_LIBRARY=libnestc-test-no-such-icu.so
limit=$((10 * ${NESTC_TEST_TIMEOUT_FACTOR:-1}))
out=$(mktemp)
"${wrap[@]}" "$nestc" conformance tcp://127.0.0.1:0 >"$out" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$out"' EXIT
deadline=$((SECONDS + 6 * limit))
until port=$(grep -o 'listening on port [0-9]*' "$out" | grep -o '[0-9]*$'); do
  ((SECONDS < deadline)) && kill -0 $pid 2>/dev/null || { echo "no-icu.sh: the server did not listen" >&2; exit 1; }
  sleep 0.05
done

# A NestJS TCP frame ("<length>#<json>"; \u escapes keep it ASCII, so the length is the byte count).
json='{"pattern":{"cmd":"x","\u00e9t\u00e9":1,"\u00df":2},"data":1,"id":"1"}'
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf '%s#%s' "${#json}" "$json" >&3
reply=''
IFS= read -r -t "$limit" -d '#' len <&3 && [[ $len =~ ^[0-9]+$ ]] && IFS= read -r -t "$limit" -N "$len" reply <&3 ||
  { echo "no-icu.sh: no reply to the raw request" >&2; exit 1; }
exec 3<&-
echo "raw request: $reply"
[[ $reply == *'"id":"1"'* ]] || { echo "no-icu.sh: not the reply to the raw request" >&2; exit 1; }

rc=0
res=$(timeout "$limit" "${wrap[@]}" "$nestc" send "tcp://127.0.0.1:$port" '{"cmd":"x","été":1,"ß":2}' 1 2>&1) || rc=$?
echo "nestc send: exit $rc: $res"
[[ $res == *"no matching message handler"* && $res != *"out of memory"* ]] || { echo "no-icu.sh: send failed" >&2; exit 1; }

kill -TERM $pid
wait $pid
trap 'rm -f "$out"' EXIT
grep -c 'ICU unavailable' "$out" | grep -qx 1 || { cat "$out"; echo "no-icu.sh: want one ICU warning" >&2; exit 1; }
