#!/usr/bin/env bash
# with-rabbitmq.sh [--tls CERTDIR] -- <command...>
#
# Starts a throw-away RabbitMQ (AMQP 0-9-1) on free loopback ports, in a fresh temporary directory T, with its
# own epmd, waits until it is ready, runs the command, stops the broker and epmd by PID, removes the directory
# and exits with the command's status. Starting takes seconds (4–16 s here): a test run shares one broker
# (rabbitmq-fixture.sh, with-shared-rabbitmq.sh; README.md "RabbitMQ"); this script is for a test that needs
# a broker of its own (e.g. to restart it).
#
#   epmd -port E -address 127.0.0.1                                  (log T/epmd.log)
#   env HOME=T ERL_EPMD_PORT=E RABBITMQ_…=… rabbitmq-server           (log T/rabbitmq.log)
#
# Everything the node reads is in T: the Erlang cookie (HOME), the database (T/mnesia), the configuration
# T/rabbitmq.conf (listeners on 127.0.0.1 only, generous handshake timeouts for slow clients), no plugins
# (T/enabled_plugins), no /etc/rabbitmq/rabbitmq-env.conf. The node's name is rabbit-P@localhost; Erlang
# distribution listens on 127.0.0.1:D and registers with our epmd on E, never the system's 4369 (and never
# starts an epmd of its own: -start_epmd false). RABBITMQ_ALLOW_INPUT makes rabbitmq-server exec the VM, so the
# broker's PID is the Erlang VM itself (with -noinput it reads nothing); SIGTERM stops it gracefully.
# Ready when the log says "Server startup complete" and the AMQP port (and with --tls the AMQPS port) accepts.
# With --tls CERTDIR an AMQPS listener on 127.0.0.1:PT uses CERTDIR/server.pem + server.key (gen-certs.sh; the
# certificate is for localhost / 127.0.0.1) and CA CERTDIR/ca.pem; client certificates are not required.
# The default user guest/guest may connect (it is limited to loopback connections, which these are).
#
# The command sees in its environment, and every argument "{RMQ_URL}" / "{RMQS_URL}" / "{RMQ_ID}" is
# replaced by:
#   RMQ_URL       amqp://127.0.0.1:P
#   RMQS_URL      amqps://localhost:PT                     (only with --tls; the name, for certificate checks)
#   RMQ_ID        a token unique to this run, for queue names (e.g. ?queue=q-{RMQ_ID})
# and also RMQ_PORT, RMQ_TLS_PORT (with --tls), RMQ_EPMD_PORT, RMQ_DIST_PORT, RMQ_NODE (the node's name),
# RMQ_PID (the broker), RMQ_EPMD_PID, RMQ_DIR (T), RMQ_CTL (T/rabbitmqctl: rabbitmqctl with this node's
# environment, e.g. "$RMQ_CTL list_queues -q --no-table-headers name messages_unacknowledged"; each call
# starts an Erlang VM: about a second) and RMQ_CMD.
#
# RABBITMQ_SERVER names the server script (default /usr/lib/rabbitmq/bin/rabbitmq-server: not Debian's
# /usr/sbin wrapper, which switches to the user rabbitmq and its own directories); its folder must hold
# rabbitmqctl. EPMD names epmd (default epmd on PATH). RABBITMQ_CONF is appended to rabbitmq.conf.
#
# Restarting the broker from a test (e.g. to test reconnection): RMQ_CMD is the full command line (env and
# rabbitmq-server), shell-quoted, with the same ports, directory (so the same database) and log file; epmd
# keeps running.
#   kill "$RMQ_PID"
#   until ! (exec 3<>"/dev/tcp/127.0.0.1/$RMQ_PORT") 2>/dev/null; do sleep 0.05; done   # port closed
#   eval "exec $RMQ_CMD" &        # exec: $! is then the Erlang VM itself, not a subshell
#   from Node: spawn('bash', ['-c', `exec ${process.env.RMQ_CMD}`])
# then wait for "Server startup complete" to appear once more in T/rabbitmq.log. The restarted broker is the
# test's own child: the test must stop it (SIGTERM) and wait for it. This script (broker-lib.sh) only stops
# the broker and the epmd it started (it never kills by name or port).
set -euo pipefail
broker_script=with-rabbitmq.sh broker_what=rabbitmq-server
# shellcheck source-path=SCRIPTDIR source=broker-lib.sh
. "$(dirname "$0")/broker-lib.sh"
broker_parse_args "$@"
rmq_server=${RABBITMQ_SERVER:-/usr/lib/rabbitmq/bin/rabbitmq-server}
[[ -x $rmq_server ]] || { echo "with-rabbitmq.sh: $rmq_server not found (Debian: apt-get install rabbitmq-server)" >&2; exit 2; }
rmq_ctl=$(dirname "$rmq_server")/rabbitmqctl
broker_find "${EPMD:-epmd}"
epmd_bin=$broker_bin

