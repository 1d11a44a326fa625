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

certdir=''
while (($#)); do
  case $1 in
    --tls) certdir=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "with-redis.sh: unexpected argument '$1'" >&2; exit 2 ;;
  esac
done
if (($# == 0)); then
  echo "usage: with-redis.sh [--tls CERTDIR] -- <command...>" >&2
  exit 2
fi
redis_server=${REDIS_SERVER:-redis-server}
command -v "$redis_server" >/dev/null || { echo "with-redis.sh: $redis_server not found" >&2; exit 2; }

# Free ports: let the kernel pick, then release them (a small race we accept on a test machine).
free_port() {
  "${NODE:-node}" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
REDIS_PORT=$(free_port)
REDIS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/with-redis.XXXXXX")
log=$REDIS_DIR/redis.log
cmd=("$redis_server" --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$REDIS_DIR"
  --logfile "$log")
REDIS_URL=redis://127.0.0.1:$REDIS_PORT
REDISS_URL=''
if [[ -n $certdir ]]; then
  certdir=$(cd "$certdir" && pwd) # redis resolves relative paths after chdir to --dir
  REDIS_TLS_PORT=$(free_port)
  while [[ $REDIS_TLS_PORT == "$REDIS_PORT" ]]; do REDIS_TLS_PORT=$(free_port); done
  cmd+=(--tls-port "$REDIS_TLS_PORT" --tls-cert-file "$certdir/server.pem" --tls-key-file "$certdir/server.key"
    --tls-ca-cert-file "$certdir/ca.pem" --tls-auth-clients optional)
  # The name, not the address: clients verify the certificate against it.
  REDISS_URL=rediss://localhost:$REDIS_TLS_PORT
  export REDIS_TLS_PORT REDISS_URL
fi
REDIS_CMD=$(printf '%q ' "${cmd[@]}")
export REDIS_PORT REDIS_DIR REDIS_URL REDIS_CMD

redis_pid=''
show_log() {
  echo "with-redis.sh: redis log (last 30 lines):" >&2
  tail -n 30 "$log" >&2 2>/dev/null || true
}
# SIGTERM, up to 5 s, then SIGKILL; `wait` reaps it (keep brokers as direct children).
# shellcheck disable=SC2317  # (called from the EXIT trap)
cleanup() {
  # Still our child? (After a restart by the test the PID is gone and could have been reused.)
  if [[ -n $redis_pid && $(ps -o ppid= -p "$redis_pid" 2>/dev/null | tr -d ' ') == "$$" ]]; then
    kill -TERM "$redis_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$redis_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  rm -rf "$REDIS_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "with-redis.sh: starting: $REDIS_CMD" >&2
# Started directly (not in a subshell), so $! is redis itself and it stays our child.
"${cmd[@]}" </dev/null >>"$log" 2>&1 &
redis_pid=$!
REDIS_PID=$redis_pid
export REDIS_PID

# Ready when it answers PING with +PONG (not merely accepting: it may still be loading).
ping_redis() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" || exit 1
    printf 'PING\r\n' >&3
    read -r -t 1 line <&3 && [[ $line == +PONG* ]]
  ) 2>/dev/null
}
# a readiness wait (it ends once redis answers), scaled by NESTC_TEST_TIMEOUT_FACTOR (set by CMake)
deadline=$((SECONDS + 60 * ${NESTC_TEST_TIMEOUT_FACTOR:-1}))
until ping_redis; do
  if ! kill -0 "$redis_pid" 2>/dev/null || ((SECONDS >= deadline)); then
    echo "with-redis.sh: redis did not answer PING on port $REDIS_PORT" >&2
    show_log
    exit 1
  fi
  sleep 0.05
done
echo "with-redis.sh: redis ready at $REDIS_URL${REDISS_URL:+ and $REDISS_URL} (pid $redis_pid)" >&2

args=()
for a in "$@"; do
  a=${a//\{REDIS_URL\}/$REDIS_URL}
  args+=("${a//\{REDISS_URL\}/$REDISS_URL}")
done
rc=0
"${args[@]}" || rc=$?
if ((rc != 0)); then
  echo "with-redis.sh: command exited with status $rc" >&2
  show_log
fi
exit "$rc"
