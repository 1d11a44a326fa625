#!/usr/bin/env bash
# nats-refused.sh — the CLI against a nats-server whose per-user permissions refuse it. Starts its own
# broker through with-nats.sh (with the users below), then:
#   nestc send ... --timeout 0   fails at once (exit 2, NATS's words: Permissions Violation for Subscription
#                                to "_INBOX..." / for Publish to "sum"), it does not wait
#   nestc conformance            exits 2 with "cannot serve <url>: authentication failed" when every
#                                subscription is refused (one log line), and with a wrong password
# Each command runs under `timeout`: before the fix `send --timeout 0` waited forever.
set -euo pipefail
if [[ -z ${NATS_PORT:-} ]]; then
  export NATS_AUTH_CONF='users = [
    {user: nosub, password: pw, permissions: {subscribe: {deny: ["_INBOX.>"]}}}
    {user: nopub, password: pw, permissions: {publish: {deny: ["sum"]}}}
    {user: srvnone, password: pw, permissions: {subscribe: {allow: ["nothing"]}}}
  ]'
  exec "$(dirname "$0")/with-nats.sh" -- "$0" "$@"
fi
: "${NESTC_BIN:?NESTC_BIN must name the nestc binary}"
limit=$((10 * ${NESTC_TEST_TIMEOUT_FACTOR:-1})) # seconds a refused command may take at most (milliseconds)

fails=0
last_out=''
# expect <exit code> <text the output must contain> -- <nestc arguments...>
expect() {
  local want=$1 text=$2 out rc=0 start=$SECONDS
  shift 3
  out=$(timeout "$limit" "$NESTC_BIN" "$@" 2>&1) || rc=$?
  if ((rc != want)) || [[ $out != *"$text"* ]]; then
    echo "FAIL: nestc $* → exit $rc after $((SECONDS - start)) s (want $want and \"$text\"):" >&2
    printf '%s\n' "$out" | head -n 5 >&2
    fails=$((fails + 1))
  else
    echo "ok: nestc $* → exit $rc: $(printf '%s' "$out" | tail -n 1)"
  fi
  last_out=$out
}

base=127.0.0.1:$NATS_PORT
expect 2 'Permissions Violation for Subscription to "_INBOX.' -- send "nats://nosub:pw@$base" sum '[1,2]' --timeout 0
expect 2 'Permissions Violation for Publish to "sum"' -- send "nats://nopub:pw@$base" sum '[1,2]' --timeout 0
expect 2 "cannot serve nats://srvnone:pw@$base: authentication failed" -- conformance "nats://srvnone:pw@$base"
# its 24 refused subscriptions: one log line
if (($(grep -c 'refused' <<<"$last_out") != 1)); then
  echo "FAIL: conformance logged the refusals $(grep -c 'refused' <<<"$last_out") times, not once" >&2
  fails=$((fails + 1))
fi
expect 2 "cannot serve nats://x:wrong@$base: authentication failed" -- conformance "nats://x:wrong@$base"
exit $((fails > 0))
