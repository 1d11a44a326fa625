#!/usr/bin/env bash
# nestc against NestJS's own TCP server, side by side, with the same load generator; writes RESULTS.md.
#
#   bench/run.sh [--quick] [--only LIST] [--servers LIST] [--duration S] [--warmup S] [--repeat N] [--conns N]
#
#   --quick          a short smoke run (1 s per point, 1000 idle connections)
#   --only LIST      comma-separated scenarios: memory,throughput,conns,latency,events,payload,dom,client,workers
#   --servers LIST   comma-separated servers for the side-by-side scenarios: ceiling,nestc,nestjs
#   --duration S     counting window per point (default 5); --warmup S before it (default 1)
#   --repeat N       measure every point N times; the report shows the median run (default 1)
#   --conns N        idle connections for the memory scenario (default 10000, or 1000 if `ulimit -n` is low)
#
# Installs what is missing (Debian packages, Node.js, the pinned NestJS with `npm ci`), builds nestc in
# Release, then for each server: starts it alone on core 0 (taskset -c 0), runs every scenario from
# `nestc bench` on core 1 (taskset -c 1), stops it by PID. A full run writes bench/RESULTS.md and
# bench/results.json (one JSON line per measured point); a partial run (--quick, --only, --servers,
# other durations) writes them under bench/out/ so the recorded full run stays intact. Run it on an
# otherwise idle machine: each point waits for quiet cores, and the report flags points that did not get them.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=$root/build-bench
out=$here/out

duration=5
warmup=1
warm_s=3
repeat=1
idle_conns=
scenarios=memory,throughput,conns,latency,events,payload,dom,client,workers
servers=ceiling,nestc,nestjs
partial=0
while (($#)); do
  case $1 in
    --quick) duration=1 warmup=0.3 warm_s=0.5 idle_conns=1000 partial=1 ;;
    --only) scenarios=${2:?--only needs a list}; partial=1; shift ;;
    --servers) servers=${2:?--servers needs a list}; partial=1; shift ;;
    --duration) duration=${2:?}; partial=1; shift ;;
    --warmup) warmup=${2:?}; partial=1; shift ;;
    --repeat) repeat=${2:?}; shift ;;
    --conns) idle_conns=${2:?}; partial=1; shift ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
has() { [[ ,$1, == *,$2,* ]]; }

# ---- install and build ---------------------------------------------------------------------------------
"$root/scripts/deps.sh" --test
command -v taskset >/dev/null || { echo "run.sh: taskset (util-linux) is required" >&2; exit 1; }
if [[ ! -f $here/node_modules/.package-lock.json || $here/package-lock.json -nt $here/node_modules/.package-lock.json ]]; then
  echo "bench: npm ci (NestJS $(sed -n 's/.*"@nestjs\/microservices": "\(.*\)".*/\1/p' "$here/package.json"))" >&2
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
mkdir -p "$out"
echo "bench: building nestc (Release) in $build" >&2
if ! { cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNESTC_BUILD_TESTS=OFF \
  -DNESTC_BUILD_EXAMPLES=OFF -DNESTC_BUILD_BENCH=ON &&
  cmake --build "$build" --target nestc_cli nestc-server ceiling idle-conns; } >"$out/build.log" 2>&1; then
  cat "$out/build.log" >&2
  exit 1
fi
nestc=$build/bin/nestc
if ! "$nestc" bench --help >/dev/null 2>&1; then
  echo "run.sh: this nestc has no working 'bench' command" >&2
  exit 1
fi

# Thousands of sockets on each side.
hard=$(ulimit -Hn)
[[ $hard == unlimited ]] && hard=1048576
ulimit -n "$hard" 2>/dev/null || true
if [[ -z $idle_conns ]]; then
  idle_conns=10000
  (($(ulimit -n) >= idle_conns + 1000)) || idle_conns=1000
fi

if ((partial)); then
  results=$out/results.json report=$out/RESULTS.md
else
  results=$here/results.json report=$here/RESULTS.md
fi
: >"$results"
cd "$out"

# Data for the payload scenarios: 100,000 numbers (0 … 99999) and a 1 MiB ASCII string.
[[ -s numbers-100k.json ]] || printf '[%s]' "$(seq -s, 0 99999)" >numbers-100k.json
[[ -s string-1mb.json ]] || { printf '"'; head -c 1048576 /dev/zero | tr '\0' x; printf '"'; } >string-1mb.json

