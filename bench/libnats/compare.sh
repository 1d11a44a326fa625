#!/usr/bin/env bash
# libnats (the official NATS C client) against nestc's own NATS implementation, on this machine: the same
# NestJS-style request/reply through one nats-server, and the cost of connecting and closing. Writes
# bench/libnats/results.json (one JSON line per point) and bench/libnats/RESULTS.md (the tables); the reading
# is in bench/README.md, "Why nestc speaks NATS itself".
#
#   bench/libnats/compare.sh [--duration S] [--warmup S] [--oneshots N] [--servers LIST]
#
#   --duration S   counting window per point (default 5); --warmup S before it (default 1)
#   --oneshots N   connect + one request + close, N times per client (default 30); medians are reported
#   --servers L    the responders: nestc (bench/nestc-server.c, nestc's NATS server), libnats (a minimal
#                  responder written with libnats: libnats-bench --serve, libnats defaults) and libnats-asap
#                  (the same with natsOptions_SetSendAsap); default all three
#
# Needs libnats-dev (pkg-config libnats; installed with apt-get when missing and run as root) and nats-server.
# Builds in build-bench/ as bench/run.sh does. One nats-server on core 1 with the client under test; the
# responder alone on core 0 (as in run.sh's nats scenario). Clients, each with 100 and with 1 request in
# flight:
#   nestc                 `nestc bench nats://… --engine client`: the nestc client library (inbox per request)
#   libnats inbox         NestJS's pattern on libnats defaults: per request natsConnection_Subscribe on a fresh
#                         inbox (libnats: one delivery thread per asynchronous subscription), PUB with reply,
#                         Unsubscribe + Destroy on the reply; publishes left to libnats's flusher thread
#   libnats inbox global  the same with natsOptions_UseGlobalMessageDelivery (the library's shared delivery pool)
#   libnats inbox global asap   … and natsOptions_SetSendAsap (every publish written at once)
#   libnats shared        one wildcard inbox subscription for all requests (not NestJS's wire pattern)
#   libnats shared asap   … with SetSendAsap
#   libnats request       natsConnection_Request (blocking; the library's shared response inbox), one thread
#                         per request in flight
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bench=$(cd "$here/.." && pwd)
root=$(cd "$bench/.." && pwd)
build=$root/build-bench
out=$bench/out/libnats
duration=5 warmup=1 oneshots=30 servers=nestc,libnats,libnats-asap
while (($#)); do
  case $1 in
    --duration) duration=${2:?}; shift ;;
    --warmup) warmup=${2:?}; shift ;;
    --oneshots) oneshots=${2:?}; shift ;;
    --servers) servers=${2:?}; shift ;;
    -h | --help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
has() { [[ ,$1, == *,$2,* ]]; }

if ! pkg-config --exists libnats; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "compare.sh: installing libnats-dev" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y libnats-dev >&2
  else
    echo "compare.sh: libnats is not installed (Debian: apt-get install libnats-dev)" >&2
    exit 1
  fi
fi
command -v nats-server >/dev/null || { echo "compare.sh: nats-server is required" >&2; exit 1; }
mkdir -p "$out"
echo "compare: building in $build" >&2
if ! { cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNESTC_BUILD_TESTS=OFF \
  -DNESTC_BUILD_EXAMPLES=OFF -DNESTC_BUILD_BENCH=ON &&
  cmake --build "$build" --target nestc_cli nestc-server nestc-oneshot libnats-bench; } >"$out/build.log" 2>&1; then
  cat "$out/build.log" >&2
  exit 1
fi
nestc=$build/bin/nestc
lnb=$build/bench/libnats-bench
results=$here/results.json
: >"$results"

nats_pid='' nats_dir='' srv_pid='' cli_pid=''
cleanup() {
  [[ -n $cli_pid ]] && kill "$cli_pid" 2>/dev/null && wait "$cli_pid" 2>/dev/null
  [[ -n $srv_pid ]] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null
  [[ -n $nats_pid ]] && kill "$nats_pid" 2>/dev/null && wait "$nats_pid" 2>/dev/null
  [[ -n $nats_dir ]] && rm -rf "$nats_dir"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# machine_busy / wait_quiet: as in run.sh, each point waits (up to 60 s) for the cores to be under 10 % busy.
machine_busy() {
  local a b busy total i
  read -ra a </proc/stat
  sleep "${1:-1}"
  read -ra b </proc/stat
  total=0
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  busy=$((total - (b[4] - a[4]) - (b[5] - a[5])))
  echo $((total ? 100 * busy / total : 0))
}
point_busy=0
wait_quiet() {
  local i
  for ((i = 0; i < 120; i++)); do
    point_busy=$(machine_busy 0.5)
    ((point_busy < 10)) && return 0
    ((i % 20 == 19)) && echo "compare: waiting for the machine to be quiet (${point_busy}% busy)" >&2
  done
  echo "compare: warning: the machine stayed ${point_busy}% busy; measuring anyway" >&2
}
free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
threads_of() { sed -n 's/^Threads:[[:space:]]*\([0-9]*\)$/\1/p' "/proc/$1/status" 2>/dev/null; }
record() { echo "$1" >>"$results"; }

busy=$(machine_busy)
record "{\"scenario\":\"machine\",\"date\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"nestc\":\"$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')\",\"libnats\":\"$(pkg-config --modversion libnats)\",\"nats_server\":\"$(nats-server --version | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p')\",\"busy_pct_before\":$busy,\"loadavg_before\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"duration_s\":$duration,\"warmup_s\":$warmup}"

# One nats-server on core 1, in a temporary directory, stopped by PID.
nats_dir=$(mktemp -d "${TMPDIR:-/tmp}/nestc-libnats.XXXXXX")
port=$(free_port)
(cd "$nats_dir" && exec taskset -c 1 nats-server -a 127.0.0.1 -p "$port") >"$out/nats-server.log" 2>&1 &
nats_pid=$!
url=nats://127.0.0.1:$port
for ((i = 0; i < 100; i++)); do
  grep -q 'Server is ready' "$out/nats-server.log" && break
  sleep 0.05
done
grep -q 'Server is ready' "$out/nats-server.log" || { cat "$out/nats-server.log" >&2; exit 1; }
echo "compare: nats-server on port $port (pid $nats_pid, core 1)" >&2

start_responder() {
  local name=$1 log=$out/responder-$1.log i
  case $name in
    nestc) taskset -c 0 "$build/bench/nestc-server" --url "$url" >"$log" 2>&1 & ;;
    libnats) taskset -c 0 "$lnb" --serve --url "$url" >"$log" 2>&1 & ;;
    libnats-asap) taskset -c 0 "$lnb" --serve --asap --url "$url" >"$log" 2>&1 & ;;
  esac
  srv_pid=$!
  for ((i = 0; i < 100; i++)); do
    grep -qx "connected to $url" "$log" && return 0
    sleep 0.05
  done
  cat "$log" >&2
  return 1
}
stop_responder() {
  kill -TERM "$srv_pid" 2>/dev/null || true
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=''
  sleep 0.3 # nats-server drops its subscription
}

