#!/usr/bin/env bash
# What hooks cost the server, in instructions per message (callgrind: deterministic, so it can be compared
# across changes on a busy machine) and, with --cpu, in server CPU per response (paired off/on runs).
#
#   bench/hooks-cost.sh [--build DIR] [--modes LIST] [--seconds S] [--cpu PAIRS] [--cpu-seconds S] [--base DIR]
#                       [--shared]
#
#   --build DIR      a build directory with bench/nestc-server and bin/nestc (default: build)
#   --modes LIST     comma-separated nestc-server setups: off, hooks1 (--hooks 1: one set of no-op
#                    callbacks), metrics (--metrics), trace (--trace); default: all four. A mode with
#                    "+ctx" (off+ctx, trace+ctx) sends every request with a W3C traceparent in its metadata
#   --seconds S      traffic under callgrind per mode (default 3)
#   --cpu PAIRS      also CPU per response: PAIRS pairs of (off, mode) runs one after the other, for each
#                    mode but off; prints the medians and the median of the paired differences
#   --cpu-seconds S  the counting window of each CPU run (default 4; 1 s warmup before it)
#   --base DIR       with --cpu: also a build of an earlier commit, measured in the same pairs (off and
#                    on of both builds one after the other), so the two are compared on the same load
#   --shared         bench/nestc-server-shared: the server linked to libnestc.so instead of libnestc.a
#
# Every run: `{"cmd":"sum"}` [1,2,3], 1 connection x 100 in flight, the server on core 0 and `nestc bench`
# on core 1. Callgrind's figure is nc_server__dispatch's inclusive instructions divided by its calls: the
# whole server side of a message from its decoded packet to its reply written to the connection's buffer.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build modes=off,hooks1,metrics,trace secs=3 pairs=0 cpusecs=4 base= server_name=nestc-server
while (($#)); do
  case $1 in
  --build) build=$2; shift ;;
  --modes) modes=$2; shift ;;
  --seconds) secs=$2; shift ;;
  --cpu) pairs=$2; shift ;;
  --cpu-seconds) cpusecs=$2; shift ;;
  --base) base=$2; shift ;;
  --shared) server_name=nestc-server-shared ;;
  -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "hooks-cost.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
srv=$build/bench/$server_name nestc=$build/bin/nestc
[[ -x $srv && -x $nestc ]] || { echo "hooks-cost.sh: build $build first ($server_name, nestc_cli)" >&2; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hooks-cost.XXXXXX")
trap '[[ -n ${KEEP:-} ]] || rm -rf "$tmp"' EXIT
[[ -n ${KEEP:-} ]] && echo "keeping $tmp"

flags_of() {
  case ${1%+ctx} in
  off) ;;
  hooks1) echo --hooks 1 ;;
  metrics) echo --metrics ;;
  trace) echo --trace ;;
  *) echo "hooks-cost.sh: unknown mode $1" >&2; exit 2 ;;
  esac
}

# what the bench adds to its requests in MODE
ctx_of() {
  [[ $1 == *+ctx ]] && echo --metadata traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
  return 0
}

# start_server LOG CMD...: runs CMD on core 0, waits for its port; sets pid and port
start_server() {
  local log=$1
  shift
  taskset -c 0 "$@" --port 0 >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$log")
    [[ -n $port ]] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "hooks-cost.sh: the server did not start: $(cat "$log")" >&2
  exit 1
}