# Four different free ports: AMQP, AMQPS, epmd, Erlang distribution (its default, AMQP + 20000, may not exist).
# (distinct_port runs in a subshell: the caller records each port in `used`.)
used=' '
distinct_port() {
  local p
  p=$(broker_free_port)
  while [[ $used == *" $p "* ]]; do p=$(broker_free_port); done
  echo "$p"
}
RMQ_PORT=$(distinct_port)
used+="$RMQ_PORT "
RMQ_EPMD_PORT=$(distinct_port)
used+="$RMQ_EPMD_PORT "
RMQ_DIST_PORT=$(distinct_port)
used+="$RMQ_DIST_PORT "
RMQ_NODE=rabbit-$RMQ_PORT@localhost
RMQ_DIR=$(mktemp -d "${TMPDIR:-/tmp}/with-rabbitmq.XXXXXX")
RMQ_ID=$(date +%s)-$$-$RANDOM
conf=$RMQ_DIR/rabbitmq.conf
log=$RMQ_DIR/rabbitmq.log
{
  echo "listeners.tcp.default = 127.0.0.1:$RMQ_PORT"
  # AMQP handshake and TLS handshake bounds (defaults 10 s and 5 s): clients under valgrind on a loaded 2-core
  # machine are slower than that.
  echo "handshake_timeout = 60000"
  echo "ssl_handshake_timeout = 60000"
} >"$conf"
echo '[].' >"$RMQ_DIR/enabled_plugins"
RMQ_URL=amqp://127.0.0.1:$RMQ_PORT
RMQS_URL=''
if [[ -n $broker_certdir ]]; then
  certdir=$(cd "$broker_certdir" && pwd)
  RMQ_TLS_PORT=$(distinct_port)
  cat >>"$conf" <<EOF
listeners.ssl.default = 127.0.0.1:$RMQ_TLS_PORT
ssl_options.cacertfile = $certdir/ca.pem
ssl_options.certfile = $certdir/server.pem
ssl_options.keyfile = $certdir/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
EOF
  # The name, not the address: clients verify the certificate against it.
  RMQS_URL=amqps://localhost:$RMQ_TLS_PORT
  export RMQ_TLS_PORT RMQS_URL
fi
[[ -n ${RABBITMQ_CONF:-} ]] && printf '%s\n' "$RABBITMQ_CONF" >>"$conf"

# The node's environment (also used by rabbitmqctl): nothing from the system's RabbitMQ directories.
node_env=(
  HOME="$RMQ_DIR"
  ERL_EPMD_PORT="$RMQ_EPMD_PORT"
  RABBITMQ_NODENAME="$RMQ_NODE"
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  RABBITMQ_NODE_PORT="$RMQ_PORT"
  RABBITMQ_DIST_PORT="$RMQ_DIST_PORT"
  RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
  RABBITMQ_LOG_BASE="$RMQ_DIR/log"
  RABBITMQ_LOGS=-
  RABBITMQ_CONFIG_FILE="$conf"
  RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config"
  RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"
  RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
)
RMQ_CTL=$RMQ_DIR/rabbitmqctl
{
  echo '#!/bin/sh'
  echo "# rabbitmqctl for the node $RMQ_NODE (with-rabbitmq.sh)"
  printf 'exec env'
  printf ' %q' "${node_env[@]}" "RABBITMQ_CTL_ERL_ARGS=-start_epmd false" "$rmq_ctl"
  printf ' "$@"\n'
} >"$RMQ_CTL"
chmod +x "$RMQ_CTL"

# epmd first: the node registers with it (and must not start one of its own, which would outlive us).
epmd_pid=''
# shellcheck disable=SC2317  # (called from the EXIT trap)
stop_epmd() {
  if [[ -n $epmd_pid && $(ps -o ppid= -p "$epmd_pid" 2>/dev/null | tr -d ' ') == "$$" ]]; then
    kill -TERM "$epmd_pid" 2>/dev/null || true
    wait "$epmd_pid" 2>/dev/null || true
  fi
  epmd_pid=''
}
# shellcheck disable=SC2317
cleanup_all() {
  local dir=$RMQ_DIR
  broker_dir='' # removed below, once epmd is gone too
  broker_cleanup || true
  stop_epmd
  rm -rf "$dir"
}
trap cleanup_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
"$epmd_bin" -port "$RMQ_EPMD_PORT" -address 127.0.0.1 </dev/null >>"$RMQ_DIR/epmd.log" 2>&1 &
epmd_pid=$!
RMQ_EPMD_PID=$epmd_pid
# shellcheck disable=SC2317  # (called by broker_wait_ready)
epmd_listens() { (exec 3<>"/dev/tcp/127.0.0.1/$RMQ_EPMD_PORT") 2>/dev/null; }
broker_pid=$epmd_pid broker_log=$RMQ_DIR/epmd.log
broker_wait_ready epmd_listens "epmd did not listen on port $RMQ_EPMD_PORT"

broker_start "$log" "$RMQ_DIR" env "${node_env[@]}" RABBITMQ_ALLOW_INPUT=1 \
  "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-noinput -start_epmd false -kernel inet_dist_use_interface {127,0,0,1}" \
  "$rmq_server"
trap cleanup_all EXIT # (broker_start set its own)
RMQ_CMD=$broker_cmd RMQ_PID=$broker_pid
export RMQ_PORT RMQ_EPMD_PORT RMQ_DIST_PORT RMQ_NODE RMQ_DIR RMQ_URL RMQ_ID RMQ_CTL RMQ_CMD RMQ_PID RMQ_EPMD_PID

# shellcheck disable=SC2317  # (called by broker_wait_ready)
rmq_ready() {
  grep -q 'Server startup complete' "$log" || return 1
  (exec 3<>"/dev/tcp/127.0.0.1/$RMQ_PORT") 2>/dev/null || return 1
  [[ -z $RMQS_URL ]] || (exec 3<>"/dev/tcp/127.0.0.1/$RMQ_TLS_PORT") 2>/dev/null
}
broker_wait_ready rmq_ready "rabbitmq-server did not start on port $RMQ_PORT"
echo "with-rabbitmq.sh: rabbitmq-server ready at $RMQ_URL${RMQS_URL:+ and $RMQS_URL} (pid $RMQ_PID, node $RMQ_NODE, $SECONDS s)" >&2

broker_run RMQ_URL="$RMQ_URL" RMQS_URL="$RMQS_URL" RMQ_ID="$RMQ_ID"
