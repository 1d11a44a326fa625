#!/usr/bin/env bash
# with-kafka.sh -- <command...>
#
# Starts a throw-away Kafka cluster — librdkafka's mock cluster as a process, tests/kafka/kafka-mock.c: three
# brokers on ephemeral loopback ports (librdkafka 2.0's mock has no port option) — in a fresh temporary
# directory, waits until it prints its bootstrap servers, runs the command, stops the mock by PID, removes the
# directory and exits with the command's status.
#
#   kafka-mock --brokers 3 <T/control >>T/kafka.log 2>&1
#
# Topics are created on first use (4 partitions each, the mock's default); KafkaJS's admin.createTopics does
# not work against the mock (it has no CreateTopics API): let producers and consumers create them.
#
# The command sees in its environment, and every argument "{KAFKA_URL}" / "{KAFKA_BROKERS}" is replaced by:
#   KAFKA_URL       kafka://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
#   KAFKA_BROKERS   127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3   (the bootstrap list, as clients take it)
# and also KAFKA_PID, KAFKA_DIR (T: kafka.log) and KAFKA_CONTROL (T/control, a FIFO).
#
# Fault injection: each line written to KAFKA_CONTROL is a command to the mock (the list is in kafka-mock.c
# and tests/interop/README.md, "Kafka"), e.g.
#   echo 'down 2' >"$KAFKA_CONTROL"                      # broker 2 stops answering
#   echo 'leader orders 0 3' >"$KAFKA_CONTROL"           # partition 0 of topic orders moves to broker 3
#   echo 'produce-error 2 _TRANSPORT' >"$KAFKA_CONTROL"  # the next 2 Produce requests drop the connection
# The mock answers each one with a line "ok <command>" or "error <command>: <why>" in KAFKA_DIR/kafka.log.
# This script holds the FIFO open for writing, so the writers' closing never ends the mock's input.
#
# KAFKA_MOCK names the mock's binary (CMake sets it; default kafka-mock on PATH); KAFKA_MOCK_BROKERS the
# number of brokers (default 3). The mock cannot be restarted on the same ports: use `down`/`up` instead.
set -euo pipefail
broker_script=with-kafka.sh broker_what=kafka-mock
# shellcheck source-path=SCRIPTDIR source=broker-lib.sh
. "$(dirname "$0")/broker-lib.sh"
broker_parse_args "$@"
if [[ -n $broker_certdir ]]; then
  echo "with-kafka.sh: --tls: the mock cluster has no TLS listener" >&2
  exit 2
fi
broker_find "${KAFKA_MOCK:-kafka-mock}"

KAFKA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/with-kafka.XXXXXX")
log=$KAFKA_DIR/kafka.log
KAFKA_CONTROL=$KAFKA_DIR/control
mkfifo "$KAFKA_CONTROL"
# Read-write: opening does not wait for a reader, and as long as we hold it the mock's input never ends.
exec {control_fd}<>"$KAFKA_CONTROL"
broker_stdin=$KAFKA_CONTROL
# The mock must not inherit our writer (it would never see the end of its input): a shell closes it and execs
# the mock, which keeps the PID. So if this script is killed, the mock's input ends once the command is gone too,
# and the mock exits by itself.
broker_start "$log" "$KAFKA_DIR" bash -c "exec \"\$@\" $control_fd>&-" kafka-mock \
  "$broker_bin" --brokers "${KAFKA_MOCK_BROKERS:-3}"
KAFKA_PID=$broker_pid

# shellcheck disable=SC2317  # (called by broker_wait_ready)
# Ready when the mock has printed its bootstrap servers (its listeners are bound before that).
printed_bootstrap() {
  KAFKA_BROKERS=$(sed -n 's/^bootstrap //p' "$log" 2>/dev/null | head -n 1)
  [[ -n $KAFKA_BROKERS ]]
}
broker_wait_ready printed_bootstrap "kafka-mock did not print its bootstrap servers"
KAFKA_URL=kafka://$KAFKA_BROKERS
export KAFKA_URL KAFKA_BROKERS KAFKA_PID KAFKA_DIR KAFKA_CONTROL
echo "with-kafka.sh: kafka-mock ready at $KAFKA_URL (pid $KAFKA_PID, control fd $control_fd)" >&2

broker_run KAFKA_URL="$KAFKA_URL" KAFKA_BROKERS="$KAFKA_BROKERS"
