#!/usr/bin/env bash
# redis-refused.sh — run by with-redis.sh (REDIS_PORT set): the CLI against a broker that refuses it.
#
# Redis ACL users lacking the subscribe or publish permission, and a broker password not given:
#   nestc send ... --timeout 0   fails at once (exit 2, Redis's words: NOPERM / NOAUTH), it does not wait
#   nestc emit                   fails the same way on a refused PUBLISH
#   nestc conformance            exits 2 with "cannot serve <url>: authentication failed" when every
#                                subscription is refused, after one log line about the refusals
# Each command runs under `timeout`: before the fix `send --timeout 0` waited forever.
set -euo pipefail
: "${NESTC_BIN:?NESTC_BIN must name the nestc binary}" "${REDIS_PORT:?run under with-redis.sh}"
factor=${NESTC_TEST_TIMEOUT_FACTOR:-1}
limit=$((10 * factor)) # seconds a refused command may take at most (it takes milliseconds)

# One command on a side connection (inline protocol, arguments without spaces); prints the reply line.
redis_cmd() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT"
    printf '%s\r\n' "$*" >&3
    read -r -t "$limit" line <&3
    printf '%s\n' "${line%$'\r'}"
  )
}
[[ $(redis_cmd ACL SETUSER nosub on '>pw' '~*' '&*' +@all -subscribe -psubscribe) == +OK ]]
[[ $(redis_cmd ACL SETUSER nopub on '>pw' '~*' '&*' +@all -publish) == +OK ]]

. "$(dirname "$0")/refused-lib.sh"

base=127.0.0.1:$REDIS_PORT
expect 2 "NOPERM" -- send "redis://nosub:pw@$base" '{"cmd":"sum"}' '[1,2]' --timeout 0
expect 2 "Redis refused SUBSCRIBE" -- send "redis://nosub:pw@$base" sum '[1,2]' --timeout 0
expect 2 "Redis refused PUBLISH to sum: NOPERM" -- send "redis://nopub:pw@$base" sum '[1,2]' --timeout 0
expect 2 "Redis refused PUBLISH to note: NOPERM" -- emit "redis://nopub:pw@$base" note '1'
expect 2 "cannot serve redis://nosub:pw@$base: authentication failed" -- conformance "redis://nosub:pw@$base"
expect_refusals_logged_once # its 24 refused subscriptions
# a password the broker does not know: the server gives up the same way
expect 2 "cannot serve redis://x:wrong@$base: authentication failed" -- conformance "redis://x:wrong@$base"
# the broker requires a password and none is given: NOAUTH
[[ $(redis_cmd CONFIG SET requirepass s3cret) == +OK ]]
expect 2 "NOAUTH" -- send "redis://$base" sum '[1,2]' --timeout 0
exit $((fails > 0))
