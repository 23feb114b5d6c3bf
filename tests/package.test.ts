// The npm package as a user gets it: `npm pack` (which builds dist/), then the tarball installed
// into a fresh Bun project (`bun init`, `bun add <tarball>`) and a fresh Deno project (an npm
// dependency in package.json, `npm install`, run by `deno`), each running examples/hello/main.ts unchanged with
// a real WebSocket client; a file importing every entry point type-checked with `tsc --noEmit`
// under bun init's own tsconfig; and the README's Deno recipe for a local checkout by path.
// Children run in temporary directories outside the repository, so nothing resolves through it.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import process from "node:process";
import { Client, deadline, deferred, runtime, startServer, test } from "./_helpers.ts";
import { root, runtimePath, startListening } from "./_examples.ts";
import { browserSkip, launchBrowser } from "./_browser.ts";

const npm = spawnSync("npm", ["--version"], { encoding: "utf8" }).status === 0 ? "npm" : undefined;
const bun = runtimePath("bun");
const deno = runtimePath("deno");
const tsc = join(root, "node_modules/.bin/tsc");
const packSkip = npm ? false : "no npm on the PATH to pack the package";
const typesNode = (() => {
  try {
    return JSON.parse(readFileSync(join(root, "node_modules/@types/node/package.json"), "utf8")).version as string;
  } catch {
    return "*";
  }
})();

const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const denoJson = JSON.parse(readFileSync(join(root, "deno.json"), "utf8"));
/**
 * Static files package.json exports beside the modules: the single-file browser build of
 * chorus-ws/client, for pages without a bundler. deno.json does not export it: JSR serves its
 * modules (here src/client.ts) and type-checks and documents every export.
 */
const staticExports = ["./chorus-client.js"];
/** package.json's module exports (deno.json's keys), minus ./package.json: subpath → { types, default }. */
const entries: [string, { types: string; default: string }][] = Object.entries(pkg.exports).filter(([k]) =>
  k !== "./package.json" && !staticExports.includes(k)
) as [string, { types: string; default: string }][];
/** Entry points whose source is not in this checkout (yet): not expected in the tarball. */
const absent = entries.filter(([k]) => !existsSync(join(root, denoJson.exports[k]))).map(([k]) => k);

const work = mkdtempSync(join(tmpdir(), "chorus-package-"));
const cleanUp = () => rmSync(work, { recursive: true, force: true });
// Bun runs process "exit" handlers; `deno test` does not, but dispatches "unload"
process.on("exit", cleanUp);
globalThis.addEventListener?.("unload", cleanUp);

