#!/usr/bin/env bash
# cli-options.sh — transport options on the command line (--opt name=value, the dedicated --queue, URL
# parameters), against a throw-away nats-server (with-nats.sh):
#   refused, exit 2 before anything is connected, with the option's name: an unknown URL parameter or
#     option, an option of the wrong level (queue on a client), a bad value, --opt without '='
#   accepted: two `conformance` servers given the queue group q, one with --queue q and one with
#     --opt queue=q, both subscribed in group q (the broker's monitoring shows it) and answering;
#     `send` with ?name= and --opt name=
#   listed: `nestc options nats`, `nestc help redis`
#   no handler: `send` to a subject no server handles exits 1 with the error value (a JSON string) on
#     stderr, as an error reply does (it exited 2 before)
# Before --opt existed, --queue was parsed and ignored: the servers subscribed without a group.
set -euo pipefail
if [[ -z ${NATS_PORT:-} ]]; then
  exec "$(dirname "$0")/with-nats.sh" -- "$0" "$@"
fi
: "${NESTC_BIN:?NESTC_BIN must name the nestc binary}"
limit=$((20 * ${NESTC_TEST_TIMEOUT_FACTOR:-1})) # seconds a command may take at most

. "$(dirname "$0")/refused-lib.sh"

base=127.0.0.1:$NATS_PORT
expect 2 "unknown URL parameter 'foo' for nats://" -- send "nats://$base?foo=1" sum '[1,2]'
expect 2 "option 'queue' is not valid for a client" -- send "nats://$base" sum '[1,2]' --queue q
expect 2 "option 'queue' is not valid for a client" -- emit "nats://$base" x --opt queue=q
expect 2 "option 'tls' of nats:// expects a bool" -- conformance "nats://$base" --opt tls=maybe
expect 2 "unknown option 'queue' for tcp://" -- conformance tcp://127.0.0.1:0 --opt queue=q
expect 2 "unknown URL parameter 'nodelay' for tcp://" -- conformance 'tcp://127.0.0.1:0?nodelay=1'
expect 2 "URL parameter 'wildcards' is not valid for a client" -- send 'redis://127.0.0.1:1?wildcards=true' x
expect 2 "--opt expects name=value" -- send "nats://$base" sum --opt queue
expect 2 "unknown option 'nope' for nats://" -- bench "nats://$base" sum --opt nope=1 --duration 0.1
expect 0 "queue" -- options nats
expect 0 "wildcards" -- help redis
expect 0 "takes no transport options" -- options tcp

# two servers in queue group q: one through the dedicated flag, one through --opt
pids=()
logs=$(mktemp -d)
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$logs"' EXIT
start() { # <log name> <args...>
  local log=$logs/$1
  shift
  "$NESTC_BIN" conformance "$@" >"$log" 2>&1 &
  pids+=($!)
  local waited=0
  until grep -q 'listening' "$log"; do
    sleep 0.05
    waited=$((waited + 1))
    if ((waited > limit * 20)); then
      echo "FAIL: nestc conformance $* did not get ready:" >&2
      cat "$log" >&2
      exit 1
    fi
  done
}
start a "nats://$base" --queue q
start b "nats://$base?queue=other" --opt queue=q # the option wins over the URL parameter
# every subscription of the two servers is in group q (none in `other`, none without a group)
groups=$("${NODE:-node}" -e '
  fetch(process.argv[1] + "/connz?subs=detail").then((r) => r.json()).then((b) => {
    const subs = b.connections.flatMap((c) => c.subscriptions_list_detail ?? []);
    const sum = subs.filter((s) => s.subject === "sum");
    console.log(sum.length + " " + sum.map((s) => s.qgroup ?? "-").join(","));
  });' "$NATS_MONITOR_URL")
if [[ $groups != "2 q,q" ]]; then
  echo "FAIL: the servers' subscriptions to sum are not both in group q: $groups" >&2
  fails=$((fails + 1))
else
  echo "ok: both servers subscribed in queue group q ($groups)"
fi
expect 0 3 -- send "nats://$base?name=cli" sum '[1,2]' --opt name=cli2
expect 1 '"' -- send "nats://$base" no.such.pattern 1 --timeout 5000
if [[ $last_out != '"'*'"' ]]; then
  echo "FAIL: no handler did not print a JSON string on stderr: $last_out" >&2
  fails=$((fails + 1))
fi
for p in "${pids[@]}"; do kill -TERM "$p"; done
for p in "${pids[@]}"; do
  if ! wait "$p"; then
    echo "FAIL: a conformance server did not exit cleanly" >&2
    fails=$((fails + 1))
  fi
done
pids=()
exit $((fails > 0))
