#!/usr/bin/env bash
# The whole test suite: unit, integration and NestJS interop tests (ctest), first on a normal build, then
# again on a build with AddressSanitizer + UndefinedBehaviorSanitizer (leak checking on), then every
# libFuzzer target for a short fixed time (clang build; NESTC_FUZZ_SECONDS each, default 30).
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
run "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [[ ${1:-} != --fast ]]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  run "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug -DNESTC_SANITIZE=ON
  CC=clang cmake -S "$root" -B "$root/build-fuzz" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNESTC_FUZZ=ON \
    -DNESTC_FUZZ_SECONDS="${NESTC_FUZZ_SECONDS:-30}" >/dev/null
  cmake --build "$root/build-fuzz" -j "$jobs" --target fuzz_targets
  (cd "$root/build-fuzz" && ctest --output-on-failure -j "$jobs" -L fuzz)
fi
echo "test.sh: all passes green in $(( $(date +%s) - start )) s"
