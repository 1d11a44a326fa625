#!/usr/bin/env bash
# The numbers behind docs/grpc.md, "The stack": a unary round trip on gRPC's C core and on nghttp2 (both
# server and client in one process over loopback TCP), library sizes and dependencies, and the protobuf
# codec of nestc against protobufjs (through @grpc/proto-loader, as NestJS runs it).
#
#   bench/grpcstack/compare.sh [--calls N] [--runs R]     (defaults: 5000 calls, 3 runs; medians printed)
#
# Needs libgrpc-dev and libnghttp2-dev (pkg-config grpc, libnghttp2) and `npm ci` in tests/interop.
# Builds in build-bench/ as bench/run.sh does.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
calls=5000 runs=3
while [ $# -gt 0 ]; do
  case $1 in
    --calls) calls=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cmake -S "$root" -B "$root/build-bench" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNESTC_BUILD_TESTS=OFF >/dev/null
cmake --build "$root/build-bench" --target proto-codec-bench grpc-core-unary nghttp2-unary >/dev/null
bin=$root/build-bench/bench
for prog in grpc-core-unary nghttp2-unary; do
  for _ in $(seq "$runs"); do "$bin/$prog" "$calls"; done
done
for lib in grpc nghttp2; do
  so=$(ls /usr/lib/*/lib$lib.so.* 2>/dev/null | head -1)
  own=$(stat -c %s "$(readlink -f "$so")")
  deps=$(ldd "$so" | awk '/=>/ {print $3}' | grep -vE 'libc\.so|libm\.so|libssl|libcrypto|ld-linux|libpthread|libdl|librt|libgcc_s|libz\.so' || true)
  n=0 bytes=0
  for d in $deps; do n=$((n + 1)); bytes=$((bytes + $(stat -c %s "$(readlink -f "$d")"))); done
  echo "{\"library\":\"lib$lib\",\"bytes\":$own,\"extra_shared_libraries\":$n,\"extra_bytes\":$bytes}"
done
proto=$root/tests/vectors/grpc/conformance.proto
for _ in $(seq "$runs"); do "$bin/proto-codec-bench" "$proto"; done
for _ in $(seq "$runs"); do (cd "$root/tests/interop" && node ../../bench/grpcstack/proto-codec-bench.mjs "$proto"); done
