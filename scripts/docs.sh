#!/usr/bin/env bash
# npm run docs: the HTML API reference of every entry point (deno.json's exports) in docs/api/ (git-ignored).
# Fails on any warning from deno doc (plain `deno doc <entry>` too), but one known to be Deno's own: deno_graph resolves @types/node's
# `/// <reference path="x.d.ts" />` lines as packages (denoland/deno#36751, Deno 2.9.6); chorus-ws/redis
# reaches @types/node through its node:buffer and node:crypto imports. Those are counted in one line.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
export NO_COLOR=1
entries=$(node -p 'Object.values(require("./deno.json").exports).join(" ")')
out=docs/api
log=$(mktemp)
trap 'rm -f "$log"' EXIT

rm -rf "$out" && mkdir -p "$out"
# shellcheck disable=SC2086
deno doc --html --name chorus-ws --output "$out" $entries >"$log" 2>&1
status=$?
known=$(grep '^Warning' "$log" | grep -c "referrer 'file://[^']*/node_modules/@types/node/")
others=$(grep '^Warning' "$log" | grep -vc "referrer 'file://[^']*/node_modules/@types/node/")
grep -v "node_modules/@types/node/" "$log"
[ "$known" -gt 0 ] && echo "docs: $known warnings of denoland/deno#36751 (@types/node's reference paths), not ours"
if [ "$status" -ne 0 ] || [ "$others" -gt 0 ]; then
  echo "docs: deno doc failed or warned"
  exit 1
fi
# plain `deno doc` of each entry point but chorus-ws/redis: no warning at all (today's tree reaches no @types/node)
for e in $entries; do
  [ "$e" = ./src/brokers/redis.ts ] && continue
  # shellcheck disable=SC2086
  if deno doc "$e" 2>&1 >/dev/null | grep -q .; then
    deno doc "$e" >/dev/null
    echo "docs: deno doc $e printed warnings"
    exit 1
  fi
done
echo "docs: $out/index.html"
