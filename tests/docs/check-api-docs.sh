#!/usr/bin/env bash
# Fails when a public name of the API lacks documentation in the reference Doxygen builds from the
# headers (docs/Doxyfile.in, docs/doxygen-filter.awk): every NC_API function of include/nestc/*.h, and
# every public type (typedef, struct, enum). Documentation is a comment directly above the declaration
# (or above the run of declarations it belongs to). Exits 77 (skipped) when doxygen is not installed.
#   check-api-docs.sh <doxygen> <Doxyfile> <include/nestc>
set -euo pipefail
doxygen=$1 doxyfile=$2 headers=$3
if [[ -z $doxygen ]] || ! command -v "$doxygen" >/dev/null 2>&1; then
  echo "check-api-docs: doxygen is not installed; skipped"
  exit 77
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The docs target's configuration, with XML instead of HTML and the warnings in a file.
{
  cat "$doxyfile"
  echo "OUTPUT_DIRECTORY = $out"
  echo "GENERATE_HTML = NO"
  echo "GENERATE_XML = YES"
  echo "WARN_IF_UNDOCUMENTED = YES"
  echo "WARN_LOGFILE = $out/warnings"
} | "$doxygen" - >"$out/log" 2>&1 || { cat "$out/log"; exit 1; }

missing=()
# Functions: each NC_API name (read from the headers themselves, not from Doxygen) must be in the XML as a
# function whose brief or detailed description has a paragraph.
documented=$(awk '
  /<memberdef kind="function"/ { f = 1; name = ""; doc = 0; d = 0 }
  f && !name && /<name>/ { name = $0; sub(/.*<name>/, "", name); sub(/<\/name>.*/, "", name) }
  f && /<briefdescription>/ { d = 1 }
  f && d && /<para/ { doc = 1 }
  f && /<\/detaileddescription>/ { d = 0 }
  f && /<\/memberdef>/ { if (doc) print name; f = 0 }' "$out"/xml/*_8h.xml | sort -u)
nfun=0
for name in $(grep -h '^NC_API' "$headers"/*.h | sed -E 's/\(.*//; s/.*[ *]//' | sort -u); do
  nfun=$((nfun + 1))
  grep -qx "$name" <<<"$documented" || missing+=("$name (function)")
done
# Types: Doxygen's own warnings for undocumented typedefs, enums and structs (members of structs, enum
# values and macros are not required).
while IFS= read -r line; do
  case $line in
    *"Compound "*" is not documented."*)
      name=${line#*Compound }
      missing+=("${name% is not documented.} (struct)") ;;
    *"Member "*" (typedef) of "*" is not documented."* | *"Member "*" (enumeration) of "*" is not documented."*)
      name=${line#*Member }
      missing+=("${name%% of *}") ;;
  esac
done <"$out/warnings"

if ((nfun == 0)); then
  echo "check-api-docs: found no NC_API declaration in $headers" >&2
  exit 1
fi
if ((${#missing[@]})); then
  echo "check-api-docs: ${#missing[@]} public name(s) without documentation (add a comment directly above each):" >&2
  printf '  %s\n' "${missing[@]}" | sort -u >&2
  exit 1
fi
echo "check-api-docs: all $nfun public functions and every public type are documented"
