#!/usr/bin/env bash
# Every check of `npm test`: format, lint, layers (import cycles, file length), types (Deno, web-only core, Bun),
# the npm build (dist/), public docs, publish dry run, then the one suite under `deno test` and under `bun test`.
# Runs every step, fails if any did.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
export NO_COLOR=1
failed=()
log=$(mktemp -d)

step() {
  local name=$1
  shift
  echo "== $name: $*"
  if ! "$@"; then
    failed+=("$name")
    echo "!! $name failed"
  fi
}

step fmt deno fmt --check
step lint deno lint
# No import cycle under src/ (type-only imports count), no source file over 450 lines.
step layers deno run -A scripts/check_layers.ts
# tests/types/*bun*: Bun's types only (the bun-types step); Deno's own Node types clash with them.
step check deno check --doc mod.ts src/ $(find tests -name '*.ts' ! -path 'tests/types/*bun*' | sort) examples/ \
  $(ls bench/*.ts 2>/dev/null)
step core-web-only tsc -p tsconfig.core.json
step bun-types tsc -p tsconfig.bun.json
# The npm package's JavaScript and declarations (dist/), which tests/package.test.ts packs and installs.
step build node scripts/build.mjs
# Every TypeScript block of the README and the guides in docs/ type-checks (tests/docs_blocks.test.ts runs the programs).
step readme deno check --doc-only README.md docs/*.md
# The public docs of every entry point (deno.json's exports): no missing JSDoc, no private types.
step doc deno doc --lint $(node -p 'Object.values(require("./deno.json").exports).join(" ")')
# The HTML API reference (npm run docs, into docs/api/): every entry point, and no warning from deno doc.
step docs bash scripts/docs.sh
step publish deno publish --dry-run --allow-dirty

echo "== deno test"
deno test -A tests/ 2>&1 | tee "$log/deno.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("deno test")
echo "== bun test"
bun test --timeout 30000 tests/ 2>&1 | tee "$log/bun.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("bun test")

# One closing line for both runners: "N passed, N failed, N skipped".
read -r dp df di < <(sed -nE 's/.*\| ([0-9]+) passed.*\| ([0-9]+) failed( \| ([0-9]+) ignored)?.*/\1 \2 \4/p' "$log/deno.txt" | tail -1)
bp=$(sed -nE 's/^ *([0-9]+) pass$/\1/p' "$log/bun.txt" | tail -1)
bf=$(sed -nE 's/^ *([0-9]+) fail$/\1/p' "$log/bun.txt" | tail -1)
bs=$(sed -nE 's/^ *([0-9]+) skip$/\1/p' "$log/bun.txt" | tail -1)
dp=${dp:-0} df=${df:-0} di=${di:-0} bp=${bp:-0} bf=${bf:-0} bs=${bs:-0}
echo "deno: $dp passed, $df failed, $di skipped; bun: $bp passed, $bf failed, $bs skipped"
if [ "$dp" -eq 0 ] || [ "$bp" -eq 0 ]; then failed+=("no tests ran on a runtime"); fi
rm -rf "$log"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed steps: ${failed[*]}"
  echo "tests: $((dp + bp)) passed, $((df + bf + ${#failed[@]})) failed, $((di + bs)) skipped"
  exit 1
fi
echo "tests: $((dp + bp)) passed, 0 failed, $((di + bs)) skipped"
