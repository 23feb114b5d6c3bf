// `npm run bench:peers` with tiny settings, its orchestrator on the runtime running the suite: every
// server starts (chorus and crossws on Deno and on Bun, ws and Socket.IO on Node.js), every message
// reaches every client once, and the table, the JSON and the chart come out. Nothing is timed.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { deferred, runtime, test } from "./_helpers.ts";
import { root, runtimePath } from "./_examples.ts";

const hasNode = spawnSync("node", ["--version"]).status === 0;
const skip = !hasNode
  ? "no node on the PATH for ws and Socket.IO"
  : !runtimePath("deno") || !runtimePath("bun")
  ? "needs both runtimes"
  : false;

test(`bench:peers (${runtime} orchestrator): six servers, tiny load, nothing lost; table, JSON and chart`, async () => {
  const out = mkdtempSync(join(tmpdir(), "chorus-peers-"));
  try {
    const exe = runtimePath(runtime)!;
    const tiny = ["--runs=1", "--clients=12", "--senders=2", "--messages=3", "--workers=1", `--out=${out}`];
    const args = runtime === "deno" ? ["run", "-A", "bench/peers.ts", ...tiny] : ["bench/peers.ts", ...tiny];
    const child = spawn(exe, args, { cwd: root, env: { ...process.env, NO_COLOR: "1" }, stdio: "pipe" });
    let text = "";
    child.stdout.on("data", (d) => text += d);
    child.stderr.on("data", (d) => text += d);
    const closed = deferred<number | null>();
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("close", (code) => closed.resolve(code));
    const code = await closed.promise;
    clearTimeout(timer);
    assert.equal(code, 0, text);
    assert.match(text, /lost or duplicated messages: 0; failed runs: 0/);
    assert.match(text, /\| \*\*chorus \(Bun\)\*\* +\| +[\d.]+[kM]? \|/, "a row of the table");
    const result = JSON.parse(readFileSync(join(out, "peers.json"), "utf8")) as {
      summary: { server: string; runs: number; lost: number; rate: number; cpu: number }[];
      records: { deliveries: number }[];
    };
    assert.deepEqual(result.summary.map((s) => s.server), [
      "chorus-deno",
      "chorus-bun",
      "crossws-deno",
      "crossws-bun",
      "ws-node",
      "socketio-node",
    ]);
    for (const s of result.summary) {
      assert.equal(s.runs, 1, s.server);
      assert.equal(s.lost, 0, s.server);
      assert.ok(s.rate > 0, s.server);
    }
    // 2 senders × 3 broadcasts, each to all 12 clients
    for (const r of result.records) assert.equal(r.deliveries, 2 * 3 * 12);
    const svg = readFileSync(join(out, "peers.svg"), "utf8");
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /Socket\.IO \(Node\.js\)/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}, { skip });
