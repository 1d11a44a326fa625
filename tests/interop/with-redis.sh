#!/usr/bin/env bash
# with-redis.sh [--tls CERTDIR] -- <command...>
#
# Starts a throw-away redis-server on a free loopback port, in a fresh temporary directory, waits until it
# answers PING, runs the command, stops redis by PID, removes the directory and exits with the command's status.
#
#   redis-server --bind 127.0.0.1 --port P --save '' --appendonly no --dir T --logfile T/redis.log
#
# --tls CERTDIR  also serve TLS on a second port PT with CERTDIR/server.pem + server.key (gen-certs.sh; the
#                certificate is for localhost / 127.0.0.1), CA CERTDIR/ca.pem, client certificates optional.
#
# The command sees in its environment, and every argument "{REDIS_URL}" / "{REDISS_URL}" is replaced by:
#   REDIS_URL     redis://127.0.0.1:P
#   REDISS_URL    rediss://localhost:PT                          (only with --tls)
# and also REDIS_PORT, REDIS_TLS_PORT (with --tls), REDIS_PID, REDIS_DIR (T, holds redis.log) and REDIS_CMD.
#
# Restarting the broker from a test (e.g. to test reconnection): REDIS_CMD is the full redis command line,
# shell-quoted, with the same ports, directory and log file.
#   kill "$REDIS_PID"
#   until ! (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; do sleep 0.05; done   # port closed
#   eval "exec $REDIS_CMD" &       # exec: $! is then redis itself, not a subshell
#   from Node: spawn('bash', ['-c', `exec ${process.env.REDIS_CMD}`])
# The restarted redis is the test's own child: the test must stop it (SIGTERM) and wait for it. This script
# only stops the redis it started (it never kills by name or port).
set -euo pipefail
broker_script=with-redis.sh broker_what=redis
# shellcheck source-path=SCRIPTDIR source=broker-lib.sh
. "$(dirname "$0")/broker-lib.sh"
broker_parse_args "$@"
broker_find "${REDIS_SERVER:-redis-server}"

REDIS_PORT=$(broker_free_port)
REDIS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/with-redis.XXXXXX")
log=$REDIS_DIR/redis.log
cmd=("$broker_bin" --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$REDIS_DIR"
  --logfile "$log")
REDIS_URL=redis://127.0.0.1:$REDIS_PORT
REDISS_URL=''
if [[ -n $broker_certdir ]]; then
  certdir=$(cd "$broker_certdir" && pwd) # redis resolves relative paths after chdir to --dir
  REDIS_TLS_PORT=$(broker_free_port)
  while [[ $REDIS_TLS_PORT == "$REDIS_PORT" ]]; do REDIS_TLS_PORT=$(broker_free_port); done
  cmd+=(--tls-port "$REDIS_TLS_PORT" --tls-cert-file "$certdir/server.pem" --tls-key-file "$certdir/server.key"
    --tls-ca-cert-file "$certdir/ca.pem" --tls-auth-clients optional)
  # The name, not the address: clients verify the certificate against it.
  REDISS_URL=rediss://localhost:$REDIS_TLS_PORT
  export REDIS_TLS_PORT REDISS_URL
fi

broker_start "$log" "$REDIS_DIR" "${cmd[@]}"
REDIS_CMD=$broker_cmd REDIS_PID=$broker_pid
export REDIS_PORT REDIS_DIR REDIS_URL REDIS_CMD REDIS_PID

# shellcheck disable=SC2317  # (called by broker_wait_ready)
# Ready when it answers PING with +PONG (not merely accepting: it may still be loading).
ping_redis() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" || exit 1
    printf 'PING\r\n' >&3
    read -r -t 1 line <&3 && [[ $line == +PONG* ]]
  ) 2>/dev/null
}
broker_wait_ready ping_redis "redis did not answer PING on port $REDIS_PORT"
echo "with-redis.sh: redis ready at $REDIS_URL${REDISS_URL:+ and $REDISS_URL} (pid $REDIS_PID)" >&2

broker_run REDIS_URL="$REDIS_URL" REDISS_URL="$REDISS_URL"
