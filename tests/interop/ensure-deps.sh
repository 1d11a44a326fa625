#!/usr/bin/env bash
# ensure-deps.sh [DIR] — install the pinned NestJS packages (npm ci) into DIR's node_modules (default: this
# folder; the bench has its own), unless they are already there and up to date: after each install the
# checksum of package.json and package-lock.json is kept in node_modules/.nestc-deps; the same checksum
# means nothing changed since.
# (Content, not modification times: a fresh checkout or a second work tree of the same commit has newer
# files but the same pins, and must not reinstall.)
set -euo pipefail
cd "${1:-$(dirname "$0")}"
stamp=node_modules/.nestc-deps
sum=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$sum" && -d node_modules/@nestjs/microservices ]]; then
  echo "ensure-deps.sh: node_modules is up to date"
  exit 0
fi
echo "ensure-deps.sh: npm ci in $(basename "$PWD") (pinned NestJS peers)" >&2
npm ci --no-audit --no-fund --loglevel=error
echo "$sum" >"$stamp"
