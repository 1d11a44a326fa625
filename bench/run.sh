#!/usr/bin/env bash
# nestc against NestJS's own TCP server, side by side, with the same load generator; writes RESULTS.md.
#
#   bench/run.sh [--quick] [--only LIST] [--servers LIST] [--duration S] [--warmup S] [--repeat N] [--conns N]
#                [--quiet-wait S]
#
#   --quick          a short smoke run (1 s per point, 1000 idle connections, at most 5 s of waiting for quiet cores)
#   --only LIST      comma-separated scenarios: memory,throughput,conns,latency,events,payload,dom,client,workers,
#                    redis (the same service over one redis-server, nestc and NestJS clients against both servers),
#                    nats (the same over one nats-server), mqtt (the same over one mosquitto, QoS 0 and QoS 1),
#                    rmq (the same over one rabbitmq-server, noAck true and false), kafka (the same over one
#                    librdkafka mock cluster of 3 brokers, kafka-mock), grpc (nestc's and NestJS's gRPC servers of
#                    the conformance service, unary Sum and server-streaming Streaming, from grpc-js and nestc bench)
#   --servers LIST   comma-separated servers for the side-by-side scenarios: ceiling,nestc,nestjs (redis, nats,
#                    mqtt, rmq, kafka, grpc: nestc,nestjs)
#   --duration S     counting window per point (default 5); --warmup S before it (default 1)
#   --repeat N       measure every point N times; the report shows the median run (default 1)
#   --conns N        idle connections for the memory scenario (default 10000, or 1000 if `ulimit -n` is low)
#   --quiet-wait S   the longest wait for quiet cores before each point (default 60; 5 with --quick); on a machine
#                    busy with other work, a shorter wait keeps the run's length bounded (the report flags the
#                    points that started busy)
#
# Installs what is missing (Debian packages, Node.js, the pinned NestJS with `npm ci`), builds nestc in
# Release, then for each server: starts it alone on core 0 (taskset -c 0), runs every scenario from
# `nestc bench` on core 1 (taskset -c 1), stops it by PID. A full run writes bench/RESULTS.md and
# bench/results.json (one JSON line per measured point; the Redis points go to bench/results-redis.json, the
# NATS points to bench/results-nats.json, the MQTT points to bench/results-mqtt.json, the RabbitMQ points to
# bench/results-rmq.json, the Kafka points to bench/results-kafka.json, the gRPC points to bench/results-grpc.json); a
# partial run (--quick, --only, --servers, other durations) writes them under bench/out/ so the recorded full run
# stays intact. The one exception is `--only` with broker scenarios alone (redis, nats, mqtt, rmq, kafka) or grpc,
# e.g. `--only mqtt`, and the default durations: it re-records those points alone and rewrites bench/RESULTS.md with
# the other recorded points as they were. Run it on an otherwise idle machine: each point waits for quiet cores, and
# the report flags points that did not get them.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=$root/build-bench
out=$here/out

duration=5
warmup=1
warm_s=3
repeat=1
quiet_polls=120 # half-second readings before a point while the cores are busy (a smoke run waits 5 s, not 60)
idle_conns=
scenarios=memory,throughput,conns,latency,events,payload,dom,client,workers,redis,nats,mqtt,rmq,kafka,grpc
servers=ceiling,nestc,nestjs
partial=0
while (($#)); do
  case $1 in
    --quick) duration=1 warmup=0.3 warm_s=0.5 idle_conns=1000 quiet_polls=10 partial=1 ;;
    # --only with broker scenarios alone (redis, nats, mqtt, rmq, kafka) or grpc is recorded (see above); any other
    # list is partial.
    --only) scenarios=${2:?--only needs a list}; [[ ,$scenarios =~ ^(,(redis|nats|mqtt|rmq|kafka|grpc))+$ ]] || partial=1; shift ;;
    --servers) servers=${2:?--servers needs a list}; partial=1; shift ;;
    --duration) duration=${2:?}; partial=1; shift ;;
    --warmup) warmup=${2:?}; partial=1; shift ;;
    --repeat) repeat=${2:?}; shift ;;
    --conns) idle_conns=${2:?}; partial=1; shift ;;
    --quiet-wait) quiet_wait=${2:?}; shift ;;
    -h | --help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
has() { [[ ,$1, == *,$2,* ]]; }
# Half-second readings: --quiet-wait S allows 2 S of them (after --quick, whatever the order).
[[ -z ${quiet_wait:-} ]] || quiet_polls=$((2 * ${quiet_wait%.*}))
# The TCP scenarios (everything but redis, nats and mqtt) write results.json; the redis scenario writes
# results-redis.json, the nats scenario results-nats.json, the mqtt scenario results-mqtt.json.
tcp_wanted=0
for s in memory throughput conns latency events payload dom client workers; do has "$scenarios" "$s" && tcp_wanted=1; done

# ---- install and build ---------------------------------------------------------------------------------
"$root/scripts/deps.sh" --test
command -v taskset >/dev/null || { echo "run.sh: taskset (util-linux) is required" >&2; exit 1; }
if has "$scenarios" redis; then
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "run.sh: the redis scenario needs redis-server and redis-cli" >&2
    exit 1
  fi
fi
if has "$scenarios" nats && ! command -v nats-server >/dev/null; then
  echo "run.sh: the nats scenario needs nats-server" >&2
  exit 1
fi
# Debian installs mosquitto in /usr/sbin, which is not on every user's PATH.
mosquitto=$(command -v mosquitto || { [[ -x /usr/sbin/mosquitto ]] && echo /usr/sbin/mosquitto; } || true)
if has "$scenarios" mqtt && [[ -z $mosquitto ]]; then
  echo "run.sh: the mqtt scenario needs mosquitto" >&2
  exit 1
fi
# The rmq scenario starts its broker as the test suite does (tests/interop/rabbitmq-fixture.sh).
if has "$scenarios" rmq && [[ ! -x ${RABBITMQ_SERVER:-/usr/lib/rabbitmq/bin/rabbitmq-server} ]]; then
  echo "run.sh: the rmq scenario needs rabbitmq-server" >&2
  exit 1
fi
"$root/tests/interop/ensure-deps.sh" "$here" >&2 # npm ci only when the pins changed
# The grpc scenario's NestJS server and grpc-js load generator use tests/interop's pinned @grpc/grpc-js and
# @grpc/proto-loader (the NestJS gRPC peers of the test suite), not bench/'s packages.
! has "$scenarios" grpc || "$root/tests/interop/ensure-deps.sh" "$root/tests/interop" >&2
mkdir -p "$out"
echo "bench: building nestc (Release) in $build" >&2
# The kafka scenario's broker, kafka-mock (bench/CMakeLists.txt), exists only in a build with librdkafka.
targets=(nestc_cli nestc-server ceiling idle-conns)
! has "$scenarios" kafka || targets+=(bench_kafka_mock)
if ! { cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNESTC_BUILD_TESTS=OFF \
  -DNESTC_BUILD_EXAMPLES=OFF -DNESTC_BUILD_BENCH=ON &&
  cmake --build "$build" --target "${targets[@]}"; } >"$out/build.log" 2>&1; then
  cat "$out/build.log" >&2
  has "$scenarios" kafka && echo "run.sh: the kafka scenario needs a build with librdkafka (scripts/deps.sh)" >&2
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
  results=$out/results.json redis_results=$out/results-redis.json nats_results=$out/results-nats.json
  mqtt_results=$out/results-mqtt.json rmq_results=$out/results-rmq.json kafka_results=$out/results-kafka.json
  grpc_results=$out/results-grpc.json
  report=$out/RESULTS.md
  : >"$results"
  : >"$redis_results"
  : >"$nats_results"
  : >"$mqtt_results"
  : >"$rmq_results"
  : >"$kafka_results"
  : >"$grpc_results"