# ---- servers ---------------------------------------------------------------------------------------------
srv_pid='' srv_port='' srv_name='' srv_cpus='' srv_log='' helper_pid=''
srv_args=()
cleanup() {
  [[ -n $helper_pid ]] && kill "$helper_pid" 2>/dev/null && wait "$helper_pid" 2>/dev/null
  [[ -n $srv_pid ]] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME CPUS [ARGS...]: starts one server on the given cores and waits for its
# "listening on port N" line. Sets srv_pid, srv_port and srv_log; returns 1 (log shown) if it does not start.
srv_starts=0
start_server() {
  local name=$1 cpus=$2 cmd
  shift 2
  srv_name=$name srv_cpus=$cpus srv_args=("$@")
  case $name in
    ceiling) cmd=("$build/bench/ceiling") ;;
    nestc) cmd=("$build/bench/nestc-server") ;;
    nestjs) cmd=(node "$here/nest-server.mjs") ;;
  esac
  # One log per start, kept: a server that dies mid-run leaves its last words there.
  local log=$out/server-$((++srv_starts))-$name.log
  srv_log=$log
  # taskset execs the server: $! is the server's own PID, the one whose CPU time is measured.
  taskset -c "$cpus" "${cmd[@]}" --port 0 "$@" >"$log" 2>&1 &
  srv_pid=$!
  srv_port=''
  local i
  for ((i = 0; i < 300; i++)); do
    srv_port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$log")
    [[ -n $srv_port ]] && return 0
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "run.sh: $name $* did not start:" >&2
  cat "$log" >&2
  stop_server
  return 1
}

stop_server() {
  kill -TERM "$srv_pid" 2>/dev/null || true
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=''
}

# A server that exited during the run (a crash) is recorded, reported, and started again so that the
# remaining scenarios still run.
ensure_server() {
  [[ -n $srv_pid ]] || return 1
  kill -0 "$srv_pid" 2>/dev/null && return 0
  local status=0
  wait "$srv_pid" 2>/dev/null || status=$?
  echo "bench: warning: $srv_name exited during the run (status $status; log $srv_log):" >&2
  tail -n 5 "$srv_log" >&2
  record server-exit "$srv_name" "{\"status\":$status,\"log\":\"${srv_log##*/}\"}"
  start_server "$srv_name" "$srv_cpus" "${srv_args[@]}"
}

# status_kib PID FIELD: a size from /proc/PID/status (VmRSS, RssAnon, RssFile), in KiB.
status_kib() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB$/\1/p" "/proc/$1/status"; }
rss_kib() { status_kib "$1" VmRSS; }
threads_of() {
  local n
  n=$(sed -n 's/^Threads:[[:space:]]*\([0-9]*\)$/\1/p' "/proc/$1/status" 2>/dev/null)
  echo "${n:-null}"
}
nfds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# record SCENARIO SERVER JSON [EXTRA-JSON-MEMBERS]: one line of results.json.
record() {
  printf '{"scenario":"%s","server":"%s","result":%s%s}\n' "$1" "$2" "$3" "${4:+,$4}" >>"$results"
}

# point SCENARIO SERVER CPUS NESTC-BENCH-ARGS...: `nestc bench` against the running server, $repeat times.
point() {
  local scenario=$1 server=$2 cpus=$3 line run
  shift 3
  for ((run = 1; run <= repeat; run++)); do
    ensure_server || return 0
    wait_quiet
    echo "bench: $scenario / $server: nestc bench $*" >&2
    if line=$(taskset -c "$cpus" "$nestc" bench "tcp://127.0.0.1:$srv_port" "$@" --duration "$duration" \
      --warmup "$warmup" --server-pid "$srv_pid" 2>>"$out/bench-stderr.log" | tail -n 1) && [[ $line == '{'* ]]; then
      echo "  $line" >&2
      record "$scenario" "$server" "$line" "\"threads\":$(threads_of "$srv_pid"),\"run\":$run,\"busy_pct_before\":$point_busy$point_extra"
    else
      echo "  failed (see $out/bench-stderr.log)" >&2
      record "$scenario" "$server" null "\"run\":$run$point_extra"
    fi
  done
}
point_extra='' # more members for the recorded lines, e.g. ,"workers":2 (set before point)

