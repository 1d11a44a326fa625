#!/usr/bin/env bash
# rabbitmq-c (Debian librabbitmq-dev 0.11) against nestc's own AMQP 0-9-1 codec, on this machine: the figures
# of docs/amqp.md ("Why our own codec, not rabbitmq-c"). Builds rmq-vs-codec.c with the codec's sources,
# starts its own rabbitmq-server (own epmd, free loopback ports, everything in a temporary folder), runs the
# same workload through both, stops both processes by PID and writes bench/librabbitmq/RESULTS.md.
#
#   bench/librabbitmq/compare.sh [--n N] [--reps R] [--cg-n M] [--no-callgrind]
#
#   --n N           messages per run (default 100000); --reps R runs per point (default 3, the median is shown)
#   --cg-n M        messages per callgrind run (default 20000)
#   --cg-out DIR    keep the callgrind profiles there (callgrind.LIB.PHASE.MODE, for callgrind_annotate)
#
# Needs librabbitmq-dev (installed with apt-get when missing, as root), rabbitmq-server, jansson, valgrind.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
n=100000 reps=3 cgn=20000 cg=1 cgout=''
while (($#)); do
  case $1 in
    --n) n=${2:?}; shift ;;
    --reps) reps=${2:?}; shift ;;
    --cg-n) cgn=${2:?}; shift ;;
    --no-callgrind) cg=0 ;;
    --cg-out) cgout=${2:?}; shift ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if ! pkg-config --exists librabbitmq; then
  if [[ $(id -u) == 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q librabbitmq-dev >/dev/null
  else
    echo "compare.sh: librabbitmq-dev is not installed (apt-get install librabbitmq-dev)" >&2; exit 2
  fi
fi
rmq_bin=/usr/lib/rabbitmq/bin/rabbitmq-server
[[ -x $rmq_bin ]] || { echo "compare.sh: rabbitmq-server is not installed" >&2; exit 2; }
((cg)) && ! command -v valgrind >/dev/null && { echo "compare.sh: valgrind is not installed (or --no-callgrind)" >&2; exit 2; }

tmp=$(mktemp -d)
epmd_pid='' broker='' beam=''
cleanup() {
  # the script traps TERM and stops the VM it started; the VM itself is checked for too
  if [[ -n $broker ]]; then
    [[ -z $beam ]] && beam=$(pgrep -P "$broker" | head -1 || true)
    kill -TERM "$broker" 2>/dev/null || true
    wait "$broker" 2>/dev/null || true
    if [[ -n $beam ]]; then
      for _ in $(seq 100); do kill -0 "$beam" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$beam" 2>/dev/null || true
    fi
  fi
  if [[ -n $epmd_pid ]]; then
    kill "$epmd_pid" 2>/dev/null || true
    wait "$epmd_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# ---- build ----
bin=$tmp/rmq-vs-codec
cflags=(-std=gnu11 -O2 -g -DNDEBUG -I"$root/src" -I"$root/include")
# shellcheck disable=SC2046
cc "${cflags[@]}" "$here/rmq-vs-codec.c" "$root/src/codec/amqp_proto.c" "$root/src/codec/amqp_table.c" \
  "$root/src/util/buf.c" $(pkg-config --cflags --libs librabbitmq jansson) -pthread -o "$bin"
# code size: the codec's objects as the library would link them, and rabbitmq-c's shared object
for f in amqp_proto amqp_table; do
  # shellcheck disable=SC2046
  cc "${cflags[@]}" -g0 $(pkg-config --cflags jansson) -c "$root/src/codec/$f.c" -o "$tmp/$f.o"
done
own_text=$(size -t "$tmp/amqp_proto.o" "$tmp/amqp_table.o" | awk '$NF == "(TOTALS)" {print $1 + $2 + $3}')
rmq_so=$(ldd "$bin" | awk '/librabbitmq/ {print $3}')
rmq_so=$(readlink -f "$rmq_so")
rmq_text=$(size "$rmq_so" | awk 'NR == 2 {print $1 + $2 + $3}')
rmq_needed=$(readelf -d "$rmq_so" | awk '/NEEDED/ {gsub(/[][]/, "", $NF); printf "%s%s", s, $NF; s = ", "}')
rmq_ver=$(pkg-config --modversion librabbitmq)
rmq_deb=$(dpkg-query -W -f '${Version}' librabbitmq4 2>/dev/null || echo '?')
broker_ver=$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo '?')

# ---- broker ----
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port) dist=$(free_port) epmd_port=$(free_port)
mkdir -p "$tmp/mnesia" "$tmp/log"
echo '[].' >"$tmp/enabled_plugins"
cat >"$tmp/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$port
loopback_users.guest = true
EOF
: >"$tmp/rabbitmq-env.conf"
epmd -port "$epmd_port" -address 127.0.0.1 &
epmd_pid=$!
export HOME=$tmp ERL_EPMD_PORT=$epmd_port RABBITMQ_NODENAME=bench$$@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
  RABBITMQ_NODE_PORT=$port RABBITMQ_DIST_PORT=$dist RABBITMQ_MNESIA_BASE=$tmp/mnesia RABBITMQ_LOG_BASE=$tmp/log \
  RABBITMQ_LOGS=- RABBITMQ_CONFIG_FILE=$tmp/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$tmp/enabled_plugins \
  RABBITMQ_CONF_ENV_FILE=$tmp/rabbitmq-env.conf
"$rmq_bin" >"$tmp/broker.log" 2>&1 </dev/null &
broker=$!
ready=0
for _ in $(seq 600); do
  if grep -q "Server startup complete" "$tmp/broker.log" &&
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
    ready=1; break
  fi
  kill -0 "$broker" 2>/dev/null || break
  sleep 0.1
done
((ready)) || { echo "compare.sh: rabbitmq-server did not start:" >&2; tail -20 "$tmp/broker.log" >&2; exit 1; }
beam=$(pgrep -P "$broker" | head -1 || true)

# ---- runs ----
out=$tmp/results.jsonl
: >"$out"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for mode in noack ack; do
  for lib in own rmq rmqin rmqinj; do
    for _ in $(seq "$reps"); do "$bin" $lib $mode "$port" "$n" | tee -a "$out"; done
  done
done
if ((cg)); then
  for lib in own rmq rmqin rmqinj; do
    for ph in pub:noack recv:noack recv:ack; do
      p=${ph%%:*} mode=${ph##*:}
      cgf=/dev/null
      [[ -n $cgout ]] && mkdir -p "$cgout" && cgf=$cgout/callgrind.$lib.$p.$mode
      ir=$(BENCH_COLLECT=$p valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file="$cgf" \
        "$bin" $lib $mode "$port" "$cgn" 2>&1 >/dev/null | awk '/Collected/ {print $NF}')
      echo "{\"lib\":\"$lib\",\"phase\":\"$p\",\"mode\":\"$mode\",\"n\":$cgn,\"instructions\":$ir}" | tee -a "$out"
    done
  done
fi
# a hostile broker: connection.start with tables nested 4000 deep (24 kB, under the 64 KiB rabbitmq-c accepts
# before Tune), decoded on a thread with a 256 KiB stack
for lib in own rmq; do
  rc=0
  res=$("$bin" nest $lib 4000 2>/dev/null) || rc=$?
  [[ -n $res ]] || res="{\"probe\":\"nested-tables\",\"lib\":\"$lib\",\"result\":\"the process died (exit status $rc)\"}"
  echo "$res" | tee -a "$out"
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report ----
OUT=$out N=$n REPS=$reps CGN=$cgn OWN_TEXT=$own_text RMQ_TEXT=$rmq_text RMQ_NEEDED=$rmq_needed RMQ_VER=$rmq_ver \
  RMQ_DEB=$rmq_deb BROKER_VER=$broker_ver LOAD0=$load0 LOAD1=$load1 \
  COMMIT=$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?') CPU=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo) \
  python3 "$here/report.py" >"$here/RESULTS.md"
echo "compare.sh: wrote $here/RESULTS.md"
