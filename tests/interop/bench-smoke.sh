#!/usr/bin/env bash
# bench-smoke.sh <url> [nestc bench flags...] — a short `nestc bench` run of each kind against the
# server at <url> (both engines on tcp://, the client engine on tls://, events, a payload file); each
# must answer every request without an error and print the documented JSON line. Speed is not checked
# here: that is bench/'s job.
set -euo pipefail
: "${NESTC_BIN:?NESTC_BIN must point to the nestc binary}"
url=$1
shift
node=${NODE:-node}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() { # check <name> <json line>
  "$node" -e '
    const [name, line] = process.argv.slice(1);
    const r = JSON.parse(line);
    const keys = ["requests", "errors", "rps", "p50_us", "p99_us", "max_us"];
    if (JSON.stringify(Object.keys(r).slice(0, 6)) !== JSON.stringify(keys)) throw new Error(name + ": key order " + Object.keys(r));
    if (!(r.requests > 0) || r.errors !== 0) throw new Error(name + ": " + line);
    if (name.includes("events") && !(r.events > 0)) throw new Error(name + ": no events counted: " + line);
    console.log("ok", name, "requests", r.requests, "rps", Math.round(r.rps));
  ' "$1" "$2"
}

run() { # run <name> <args...>
  local name=$1
  shift
  local out
  out=$("${wrap[@]}" "$NESTC_BIN" bench "$url" "$@" --duration "$duration" --warmup "$warmup" "${extra[@]}")
  check "$name" "$out"
}

extra=("$@")
# long enough for some requests however loaded the machine: 0.5 s (warm-up 0.2 s) × NESTC_TEST_TIMEOUT_FACTOR
factor=${NESTC_TEST_TIMEOUT_FACTOR:-1}
duration=$(awk -v f="$factor" 'BEGIN { print 0.5 * f }')
warmup=$(awk -v f="$factor" 'BEGIN { print 0.2 * f }')
# NESTC_WRAP: run nestc bench under a tool, e.g. valgrind (its error exit code fails the test)
wrap=()
[[ -n ${NESTC_WRAP:-} ]] && read -ra wrap <<<"$NESTC_WRAP"
engines=(client)
[[ $url == tcp://* ]] && engines=(raw client)
for e in "${engines[@]}"; do
  run "$e 1x1" '{"cmd":"sum"}' '[1,2,3]' --engine "$e"
  run "$e 4x16" sum '[1,2,3]' --connections 4 --inflight 16 --engine "$e"
  run "$e events" '{"cmd":"sum"}' '[]' --events 2 --event-pattern '{"cmd":"user_created"}' --event-data '{"n":1}' --engine "$e"
done
printf '"%0200000d"' 0 >"$tmp/big.json"
run "payload file" '{"cmd":"echo"}' --data-file "$tmp/big.json" --inflight 2 --engine "${engines[0]}"
