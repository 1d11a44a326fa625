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
# script only stops the nats-server it started (it never kills by name or port).
set -euo pipefail

certdir=''
while (($#)); do
  case $1 in
    --tls) certdir=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "with-nats.sh: unexpected argument '$1'" >&2; exit 2 ;;
  esac
done
if (($# == 0)); then
  echo "usage: with-nats.sh [--tls CERTDIR] -- <command...>" >&2
  exit 2
fi
nats_server=${NATS_SERVER:-nats-server}
command -v "$nats_server" >/dev/null || { echo "with-nats.sh: $nats_server not found" >&2; exit 2; }

# Free ports: let the kernel pick, then release them (a small race we accept on a test machine).
free_port() {
  "${NODE:-node}" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
NATS_PORT=$(free_port)
monitor_port=$(free_port)
while [[ $monitor_port == "$NATS_PORT" ]]; do monitor_port=$(free_port); done
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
if [[ -n $certdir ]]; then
  certdir=$(cd "$certdir" && pwd)
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
cmd=("$nats_server" -c "$conf" -l "$log")
NATS_CMD=$(printf '%q ' "${cmd[@]}")
export NATS_PORT NATS_DIR NATS_URL NATS_TLS NATS_MONITOR_URL NATS_CMD

nats_pid=''
show_log() {
  echo "with-nats.sh: nats-server log (last 30 lines):" >&2
  tail -n 30 "$log" >&2 2>/dev/null || true
}
# SIGTERM, up to 5 s, then SIGKILL; `wait` reaps it (keep brokers as direct children).
# shellcheck disable=SC2317  # (called from the EXIT trap)
cleanup() {
  # Still our child? (After a restart by the test the PID is gone and could have been reused.)
  if [[ -n $nats_pid && $(ps -o ppid= -p "$nats_pid" 2>/dev/null | tr -d ' ') == "$$" ]]; then
    kill -TERM "$nats_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$nats_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$nats_pid" 2>/dev/null || true
    wait "$nats_pid" 2>/dev/null || true
  fi
  rm -rf "$NATS_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "with-nats.sh: starting: $NATS_CMD" >&2
# Started directly (not in a subshell), so $! is nats-server itself and it stays our child.
"${cmd[@]}" </dev/null >>"$log" 2>&1 &
nats_pid=$!
NATS_PID=$nats_pid
export NATS_PID

# Ready when a connection gets the server's greeting (INFO {...}); it is sent in plain text before any TLS
# upgrade, so this works with --tls too.
greets() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT" || exit 1
    read -r -t 1 line <&3 && [[ $line == INFO* ]]
  ) 2>/dev/null
}
# a readiness wait (it ends once the broker answers), scaled by NESTC_TEST_TIMEOUT_FACTOR (set by CMake)
deadline=$((SECONDS + 60 * ${NESTC_TEST_TIMEOUT_FACTOR:-1}))
until greets; do
  if ! kill -0 "$nats_pid" 2>/dev/null || ((SECONDS >= deadline)); then
    echo "with-nats.sh: nats-server did not send INFO on port $NATS_PORT" >&2
    show_log
    exit 1
  fi
  sleep 0.05
done
echo "with-nats.sh: nats-server ready at $NATS_URL${NATS_TLS:+ (TLS required)} (pid $nats_pid)" >&2

args=()
for a in "$@"; do
  args+=("${a//\{NATS_URL\}/$NATS_URL}")
done
rc=0
"${args[@]}" || rc=$?
if ((rc != 0)); then
  echo "with-nats.sh: command exited with status $rc" >&2
  show_log
fi
exit "$rc"