else
  # A recorded run replaces only the points it measures: `--only redis` keeps results.json and
  # results-nats.json as recorded, `--only nats` results.json and results-redis.json.
  results=$here/results.json redis_results=$here/results-redis.json nats_results=$here/results-nats.json
  mqtt_results=$here/results-mqtt.json rmq_results=$here/results-rmq.json kafka_results=$here/results-kafka.json
  grpc_results=$here/results-grpc.json
  report=$here/RESULTS.md
  ((tcp_wanted)) && : >"$results"
  ! has "$scenarios" redis || : >"$redis_results"
  ! has "$scenarios" nats || : >"$nats_results"
  ! has "$scenarios" mqtt || : >"$mqtt_results"
  ! has "$scenarios" rmq || : >"$rmq_results"
  ! has "$scenarios" kafka || : >"$kafka_results"
  ! has "$scenarios" grpc || : >"$grpc_results"
fi
# Where record() writes: results.json, or results-redis.json / results-nats.json during a broker scenario.
results_cur=$results
cd "$out"

# Data for the payload scenarios: 100,000 numbers (0 … 99999) and a 1 MiB ASCII string.
[[ -s numbers-100k.json ]] || printf '[%s]' "$(seq -s, 0 99999)" >numbers-100k.json
[[ -s string-1mb.json ]] || { printf '"'; head -c 1048576 /dev/zero | tr '\0' x; printf '"'; } >string-1mb.json

