// Builds the npm package: dist/ with JavaScript and declarations for every entry point, from
// tsconfig.build.json. Run by `npm run build`, `npm test` and before `npm pack` (prepack).
//
// tsc (5.9) rewrites relative `.ts` imports to `.js` in the JavaScript it emits
// (rewriteRelativeImportExtensions) but leaves them as `.ts` in the `.d.ts` files; those are
// rewritten here, so the declarations resolve under any resolver (node16, nodenext, bundler)
// without `allowImportingTsExtensions`.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });

let files = 0;
const relativeTs = /(\bfrom\s+|\bimport\s*\(\s*)(["'])(\.\.?\/[^"']*?)\.ts\2/g;
for (const entry of readdirSync(dist, { recursive: true, encoding: "utf8" })) {
  if (!entry.endsWith(".d.ts")) continue;
  const file = join(dist, entry);
  const text = readFileSync(file, "utf8");
  const fixed = text.replace(relativeTs, (_, head, q, path) => `${head}${q}${path}.js${q}`);
  if (fixed !== text) writeFileSync(file, fixed);
  files++;
}
process.stderr.write(`dist/: ${files} declaration files\n`);
