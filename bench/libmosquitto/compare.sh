#!/usr/bin/env bash
# libmosquitto against nestc's own MQTT codec, on this machine: the figures of docs/mqtt.md ("Why our own
# codec, not libmosquitto"). Starts its own mosquitto on a free loopback port in a temporary folder and
# stops it (by PID) at the end. Prints JSON lines; nothing is written into the tree.
#
#   bench/libmosquitto/compare.sh [--build DIR] [--n N] [--reps R] [--callgrind] [--strace]
#
#   --build DIR    a configured and built nestc tree (default build/): links DIR/src/libnestc.a
#   --n N          messages per run (default 100000); --reps R runs per point (default 3)
#   --callgrind    also instructions per message (the difference of an N/5 and a 2N/5 run) and the codec alone
#   --strace       also system calls per message (strace -c, N/2 messages)
#
# Needs libmosquitto-dev (pkg-config libmosquitto) and mosquitto; valgrind / strace for those options.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build n=100000 reps=3 cg=0 st=0
while (($#)); do
  case $1 in
    --build) build=${2:?}; shift ;;
    --n) n=${2:?}; shift ;;
    --reps) reps=${2:?}; shift ;;
    --callgrind) cg=1 ;;
    --strace) st=1 ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

pkg-config --exists libmosquitto || { echo "compare.sh: libmosquitto-dev is not installed" >&2; exit 2; }
command -v mosquitto >/dev/null || { echo "compare.sh: mosquitto is not installed" >&2; exit 2; }
[[ -f $build/src/libnestc.a ]] || { echo "compare.sh: $build/src/libnestc.a not found (build nestc first)" >&2; exit 2; }

tmp=$(mktemp -d)
broker=''
cleanup() {
  [[ -n $broker ]] && kill "$broker" 2>/dev/null && wait "$broker" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

bin=$tmp/mosq-vs-codec
# shellcheck disable=SC2046
cc -std=gnu11 -O2 -g -I"$root/src" -I"$root/include" "$here/mosq-vs-codec.c" "$build/src/libnestc.a" \
  $(pkg-config --cflags --libs libmosquitto libuv jansson) -o "$bin"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
log_dest none
EOF
mosquitto -c "$tmp/mosquitto.conf" &
broker=$!
for _ in $(seq 50); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  sleep 0.1
done

for q in 0 1; do
  for m in own mosq; do
    for _ in $(seq "$reps"); do "$bin" $m $q "$port" "$n"; done
    "$bin" $m $q "$port" $((n / 5)) 1 # one in flight: the round trip
  done
done

if ((cg)); then
  a=$((n / 5)) b=$((2 * n / 5))
  instr() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null | awk '/Collected/ {print $NF}'; }
  for q in 0 1; do
    for m in own mosq; do
      x=$(instr "$bin" $m $q "$port" $a) y=$(instr "$bin" $m $q "$port" $b)
      echo "{\"mode\":\"$m\",\"qos\":$q,\"instructions_per_msg\":$(((y - x) / (b - a)))}"
    done
  done
  for v in 4 5; do
    x=$(instr "$bin" codec 5000 $v) y=$(instr "$bin" codec 10000 $v)
    echo "{\"mode\":\"codec\",\"version\":$v,\"instructions_per_publish\":$(((y - x) / 80000))}"
  done
fi

if ((st)); then
  for q in 0 1; do
    for m in own mosq; do
      strace -f -c -o "$tmp/strace" "$bin" $m $q "$port" $((n / 2)) >/dev/null
      calls=$(awk '$NF == "total" {print $4}' "$tmp/strace")
      echo "{\"mode\":\"$m\",\"qos\":$q,\"syscalls\":$calls,\"n\":$((n / 2))}"
    done
  done
fi