# machine_busy [SECONDS]: busy share of all cores over that time (default 1 s), in percent, from /proc/stat.
machine_busy() {
  local a b busy total i
  read -ra a </proc/stat
  sleep "${1:-1}"
  read -ra b </proc/stat
  # cpu user nice system idle iowait irq softirq steal: idle time is idle + iowait.
  total=0
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  busy=$((total - (b[4] - a[4]) - (b[5] - a[5])))
  echo $((total ? 100 * busy / total : 0))
}

# Waits (up to 60 s) until the cores are quiet before a point, so that work left over from the previous
# point, or anything else running, does not land in its window. Sets point_busy to the last reading.
wait_quiet() {
  local i
  for ((i = 0; i < 120; i++)); do
    point_busy=$(machine_busy 0.5)
    ((point_busy < 10)) && return 0
    ((i % 20 == 19)) && echo "bench: waiting for the machine to be quiet (${point_busy}% busy)" >&2
  done
  echo "bench: warning: the machine stayed ${point_busy}% busy; measuring anyway" >&2
}
point_busy=0

# Node.js compiles its hot paths during the first seconds under load: every server gets the same untimed
# load before its first measured point, so that no scenario measures a cold server.
warm_up() {
  wait_quiet
  echo "bench: warming up for ${warm_s} s" >&2
  taskset -c 1 "$nestc" bench "tcp://127.0.0.1:$srv_port" '{"cmd":"sum"}' '[1,2,3]' --connections 1 --inflight 100 \
    --warmup 0 --duration "$warm_s" >/dev/null 2>>"$out/bench-stderr.log" || true
}

# memory SERVER: idle RSS right after the start, then with idle_conns idle connections open.
memory() {
  local server=$1 rss0 rss1 anon0 fd0 i
  sleep 1
  rss0=$(rss_kib "$srv_pid")
  anon0=$(status_kib "$srv_pid" RssAnon)
  fd0=$(nfds "$srv_pid")
  taskset -c 1 "$build/bench/idle-conns" --port "$srv_port" --count "$idle_conns" >"$out/idle-conns.log" 2>&1 &
  helper_pid=$!
  # Every connection is one descriptor in the server once accepted.
  for ((i = 0; i < 600; i++)); do
    (($(nfds "$srv_pid") >= fd0 + idle_conns)) && break
    kill -0 "$helper_pid" 2>/dev/null || break
    sleep 0.1
  done
  if (($(nfds "$srv_pid") < fd0 + idle_conns)); then
    echo "  memory / $server: the connections were not all accepted" >&2
    cat "$out/idle-conns.log" >&2
    record memory "$server" null
  else
    sleep 1
    rss1=$(rss_kib "$srv_pid")
    echo "bench: memory / $server: idle ${rss0} KiB, ${rss1} KiB with $idle_conns idle connections" >&2
    record memory "$server" "{\"idle_rss_kib\":$rss0,\"idle_anon_kib\":$anon0,\"conns\":$idle_conns,\"rss_kib_with_conns\":$rss1}"
  fi
  kill "$helper_pid" 2>/dev/null || true
  wait "$helper_pid" 2>/dev/null || true
  helper_pid=''
  sleep 1 # let the server see the closes before the next scenario
}

# Anything else running competes for the two cores: say how busy the machine is before starting.
busy=$(machine_busy)
echo "bench: the machine is ${busy}% busy before the run (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
((busy < 10)) || echo "bench: warning: other processes are using the CPU; the figures will be disturbed" >&2
record machine - "{\"date\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"busy_pct_before\":$busy,\"loadavg_before\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"repeat\":$repeat}"

