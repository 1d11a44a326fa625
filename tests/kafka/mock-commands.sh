#!/usr/bin/env bash
# mock-commands.sh — run under tests/interop/with-kafka.sh: every control command of kafka-mock (kafka-mock.c)
# is answered as documented ("ok <command>" / "error <command>: <why>" in the mock's log), so fault tests can rely
# on them. Each answer is waited for (a readiness wait, scaled by NESTC_TEST_TIMEOUT_FACTOR), never slept on.
set -euo pipefail
: "${KAFKA_CONTROL:?run under with-kafka.sh}" "${KAFKA_DIR:?run under with-kafka.sh}"
log=$KAFKA_DIR/kafka.log
fail=0

# expect COMMAND ANSWER [-E]: sends COMMAND, waits until the log holds the line ANSWER (with -E: a line matching
# the extended regular expression ANSWER).
expect() {
  echo "$1" >"$KAFKA_CONTROL"
  local how=-qxF deadline=$((SECONDS + 10 * ${NESTC_TEST_TIMEOUT_FACTOR:-1}))
  [[ ${3:-} == -E ]] && how=-qxE
  until grep "$how" -- "$2" "$log"; do
    if ((SECONDS >= deadline)); then
      echo "not ok - '$1': no line '$2' in the mock's log" >&2
      fail=1
      return
    fi
    sleep 0.05
  done
  echo "ok - '$1' → '$2'"
}

[[ $KAFKA_URL =~ ^kafka://127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+$ ]] ||
  { echo "not ok - KAFKA_URL '$KAFKA_URL' is not three loopback brokers" >&2; fail=1; }

expect 'down 2' 'ok down 2'
expect 'up 2' 'ok up 2'
expect 'rtt 1 5' 'ok rtt 1 5'
expect 'rtt 1 0' 'ok rtt 1 0'
expect 'topic mock-commands-t 2' 'ok topic mock-commands-t 2'
expect 'topic mock-commands-u 1 1' 'ok topic mock-commands-u 1 1'
expect 'leader mock-commands-t 0 3' 'ok leader mock-commands-t 0 3'
expect 'leader mock-commands-t 1 -1' 'ok leader mock-commands-t 1 -1'
expect 'topic-error mock-commands-t UNKNOWN_TOPIC_OR_PART' 'ok topic-error mock-commands-t UNKNOWN_TOPIC_OR_PART'
expect 'topic-error mock-commands-t NO_ERROR' 'ok topic-error mock-commands-t NO_ERROR'
expect 'produce-error 2' 'ok produce-error 2'
expect 'produce-error 1 _TRANSPORT' 'ok produce-error 1 _TRANSPORT'
expect 'request-error 3 1 RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT' 'ok request-error 3 1 RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT'
expect 'request-error 1 2 7' 'ok request-error 1 2 7'
expect 'clear 0' 'ok clear 0'
expect '# a comment, no answer' 'ok clear 0' # (ignored: the last answer is still the last line)
expect 'bogus' 'error bogus: unknown command'
expect 'down x' 'error down x: usage: down|up BROKER'
expect 'produce-error 1 NO_SUCH_ERROR' 'error produce-error 1 NO_SUCH_ERROR: unknown error name'
expect 'request-error 0' 'error request-error 0: usage: request-error API N [ERR]'
# librdkafka's own refusals come back as its error text
expect 'down 9' 'error down 9: .+' -E
exit "$fail"
