#!/usr/bin/env bash
# Installs a nestc build tree into a temporary prefix, moves the prefix (the package must be relocatable),
# and builds examples/math-service and examples/math-client out of tree against it four ways:
#   pkg-config nestc (shared), pkg-config --static nestc-static, find_package + nestc::nestc,
#   find_package + nestc::nestc_static;
# runs a built pair (shared and static), checks that the static programs do not need libnestc.so, and that
# find_package(nestc) changes none of its caller's variables and prints nothing (find-package-probe/).
#   install-test.sh BUILD_DIR SOURCE_DIR
# Environment: CMAKE (cmake to use), CC, NESTC_LINK_FLAGS (e.g. the sanitizer flags the build used).
set -euo pipefail
build=$1 src=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
cmake=${CMAKE:-cmake} cc=${CC:-cc}
read -ra flags <<<"${NESTC_LINK_FLAGS:-}"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
tmp=$(mktemp -d)
svc=''
trap '[[ -n $svc ]] && { kill -TERM $svc 2>/dev/null; wait $svc 2>/dev/null; }; rm -rf "$tmp"' EXIT
fail() { echo "install-test: $*" >&2; exit 1; }

"$cmake" --install "$build" --prefix "$tmp/staging" >/dev/null
mv "$tmp/staging" "$tmp/prefix" # installed in one place, used from another
prefix=$tmp/prefix
pcdir=$(dirname "$(find "$prefix" -name nestc.pc)")
export PKG_CONFIG_PATH=$pcdir
libdir=$(pkg-config --variable=libdir nestc)
[[ $(cd "$libdir" && pwd -P) == "$(cd "$prefix" && pwd -P)"/* ]] || fail "nestc.pc points outside the prefix: $libdir"
static_libs=$(pkg-config --static --libs nestc)
for l in -lnestc -lssl -lcrypto -lhiredis -lpthread -ldl -luv -ljansson; do
  [[ " $static_libs " == *" $l "* ]] || fail "pkg-config --static --libs nestc lacks $l: $static_libs"
done

# 1, 2: pkg-config
build_pc() { # dir, pkg-config arguments...
  local dir=$tmp/$1 ex
  shift
  mkdir -p "$dir"
  for ex in math-service math-client; do
    # shellcheck disable=SC2046 # pkg-config's output is a list of words
    "$cc" -std=gnu11 "${flags[@]}" -o "$dir/$ex" "$src/examples/$ex/main.c" $(pkg-config "$@") \
      -Wl,-rpath,"$libdir" || fail "cannot build $ex with pkg-config $*"
  done
}
build_pc pc-shared --cflags --libs nestc
build_pc pc-static --static --cflags --libs nestc-static

# 3, 4: find_package(nestc)
mkdir -p "$tmp/cm-src"
cat >"$tmp/cm-src/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.21)
project(nestc_examples C)
find_package(nestc 0.1 REQUIRED)
foreach(ex math-service math-client)
  add_executable(${ex} ${EXAMPLES}/${ex}/main.c)
  target_link_libraries(${ex} PRIVATE nestc::${NESTC_TARGET})
endforeach()
CMAKE
for t in nestc nestc_static; do
  "$cmake" -S "$tmp/cm-src" -B "$tmp/cm-$t" "${gen[@]}" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_EXE_LINKER_FLAGS="${flags[*]}" -DCMAKE_C_FLAGS="${flags[*]}" \
    -DEXAMPLES="$src/examples" -DNESTC_TARGET=$t >"$tmp/cm-$t.log" 2>&1 &&
    "$cmake" --build "$tmp/cm-$t" >>"$tmp/cm-$t.log" 2>&1 || { cat "$tmp/cm-$t.log"; fail "find_package build with nestc::$t"; }
done

# what each program needs at run time
for d in pc-shared pc-static cm-nestc cm-nestc_static; do
  for ex in math-service math-client; do
    needs=$(ldd "$tmp/$d/$ex")
    case $d in
    *static) [[ $needs != *libnestc.so* ]] || fail "$d/$ex needs libnestc.so" ;;
    *) [[ $needs == *"$prefix"*libnestc.so* ]] || fail "$d/$ex does not load the installed libnestc.so" ;;
    esac
  done
done

# run_pair DIR: the service on a port of its choosing (it prints it), the client calls it, SIGTERM stops it
run_pair() {
  local dir=$tmp/$1 out=$tmp/$1.service.log port='' out_c
  "${wrap[@]}" "$dir/math-service" tcp://127.0.0.1:0 >"$out" 2>&1 &
  svc=$!
  local deadline=$((SECONDS + 60 * ${NESTC_TEST_TIMEOUT_FACTOR:-1}))
  until port=$(grep -o 'listening on port [0-9]*' "$out" | grep -o '[0-9]*$'); do
    ((SECONDS < deadline)) && kill -0 $svc 2>/dev/null || { cat "$out"; fail "$1/math-service did not listen"; }
    sleep 0.05
  done
  out_c=$("${wrap[@]}" "$dir/math-client" "tcp://127.0.0.1:$port" 1 2 3 4 5 2>&1) || true
  kill -TERM $svc
  local st=0
  wait $svc || st=$?
  svc=''
  ((st == 0)) || fail "$1/math-service did not shut down cleanly (exit $st)"
  [[ $out_c == "sum = 15" ]] || fail "$1/math-client: $out_c"
}
# NESTC_WRAP: run the programs under a tool, e.g. valgrind (its error exit code fails the test)
wrap=()
[[ -n ${NESTC_WRAP:-} ]] && read -ra wrap <<<"$NESTC_WRAP"
run_pair cm-nestc
run_pair pc-static

# find_package(nestc) leaves its caller alone
"$cmake" -S "$here/find-package-probe" -B "$tmp/probe" "${gen[@]}" -DCMAKE_PREFIX_PATH="$prefix" \
  >"$tmp/probe.log" 2>&1 || { cat "$tmp/probe.log"; fail "find_package(nestc) changed its caller"; }
printed=$(sed -n '/probe: find_package(nestc) begins/,/probe: find_package(nestc) ends/p' "$tmp/probe.log" | sed '1d;$d')
[[ -z $printed ]] || fail "find_package(nestc) printed: $printed"
echo "install-test: 4 builds, 2 runs, find_package probe: ok"
