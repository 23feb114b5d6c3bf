// Every environment variable an example reads is documented: in the table of docs/examples.md, and in
// the header comment of each example that reads it (examples/_run.ts's PORT and HOST count for the
// examples that run on it). Every page names its icon, which examples/_assets.ts serves. The nginx
// blocks docs/scaling.md shows are those of examples/cluster/nginx.conf.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { runtime, test } from "./_helpers.ts";
import { root } from "./_examples.ts";

const read = (path: string): string => readFileSync(join(root, path), "utf8");
const examples = readdirSync(join(root, "examples"), { withFileTypes: true })
  .filter((d) => d.isDirectory() && !d.name.startsWith("_")).map((d) => d.name);

/** The variables a source reads: `process.env.NAME`. */
const reads = (source: string): string[] => [...source.matchAll(/process\.env\.([A-Z_]+)/g)].map((m) => m[1]);

/** The leading comment lines of a source. */
const header = (source: string): string => source.slice(0, source.search(/^(?!\/\/)/m));

test(`examples (${runtime}): every environment variable read is documented in docs/examples.md and the example's header`, () => {
  const doc = read("docs/examples.md");
  const table = new Set([...doc.matchAll(/^\| `([A-Z_]+)` +\|/gm)].map((m) => m[1]));
  const shared = reads(read("examples/_run.ts"));
  assert.deepEqual(shared.sort(), ["HOST", "PORT"]);
  for (const name of examples) {
    const source = read(`examples/${name}/main.ts`);
    const vars = new Set([...reads(source), ...(source.includes('from "../_run.ts"') ? shared : [])]);
    assert.ok(vars.has("PORT"), `${name} reads PORT`);
    for (const v of vars) {
      assert.ok(table.has(v), `${v} (read by ${name}) is in the table of docs/examples.md`);
      assert.ok(header(source).includes(v), `${v} is named in the header comment of examples/${name}/main.ts`);
    }
  }
});

test(`examples (${runtime}): every page names /favicon.svg, and examples/_assets.ts serves it`, async () => {
  const { asset } = await import("../examples/_assets.ts");
  const icon = asset("/favicon.svg")!;
  assert.equal(icon.headers.get("content-type"), "image/svg+xml");
  assert.match(await icon.text(), /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  for (const name of examples) {
    let html: string;
    try {
      html = read(`examples/${name}/index.html`);
    } catch {
      continue; // no page (hello)
    }
    assert.match(html, /<link rel="icon" href="\/favicon\.svg" type="image\/svg\+xml">/, `${name}'s page`);
  }
});

test(`docs/scaling.md (${runtime}): its nginx blocks are examples/cluster/nginx.conf's, line for line`, () => {
  const block = read("docs/scaling.md").match(/```nginx\n([\s\S]*?)```/)![1];
  const lines = (text: string) => text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const conf = lines(read("examples/cluster/nginx.conf")).join("\n");
  const shown = lines(block).join("\n");
  assert.ok(shown.length > 500 && conf.includes(shown), "the shown blocks, in the file's order");
});
