// The layering check of `npm test`: no import cycle under src/ (type-only imports count, and
// `export … from` too) and no source file over 450 lines. Prints each cycle and each long file.
//
//   deno run --allow-read scripts/check_layers.ts      (or: bun run scripts/check_layers.ts)

import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import process from "node:process";

const MAX_LINES = 450;
const root = resolve(dirname(new URL(import.meta.url).pathname), "..");
const src = join(root, "src");

/** Every `.ts` file under `dir`. */
function sources(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts"))
    .map((f) => join(dir, f));
}

const IMPORT = /^(?:import|export)\b[^'";]*?\bfrom\s*["'](\.{1,2}\/[^"']+)["']/gm;

/** The files a source imports from (relative imports only), as absolute paths. */
function importsOf(file: string, text: string): string[] {
  const out: string[] = [];
  // comments (JSDoc examples among them) hold no imports
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  for (const m of code.matchAll(IMPORT)) out.push(resolve(dirname(file), m[1]));
  return out;
}

/** The strongly connected components of more than one file (or a file importing itself). */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    indices.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!indices.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, indices.get(w)!));
    }
    if (low.get(v) !== indices.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
  };
  for (const v of graph.keys()) if (!indices.has(v)) visit(v);
  return found;
}

const graph = new Map<string, string[]>();
const long: string[] = [];
for (const file of sources(src)) {
  const text = readFileSync(file, "utf8");
  graph.set(file, importsOf(file, text));
  const lines = text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
  if (lines > MAX_LINES) long.push(`${relative(root, file)}: ${lines} lines (at most ${MAX_LINES})`);
}
const found = cycles(graph);
for (const c of found) console.log(`import cycle: ${c.map((f) => relative(root, f)).join(" → ")}`);
for (const l of long) console.log(`too long: ${l}`);
if (found.length + long.length > 0) process.exit(1);
console.log(`layers: ${graph.size} files under src/, no import cycle, none over ${MAX_LINES} lines`);
