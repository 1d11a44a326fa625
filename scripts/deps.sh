#!/usr/bin/env bash
# Installs what nestc needs on Debian, skipping what is already there.
#   scripts/deps.sh          build + demo dependencies
#   scripts/deps.sh --runtime only what a built nestc needs to run (the shared libraries; ICU is loaded
#                            on demand, for non-ASCII keys in object patterns)
#   scripts/deps.sh --test   also the test suite's (cmocka, openssl CLI, clang + libFuzzer, valgrind,
#                            redis-server, nats-server, mosquitto, rabbitmq-server, prometheus (and its promtool),
#                            Node.js + npm, the NestJS peers)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# Debian 12 names. libicu72 is ICU's run-time library: nestc loads libicui18n.so.72 with dlopen (it is no
# DT_NEEDED of libnestc), so it must be listed here; the major version is the one of the headers built against.
runtime=(libuv1 libjansson4 libssl3 libhiredis0.14 libicu72 librdkafka1 libnghttp2-14 zlib1g)
pkgs=(gcc make cmake ninja-build pkg-config libuv1-dev libjansson-dev libssl-dev libicu-dev libhiredis-dev
  librdkafka-dev libnghttp2-dev zlib1g-dev
  "${runtime[@]}")
if [[ ${1:-} == --runtime ]]; then
  pkgs=("${runtime[@]}")
elif [[ ${1:-} == --test ]]; then
  pkgs+=(libcmocka-dev openssl procps clang libclang-rt-14-dev valgrind redis-server nats-server mosquitto
    rabbitmq-server doxygen zsh prometheus)
  command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
  command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  sudo=''
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ${1:-} == --test ]]; then
  # The pinned NestJS interop peers; `npm ci` only when the pins changed since the last install.
  "$root/tests/interop/ensure-deps.sh"
fi
