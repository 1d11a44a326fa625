#!/usr/bin/env bash
# if-nestc-supports.sh SCHEME -- <command...>
#
# Runs the command if $NESTC_BIN knows the transport SCHEME (`nestc options SCHEME` succeeds); otherwise says so
# and exits 77, which ctest reports as skipped (SKIP_RETURN_CODE 77). For tests registered ahead of their
# transport: they skip until it lands and run from then on.
set -euo pipefail
if (($# < 3)) || [[ $2 != -- ]]; then
  echo "usage: if-nestc-supports.sh SCHEME -- <command...>" >&2
  exit 2
fi
scheme=$1
shift 2
: "${NESTC_BIN:?NESTC_BIN must point to the nestc binary}"
if ! "$NESTC_BIN" options "$scheme" >/dev/null 2>&1; then
  echo "SKIP: this nestc has no $scheme:// transport (\`nestc options $scheme\` fails)"
  exit 77
fi
exec "$@"