/** Runs a command to its end; rejects with its output if it fails or outlasts `ms`. */
function run(cmd: string, args: string[], cwd: string, ms = 30_000): Promise<string> {
  const child = spawn(cmd, args, { cwd, env: { ...process.env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (c) => out += c.toString());
  child.stderr!.on("data", (c) => out += c.toString());
  const done = deferred<string>();
  const timer = setTimeout(() => child.kill("SIGKILL"), ms);
  child.on("error", (err) => done.reject(err));
  child.on("close", (code, signal) => {
    clearTimeout(timer);
    if (code === 0) done.resolve(out);
    else done.reject(new Error(`${cmd} ${args.join(" ")} (in ${cwd}) ended with ${code ?? signal}:\n${out}`));
  });
  return done.promise;
}

/** Whether dist/ was built after the last change to the sources and the build's settings. */
function distFresh(): boolean {
  const built = join(root, "dist/mod.js");
  if (!existsSync(built)) return false;
  const inputs = [
    "mod.ts",
    "tsconfig.build.json",
    "scripts/build.mjs",
    "package.json",
    "examples/_static/chorus-client.js",
  ].map((f) => join(root, f));
  for (const f of readdirSync(join(root, "src"), { recursive: true, encoding: "utf8" })) {
    inputs.push(join(root, "src", f));
  }
  const newest = Math.max(...inputs.map((f) => statSync(f).mtimeMs));
  return statSync(built).mtimeMs >= newest;
}

let packed: Promise<{ tarball: string; files: string[] }> | undefined;
/** `npm pack` once per test run: the tarball's path and its file list. */
function pack(): Promise<{ tarball: string; files: string[] }> {
  return packed ??= (async () => {
    const dest = join(work, "pack");
    mkdirSync(dest);
    // npm pack builds dist/ first (prepack); when `npm test` has just built it, pack it as it is
    if (!distFresh()) {
      await run("node", ["scripts/build.mjs"], root, 60_000);
    }
    const out = await run(npm!, ["pack", "--ignore-scripts", "--json", "--pack-destination", dest], root, 60_000);
    const [info] = JSON.parse(out.slice(out.indexOf("[")));
    return { tarball: join(dest, info.filename), files: info.files.map((f: { path: string }) => f.path).sort() };
  })();
}

/** Runs examples/hello/main.ts (copied into `dir`) and chats with it over a real WebSocket. */
async function chatWithHello(cmd: string, args: string[], dir: string): Promise<void> {
  copyFileSync(join(root, "examples/hello/main.ts"), join(dir, "main.ts"));
  const hello = await startListening(`${cmd} main.ts`, cmd, [...args, "main.ts"], {
    cwd: dir,
    env: { PORT: "0", NO_COLOR: "1" },
  });
  let ann: Client | undefined;
  try {
    ann = await Client.open(hello.wsUrl("/?name=ann"));
    ann.send("hello from the package");
    assert.equal(await ann.next(), "ann: hello from the package");
    await ann.close();
    await deadline(
      (async () => {
        while (!/ann left/.test(hello.output())) await new Promise((r) => setTimeout(r, 20));
      })(),
      "the disconnect hook's line",
    );
  } finally {
    await ann?.close().catch(() => {});
    await hello.stop("SIGINT");
  }
}

test(
  `package (${runtime}): npm pack ships dist/ (JavaScript + declarations per entry point), README, LICENSE, nothing else`,
  async () => {
    const { tarball, files } = await pack();
    console.log(`${tarball}: ${files.length} files\n  ${files.join("\n  ")}`);
    if (absent.length) console.log(`entry points without a source in this checkout (not packed): ${absent.join(", ")}`);
    for (const f of ["LICENSE", "README.md", "package.json"]) assert.ok(files.includes(f), f);
    const stray = files.filter((f) => !/^(LICENSE|README\.md|package\.json|dist\/.+\.(js|d\.ts))$/.test(f));
    assert.deepEqual(stray, [], "only dist/, README.md, LICENSE and package.json");
    for (const [key, target] of entries) {
      if (absent.includes(key)) continue;
      for (const file of [target.types, target.default]) assert.ok(files.includes(file.slice(2)), `${key}: ${file}`);
    }
    assert.ok(files.includes(pkg.main.slice(2)) && files.includes(pkg.types.slice(2)), "main and types");
    // the same entry points as deno.json, plus the browser build
    assert.deepEqual(
      Object.keys(pkg.exports).filter((k) => k !== "./package.json").sort(),
      [...Object.keys(denoJson.exports), ...staticExports].sort(),
    );
    assert.deepEqual(pkg.exports["./chorus-client.js"], {
      types: "./dist/src/client.d.ts",
      default: "./dist/chorus-client.js",
    });
    assert.ok(files.includes("dist/chorus-client.js"), "the browser build");
  },
  { skip: packSkip },
);

let bunProject: Promise<string> | undefined;
/** A fresh `bun init` project with the tarball added. */
function freshBunProject(): Promise<string> {
  return bunProject ??= (async () => {
    const { tarball } = await pack();
    const dir = join(work, "bun-app");
    mkdirSync(dir);
    await run(bun!, ["init", "-y"], dir);
    await run(bun!, ["add", tarball], dir);
    return dir;
  })();
}

test(`package (${runtime}): a fresh Bun project (bun init, bun add <tarball>) runs the hello example`, async () => {
  const dir = await freshBunProject();
  await chatWithHello(bun!, ["run"], dir);
}, { skip: packSkip || (bun ? false : "no bun executable") });

test(
  `package (${runtime}): chorus-ws/chorus-client.js, the browser build, is chorus-ws/client in one file; a page without a bundler runs it`,
  async () => {
    const dir = await freshBunProject();
    writeFileSync(
      join(dir, "exports.ts"),
      [
        `import * as client from "chorus-ws/client";`,
        `import * as browser from "chorus-ws/chorus-client.js";`,
        `console.log(JSON.stringify([Object.keys(client).sort(), Object.keys(browser).sort()]));`,
        "",
      ].join("\n"),
    );
    const [fromModules, fromBuild] = JSON.parse((await run(bun!, ["run", "exports.ts"], dir)).trim());
    assert.deepEqual(fromBuild, fromModules);
    assert.ok(fromBuild.includes("connect"));
    const js = readFileSync(join(dir, "node_modules/chorus-ws/dist/chorus-client.js"), "utf8");
    assert.equal(js, readFileSync(join(root, "examples/_static/chorus-client.js"), "utf8"), "the committed build");
    assert.doesNotMatch(js, /^import /m, "one file: no imports");
    if (browserSkip) return console.log(`not in a browser: ${browserSkip}`);
    // The README's recipe: the file served beside the page, its name mapped by an import map.
    const page = `<!doctype html>
      <script type="importmap">{ "imports": { "chorus-ws/client": "/static/chorus-client.js" } }</script>
      <script type="module">
        import { connect } from "chorus-ws/client";
        window.result = new Promise((resolve) => {
          const c = connect("/ws");
          c.addEventListener("open", () => c.send("from the page"));
          c.addEventListener("message", (e) => { c.close(); resolve(e.data); });
        });
      </script>`;
    const srv = await startServer({ resume: {} }, {
      fetch(req) {
        if (new URL(req.url).pathname === "/static/chorus-client.js") {
          return new Response(js, { headers: { "content-type": "text/javascript" } });
        }
        return new Response(page, { headers: { "content-type": "text/html" } });
      },
    });
    srv.hub.handleMessage((s, msg) => s.write(`echo: ${msg}`));
    const browser = await launchBrowser();
    try {
      const tab = await browser.newPage();
      await tab.goto(`http://127.0.0.1:${srv.port}/`);
      assert.equal(
        await tab.evaluate(() => (globalThis as unknown as { result: Promise<string> }).result),
        "echo: from the page",
      );
    } finally {
      await browser.close();
      await srv.close();
    }
  },
  { skip: packSkip || (bun ? false : "no bun executable to init the project") },
);

test(
  `package (${runtime}): a fresh Deno project with the package as an npm dependency runs and checks the hello example`,
  async () => {
    const { tarball } = await pack();
    const dir = join(work, "deno-app");
    mkdirSync(dir);
    // @types/node: Deno's check of a package.json project (node_modules managed by npm) takes the
    // types of `node:` imports from there. `npm install`, not `deno install`: Deno 2.9.6 links
    // node_modules/chorus-ws to the tarball file itself for a `file:` tarball dependency.
    writeFileSync(
      join(dir, "package.json"),
      JSON.stringify({
        name: "deno-app",
        private: true,
        type: "module",
        dependencies: { "chorus-ws": `file:${tarball}` },
        devDependencies: { "@types/node": typesNode },
      }),
    );
    await run(npm!, ["install", "--no-audit", "--no-fund", "--prefer-offline"], dir, 60_000);
    copyFileSync(join(root, "examples/hello/main.ts"), join(dir, "main.ts"));
    await run(deno!, ["check", "main.ts"], dir);
    await chatWithHello(deno!, ["run", "-A"], dir);
  },
  { skip: packSkip || (deno ? false : "no deno executable") },
);

test(
  `package (${runtime}): every entry point type-checks with tsc --noEmit under bun init's default tsconfig`,
  async () => {
    const dir = await freshBunProject();
    // the peers, at the versions the suite runs against, for their real types
    const dev = pkg.devDependencies;
    await run(bun!, ["add", `hono@${dev.hono}`, `redis@${dev.redis}`], dir);
    const imports = [
      `import { Hub, type HubOptions, type Session } from "chorus-ws";`,
      `import { serve } from "chorus-ws/serve";`,
      `import { upgradeDeno } from "chorus-ws/deno";`,
      `import { bunAdapter } from "chorus-ws/bun";`,
      `import { copyRequest } from "chorus-ws/adapter";`,
      `import { serveApp, upgrade } from "chorus-ws/hono";`,
      `import { redisBroker } from "chorus-ws/redis";`,
    ];
    const client = !absent.includes("./client");
    if (client) {
      imports.push(`import * as client from "chorus-ws/client";`);
      imports.push(`import { connect as browserConnect } from "chorus-ws/chorus-client.js";`);
    }
    writeFileSync(
      join(dir, "all.ts"),
      [
        ...imports,
        `import { Hono } from "hono";`,
        `const options: HubOptions = { maxMessageSize: 1 << 16 };`,
        `const hub = new Hub<{ uid: string }>(options);`,
        `hub.handleMessage((s: Session<{ uid: string }>, msg: string) => hub.broadcastOthers(msg, s));`,
        `const app = new Hono();`,
        `app.get("/ws", upgrade(hub, { keys: () => ({ uid: "u" }) }));`,
        `const hub2 = new Hub({ broker: redisBroker({ url: "redis://127.0.0.1:6379" }) });`,
        `export const all = [serve, upgradeDeno, bunAdapter, copyRequest, serveApp, app, hub2${
          client ? ", client, browserConnect" : ""
        }];`,
        "",
      ].join("\n"),
    );
    const tsconfig = readFileSync(join(dir, "tsconfig.json"), "utf8");
    assert.match(tsconfig, /"noUncheckedIndexedAccess": true/, "bun init's tsconfig, as generated");
    // the TypeScript bun init installed, if any, and the repository's
    const own = join(dir, "node_modules/.bin/tsc");
    for (const exe of existsSync(own) ? [own, tsc] : [tsc]) {
      const version = (await run(exe, ["--version"], dir)).trim();
      await run(exe, ["--noEmit", "-p", "."], dir);
      console.log(`tsc --noEmit clean (${version})`);
    }
  },
  { skip: packSkip || (bun ? false : "no bun executable to init the project") },
);

test(
  `package (${runtime}): the README's deno.json for a local checkout by path resolves every entry point`,
  async () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const block = [...readme.matchAll(/```jsonc?\n([\s\S]*?)```/g)].map((m) => m[1]).find((b) =>
      b.includes('"../chorus/mod.ts"')
    );
    assert.ok(block, "README.md has the local-checkout import map");
    const map: Record<string, string> = JSON.parse(block).imports;
    const keys = Object.keys(denoJson.exports).map((k) => k === "." ? "chorus-ws" : `chorus-ws/${k.slice(2)}`);
    for (const k of keys) assert.ok(k in map, `the recipe maps ${k}`);
    for (const [k, target] of Object.entries(denoJson.exports)) {
      const name = k === "." ? "chorus-ws" : `chorus-ws/${k.slice(2)}`;
      assert.equal(map[name], `../chorus/${(target as string).slice(2)}`, name);
    }
    // the map as the README gives it, with ../chorus/ standing for this checkout
    const dir = join(work, "deno-local");
    mkdirSync(dir);
    const checkout = relative(dir, root).replaceAll("\\", "/") + "/";
    writeFileSync(join(dir, "deno.json"), block.replaceAll('"../chorus/', `"${checkout}`));
    writeFileSync(
      join(dir, "main.ts"),
      [
        `import { Hub } from "chorus-ws";`,
        `import { serve } from "chorus-ws/serve";`,
        `const hub = new Hub<{ name: string }>();`,
        `hub.handleMessage((s, msg) => hub.broadcast(\`\${s.get("name")}: \${msg}\`));`,
        `export const start = () => serve(hub, { port: 0 });`,
        "",
      ].join("\n"),
    );
    await run(deno!, ["check", "main.ts"], dir);
  },
  { skip: deno ? false : "no deno executable" },
);
