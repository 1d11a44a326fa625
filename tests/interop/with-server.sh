#!/usr/bin/env bash
# with-server.sh [--tls CERTDIR [--mtls]] [--url BROKER-URL] [--workers N] <nest|nestc> -- <client command...>
#
# Starts a conformance server, waits until it is ready, runs the client command, stops the server by PID
# and exits with the client's exit code.
#
# TCP/TLS (no --url): the server listens on a free loopback port; ready when the port accepts connections.
#   nest   node nest-server.mjs --port P                   (this folder)
#   nestc  $NESTC_BIN conformance tcp://127.0.0.1:P        (NESTC_BIN must be set)
#
# Broker (--url redis://H:P, rediss://H:P, nats://H:P, mqtt://H:P, mqtts://H:P, amqp://H:P, amqps://H:P or
# kafka://H:P,H:P,..., e.g. from with-redis.sh / with-nats.sh / with-mosquitto.sh / with-shared-rabbitmq.sh /
# with-kafka.sh; Kafka: PORT is the last broker's): the server
# subscribes to that broker. There is no port of ours to wait on, so it is ready when it prints its readiness
# line on stdout/stderr:
#   nest   node nest-server.mjs --url URL [--wildcards] [--queue Q]   prints "READY …"
#   nestc  $NESTC_BIN conformance URL[?query]                        prints a line starting "nestc conformance listening"
# Server options travel as a query on the broker URL; it is passed to nestc as is, translated into flags for
# the Nest server, and clients get the URL without it (these are server options only):
#   ?wildcards=true   Redis PSUBSCRIBE mode                → nest --wildcards
#   ?queue=NAME       NATS queue group for every handler   → nest --queue NAME
# MQTT's query (?protocolVersion=5) is an option of server and client alike: it stays on both URLs. So does
# RabbitMQ's (?queue=Q&wildcards=true&noAck=false&prefetchCount=N…): both sides name the queue, and in wildcards
# mode the client publishes to the topic exchange instead of the queue (nest-server.mjs reads the query too).
#
# --tls CERTDIR  TCP: serve TLS with CERTDIR/server.pem + server.key (made by gen-certs.sh); URL is
#                tls://localhost:P. Broker: the server trusts CERTDIR/ca.pem for the broker (--ca); for NATS
#                (one scheme, nats://) that also turns TLS on.
# --mtls         (TCP) also pass --ca CERTDIR/ca.pem to the server, which then requires client certificates
# --workers N    (nestc) serve on N loops
#
# The client sees PORT and URL in its environment, and every argument "{PORT}" / "{URL}" is replaced
# (ctest commands are fixed before the port is known). With --url, PORT is the broker's port.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
node=${NODE:-node}
certdir=''
mtls=0
kind=''
workers=''
broker_url=''
while (($#)); do
  case $1 in
    --tls) certdir=$2; shift 2 ;;
    --url) broker_url=$2; shift 2 ;;
    --mtls) mtls=1; shift ;;
    --workers) workers=$2; shift 2 ;;
    --) shift; break ;;
    nest | nestc) kind=$1; shift ;;
    *) echo "with-server.sh: unexpected argument '$1'" >&2; exit 2 ;;
  esac