stop_server() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# inclusive instructions and calls of nc_server__dispatch, summed over its call sites
per_msg() {
  python3 - "$1" <<'PY'
import re, sys
names, cur_cfn, ir, calls, want = {}, None, 0, 0, False
events = None
for line in open(sys.argv[1]):
    if line.startswith('events:'):
        events = line.split()[1:]
    m = re.match(r'fn=\((\d+)\) (.*)', line)
    if m:
        names[m.group(1)] = m.group(2).strip()
        continue
    m = re.match(r'cfn=\((\d+)\)(?: (.*))?', line)
    if m:
        if m.group(2): names[m.group(1)] = m.group(2).strip()
        cur_cfn = names.get(m.group(1))
        continue
    m = re.match(r'calls=(\d+) ', line)
    if m:
        want = cur_cfn == 'nc_server__dispatch'
        if want: calls += int(m.group(1))
        continue
    if want:
        parts = line.split()
        ir += int(parts[1])  # the line after calls= holds the inclusive cost: position, then Ir
        want = False
print(f"{ir / calls:.0f} {calls}" if calls else "0 0")
PY
}

echo "instructions per message (callgrind, nc_server__dispatch inclusive):"
IFS=, read -ra ml <<<"$modes"
declare -A ipm
for m in "${ml[@]}"; do
  out=$tmp/cg.$m
  # shellcheck disable=SC2046
  start_server "$tmp/srv.$m.log" valgrind --tool=callgrind --callgrind-out-file="$out" "$srv" $(flags_of "$m")
  # shellcheck disable=SC2046
  taskset -c 1 "$nestc" bench "tcp://127.0.0.1:$port" '{"cmd":"sum"}' '[1,2,3]' $(ctx_of "$m") --connections 1 --inflight 100 \
    --warmup 0.5 --duration "$secs" >"$tmp/bench.$m" 2>&1 || true
  stop_server
  read -r ir calls < <(per_msg "$out")
  ipm[$m]=$ir
  printf '  %-8s %6s  (%s messages)\n' "$m" "$ir" "$calls"
done

((pairs > 0)) || exit 0
# cpu_run SERVER MODE: server CPU per response over one window, in microseconds
cpu_run() {
  local line= try
  for try in 1 2 3; do # a run that got no figure (the machine too busy to connect in time) is run again
    # shellcheck disable=SC2046
    start_server "$tmp/srv.cpu.log" "$1" $(flags_of "$2")
    # shellcheck disable=SC2046
    line=$(taskset -c 1 "$nestc" bench "tcp://127.0.0.1:$port" '{"cmd":"sum"}' '[1,2,3]' $(ctx_of "$2") --connections 1 \
      --inflight 100 --warmup 1 --duration "$cpusecs" --server-pid "$pid" 2>/dev/null || true)
    stop_server
    [[ $line == *server_cpu_us_per_resp\":[0-9]* ]] && break
  done
  python3 -c 'import json,sys; print("%.4f" % json.loads(sys.argv[1])["server_cpu_us_per_resp"])' "$line"
}
report() {
  python3 - "$@" <<'PY'
import statistics as st, sys
m, off, on = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
d = [b - a for a, b in zip(off, on)]
r = [(b - a) / a * 100 for a, b in zip(off, on)]
print(f"  {m:14s} off {st.median(off):.3f}  on {st.median(on):.3f}  paired difference {st.median(d):+.3f} us"
      f" ({st.median(r):+.1f} %)  pairs: " + " ".join(f"{x:+.1f}" for x in r))
PY
}
echo "server CPU per response (us), $pairs pairs of ${cpusecs} s windows; load before: $(uptime | sed 's/.*load/load/')"
for m in "${ml[@]}"; do
  [[ $m == off* ]] && continue
  offs=() ons=() boffs=() bons=()
  for _ in $(seq "$pairs"); do
    offm=off${m#"${m%+ctx}"} # off, or off+ctx for a +ctx mode
    offs+=("$(cpu_run "$srv" "$offm")")
    ons+=("$(cpu_run "$srv" "$m")")
    if [[ -n $base ]]; then
      boffs+=("$(cpu_run "$base/bench/$server_name" "$offm")")
      bons+=("$(cpu_run "$base/bench/$server_name" "$m")")
    fi
  done
  report "$m" "${offs[*]}" "${ons[*]}"
  [[ -n $base ]] && report "$m (base)" "${boffs[*]}" "${bons[*]}"
done
echo "load after: $(uptime | sed 's/.*load/load/')"
