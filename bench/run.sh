#!/usr/bin/env bash
# npm run bench: raise the file limit (10,000 sessions with their clients on one box need
# about 20,000 descriptors, split over the server and client processes), then run the bench.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 12000 ]; then
  echo "bench: the file limit is $(ulimit -n); the idle scenario needs about 12,000 per process" >&2
fi
# Under Bun the bench's programs import chorus-ws by name, from the npm build (dist/).
node scripts/build.mjs >/dev/null
exec node_modules/.bin/bun bench/main.ts "$@"