done
if [[ -z $kind || $# -eq 0 ]]; then
  echo "usage: with-server.sh [--tls CERTDIR [--mtls]] [--url BROKER-URL] [--workers N] <nest|nestc> -- <client...>" >&2
  exit 2
fi

tls_args=()
if [[ -n $broker_url ]]; then
  case $broker_url in
    redis://* | rediss://* | nats://* | mqtt://* | mqtts://* | amqp://* | amqps://* | kafka://*) ;;
    *) echo "with-server.sh: unsupported broker URL '$broker_url' (redis://, rediss://, nats://, mqtt://, mqtts://, amqp://, amqps:// or kafka://)" >&2; exit 2 ;;
  esac
  scheme=${broker_url%%://*}
  URL=${broker_url%%\?*} # the clients' URL: no server options
  PORT=${URL##*:}
  PORT=${PORT%%/*}
  [[ $scheme == mqtt || $scheme == mqtts || $scheme == amqp || $scheme == amqps ]] && URL=$broker_url
  [[ -n $certdir ]] && tls_args=(--ca "$certdir/ca.pem")
else
  # A free port: let the kernel pick one, then release it (a small race we accept on a test machine).
  PORT=$("$node" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  scheme=tcp
  if [[ -n $certdir ]]; then
    scheme=tls
    tls_args=(--cert "$certdir/server.pem" --key "$certdir/server.key")
    ((mtls)) && tls_args+=(--ca "$certdir/ca.pem")
  fi
  # Clients use the name for TLS (the certificate is for localhost; it also has IP:127.0.0.1).
  if [[ $scheme == tls ]]; then URL="tls://localhost:$PORT"; else URL="tcp://127.0.0.1:$PORT"; fi
fi
export PORT URL

case $kind in
  nest)
    if [[ -n $broker_url ]]; then
      server=("$node" "$here/nest-server.mjs" --url "$URL" "${tls_args[@]}") # (MQTT: with its query)
      [[ $broker_url =~ [?\&]wildcards=true(\&|$) ]] && server+=(--wildcards)
      [[ $broker_url =~ [?\&]queue=([^\&]+) ]] && server+=(--queue "${BASH_REMATCH[1]}")
    else
      server=("$node" "$here/nest-server.mjs" --port "$PORT" "${tls_args[@]}")
    fi ;;
  nestc)
    : "${NESTC_BIN:?NESTC_BIN must point to the nestc binary}"
    server=("$NESTC_BIN" conformance "${broker_url:-$scheme://127.0.0.1:$PORT}" "${tls_args[@]}")
    [[ -n $workers ]] && server+=(--workers "$workers")
    # NESTC_WRAP: run the nestc server under a tool, e.g. "valgrind --error-exitcode=99 --leak-check=full"
    if [[ -n ${NESTC_WRAP:-} ]]; then read -ra wrap <<<"$NESTC_WRAP"; server=("${wrap[@]}" "${server[@]}"); fi ;;
esac

log=$(mktemp)
server_pid=''

# SIGTERM, up to 5 s × NESTC_TEST_TIMEOUT_FACTOR for a graceful exit, then SIGKILL. Reports how the server
# ended.
# shellcheck disable=SC2317  # (stop_server and cleanup are called from the EXIT trap)
stop_server() {
  [[ -n $server_pid ]] || return 0
  local pid=$server_pid
  server_pid=''
  kill -TERM "$pid" 2>/dev/null || true
  local tenths=$((50 * ${NESTC_TEST_TIMEOUT_FACTOR:-1}))
  for _ in $(seq "$tenths"); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "with-server.sh: $kind server ignored SIGTERM for $((tenths / 10)) s, killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  local rc=0
  wait "$pid" 2>/dev/null || rc=$?
  server_rc=$rc
  if ((rc != 0)); then
    echo "with-server.sh: $kind server exited with status $rc after SIGTERM; its output (last 50 lines):" >&2
    tail -n 50 "$log" >&2
  fi
}
server_rc=0
# shellcheck disable=SC2317
cleanup() {
  stop_server
  rm -f "$log"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "with-server.sh: starting: ${server[*]}" >&2
# Started directly (not in a subshell), so $! is the server itself and it stays our child.
"${server[@]}" >"$log" 2>&1 &
server_pid=$!

# TCP: ready when the port accepts a TCP connection (a bare connect is harmless for TLS servers too).
# Broker: ready when the server printed its readiness line (it is then subscribed).
if [[ $kind == nest ]]; then ready_line='^READY'; else ready_line='^nestc conformance listening'; fi
is_ready() {
  if [[ -n $broker_url ]]; then
    grep -q "$ready_line" "$log"
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
  fi
}
# A readiness wait, not a delay: it ends as soon as the server is ready. Generous (NestJS servers start
# in seconds, minutes on a loaded machine) and scaled by NESTC_TEST_TIMEOUT_FACTOR (set by CMake).
factor=${NESTC_TEST_TIMEOUT_FACTOR:-1}
wait_s=$((60 * factor))
[[ -n ${NESTC_WRAP:-} && $kind == nestc ]] && ((wait_s < 120)) && wait_s=120 # slow start under valgrind
deadline=$((SECONDS + wait_s))
until is_ready; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "with-server.sh: $kind server exited before it was ready; its output:" >&2
    cat "$log" >&2
    exit 1
  fi
  if ((SECONDS >= deadline)); then
    echo "with-server.sh: $kind server not ready after $wait_s s${broker_url:+ (no readiness line)}; its output:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "with-server.sh: $kind server ready at $URL" >&2

client=()
for a in "$@"; do
  # (quoted replacements: in bash 5.2 an unquoted `&` in one stands for the matched text, and RabbitMQ's URLs
  # have a query with `&`)
  a=${a//\{PORT\}/"$PORT"}
  client+=("${a//\{URL\}/"$URL"}")
done
# Under NESTC_WRAP a native client (the C library's driver) runs under the tool too; Node and scripts do not.
if [[ -n ${NESTC_WRAP:-} && $(basename "${client[0]}") != node && -x ${client[0]} &&
  $(head -c 4 "${client[0]}" | od -An -c | tr -d ' ') == 177ELF ]]; then
  read -ra wrap <<<"$NESTC_WRAP"
  client=("${wrap[@]}" "${client[@]}")
fi
rc=0
"${client[@]}" || rc=$?

if ((rc != 0)); then
  echo "with-server.sh: client exited with status $rc; server output (last 50 lines):" >&2
  tail -n 50 "$log" >&2
fi
# A nestc server must shut down cleanly: graceful exit 0, and under the sanitizers no error or leak
# (those make it exit non-zero).
stop_server
if [[ $kind == nestc ]] && ((rc == 0 && server_rc != 0)); then
  echo "with-server.sh: failing: the nestc server did not exit cleanly" >&2
  rc=1
fi
exit "$rc"