# client_point SERVER CLIENT INFLIGHT COMMAND...: runs a client on core 1, samples its thread count in the
# middle of the window, records its JSON line with the server, the client's name and the thread count.
client_point() {
  local server=$1 client=$2 n=$3 line threads
  shift 3
  wait_quiet
  echo "compare: $server server / $client × $n" >&2
  taskset -c 1 "$@" >"$out/point.json" 2>>"$out/stderr.log" &
  cli_pid=$!
  sleep "$(awk -v w="$warmup" -v d="$duration" 'BEGIN { print w + d / 2 }')"
  threads=$(threads_of "$cli_pid")
  wait "$cli_pid" || true
  cli_pid=''
  line=$(tail -n 1 "$out/point.json")
  if [[ $line == '{'* ]]; then
    echo "  $line" >&2
    record "{\"scenario\":\"reqrep\",\"server\":\"$server\",\"client\":\"$client\",\"inflight\":$n,\"threads_mid\":${threads:-null},\"busy_pct_before\":$point_busy,\"result\":$line}"
  else
    echo "  failed (see $out/stderr.log)" >&2
    record "{\"scenario\":\"reqrep\",\"server\":\"$server\",\"client\":\"$client\",\"inflight\":$n,\"result\":null}"
  fi
}

for server in nestc libnats libnats-asap; do
  has "$servers" "$server" || continue
  start_responder "$server" || exit 1
  # Untimed load first, as in run.sh (and it warms nats-server).
  wait_quiet
  taskset -c 1 "$nestc" bench "$url" '{"cmd":"sum"}' '[1,2,3]' --engine client --inflight 100 --duration 3 --warmup 0 \
    >/dev/null 2>>"$out/stderr.log" || true
  for n in 100 1; do
    client_point "$server" nestc "$n" "$nestc" bench "$url" '{"cmd":"sum"}' '[1,2,3]' --engine client --inflight "$n" \
      --duration "$duration" --warmup "$warmup" --server-pid "$srv_pid"
    for cfg in 'inbox' 'inbox --global' 'inbox --global --asap' 'shared' 'shared --asap' 'request'; do
      read -ra c <<<"$cfg"
      name="libnats ${cfg//--/}"
      client_point "$server" "${name//  / }" "$n" "$lnb" --url "$url" --mode "${c[@]}" --inflight "$n" \
        --duration "$duration" --warmup "$warmup" --server-pid "$srv_pid"
    done
  done
  # Connect, one request, close: against the nestc responder only (the client's cost does not depend on it).
  if [[ $server == nestc ]]; then
    wait_quiet
    echo "compare: connect + request + close, $oneshots times per client" >&2
    for ((i = 0; i < oneshots; i++)); do
      for client in nestc-send nestc-oneshot libnats-oneshot; do
        case $client in
          nestc-send) cmd=("$nestc" send "$url" '{"cmd":"sum"}' '[1,2,3]') ;;
          nestc-oneshot) cmd=("$build/bench/nestc-oneshot" "$url") ;;
          libnats-oneshot) cmd=("$lnb" --oneshot --url "$url") ;;
        esac
        t0=$EPOCHREALTIME
        line=$(taskset -c 1 "${cmd[@]}" 2>>"$out/stderr.log") || line=''
        t1=$EPOCHREALTIME
        wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1e6 }')
        [[ $line == '{'* ]] || line="{\"value\":\"${line//\"/}\"}"
        record "{\"scenario\":\"oneshot\",\"server\":\"nestc\",\"client\":\"$client\",\"process_wall_us\":$wall,\"result\":$line}"
      done
    done
  fi
  stop_responder
done

kill -TERM "$nats_pid" 2>/dev/null || true
wait "$nats_pid" 2>/dev/null || true
nats_pid=''
node "$here/report.mjs" "$results" >"$here/RESULTS.md"
echo "compare: wrote $results and $here/RESULTS.md" >&2
cat "$here/RESULTS.md"
