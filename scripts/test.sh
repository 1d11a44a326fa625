#!/usr/bin/env bash
# The whole test suite: unit, integration and NestJS interop tests (ctest), first on a normal build, then
# again on a build with AddressSanitizer + UndefinedBehaviorSanitizer (leak checking on), then under
# valgrind memcheck (every nestc process of every test), then every libFuzzer target for a
# short fixed time (clang build; NESTC_FUZZ_SECONDS each, default 30).
#   scripts/test.sh            both passes
#   scripts/test.sh --fast     the normal build only
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh" --test
jobs=$(nproc)

run() { # run <build-dir> <cmake args...>
  local dir=$1; shift
  cmake -S "$root" -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  (cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 600 -LE fuzz)
}

start=$(date +%s)
run "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNESTC_TEST_TIMEOUT_FACTOR=1
if [[ ${1:-} != --fast ]]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # factor 3: the sanitizers make every nestc process slower, and the machine is often loaded meanwhile
  run "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug -DNESTC_SANITIZE=ON -DNESTC_TEST_TIMEOUT_FACTOR=3
  # valgrind memcheck (on the normal build): every unit test, then every other test with each nestc process
  # (servers, the CLI, the C client driver, the examples) started under valgrind through NESTC_WRAP. Left out:
  # the tests where no nestc code runs (NestJS against NestJS: `nest_client.nest_server`, `nest_nest`) and, below,
  # the variants of
  # the CLI suites beyond one per transport. Time limits
  # are raised for this run: valgrind makes each process many times slower.
  vg="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite"
  for t in "$root"/build/tests/unit/test_*; do
    [[ -x $t ]] || continue
    echo "test.sh: valgrind $(basename "$t")"
    NESTC_TEST_TIMEOUT_FACTOR=8 $vg "$t" >/dev/null
  done
  conf=$root/build/tests/conformance/conformance
  for name in $("$conf" --list); do
    echo "test.sh: valgrind conformance $name"
    NESTC_TEST_TIMEOUT_FACTOR=8 $vg "$conf" "$name" >/dev/null
  done
  cmake -S "$root" -B "$root/build" -DNESTC_TEST_TIMEOUT_FACTOR=8 >/dev/null
  # A representative subset of the CLI suites: each CLI suite starts one valgrind'd nestc per request (the
  # 1 MiB echoes included), so it runs once per transport, over the plain variant; the TLS, MQTT 5 and
  # wildcard variants of the CLI suites (and RabbitMQ's amqps and noAck=false ones) are left out here (their
  # TLS and client code runs under valgrind in the C-driver and nestc-server suites over the same schemes, and
  # in the conformance runs above); so are the NestJS-only foreign-publisher runs, the MQTT 5 foreign run and
  # the 1 MB CLI run (the plain foreign run and the CLI suites' own 1 MiB echoes cover that code), and
  # RabbitMQ's wildcards, noAck=false and amqps server suites (one server suite per transport; the
  # conformance runs above cover TLS and settling under valgrind), and Kafka's CLI suite (about 3 minutes under
  # valgrind: its C-driver and nestc-server suites run the same client and server code), and Kafka's
  # dead-letter run (its nestc server is test_kafka_faults, which the unit pass above runs under valgrind).
  (cd "$root/build" && NESTC_WRAP=$vg ctest --output-on-failure -j "$jobs" -LE 'fuzz|unit' \
    -E 'nest_client\.nest_server|nest_nest|foreign\.nest_server|(tls|rediss|mqtts|mqtt5|amqps|wildcards|noack)\.cli\.nest_server|mqtt5\.foreign|large\.cli|kafka\.cli|kafka\.dead_letter|rmq\.(wildcards|noack)\.|amqps\.nest_client')
  cmake -S "$root" -B "$root/build" -DNESTC_TEST_TIMEOUT_FACTOR=1 >/dev/null
  CC=clang cmake -S "$root" -B "$root/build-fuzz" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNESTC_FUZZ=ON \
    -DNESTC_FUZZ_SECONDS="${NESTC_FUZZ_SECONDS:-30}" >/dev/null
  cmake --build "$root/build-fuzz" -j "$jobs" --target fuzz_targets
  (cd "$root/build-fuzz" && ctest --output-on-failure -j "$jobs" -L fuzz)
fi
echo "test.sh: all passes green in $(( $(date +%s) - start )) s"
