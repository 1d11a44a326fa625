#!/usr/bin/env bash
# with-shared-rabbitmq.sh -- <command...>
#
# Runs the command against the RabbitMQ broker shared by this test run: NESTC_RMQ_ENV names the env file
# written by rabbitmq-fixture.sh (ctest sets it through the fixture "rabbitmq", tests/interop/rabbitmq.cmake).
# Every NAME=VALUE of that file is exported (NESTC_RMQ_URL, RMQ_URL, RMQS_URL, RMQ_CTL, …), and every argument
# "{RMQ_URL}" / "{RMQS_URL}" / "{RMQ_PORT}" / "{RMQ_ID}" is replaced as with-rabbitmq.sh does; RMQ_ID is a token unique to
# this run of the command, for queue names (the broker outlives every test, so names must not repeat).
#
# Without NESTC_RMQ_ENV (by hand) it starts a broker of its own for the command: it is then with-rabbitmq.sh
# (with --tls CERTDIR when NESTC_RMQ_CERTS names one, for {RMQS_URL}).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [[ ${1:-} != -- || $# -lt 2 ]]; then
  echo "usage: with-shared-rabbitmq.sh -- <command...>" >&2
  exit 2
fi
shift
if [[ -z ${NESTC_RMQ_ENV:-} ]]; then
  tls=()
  [[ -n ${NESTC_RMQ_CERTS:-} ]] && tls=(--tls "$NESTC_RMQ_CERTS")
  exec "$here/with-rabbitmq.sh" "${tls[@]}" -- "$@"
fi
if [[ ! -f $NESTC_RMQ_ENV ]]; then
  echo "with-shared-rabbitmq.sh: no shared broker: $NESTC_RMQ_ENV is missing (the ctest fixture interop.rabbitmq.start did not run or failed)" >&2
  exit 1
fi
while IFS= read -r line; do
  [[ $line == *=* ]] || continue
  export "${line%%=*}=${line#*=}"
done <"$NESTC_RMQ_ENV"
RMQ_ID=$(date +%s)-$$-$RANDOM
export RMQ_ID
args=()
for a in "$@"; do
  a=${a//\{RMQ_URL\}/"$RMQ_URL"} # (quoted: see with-server.sh)
  a=${a//\{RMQS_URL\}/"${RMQS_URL:-}"}
  a=${a//\{RMQ_PORT\}/"${RMQ_PORT:-}"} # for URLs of several brokers (amqp://h1:p1,h2:p2)
  args+=("${a//\{RMQ_ID\}/"$RMQ_ID"}")
done
exec "${args[@]}"