# ---- the side-by-side scenarios: each server alone on core 0, the load generator on core 1 -----------
side_by_side='memory throughput conns latency events payload dom'
for server in ceiling nestc nestjs; do
  has "$servers" "$server" || continue
  wanted=0
  for s in $side_by_side; do has "$scenarios" "$s" && wanted=1; done
  ((wanted)) || continue
  start_server "$server" 0 || exit 1
  ! has "$scenarios" memory || memory "$server"
  warm_up
  ! has "$scenarios" throughput || point throughput "$server" 1 '{"cmd":"sum"}' '[1,2,3]' --connections 1 --inflight 100
  ! has "$scenarios" conns || point conns "$server" 1 '{"cmd":"sum"}' '[1,2,3]' --connections 1000 --inflight 1
  ! has "$scenarios" latency || point latency "$server" 1 '{"cmd":"sum"}' '[1,2,3]' --connections 1 --inflight 1
  if has "$scenarios" events; then
    # K events ahead of each request on each connection; the request's reply proves they were handled.
    # Several connections so that the server always has a batch to work on while a reply travels.
    point events "$server" 1 '{"cmd":"ticks"}' --events 1000 --event-pattern '{"cmd":"tick"}' --event-data null \
      --connections 4 --inflight 1
  fi
  if has "$scenarios" payload; then
    # nestc bench's mb_per_s counts both directions; the report shows request payload bytes per second.
    point_extra=",\"payload_bytes\":$(stat -c %s numbers-100k.json)"
    point payload-sum "$server" 1 '{"cmd":"sum"}' --data-file numbers-100k.json --connections 1 --inflight 2
    point_extra=",\"payload_bytes\":$(stat -c %s string-1mb.json)"
    point payload-echo "$server" 1 '{"cmd":"echo"}' --data-file string-1mb.json --connections 1 --inflight 2
    point_extra=''
  fi
  if [[ $server == nestc ]] && has "$scenarios" dom; then
    # The same with nestc handlers written with jansson values (nc_msg_data) instead of payload text.
    point dom-throughput "$server" 1 '{"cmd":"sumDom"}' '[1,2,3]' --connections 1 --inflight 100
    point_extra=",\"payload_bytes\":$(stat -c %s numbers-100k.json)"
    point dom-payload-sum "$server" 1 '{"cmd":"sumDom"}' --data-file numbers-100k.json --connections 1 --inflight 2
    point_extra=",\"payload_bytes\":$(stat -c %s string-1mb.json)"
    point dom-payload-echo "$server" 1 '{"cmd":"echoDom"}' --data-file string-1mb.json --connections 1 --inflight 2
    point_extra=''
  fi
  stop_server
done

# ---- client libraries: one client process on core 1 against a server on core 0 ---------------------
nest_client() {
  local server=$1 conns=$2 inflight=$3 line run
  for ((run = 1; run <= repeat; run++)); do
    ensure_server || return 0
    wait_quiet
    echo "bench: client / $server: nest-client.mjs --connections $conns --inflight $inflight" >&2
    if line=$(taskset -c 1 node "$here/nest-client.mjs" --port "$srv_port" --connections "$conns" \
      --inflight "$inflight" --duration "$duration" --warmup "$warmup" 2>>"$out/bench-stderr.log" | tail -n 1) &&
      [[ $line == '{'* ]]; then
      echo "  $line" >&2
      record client "$server" "$line" "\"run\":$run,\"busy_pct_before\":$point_busy"
    else
      echo "  failed (see $out/bench-stderr.log)" >&2
      record client "$server" null "\"run\":$run"
    fi
  done
}
if has "$scenarios" client; then
  # Against the ceiling the server is not the limit, so the client's own limit shows.
  for server in ceiling nestc; do
    start_server "$server" 0 || exit 1
    for shape in 1:100 4:100; do
      point client "$server" 1 '{"cmd":"sum"}' '[1,2,3]' --engine client --connections "${shape%:*}" --inflight "${shape#*:}"
      nest_client "$server" "${shape%:*}" "${shape#*:}"
    done
    stop_server
  done
fi

# ---- several cores: one nestc server over N loops, server and load generator sharing both cores ------
# Two loads: many connections (a wake-up and two system calls per request dominate) and a few pipelined
# connections (the library's own work dominates).
if has "$scenarios" workers; then
  for n in 1 2; do
    point_extra=",\"workers\":$n"
    if ! start_server nestc 0,1 --workers "$n"; then
      record workers nestc null "\"workers\":$n"
      continue
    fi
    point workers nestc 0,1 '{"cmd":"sum"}' '[1,2,3]' --connections 1000 --inflight 1
    point workers nestc 0,1 '{"cmd":"sum"}' '[1,2,3]' --connections 4 --inflight 100
    stop_server
  done
  point_extra=''
fi

# ---- the report --------------------------------------------------------------------------------------------
node "$here/report.mjs" --results "$results" --out "$report" --duration "$duration" --warmup "$warmup" \
  --idle-conns "$idle_conns" --build "$build"
echo "bench: wrote $report" >&2
