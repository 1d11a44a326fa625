#!/usr/bin/env bash
# observability.sh — run by with-redis.sh (REDIS_URL, REDIS_PID, REDIS_CMD set): the admin endpoint of
# `nestc conformance --admin` (docs/observability.md) as its users see it.
#
# 1. TCP, two workers: `promtool check metrics` accepts /metrics; a real Prometheus, started here on a free
#    loopback port with a generated config (scrape every second), scrapes it; after a known load (N `nestc
#    send sum`, E `exception`, U unknown patterns) its query API returns those counts, summed over both
#    workers, for requests, outcomes and the histogram's _count; and for connections (one per send: opened,
#    closed in order, none open) and wire bytes (above the payload bytes).
# 2. Graceful shutdown, two workers: SIGTERM while 4 `sleep` requests are in flight; /health/ready answers 503
#    with "draining":true (and /health/live 200) while they finish; each gets its reply; the server exits 0.
# 3. Redis: /health/ready is 200 once subscribed, 503 while the broker is down, 200 again after it
#    restarts, with nestc_broker_reconnects_total 1.
# HTTP is spoken through bash's /dev/tcp (one request per connection, as the endpoint answers).
set -euo pipefail
[[ -n ${OBS_TRACE:-} ]] && set -x
: "${NESTC_BIN:?NESTC_BIN must name the nestc binary}" "${REDIS_URL:?run under with-redis.sh}"
factor=${NESTC_TEST_TIMEOUT_FACTOR:-1}
limit=$((30 * factor)) # seconds any awaited state may take (each takes well under a second or two)
PROMETHEUS=${PROMETHEUS:-prometheus}
PROMTOOL=${PROMTOOL:-promtool}
dir=$(mktemp -d "${TMPDIR:-/tmp}/observability.XXXXXX")
pids=()
# shellcheck disable=SC2317  # (the EXIT trap)
cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "observability.sh: FAIL: $*" >&2
  for f in "$dir"/*.log; do
    [[ -f $f ]] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}

# GET path on 127.0.0.1:port; prints the whole response (status line, headers, body).
http_get() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3
    timeout "$limit" cat <&3
  ) 2>/dev/null
}
# The status code of GET path.
http_status() {
  http_get "$1" "$2" | head -n 1 | cut -d' ' -f2
}
# Waits until `cmd...` succeeds; fails with `what` after the limit.
wait_for() {
  local what=$1 deadline=$((SECONDS + limit))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || fail "$what"
    sleep 0.05
  done
}
# Starts `nestc conformance URL --admin 127.0.0.1:0 ARGS...` (log NAME.log); sets srv_pid, srv_port,
# admin_port once it printed both lines.
serve() {
  local name=$1 url=$2
  shift 2
  "$NESTC_BIN" conformance "$url" --admin 127.0.0.1:0 "$@" >"$dir/$name.out" 2>"$dir/$name.log" &
  srv_pid=$!
  pids+=("$srv_pid")
  wait_for "$name: no admin port line" grep -q 'admin on port' "$dir/$name.out"
  admin_port=$(sed -n 's/.*admin on port \([0-9]*\).*/\1/p' "$dir/$name.out")
  srv_port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$dir/$name.out")
}
free_port() {
  "${NODE:-node}" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# ---- 1. Prometheus scrapes a two-worker TCP server ---------------------------------------------------------
serve tcp tcp://127.0.0.1:0 --workers 2
N=20 E=3 U=4
for _ in $(seq $N); do "$NESTC_BIN" send "tcp://127.0.0.1:$srv_port" sum '[1,2,3]' >/dev/null; done
for _ in $(seq $E); do "$NESTC_BIN" send "tcp://127.0.0.1:$srv_port" exception '"x"' >/dev/null 2>&1 && fail "exception answered"; done
for i in $(seq $U); do "$NESTC_BIN" send "tcp://127.0.0.1:$srv_port" "random.$i.$RANDOM" 1 >/dev/null 2>&1 && fail "unknown answered"; done

http_get "$admin_port" /metrics | sed '1,/^\r$/d' >"$dir/metrics.txt"
grep -q '^nestc_workers 2$' "$dir/metrics.txt" || fail "nestc_workers 2 missing"
# the span exporters' counters (docs/observability.md "Trace context"), checked by promtool below too
for f in exported dropped failed; do
  grep -q "^nestc_trace_spans_${f}_total [0-9]*$" "$dir/metrics.txt" || fail "nestc_trace_spans_${f}_total missing"
done
"$PROMTOOL" check metrics <"$dir/metrics.txt" >"$dir/promtool.log" 2>&1 || fail "promtool check metrics refused the exposition"
grep -c 'route="random' "$dir/metrics.txt" >/dev/null && fail "unknown patterns got series of their own"

prom_port=$(free_port)
cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: nestc
    static_configs:
      - targets: ['127.0.0.1:$admin_port']
EOF
"$PROMETHEUS" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
  --web.listen-address="127.0.0.1:$prom_port" >"$dir/prometheus.log" 2>&1 &
prom_pid=$!
pids+=("$prom_pid")
prom_ready() { [[ $(http_status "$prom_port" /-/ready) == 200 ]]; }
wait_for "prometheus did not get ready" prom_ready

# The value of the instant query `q` (URL-encoded by node), or nothing.
query() {
  local enc
  enc=$("${NODE:-node}" -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "$1")
  http_get "$prom_port" "/api/v1/query?query=$enc" | sed -n 's/.*"value":\[[0-9.]*,"\([^"]*\)"\].*/\1/p'
}
expect_query() {
  local q=$1 want=$2
  # shellcheck disable=SC2317
  got_it() { [[ $(query "$q") == "$want" ]]; }
  wait_for "prometheus: $q is '$(query "$q")', expected $want" got_it
}
expect_query 'sum(nestc_server_requests_total{route="sum"})' $N
expect_query 'sum(nestc_server_handled_total{route="sum",outcome="ok"})' $N
expect_query 'sum(nestc_server_handled_total{route="exception",outcome="remote_error"})' $E
expect_query 'sum(nestc_server_handled_total{route="(no handler)",outcome="no_handler"})' $U
expect_query 'sum(nestc_server_handler_duration_seconds_count{route="sum"})' $N
expect_query 'sum(nestc_server_in_flight)' 0
expect_query 'up{job="nestc"}' 1
expect_query 'nestc_ready' 1
# connections and wire bytes: each `nestc send` is one connection, counted by the worker that accepted it
C=$((N + E + U))
expect_query 'sum(nestc_server_connections_opened_total{transport="tcp"})' $C
expect_query 'sum(nestc_server_connections_closed_total{transport="tcp",reason="ok"})' $C
expect_query 'sum(nestc_server_connections{transport="tcp"})' 0
expect_query 'sum(nestc_server_wire_received_bytes_total) > bool sum(nestc_server_received_bytes_total)' 1
kill -TERM "$prom_pid"
wait "$prom_pid" 2>/dev/null || true
echo "observability.sh: prometheus counted $N requests, $E errors, $U unmatched, $C connections over 2 workers" >&2

kill -TERM "$srv_pid"
wait "$srv_pid" || fail "the two-worker server did not exit 0"

# ---- 2. graceful shutdown: not ready while draining --------------------------------------------------------
# Two workers and K requests in flight on separate connections (the kernel spreads them over the workers).
serve tcp2 tcp://127.0.0.1:0 --workers 2
K=4
senders=()
for i in $(seq $K); do
  "$NESTC_BIN" send "tcp://127.0.0.1:$srv_port" sleep 1500 >"$dir/sleep.$i.out" 2>"$dir/sleep.$i.log" &
  senders+=($!)
done
inflight() { http_get "$admin_port" /metrics | grep -q "^nestc_server_in_flight{transport=\"tcp\",route=\"sleep\"} $K"; }
wait_for "the sleep requests never arrived" inflight
kill -TERM "$srv_pid"
draining() { http_get "$admin_port" /health/ready | grep -q '"draining":true'; }
wait_for "/health/ready never said draining" draining
http_get "$admin_port" /health/ready | grep -q '^{"status":"error","info":{},"error":{"tcp":{"status":"down"' ||
  fail "the 503 body is not terminus-shaped"
[[ $(http_status "$admin_port" /health/live) == 200 ]] || fail "/health/live is not 200 while draining"
# while requests are unanswered, every answer says not ready (the endpoint closes once every worker has
# drained: a sender may still be exiting then, so no answer ends the checks)
alive() {
  local p
  for p in "${senders[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done
  return 1
}
checks=0
while alive; do
  st=$(http_status "$admin_port" /health/ready) || break
  [[ $st == 503 ]] || fail "/health/ready answered '$st' while requests were draining"
  checks=$((checks + 1))
done
for i in $(seq $K); do
  wait "${senders[i - 1]}" || fail "in-flight request $i failed at shutdown"
  [[ $(cat "$dir/sleep.$i.out") == 1500 ]] || fail "in-flight request $i's reply: $(cat "$dir/sleep.$i.out")"
done
wait "$srv_pid" || fail "the server did not exit 0 after draining"
echo "observability.sh: not ready while draining ($checks checks), the $K requests in flight answered" >&2

# ---- 3. Redis: readiness follows the broker ----------------------------------------------------------------
serve redis "$REDIS_URL"
ready_is() { [[ $(http_status "$admin_port" /health/ready) == "$1" ]]; }
wait_for "redis: never ready" ready_is 200
kill -TERM "$REDIS_PID"
wait_for "redis: still ready with the broker down" ready_is 503
http_get "$admin_port" /health/ready | grep -q '"connected":false' || fail "redis: 503 without connected:false"
redis_port=${REDIS_URL##*:}
port_closed() { ! (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; }
wait_for "redis: the port stayed open" port_closed
eval "exec $REDIS_CMD" &
pids+=($!)
wait_for "redis: not ready again after the broker came back" ready_is 200
http_get "$admin_port" /metrics | grep -q '^nestc_broker_reconnects_total 1$' || fail "redis: reconnects not 1"
echo "observability.sh: readiness 200 -> 503 -> 200 across a broker restart" >&2
echo "observability.sh: ok"