# ---- servers ---------------------------------------------------------------------------------------------
srv_pid='' srv_port='' srv_name='' srv_cpus='' srv_log='' helper_pid='' srv_target='' srv_url=''
redis_pid='' redis_dir='' nats_pid='' nats_dir='' mqtt_pid='' mqtt_dir='' rmq_state='' sampler_pid=''
kafka_pid='' kafka_dir='' kafka_fd='' poll_pid=''
srv_args=()
cleanup() {
  [[ -n $helper_pid ]] && kill "$helper_pid" 2>/dev/null && wait "$helper_pid" 2>/dev/null
  [[ -n $sampler_pid ]] && kill "$sampler_pid" 2>/dev/null && wait "$sampler_pid" 2>/dev/null
  [[ -n $srv_pid ]] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null
  [[ -n $redis_pid ]] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  [[ -n $redis_dir ]] && rm -rf "$redis_dir"
  [[ -n $nats_pid ]] && kill "$nats_pid" 2>/dev/null && wait "$nats_pid" 2>/dev/null
  [[ -n $nats_dir ]] && rm -rf "$nats_dir"
  [[ -n $mqtt_pid ]] && kill "$mqtt_pid" 2>/dev/null && wait "$mqtt_pid" 2>/dev/null
  [[ -n $mqtt_dir ]] && rm -rf "$mqtt_dir"
  [[ -n $rmq_state ]] && stop_rmq
  [[ -n $poll_pid ]] && kill "$poll_pid" 2>/dev/null && wait "$poll_pid" 2>/dev/null
  [[ -n $kafka_pid || -n $kafka_dir ]] && stop_kafka
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME CPUS [ARGS...]: starts one server on the given cores and waits for its
# "listening on port N" line. Sets srv_pid, srv_port, srv_target (the URL the load generators use) and
# srv_log; returns 1 (log shown) if it does not start. With srv_url set (redis://…, nats://…) the server is started
# with --url srv_url instead of --port 0, and it is ready when it prints "connected to URL" (nestc: its
# status callback reported "connected", every subscription confirmed; NestJS: app.listen() resolved and
# Redis counts a subscriber on each handler's channel; over NATS: every SUB confirmed by a PING round trip).
srv_starts=0
start_server() {
  local name=$1 cpus=$2 cmd
  shift 2
  srv_name=$name srv_cpus=$cpus srv_args=("$@")
  case $name in
    ceiling) cmd=("$build/bench/ceiling") ;;
    nestc) cmd=("$build/bench/nestc-server") ;;
    nestjs) cmd=(node "$here/nest-server.mjs") ;;
    # the grpc scenario: the conformance service (DESIGN.md §5a) from nestc's CLI and from the NestJS reference
    nestc-grpc) cmd=("$nestc" conformance grpc://127.0.0.1:0 --proto "$grpc_proto") ;;
    nestjs-grpc) cmd=(node "$root/tests/interop/nest-grpc-server.mjs" --port "$(free_port)" --proto "$grpc_proto") ;;
  esac
  # One log per start, kept: a server that dies mid-run leaves its last words there.
  local log=$out/server-$((++srv_starts))-$name.log
  srv_log=$log
  # Emptied here, not only by the background job's redirection: under load that job may open the file after the
  # first readiness check below, which would then read an earlier run's line (its port) from the old log.
  : >"$log"
  # taskset execs the server: $! is the server's own PID, the one whose CPU time is measured.
  if [[ $name == *-grpc ]]; then
    taskset -c "$cpus" "${cmd[@]}" "$@" >"$log" 2>&1 &
  elif [[ -n $srv_url ]]; then
    taskset -c "$cpus" "${cmd[@]}" --url "$srv_url" "$@" >"$log" 2>&1 &
  else
    taskset -c "$cpus" "${cmd[@]}" --port 0 "$@" >"$log" 2>&1 &
  fi
  srv_pid=$!
  srv_port='' srv_target=''
  local i
  for ((i = 0; i < 300; i++)); do
    if [[ $name == *-grpc ]]; then
      # nestc: "nestc conformance listening on port N"; nest-grpc-server.mjs: "READY N" once app.listen() resolved
      srv_port=$(sed -n 's/^\(nestc conformance listening on port\|READY\) \([0-9]*\)$/\2/p' "$log")
      [[ -n $srv_port ]] && { srv_target=grpc://127.0.0.1:$srv_port; return 0; }
    elif [[ -n $srv_url ]]; then
      grep -qx "connected to $srv_url" "$log" && { srv_target=$srv_url; return 0; }
    else
      srv_port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$log")
      [[ -n $srv_port ]] && { srv_target=tcp://127.0.0.1:$srv_port; return 0; }
    fi
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
  printf '{"scenario":"%s","server":"%s","result":%s%s}\n' "$1" "$2" "$3" "${4:+,$4}" >>"$results_cur"
}

# point SCENARIO SERVER CPUS NESTC-BENCH-ARGS...: `nestc bench` against the running server, $repeat times.
# With broker_pid set (the redis and nats scenarios), the broker's CPU time over the counting window is recorded too.
point() {
  local scenario=$1 server=$2 cpus=$3 line run broker
  shift 3
  for ((run = 1; run <= repeat; run++)); do
    ensure_server || return 0
    wait_quiet
    echo "bench: $scenario / $server: nestc bench $*" >&2
    [[ -z $broker_pid ]] || broker_sampler
    if line=$(taskset -c "$cpus" "$nestc" bench "$srv_target" "$@" --duration "$duration" \
      --warmup "$warmup" --server-pid "$srv_pid" 2>>"$out/bench-stderr.log" | tail -n 1) && [[ $line == '{'* ]]; then
      echo "  $line" >&2
      broker=''
      [[ -z $broker_pid ]] || { broker_sampled && broker=",\"broker_cpu_s\":$broker_cpu_s"; }
      record "$scenario" "$server" "$line" "\"threads\":$(threads_of "$srv_pid"),\"run\":$run,\"busy_pct_before\":$point_busy$broker$point_extra"
    else
      [[ -z $broker_pid ]] || broker_sampled
      echo "  failed (see $out/bench-stderr.log)" >&2
      record "$scenario" "$server" null "\"run\":$run$point_extra"
    fi
  done
}
point_extra='' # more members for the recorded lines, e.g. ,"workers":2 (set before point)

# cpu_ticks PID: the process's CPU time so far (utime + stime, all threads) in clock ticks, from /proc/PID/stat
# (fields 14 and 15, counted after the parenthesised command name); empty if the process is gone.
clk_tck=$(getconf CLK_TCK)
cpu_ticks() {
  local s f
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  s=${s##*) }
  read -ra f <<<"$s"
  echo $((f[11] + f[12]))
}

# broker_sampler / broker_sampled: the broker's CPU time over a `nestc bench` counting window. The sampler
# starts with `nestc bench`, reads /proc/<broker>/stat after the warm-up and again after the window (nestc
# bench opens its Redis or NATS connections in a few milliseconds, so the edges match its window to within that).
broker_pid=''
broker_sampler() {
  rm -f "$out/broker-ticks"
  (
    sleep "$warmup"
    a=$(cpu_ticks "$broker_pid")
    sleep "$duration"
    b=$(cpu_ticks "$broker_pid")
    [[ -n $a && -n $b ]] && echo $((b - a)) >"$out/broker-ticks" || echo null >"$out/broker-ticks"
  ) &
  sampler_pid=$!
}
# Sets broker_cpu_s to the broker's CPU seconds over the window (or null), once the sampler is done. Not
# in a $(…): only this shell can wait for its sampler.
broker_sampled() {
  wait "$sampler_pid" 2>/dev/null || true
  sampler_pid=''
  local t=null
  [[ -s $out/broker-ticks ]] && t=$(<"$out/broker-ticks")
  broker_cpu_s=null
  [[ $t == null ]] || broker_cpu_s=$(awk -v t="$t" -v hz="$clk_tck" 'BEGIN { printf "%.3f", t / hz }')
}

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

# Waits (up to 60 s; 5 s with --quick) until the cores are quiet before a point, so that work left over from
# the previous point, or anything else running, does not land in its window. Sets point_busy to the last reading.
wait_quiet() {
  local i
  for ((i = 0; i < quiet_polls; i++)); do
    point_busy=$(machine_busy 0.5)
    ((point_busy < 10)) && return 0
    ((i % 20 == 19)) && echo "bench: waiting for the machine to be quiet (${point_busy}% busy)" >&2
  done
  echo "bench: warning: the machine stayed ${point_busy}% busy; measuring anyway" >&2
}
point_busy=0

# Node.js compiles its hot paths during the first seconds under load: every server gets the same untimed
# load before its first measured point, so that no scenario measures a cold server.
warm_pattern='{"cmd":"sum"}' # the kafka scenario's servers have topics of their own (PREFIXsum)
warm_up() {
  wait_quiet
  echo "bench: warming up for ${warm_s} s" >&2
  taskset -c 1 "$nestc" bench "$srv_target" "$warm_pattern" '[1,2,3]' --connections 1 --inflight 100 \
    --warmup 0 --duration "$warm_s" "$@" >/dev/null 2>>"$out/bench-stderr.log" || true
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
machine_line="{\"date\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"nestc\":\"$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')\",\"busy_pct_before\":$busy,\"loadavg_before\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"repeat\":$repeat}"
((!tcp_wanted && !partial)) || record machine - "$machine_line"

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
# nest_client SCENARIO SERVER CONNS INFLIGHT [NEST-CLIENT-ARGS...]: NestJS's own client on core 1, $repeat times.
nest_client() {
  local scenario=$1 server=$2 conns=$3 inflight=$4 line run
  shift 4
  for ((run = 1; run <= repeat; run++)); do
    ensure_server || return 0
    wait_quiet
    echo "bench: $scenario / $server: nest-client.mjs --connections $conns --inflight $inflight $*" >&2
    if line=$(taskset -c 1 node "$here/nest-client.mjs" --connections "$conns" --inflight "$inflight" \
      --duration "$duration" --warmup "$warmup" "$@" 2>>"$out/bench-stderr.log" | tail -n 1) &&
      [[ $line == '{'* ]]; then
      echo "  $line" >&2
      record "$scenario" "$server" "$line" "\"run\":$run,\"busy_pct_before\":$point_busy$point_extra"
    else
      echo "  failed (see $out/bench-stderr.log)" >&2
      record "$scenario" "$server" null "\"run\":$run$point_extra"
    fi
  done
}
if has "$scenarios" client; then
  # Against the ceiling the server is not the limit, so the client's own limit shows.
  for server in ceiling nestc; do
    start_server "$server" 0 || exit 1
    for shape in 1:100 4:100; do
      point client "$server" 1 '{"cmd":"sum"}' '[1,2,3]' --engine client --connections "${shape%:*}" --inflight "${shape#*:}"
      nest_client client "$server" "${shape%:*}" "${shape#*:}" --port "$srv_port"
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

# ---- Redis: the same service over one redis-server ------------------------------------------------------
# One redis-server for the whole scenario, pinned to core 1 with the load generators: the server under test
# keeps core 0 to itself, as in the TCP scenarios, so its CPU per response is measured alone and not
# disturbed by the broker. The price: core 1 carries the client and the broker, so where the server is not
# the limit, responses / s is bounded by core 1 (the report says which core was full for every point).
# Each server is started with --url redis://…, warmed up, then measured with both clients: `nestc bench
# --engine client` (the nestc client library) and nest-client.mjs (NestJS's ClientRedis).

# free_port: a loopback TCP port nobody listens on now (the kernel picks it; redis-server then binds it).
free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# start_redis: one redis-server on a free loopback port (no persistence, a fresh temporary directory), on
# core 1, stopped by PID; ready when it answers PING. Sets redis_pid, redis_port, redis_url.
start_redis() {
  local try i
  redis_dir=$(mktemp -d "${TMPDIR:-/tmp}/nestc-bench-redis.XXXXXX")
  for ((try = 0; try < 3; try++)); do
    redis_port=$(free_port)
    # taskset execs redis-server: $! is the broker's own PID.
    taskset -c 1 redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --dir "$redis_dir" \
      >"$out/redis-server.log" 2>&1 &
    redis_pid=$!
    for ((i = 0; i < 100; i++)); do
      if [[ $(redis-cli -h 127.0.0.1 -p "$redis_port" PING 2>/dev/null) == PONG ]]; then
        redis_url=redis://127.0.0.1:$redis_port
        echo "bench: redis-server $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p') on port $redis_port (pid $redis_pid, core 1)" >&2
        return 0
      fi
      kill -0 "$redis_pid" 2>/dev/null || break
      sleep 0.05
    done
    stop_redis_process # the port was taken in between, or it did not start: another port
  done
  echo "run.sh: redis-server did not start:" >&2
  cat "$out/redis-server.log" >&2
  return 1
}
stop_redis_process() {
  kill -TERM "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  redis_pid=''
}
stop_redis() {
  stop_redis_process
  rm -rf "$redis_dir"
  redis_dir=''
}

# A server that is stopped must also be gone from the broker before the next one subscribes: two servers
# subscribed to the same channel would both answer every request.
wait_unsubscribed() {
  local i n
  for ((i = 0; i < 100; i++)); do
    n=$(redis-cli -h 127.0.0.1 -p "$redis_port" PUBSUB NUMSUB '{"cmd":"sum"}' '{"cmd":"tick"}' 2>/dev/null |
      awk 'NR % 2 == 0 { s += $1 } END { print s + 0 }')
    ((n == 0)) && return 0
    sleep 0.05
  done
  echo "bench: warning: the stopped server is still subscribed on the broker" >&2
}

# broker_scenario KIND: the redis or the nats scenario, once its broker runs (srv_url, broker_pid set): each
# server is started with --url, warmed up, measured with both clients, stopped, and gone from the broker
# (wait_gone) before the next one subscribes. Points are named KIND-throughput, KIND-latency, KIND-events.
broker_scenario() {
  local kind=$1 wait_gone=$2 server shape scenario
  for server in nestc nestjs; do
    has "$servers" "$server" || continue
    if ! start_server "$server" 0; then
      record "$kind-throughput" "$server" null
      continue
    fi
    # The same untimed load as in the TCP scenarios, through the broker (it also warms the broker).
    warm_up --engine client
    # Requests: 1 × 100 (throughput, CPU per response) and 1 × 1 (the round trip), from each client.
    for shape in 1:100 1:1; do
      scenario=$kind-throughput
      [[ $shape == 1:1 ]] && scenario=$kind-latency
      point_extra=',"client":"nestc"'
      point "$scenario" "$server" 1 '{"cmd":"sum"}' '[1,2,3]' --engine client --connections "${shape%:*}" \
        --inflight "${shape#*:}"
      point_extra=',"client":"nestjs"'
      nest_client "$scenario" "$server" "${shape%:*}" "${shape#*:}" --url "$srv_target" --server-pid "$srv_pid" \
        --broker-pid "$broker_pid"
    done
    # Events as in the TCP events scenario: 1000 `tick` events ahead of each `ticks` request, 4 clients. A
    # client publishes its events and its request on one connection, the broker delivers them to the server
    # in that order (Redis: one subscriber connection; NATS: messages from one publisher reach a subscriber
    # connection in the order published), and the server handles them in order: the reply proves the events.
    point_extra=',"client":"nestc"'
    point "$kind-events" "$server" 1 '{"cmd":"ticks"}' --engine client --events 1000 --event-pattern '{"cmd":"tick"}' \
      --event-data null --connections 4 --inflight 1
    point_extra=''
    stop_server
    "$wait_gone"
  done
}

if has "$scenarios" redis; then
  results_cur=$redis_results
  start_redis || exit 1
  record machine - "${machine_line%\}},\"redis_version\":\"$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')\",\"redis_cpus\":\"1\",\"duration_s\":$duration,\"warmup_s\":$warmup}"
  srv_url=$redis_url broker_pid=$redis_pid
  broker_scenario redis wait_unsubscribed
  srv_url='' broker_pid=''
  stop_redis
  results_cur=$results
fi

# ---- NATS: the same service over one nats-server --------------------------------------------------------
# As for Redis: one nats-server for the whole scenario, pinned to core 1 with the load generators (the Go
# runtime then runs one thread at a time: GOMAXPROCS follows the CPU affinity), each server alone on core 0.

# http_get PORT PATH: the body of a plain HTTP/1.0 GET on 127.0.0.1 (nats-server's monitoring port), using
# bash's /dev/tcp; empty if nothing answers.
http_get() {
  local r
  r=$(
    exec 2>/dev/null
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 0
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
    timeout 2 cat <&3
  ) || true
  printf '%s' "${r#*$'\r\n\r\n'}"
}
nats_version() { nats-server --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p'; }

# start_nats: one nats-server on a free loopback port (`nats-server -a 127.0.0.1 -p P`, plus its monitoring
# port M, loopback too, for readiness and the connection count), in a fresh temporary directory (its working
# directory; it writes nothing there), on core 1, stopped by PID; ready when /healthz answers ok. Sets
# nats_pid, nats_port, nats_mport, nats_url.
start_nats() {
  local try i
  nats_dir=$(mktemp -d "${TMPDIR:-/tmp}/nestc-bench-nats.XXXXXX")
  for ((try = 0; try < 3; try++)); do
    nats_port=$(free_port)
    nats_mport=$(free_port)
    [[ $nats_port != "$nats_mport" ]] || continue
    # taskset execs nats-server: $! is the broker's own PID.
    (cd "$nats_dir" && exec taskset -c 1 nats-server -a 127.0.0.1 -p "$nats_port" -m "$nats_mport") \
      >"$out/nats-server.log" 2>&1 &
    nats_pid=$!
    for ((i = 0; i < 100; i++)); do
      if [[ $(http_get "$nats_mport" /healthz) == *'"ok"'* ]]; then
        nats_url=nats://127.0.0.1:$nats_port
        echo "bench: nats-server $(nats_version) on port $nats_port (pid $nats_pid, core 1)" >&2
        return 0
      fi
      kill -0 "$nats_pid" 2>/dev/null || break
      sleep 0.05
    done
    stop_nats_process # a port was taken in between, or it did not start: other ports
  done
  echo "run.sh: nats-server did not start:" >&2
  cat "$out/nats-server.log" >&2
  return 1
}
stop_nats_process() {
  kill -TERM "$nats_pid" 2>/dev/null || true
  wait "$nats_pid" 2>/dev/null || true
  nats_pid=''
}
stop_nats() {
  stop_nats_process
  rm -rf "$nats_dir"
  nats_dir=''
}

# Between two servers nobody else is connected (the clients have exited): wait until nats-server counts no
# client connection, so that the stopped server's subscriptions are gone before the next server subscribes.
wait_nats_gone() {
  local i n
  for ((i = 0; i < 100; i++)); do
    n=$(http_get "$nats_mport" /connz | sed -n 's/.*"num_connections": *\([0-9]*\).*/\1/p')
    [[ $n == 0 ]] && return 0
    sleep 0.05
  done
  echo "bench: warning: the stopped server is still connected to nats-server" >&2
}

if has "$scenarios" nats; then
  results_cur=$nats_results
  start_nats || exit 1
  record machine - "${machine_line%\}},\"nats_version\":\"$(nats_version)\",\"nats_cpus\":\"1\",\"duration_s\":$duration,\"warmup_s\":$warmup}"
  srv_url=$nats_url broker_pid=$nats_pid
  broker_scenario nats wait_nats_gone
  srv_url='' broker_pid=''
  stop_nats
  results_cur=$results
fi

# ---- MQTT: the same service over one mosquitto ----------------------------------------------------------
# As for Redis and NATS: one mosquitto for the whole scenario, pinned to core 1 with the load generators (it
# is single-threaded, like redis-server), each server alone on core 0. Measured twice: QoS 0 (NestJS's default:
# requests and events published at QoS 0, subscriptions at QoS 0) and QoS 1 (the servers subscribe at QoS 1, the
# clients publish requests and events at QoS 1: the broker acknowledges every PUBLISH and the server every
# delivery; replies stay QoS 0, as NestJS sends them).

# start_mosquitto: one mosquitto on a free loopback port, configured as tests/interop/with-mosquitto.sh does
# (anonymous clients allowed, no persistence), plus `max_queued_messages 0`: by default mosquitto drops a QoS 0
# message to a connected client that already has 1000 packets queued, and the events load sends 4 × 1000 events
# to the server in bursts; and `set_tcp_nodelay true`, as redis-server and nats-server do by default: with
# Nagle's algorithm on, mosquitto holds a reply written right after a PUBACK until the client acknowledges the
# PUBACK, which a delayed ACK puts off by 40 ms (every QoS 1 round trip took 44 ms). Both servers get the same
# broker. In a fresh temporary directory, on core 1, stopped
# by PID; ready when it answers an MQTT CONNECT with a CONNACK. Sets mqtt_pid, mqtt_port, mqtt_url.
start_mosquitto() {
  local try i conf
  mqtt_dir=$(mktemp -d "${TMPDIR:-/tmp}/nestc-bench-mqtt.XXXXXX")
  conf=$mqtt_dir/mosquitto.conf
  for ((try = 0; try < 3; try++)); do
    mqtt_port=$(free_port)
    {
      # As root, mosquitto would switch to the user `mosquitto`, who cannot write the log in the directory.
      echo "user $(id -un)"
      echo 'allow_anonymous true'
      echo 'persistence false'
      echo 'max_queued_messages 0'
      echo 'set_tcp_nodelay true'
      echo "log_dest file $out/mosquitto.log"
      echo 'log_type error'
      echo 'log_type warning'
      echo "listener $mqtt_port 127.0.0.1"
    } >"$conf"
    # taskset execs mosquitto: $! is the broker's own PID.
    (cd "$mqtt_dir" && exec taskset -c 1 "$mosquitto" -c "$conf") >>"$out/mosquitto.log" 2>&1 &
    mqtt_pid=$!
    for ((i = 0; i < 100; i++)); do
      if mqtt_connack; then
        mqtt_url=mqtt://127.0.0.1:$mqtt_port
        echo "bench: mosquitto $(mosquitto_version) on port $mqtt_port (pid $mqtt_pid, core 1)" >&2
        return 0
      fi
      kill -0 "$mqtt_pid" 2>/dev/null || break
      sleep 0.05
    done
    stop_mosquitto_process # the port was taken in between, or it did not start: another port
  done
  echo "run.sh: mosquitto did not start:" >&2
  cat "$out/mosquitto.log" >&2
  return 1
}
# An MQTT 3.1.1 CONNECT (clean session, keep-alive 60 s, empty client id) answered by a CONNACK accepting it.
mqtt_connack() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$mqtt_port" || exit 1
    printf '\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00' >&3
    [[ $(timeout 1 head -c 4 <&3 | od -An -tx1 | tr -d ' \n') == 20020000 ]] || exit 1
    printf '\xe0\x00' >&3 # DISCONNECT
  ) 2>/dev/null
}
mosquitto_version() { "$mosquitto" -h 2>/dev/null | sed -n 's/^mosquitto version \([0-9.]*\).*/\1/p' | head -n 1; }
stop_mosquitto_process() {
  kill -TERM "$mqtt_pid" 2>/dev/null || true
  wait "$mqtt_pid" 2>/dev/null || true
  mqtt_pid=''
}
stop_mosquitto() {
  stop_mosquitto_process
  rm -rf "$mqtt_dir"
  mqtt_dir=''
}

# Between two servers nobody else is connected (the clients have exited): wait_port_gone PORT NAME waits until
# the broker on PORT holds no open client connection (no socket on its port ESTABLISHED or CLOSE_WAIT in
# /proc/net/tcp, i.e. it has read and closed every one), so that the stopped server's session, subscriptions
# or consumer are gone before the next server subscribes.
wait_port_gone() {
  local i n hex
  hex=$(printf '%04X' "$1")
  for ((i = 0; i < 100; i++)); do
    # local address 0100007F:PORT; state 01 ESTABLISHED, 08 CLOSE_WAIT
    n=$(awk -v p=":$hex" '$2 ~ p"$" && ($4 == "01" || $4 == "08") { n++ } END { print n + 0 }' /proc/net/tcp)
    ((n == 0)) && return 0
    sleep 0.05
  done
  echo "bench: warning: the stopped server is still connected to $2" >&2
}
wait_mqtt_gone() { wait_port_gone "$mqtt_port" mosquitto; }

if has "$scenarios" mqtt; then
  results_cur=$mqtt_results
  start_mosquitto || exit 1
  record machine - "${machine_line%\}},\"mosquitto_version\":\"$(mosquitto_version)\",\"mosquitto_cpus\":\"1\",\"duration_s\":$duration,\"warmup_s\":$warmup}"
  broker_pid=$mqtt_pid
  srv_url=$mqtt_url
  broker_scenario mqtt wait_mqtt_gone
  # QoS 1: the same URL with ?qos=1 for every process (nestc: the server's subscription QoS and the client's
  # PUBLISH QoS; nest-server.mjs: subscribeOptions.qos; nest-client.mjs: an MqttRecord with QoS 1 per request).
  srv_url="$mqtt_url?qos=1"
  broker_scenario mqtt-qos1 wait_mqtt_gone
  srv_url='' broker_pid=''
  stop_mosquitto
  results_cur=$results
fi

# ---- RabbitMQ: the same service over one rabbitmq-server ----------------------------------------------------
# As for the other brokers: one broker for the whole scenario, pinned to core 1 with the load generators, each
# server alone on core 0. The broker is started exactly as the test suite starts its shared one
# (tests/interop/rabbitmq-fixture.sh → with-rabbitmq.sh: free loopback ports, its own epmd, a fresh temporary
# directory, no plugins; stopped by PID), under `taskset -c 1`, which the holder, epmd and the Erlang VM inherit.
# Both servers use the queue `bench` with NestJS's default queue options (nestc's defaults are the same:
# durable true, exclusive false, autoDelete false, no arguments): they declare it identically. Measured twice:
# noAck true (NestJS's default: the broker considers a message acknowledged when it delivers it) and noAck false
# (`?noAck=false`: the servers consume in ack mode; nestc acknowledges a request when its reply is sent and an event
# when its handler returned, NestJS's handlers acknowledge by hand, `ctx.getChannelRef().ack(ctx.getMessage())`).
# The clients always consume their replies on the direct reply-to pseudo-queue (no-ack), as NestJS's ClientRMQ.

# start_rmq: the broker; sets rmq_state (the fixture's state directory), rmq_pid (the Erlang VM), rmq_port,
# rmq_url.
start_rmq() {
  rmq_state=$(mktemp -d "${TMPDIR:-/tmp}/nestc-bench-rmq.XXXXXX")
  if ! taskset -c 1 "$root/tests/interop/rabbitmq-fixture.sh" start "$rmq_state" >"$out/rabbitmq.log" 2>&1; then
    echo "run.sh: rabbitmq-server did not start:" >&2
    cat "$out/rabbitmq.log" >&2
    rm -rf "$rmq_state"
    rmq_state=''
    return 1
  fi
  rmq_pid=$(sed -n 's/^RMQ_PID=//p' "$rmq_state/env")
  rmq_port=$(sed -n 's/^RMQ_PORT=//p' "$rmq_state/env")
  rmq_url=$(sed -n 's/^RMQ_URL=//p' "$rmq_state/env")
  echo "bench: rabbitmq-server $(rmq_version) on port $rmq_port (pid $rmq_pid, core 1)" >&2
}
stop_rmq() {
  "$root/tests/interop/rabbitmq-fixture.sh" stop "$rmq_state" >>"$out/rabbitmq.log" 2>&1 || true
  rm -rf "$rmq_state"
  rmq_state=''
}
rmq_version() { dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null | sed 's/-.*//'; }

wait_rmq_gone() { wait_port_gone "$rmq_port" rabbitmq-server; }

if has "$scenarios" rmq; then
  results_cur=$rmq_results
  start_rmq || exit 1
  record machine - "${machine_line%\}},\"rabbitmq_version\":\"$(rmq_version)\",\"erlang_version\":\"$(erl -noshell -eval 'io:put_chars(erlang:system_info(otp_release)), halt().' 2>/dev/null)\",\"rabbitmq_cpus\":\"1\",\"duration_s\":$duration,\"warmup_s\":$warmup}"
  broker_pid=$rmq_pid
  srv_url="$rmq_url?queue=bench"
  broker_scenario rmq wait_rmq_gone
  srv_url="$rmq_url?queue=bench&noAck=false"
  broker_scenario rmq-ack wait_rmq_gone
  srv_url='' broker_pid=''
  stop_rmq
  results_cur=$results
fi

# ---- Kafka: the same service over one librdkafka mock cluster --------------------------------------------------
# kafka-mock (tests/kafka/kafka-mock.c, built here as bench/kafka-mock): a real Kafka protocol server with 3
# brokers, all in one process, pinned to core 1 with the load generators like the other brokers; each server alone
# on core 0. Topics are routes, and a topic cannot be named {"cmd":"sum"}: both servers serve the handlers under
# string routes too, with a prefix of their own (nestc.sum, nestjs.sum, …), so each reads its topics from the
# beginning (no "latest" race after its group join) without meeting the other's requests. Settings (docs/kafka.md,
# "Settings that make it fast"): KafkaJS gets a 6 s session with 1 s heartbeats, a group of its own per process,
# fromBeginning and partitionsConsumedConcurrently 4 (nest-transport.mjs); nestc the same session, heartbeat and
# fromBeginning. Both get the same fetch wait, kafka_wait_ms, in the URL: nestc as kafka.fetch.wait.max.ms,
# nest-transport.mjs reads it as KafkaJS's maxWaitTimeInMs. The mock answers a fetch that found nothing only when
# that wait is over, even if records arrive meanwhile, so the wait sets the pace of every hop: at the tests' 100 ms
# a request takes two such waits (the server's fetch, then the client's) and 100 in flight make about 500 a
# second whatever the server; 10 ms lets the processes, not the mock's timer, show.
kafka_wait_ms=10

# start_kafka: one kafka-mock, its standard input a FIFO this shell holds open (it serves until its input ends),
# in a fresh temporary directory, on core 1, stopped by PID; ready when it prints its bootstrap line. Sets
# kafka_pid, kafka_url (kafka://H:P,H:P,H:P).
start_kafka() {
  local i list
  kafka_dir=$(mktemp -d "${TMPDIR:-/tmp}/nestc-bench-kafka.XXXXXX")
  mkfifo "$kafka_dir/control"
  exec {kafka_fd}<>"$kafka_dir/control"
  # taskset execs kafka-mock: $! is the broker's own PID.
  (cd "$kafka_dir" && exec taskset -c 1 "$build/bench/kafka-mock" --brokers 3) <"$kafka_dir/control" \
    >"$out/kafka-mock.log" 2>&1 &
  kafka_pid=$!
  for ((i = 0; i < 200; i++)); do
    list=$(sed -n 's/^bootstrap //p' "$out/kafka-mock.log")
    if [[ -n $list ]]; then
      kafka_url=kafka://$list
      echo "bench: kafka-mock (librdkafka $(kafka_version) mock cluster, 3 brokers) at $list (pid $kafka_pid, core 1)" >&2
      return 0
    fi
    kill -0 "$kafka_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "run.sh: kafka-mock did not start:" >&2
  cat "$out/kafka-mock.log" >&2
  return 1
}
stop_kafka() {
  if [[ -n $kafka_pid ]]; then
    kill -TERM "$kafka_pid" 2>/dev/null || true
    wait "$kafka_pid" 2>/dev/null || true
  fi
  kafka_pid=''
  [[ -z $kafka_fd ]] || exec {kafka_fd}>&-
  kafka_fd=''
  [[ -z $kafka_dir ]] || rm -rf "$kafka_dir"
  kafka_dir=''
}
kafka_version() { pkg-config --modversion rdkafka 2>/dev/null || echo '?'; }

# kafka_ticks: the server's event counter, asked with one `nestc send` of PREFIXticks (on core 1); empty on failure.
kafka_ticks() {
  taskset -c 1 "$nestc" send "$srv_target" "${kafka_prefix}ticks" --timeout 10000 2>>"$out/bench-stderr.log" | tr -d '"'
}

# kafka_events SERVER: events, measured on the server's counter. Over Kafka a `ticks` reply proves nothing about
# the `tick` events sent before it (two topics, four partitions each, no order between them), so `nestc bench
# --events` (4 clients, 1000 events ahead of each `ticks` request, as in the other scenarios) only makes the load,
# and the events handled are read from the server's counter twice while it runs: after the warm-up and one counting
# window later. Each reading is one `nestc send` of `ticks`; the server's and the broker's CPU time and the clock
# are read as each reading starts (both readings take about as long, so their delays cancel). events/s =
# counter difference / time between the readings; the client's figures are nestc bench's own.
kafka_events() {
  local server=$1 run line t0 t1 c0 c1 s0 s1 b0 b1
  for ((run = 1; run <= repeat; run++)); do
    ensure_server || return 0
    wait_quiet
    echo "bench: kafka-events / $server: nestc bench ${kafka_prefix}ticks --events 1000 (counter read twice)" >&2
    taskset -c 1 "$nestc" bench "$srv_target" "${kafka_prefix}ticks" --engine client --events 1000 \
      --event-pattern "${kafka_prefix}tick" --event-data null --connections 4 --inflight 1 \
      --duration "$(awk -v d="$duration" 'BEGIN { print d + 3 }')" --warmup "$warmup" \
      >"$out/kafka-events.out" 2>>"$out/bench-stderr.log" &
    poll_pid=$!
    sleep "$(awk -v w="$warmup" 'BEGIN { print w + 1 }')"
    s0=$(cpu_ticks "$srv_pid") b0=$(cpu_ticks "$kafka_pid") t0=$(date +%s.%N)
    c0=$(kafka_ticks)
    # the second reading starts one counting window after the first
    sleep "$(awk -v t0="$t0" -v d="$duration" -v now="$(date +%s.%N)" 'BEGIN { s = t0 + d - now; print (s > 0 ? s : 0) }')"
    s1=$(cpu_ticks "$srv_pid") b1=$(cpu_ticks "$kafka_pid") t1=$(date +%s.%N)
    c1=$(kafka_ticks)
    wait "$poll_pid" 2>/dev/null || true
    poll_pid=''
    line=$(tail -n 1 "$out/kafka-events.out")
    if [[ $c0 =~ ^[0-9]+$ && $c1 =~ ^[0-9]+$ && -n $s0 && -n $s1 && $line == '{'* ]]; then
      line=$(awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v b0="$b0" -v b1="$b1" \
        -v hz="$clk_tck" -v l="$line" 'BEGIN {
          n = c1 - c0; secs = t1 - t0
          printf "{\"handled\":%d,\"handled_s\":%.3f,\"handled_eps\":%.1f,\"server_cpu_s\":%.3f,", n, secs, n / secs, (s1 - s0) / hz
          # (the conditionals in parentheses: in a print statement a bare ">" redirects)
          printf "\"server_cpu_us_per_event\":%s,", (n > 0 ? sprintf("%.3f", (s1 - s0) / hz * 1e6 / n) : "null")
          printf "\"broker_cpu_s\":%.3f,\"broker_cpu_us_per_event\":%s,", (b1 - b0) / hz, (n > 0 ? sprintf("%.3f", (b1 - b0) / hz * 1e6 / n) : "null")
          printf "\"counter_before\":%d,\"counter_after\":%d,\"load\":%s}", c0, c1, l
        }')
      echo "  $line" >&2
      record kafka-events "$server" "$line" "\"run\":$run,\"busy_pct_before\":$point_busy,\"client\":\"nestc\""
    else
      echo "  failed (counter '$c0' → '$c1'; see $out/bench-stderr.log)" >&2
      record kafka-events "$server" null "\"run\":$run,\"client\":\"nestc\""
    fi
  done
}

# kafka_idle SERVER: the server's and kafka-mock's CPU with no load at all, over one counting window after the
# warm-up: what a consumer costs while it only polls (every fetch that finds nothing ends after kafka_wait_ms, and
# the group's heartbeats), the fixed part of every CPU-per-message figure, largest where few messages share it.
kafka_idle() {
  local t0 t1 s0 s1 b0 b1
  sleep 1 # the warm-up's last replies
  s0=$(cpu_ticks "$srv_pid") b0=$(cpu_ticks "$kafka_pid") t0=$(date +%s.%N)
  sleep "$duration"
  s1=$(cpu_ticks "$srv_pid") b1=$(cpu_ticks "$kafka_pid") t1=$(date +%s.%N)
  [[ -n $s0 && -n $s1 ]] || return 0
  record kafka-idle "$1" "$(awk -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v b0="$b0" -v b1="$b1" -v hz="$clk_tck" \
    'BEGIN { printf "{\"duration_s\":%.3f,\"server_cpu_s\":%.3f,\"broker_cpu_s\":%.3f}", t1 - t0, (s1 - s0) / hz, (b1 - b0) / hz }')"
  echo "bench: kafka idle / $1: $(tail -n 1 "$results_cur")" >&2
}

if has "$scenarios" kafka; then
  results_cur=$kafka_results
  start_kafka || exit 1
  record machine - "${machine_line%\}},\"librdkafka_version\":\"$(kafka_version)\",\"kafkajs_version\":\"$(node -p 'require(process.argv[1]).version' "$here/node_modules/kafkajs/package.json")\",\"kafka_brokers\":3,\"kafka_cpus\":\"1\",\"duration_s\":$duration,\"warmup_s\":$warmup}"
  broker_pid=$kafka_pid
  # groupId: a group of this run's own for the nestc server, as nest-transport.mjs gives every NestJS process (the
  # nestc client only sets it, it joins no group).
  srv_url="$kafka_url?fromBeginning=true&sessionTimeout=6000&heartbeatInterval=1000&kafka.fetch.wait.max.ms=$kafka_wait_ms"
  srv_url+="&groupId=nestc-bench-$$"
  for server in nestc nestjs; do
    has "$servers" "$server" || continue
    kafka_prefix=$server.
    if ! start_server "$server" 0 --topic-prefix "$kafka_prefix"; then
      record kafka-throughput "$server" null
      continue
    fi
    warm_pattern=${kafka_prefix}sum
    warm_up --engine client
    warm_pattern='{"cmd":"sum"}'
    kafka_idle "$server"
    for shape in 1:100 1:1; do
      scenario=kafka-throughput
      [[ $shape == 1:1 ]] && scenario=kafka-latency
      point_extra=',"client":"nestc"'
      point "$scenario" "$server" 1 "${kafka_prefix}sum" '[1,2,3]' --engine client --connections 1 --inflight "${shape#*:}"
      point_extra=',"client":"nestjs"'
      nest_client "$scenario" "$server" 1 "${shape#*:}" --url "$srv_target" --pattern "${kafka_prefix}sum" \
        --server-pid "$srv_pid" --broker-pid "$broker_pid"
    done
    point_extra=''
    kafka_events "$server"
    stop_server
  done
  srv_url='' broker_pid=''
  stop_kafka
  results_cur=$results
fi

# ---- gRPC: nestc's and NestJS's gRPC servers of the conformance service ---------------------------------------
# No broker: each server alone on core 0, the load generator alone on core 1, as in the TCP scenarios. The servers:
# `nestc conformance grpc://127.0.0.1:0 --proto conformance.proto` (nestc's gRPC transport on nghttp2, one loop) and
# tests/interop/nest-grpc-server.mjs (NestJS's Transport.GRPC on @grpc/grpc-js, the test suite's reference: the same
# service, one Node.js process). Loads, over one HTTP/2 connection: unary `Sum` of [1,2,3] with 1, 16 and 100 calls
# in flight; server-streaming `Streaming` of 100 items, delay 0, with 1 and 16 calls in flight. Load generators:
# grpc-client.mjs (grpc-js, the library NestJS's gRPC client runs on) for every load, and `nestc bench grpc://…`
# (the nestc client) for the unary loads where this nestc's bench speaks gRPC (probed once; otherwise its points are
# recorded as skipped with the reason). Server CPU per call (per message when streaming) from /proc/<pid>/stat over
# the counting window, the server's VmRSS after each point, idle after its start and after all its points.
grpc_proto=$root/tests/vectors/grpc/conformance.proto
grpc_stream_items=100
grpc_sum='nestc.conformance.Conformance/Sum'

# grpc_probe: does `nestc bench` speak gRPC? Sets grpc_nestc_bench (1/0) and grpc_nestc_why (its refusal, one line).
grpc_nestc_bench=''
grpc_probe() {
  local line err
  err=$out/grpc-probe.err
  line=$(timeout 30 taskset -c 1 "$nestc" bench "$srv_target" "$grpc_sum" '{"numbers":[1,2,3]}' --proto "$grpc_proto" \
    --connections 1 --inflight 1 --duration 0.2 --warmup 0 2>"$err" | tail -n 1) || true
  if [[ $line == '{'* ]]; then
    grpc_nestc_bench=1 grpc_nestc_why=''
  else
    grpc_nestc_bench=0
    grpc_nestc_why=$(grep -m 1 . "$err" | tr -d '"\\' | cut -c1-200)
    echo "bench: grpc: nestc bench does not speak gRPC here (${grpc_nestc_why:-no output}): the nestc client column is skipped" >&2
  fi
}

# grpc_point CLIENT SCENARIO SERVER INFLIGHT ARGS...: one load from grpc-client.mjs (CLIENT grpc-js) or `nestc bench`
# (CLIENT nestc), one connection with INFLIGHT calls in flight, against the running server, $repeat times; the
# server's VmRSS and threads after the point beside the result.
grpc_point() {
  local client=$1 scenario=$2 server=$3 inflight=$4 line run cmd
  shift 4
  for ((run = 1; run <= repeat; run++)); do
    ensure_server || return 0
    wait_quiet
    if [[ $client == nestc ]]; then
      cmd=("$nestc" bench "$srv_target" "$grpc_sum" '{"numbers":[1,2,3]}' --proto "$grpc_proto" "$@")
    else
      cmd=(node "$here/grpc-client.mjs" --url "$srv_target" "$@")
    fi
    cmd+=(--connections 1 --inflight "$inflight")
    echo "bench: $scenario / $server: ${cmd[*]:0:2} … $*" >&2
    if line=$(taskset -c 1 "${cmd[@]}" --duration "$duration" --warmup "$warmup" --server-pid "$srv_pid" \
      2>>"$out/bench-stderr.log" | tail -n 1) && [[ $line == '{'* ]]; then
      echo "  $line" >&2
      record "$scenario" "$server" "$line" "\"client\":\"$client\",\"inflight\":$inflight,\"server_rss_kib\":$(rss_kib "$srv_pid"),\"threads\":$(threads_of "$srv_pid"),\"run\":$run,\"busy_pct_before\":$point_busy"
    else
      echo "  failed (see $out/bench-stderr.log)" >&2
      record "$scenario" "$server" null "\"client\":\"$client\",\"inflight\":$inflight,\"run\":$run"
    fi
  done
}

if has "$scenarios" grpc; then
  results_cur=$grpc_results
  record machine - "${machine_line%\}},\"grpc_js_version\":\"$(node -p 'require(process.argv[1]).version' "$root/tests/interop/node_modules/@grpc/grpc-js/package.json")\",\"nghttp2_version\":\"$(pkg-config --modversion libnghttp2 2>/dev/null || echo '?')\",\"stream_items\":$grpc_stream_items,\"duration_s\":$duration,\"warmup_s\":$warmup}"
  for server in nestc nestjs; do
    has "$servers" "$server" || continue
    if ! start_server "$server-grpc" 0; then
      record grpc-unary "$server" null
      continue
    fi
    sleep 1
    rss0=$(rss_kib "$srv_pid") anon0=$(status_kib "$srv_pid" RssAnon)
    rss0=${rss0:-null} anon0=${anon0:-null}
    [[ -n $grpc_nestc_bench ]] || grpc_probe
    # the same untimed load for both servers before the first point: unary, then streaming
    wait_quiet
    echo "bench: warming up for 2 × ${warm_s} s" >&2
    for mode in unary:100 stream:16; do
      taskset -c 1 node "$here/grpc-client.mjs" --url "$srv_target" --mode "${mode%:*}" --inflight "${mode#*:}" \
        --items "$grpc_stream_items" --warmup 0 --duration "$warm_s" >/dev/null 2>>"$out/bench-stderr.log" || true
    done
    for n in 1 16 100; do
      grpc_point grpc-js grpc-unary "$server" "$n" --mode unary
      if ((grpc_nestc_bench)); then
        grpc_point nestc grpc-unary "$server" "$n"
      else
        record grpc-unary "$server" null "\"client\":\"nestc\",\"inflight\":$n,\"skipped\":\"${grpc_nestc_why:-nestc bench refused grpc://}\""
      fi
    done
    for n in 1 16; do
      grpc_point grpc-js grpc-stream "$server" "$n" --mode stream --items "$grpc_stream_items"
    done
    record grpc-memory "$server" "{\"idle_rss_kib\":$rss0,\"idle_anon_kib\":$anon0,\"rss_kib_after\":$(rss_kib "$srv_pid"),\"anon_kib_after\":$(status_kib "$srv_pid" RssAnon),\"threads\":$(threads_of "$srv_pid")}"
    stop_server
  done
  results_cur=$results
fi

# ---- the report --------------------------------------------------------------------------------------------
node "$here/report.mjs" --results "$results" --redis-results "$redis_results" --nats-results "$nats_results" \
  --mqtt-results "$mqtt_results" --rmq-results "$rmq_results" --kafka-results "$kafka_results" --grpc-results "$grpc_results" --out "$report" --duration "$duration" --warmup "$warmup" --idle-conns "$idle_conns" --build "$build"
echo "bench: wrote $report" >&2
