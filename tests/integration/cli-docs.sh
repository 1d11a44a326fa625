#!/usr/bin/env bash
# cli-docs.sh <nestc> [generated dir] — the man page and the completion scripts generated from the CLI's
# option table: nestc.1 renders without warnings (groff, when installed; else its sections are
# checked), the bash script parses and completes (commands, a command's options, schemes for the URL,
# files after @ and after --ca, the values of --engine), the zsh script parses (when zsh is installed).
# With a generated dir (the build's share/), the files built by CMake are the same as the binary prints.
set -euo pipefail
nestc=${1:?usage: cli-docs.sh <nestc> [generated dir]}
gen=${2:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
fail() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}

"$nestc" help --man >"$work/nestc.1"
for s in NAME SYNOPSIS DESCRIPTION COMMANDS URLS '"EXIT STATUS"'; do
  grep -q "^\.SH $s" "$work/nestc.1" || fail "nestc.1 has no section $s"
done
for o in --data-file --connect-timeout --insecure --stream --workers; do
  grep -q -- "${o//-/\\\\-}" "$work/nestc.1" || fail "nestc.1 does not document $o"
done
if command -v groff >/dev/null; then
  warnings=$(groff -man -Tascii -ww -z "$work/nestc.1" 2>&1)
  [[ -z $warnings ]] || fail "groff warns on nestc.1: $warnings"
fi

"$nestc" completion bash >"$work/nestc.bash"
bash -n "$work/nestc.bash" || fail "the bash completion script does not parse"
"$nestc" completion zsh >"$work/_nestc"
if command -v zsh >/dev/null; then
  zsh -n "$work/_nestc" || fail "the zsh completion script does not parse"
fi
grep -q '^#compdef nestc' "$work/_nestc" || fail "_nestc does not start with #compdef"
if "$nestc" completion fish >/dev/null 2>&1; then fail "completion fish should be refused"; fi

if [[ -n $gen ]]; then
  cmp -s "$gen/nestc.1" "$work/nestc.1" || fail "the built nestc.1 differs from nestc help --man"
  cmp -s "$gen/nestc.bash" "$work/nestc.bash" || fail "the built nestc.bash differs"
  cmp -s "$gen/_nestc" "$work/_nestc" || fail "the built _nestc differs"
fi

# completion smoke test: candidates for a command line, the cursor on its last word
touch "$work/data-one.json" "$work/ca-file.pem"
complete_words() {
  bash -c '
    source "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()
    _nestc
    printf "%s\n" "${COMPREPLY[@]}"' _ "$work/nestc.bash" "$@"
}
expect() { # <word expected among the candidates> -- <words...>
  local want=$1
  shift 2
  local got
  got=$(cd "$work" && complete_words "$@")
  if ! grep -qxF -- "$want" <<<"$got"; then
    fail "completing '$*': '$want' not among: $(tr '\n' ' ' <<<"$got")"
  fi
}
refuse() { # <word not expected> -- <words...>
  local bad=$1
  shift 2
  if (cd "$work" && complete_words "$@") | grep -qxF -- "$bad"; then fail "completing '$*' offers '$bad'"; fi
}
expect send -- nestc se
expect completion -- nestc comp
expect --timeout -- nestc send --ti
expect --stream -- nestc send tcp://h:1 x --st
refuse --data-file -- nestc send --da
expect --data-file -- nestc bench --da
expect --workers -- nestc conformance --wo
refuse --workers -- nestc send --wo
expect tcp:// -- nestc send t
expect nats:// -- nestc conformance n
expect rediss:// -- nestc send --timeout 5 red
expect @data-one.json -- nestc send tcp://h:1 sum @data
expect ca-file.pem -- nestc send --ca ca-f
expect client -- nestc bench --engine c
expect nats -- nestc options na
expect zsh -- nestc completion z

if ((fails)); then exit 1; fi
echo "ok: man page and completion scripts"
