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

. "$(dirname "$0")/refused-lib.sh"

base=127.0.0.1:$NATS_PORT
expect 2 'Permissions Violation for Subscription to "_INBOX.' -- send "nats://nosub:pw@$base" sum '[1,2]' --timeout 0
expect 2 'Permissions Violation for Publish to "sum"' -- send "nats://nopub:pw@$base" sum '[1,2]' --timeout 0
expect 2 "cannot serve nats://srvnone:pw@$base: authentication failed" -- conformance "nats://srvnone:pw@$base"
expect_refusals_logged_once # its 24 refused subscriptions
expect 2 "cannot serve nats://x:wrong@$base: authentication failed" -- conformance "nats://x:wrong@$base"
exit $((fails > 0))
