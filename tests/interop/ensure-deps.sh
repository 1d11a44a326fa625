#!/usr/bin/env bash
# ensure-deps.sh — install the pinned NestJS packages (npm ci) into this folder's node_modules,
# unless they are already there and up to date: npm writes node_modules/.package-lock.json on every
# install, so it being newer than package.json and package-lock.json means nothing changed since.
set -euo pipefail
cd "$(dirname "$0")"
hidden=node_modules/.package-lock.json
if [[ -f $hidden && $hidden -nt package-lock.json && $hidden -nt package.json ]]; then
  echo "ensure-deps.sh: node_modules is up to date"
  exit 0
fi
exec npm ci --no-audit --no-fund
