#!/usr/bin/env bash
# with-nats.sh [--tls CERTDIR] -- <command...>
#
# Starts a throw-away nats-server on a free loopback port, in a fresh temporary directory, waits until it
# greets with its INFO line, runs the command, stops nats-server by PID, removes the directory and exits with
# the command's status.
#
#   nats-server -c T/nats.conf -l T/nats.log
#
# The configuration file T/nats.conf holds what has no command-line flag in nats-server 2.9:
#   listen: 127.0.0.1:P            (the client port, as `-a 127.0.0.1 -p P`)
#   http: 127.0.0.1:M              (monitoring: /varz, /connz?subs=detail, used by nats-queue.mjs)
#   max_payload: 8MB               (the default is 1 MB; the conformance suite echoes 1.5 MB)
# and with --tls CERTDIR a tls block with CERTDIR/server.pem + server.key (gen-certs.sh; the certificate is for
# localhost / 127.0.0.1) and CA CERTDIR/ca.pem (as `--tls --tlscert … --tlskey … --tlscacert …`): every client
# must then speak TLS; client certificates are not required. NATS has one scheme for both, so the URL stays
# nats://: clients turn TLS on when they have TLS options (nestc: --ca) or the server's INFO requires it.
#
# The command sees in its environment, and every argument "{NATS_URL}" is replaced by:
#   NATS_URL      nats://127.0.0.1:P, or with --tls nats://localhost:P (the name, for certificate checks)
# and also NATS_PORT, NATS_MONITOR_URL (http://127.0.0.1:M), NATS_TLS (1 with --tls, else empty), NATS_PID,
# NATS_DIR (T: nats.conf, nats.log) and NATS_CMD.
#
# NATS_SERVER names the binary (default nats-server); NATS_MAX_PAYLOAD overrides max_payload (e.g. 1MB);
# NATS_AUTH_CONF is added inside the authorization block (e.g. `users = [...]` with permissions).
#
# Restarting the broker from a test (e.g. to test reconnection): NATS_CMD is the full nats-server command
# line, shell-quoted, with the same configuration (ports), directory and log file.
#   kill "$NATS_PID"
#   until ! (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null; do sleep 0.05; done   # port closed
#   eval "exec $NATS_CMD" &        # exec: $! is then nats-server itself, not a subshell
#   from Node: spawn('bash', ['-c', `exec ${process.env.NATS_CMD}`])
# The restarted nats-server is the test's own child: the test must stop it (SIGTERM) and wait for it. This
# script (broker-lib.sh) only stops the nats-server it started (it never kills by name or port).
set -euo pipefail
broker_script=with-nats.sh broker_what=nats-server
# shellcheck source-path=SCRIPTDIR source=broker-lib.sh
. "$(dirname "$0")/broker-lib.sh"
broker_parse_args "$@"
broker_find "${NATS_SERVER:-nats-server}"

NATS_PORT=$(broker_free_port)
monitor_port=$(broker_free_port)
while [[ $monitor_port == "$NATS_PORT" ]]; do monitor_port=$(broker_free_port); done
NATS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/with-nats.XXXXXX")
conf=$NATS_DIR/nats.conf
log=$NATS_DIR/nats.log
{
  echo "listen: 127.0.0.1:$NATS_PORT"
  echo "http: 127.0.0.1:$monitor_port"
  echo "max_payload: ${NATS_MAX_PAYLOAD:-8MB}"
  # CONNECT must come within this (default 2 s; valgrind is slower)
  printf 'authorization {\n  timeout: 30\n%s\n}\n' "${NATS_AUTH_CONF:-}"
} >"$conf"
NATS_URL=nats://127.0.0.1:$NATS_PORT
NATS_TLS=''
if [[ -n $broker_certdir ]]; then
  certdir=$(cd "$broker_certdir" && pwd)
  cat >>"$conf" <<EOF
tls {
  cert_file: "$certdir/server.pem"
  key_file: "$certdir/server.key"
  ca_file: "$certdir/ca.pem"
  verify: false
  # nats-server drops a client whose TLS handshake takes longer than this (default 0.5 s): far too short
  # for clients under valgrind on a loaded 2-core machine
  timeout: 30
}
EOF
  # The name, not the address: clients verify the certificate against it.
  NATS_URL=nats://localhost:$NATS_PORT
  NATS_TLS=1
fi
NATS_MONITOR_URL=http://127.0.0.1:$monitor_port

broker_start "$log" "$NATS_DIR" "$broker_bin" -c "$conf" -l "$log"
NATS_CMD=$broker_cmd NATS_PID=$broker_pid
export NATS_PORT NATS_DIR NATS_URL NATS_TLS NATS_MONITOR_URL NATS_CMD NATS_PID

# shellcheck disable=SC2317  # (called by broker_wait_ready)
# Ready when a connection gets the server's greeting (INFO {...}); it is sent in plain text before any TLS
# upgrade, so this works with --tls too.
greets() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT" || exit 1
    read -r -t 1 line <&3 && [[ $line == INFO* ]]
  ) 2>/dev/null
}
broker_wait_ready greets "nats-server did not send INFO on port $NATS_PORT"
echo "with-nats.sh: nats-server ready at $NATS_URL${NATS_TLS:+ (TLS required)} (pid $NATS_PID)" >&2

broker_run NATS_URL="$NATS_URL"
