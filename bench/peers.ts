/**
 * `npm run bench:peers`: chorus against the servers its users would pick instead, side by side in
 * one run with the same load: chorus on Deno and on Bun (`bench/server.ts hub`), crossws on Deno
 * and on Bun (`bench/crossws_server.ts`), `ws` and Socket.IO on Node.js (`bench/node_server.mjs`).
 * The load is bench/main.ts's fan-out: load-generator processes (`bench/client.ts`, on Bun) open
 * CLIENTS WebSocket connections (Socket.IO's speak engine.io: `bench/_engine_io.ts`); SENDERS of
 * them each send MESSAGES broadcasts, one in flight at a time (the next once its own came back);
 * the server sends each to every client. Per server: deliveries per second (from the first send to
 * the last delivery), delivery latency p50 and p99 (send to delivery), and server CPU time per
 * delivery (from /proc, over the whole burst); medians of RUNS runs, the servers' order reversed
 * every other run. Ratios against chorus are medians of each run's own ratios.
 *
 * Prints a Markdown table, writes OUT/peers.json and OUT/peers.svg (the chart); with `--docs`
 * also docs/performance-peers.svg and the table in docs/performance.md (between its
 * `bench:peers` markers). Exits non-zero if a message was lost or duplicated, or a run failed.
 *
 * Settings (environment `BENCH_<NAME>`, or `--name=value`): RUNS (3), CLIENTS (500), SENDERS (10),
 * MESSAGES (200 per sender), WORKERS (3 client processes), PAD (32 bytes), DRAIN_MS (15000),
 * SERVERS (all: chorus-deno,chorus-bun,crossws-deno,crossws-bun,ws-node,socketio-node),
 * OUT (bench/results).
 *
 *   bun bench/peers.ts [--docs]      deno run -A bench/peers.ts
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import process from "node:process";
import { median, quantile, type SparseHistogram } from "./stats.ts";
import type { WorkerConfig } from "./client.ts";
import { cpuSeconds, Proc } from "./_proc.ts";
import { type ChartRow, peersChart, short } from "./_chart.ts";

const root = new URL("..", import.meta.url).pathname;
const bin = (name: string): string => `${root}node_modules/.bin/${name}`;

function setting(name: string, fallback: string): string {
  const arg = process.argv.find((a) => a.startsWith(`--${name.toLowerCase().replaceAll("_", "-")}=`));
  return arg?.split("=").slice(1).join("=") ?? process.env[`BENCH_${name}`] ?? fallback;
}
const num = (name: string, fallback: number): number => Number(setting(name, String(fallback)));

const cfg = {
  runs: num("RUNS", 3),
  clients: num("CLIENTS", 500),
  senders: num("SENDERS", 10),
  messages: num("MESSAGES", 200),
  workers: num("WORKERS", 3),
  window: num("WINDOW", 1),
  pad: num("PAD", 32),
  drainMs: num("DRAIN_MS", 15_000),
  servers: setting("SERVERS", "chorus-deno,chorus-bun,crossws-deno,crossws-bun,ws-node,socketio-node").split(","),
  out: setting("OUT", `${root}bench/results`),
  docs: process.argv.includes("--docs"),
};

/** A server under test: how to start it, and how its clients speak. */
interface Server {
  label: string;
  runtime: "deno" | "bun" | "node";
  cmd: () => [string, string[]];
  engineIo?: boolean;
}
const deno = (script: string, ...args: string[]): [string, string[]] => [bin("deno"), ["run", "-A", script, ...args]];
const bun = (script: string, ...args: string[]): [string, string[]] => [bin("bun"), [script, ...args]];
const node = (...args: string[]): [string, string[]] => ["node", ["bench/node_server.mjs", ...args]];
const servers: Record<string, Server> = {
  "chorus-deno": { label: "chorus (Deno)", runtime: "deno", cmd: () => deno("bench/server.ts", "hub") },
  "chorus-bun": { label: "chorus (Bun)", runtime: "bun", cmd: () => bun("bench/server.ts", "hub") },
  "crossws-deno": { label: "crossws (Deno)", runtime: "deno", cmd: () => deno("bench/crossws_server.ts") },
  "crossws-bun": { label: "crossws (Bun)", runtime: "bun", cmd: () => bun("bench/crossws_server.ts") },
  "ws-node": { label: "ws (Node.js)", runtime: "node", cmd: () => node("ws") },
  "socketio-node": { label: "Socket.IO (Node.js)", runtime: "node", cmd: () => node("socket.io"), engineIo: true },
};
for (const s of cfg.servers) if (!servers[s]) throw new Error(`unknown server ${s}; known: ${Object.keys(servers)}`);

/** One server's run. */
interface Record_ {
  server: string;
  run: number;
  rate?: number;
  p50?: number;
  p99?: number;
  /** Server CPU microseconds per delivery. */
  cpu?: number;
  deliveries?: number;
  lost: number;
  error?: string;
}

interface Done {
  received: number;
  lost: number;
  extra: number;
  goAt: number;
  lastRecv: number;
  hist: SparseHistogram;
}

/** The workers' configs: the clients spread over the workers, the senders among them. */
function plan(url: string, engineIo: boolean): WorkerConfig[] {
  const base = {
    url,
    scenario: "fanout",
    kind: "b",
    window: cfg.window,
    pad: cfg.pad,
    drainMs: cfg.drainMs,
    rooms: false,
  };
  const configs: WorkerConfig[] = Array.from({ length: cfg.workers }, (_, worker) => ({
    ...base,
    worker,
    concurrency: 100,
    conns: [] as string[],
    senders: [] as number[],
    engineIo,
  }));
  for (let i = 0; i < cfg.clients; i++) configs[i % cfg.workers].conns.push("all");
  for (let s = 0; s < cfg.senders; s++) configs[s % cfg.workers].senders.push(Math.floor(s / cfg.workers));
  return configs;
}

async function measure(name: string, run: number): Promise<Record_> {
  const rec: Record_ = { server: name, run, lost: 0 };
  const [cmd, args] = servers[name].cmd();
  const server = new Proc(cmd, args);
  let port = 0;
  const workers: Proc[] = [];
  try {
    ({ port } = await server.next<{ port: number }>(`${name} start`, 30_000));
    for (const c of plan(`ws://127.0.0.1:${port}/`, !!servers[name].engineIo)) {
      workers.push(new Proc(bin("bun"), ["bench/client.ts", JSON.stringify(c)]));
    }
    for (const phase of ["receivers", "senders"]) {
      if (phase === "senders") { for (const w of workers) w.send("senders"); }
      for (const w of workers) {
        const msg = await w.next<{ t: string; error?: string }>(`${phase} open`, 120_000);
        if (msg.t !== "open") throw new Error(`client: ${msg.error}`);
      }
    }
    const cpu0 = cpuSeconds(server.child.pid);
    for (const w of workers) w.send(`go 600000 ${cfg.messages}`);
    const sents = await Promise.all(workers.map((w) => w.next<{ sent: Record<string, number> }>("send phase")));
    const expected: Record<string, number> = {};
    for (const s of sents) for (const [k, v] of Object.entries(s.sent)) expected[k] = (expected[k] ?? 0) + v;
    for (const w of workers) w.send(`expect ${JSON.stringify(expected)}`);
    const dones = await Promise.all(workers.map((w) => w.next<Done>("drain", cfg.drainMs + 30_000)));
    const cpu = cpuSeconds(server.child.pid) - cpu0;
    const received = dones.reduce((a, d) => a + d.received, 0);
    const start = Math.min(...dones.map((d) => d.goAt));
    const end = Math.max(...dones.map((d) => d.lastRecv));
    rec.deliveries = received;
    rec.lost = dones.reduce((a, d) => a + d.lost + d.extra, 0);
    if ((expected.all ?? 0) !== cfg.senders * cfg.messages) rec.lost += cfg.senders * cfg.messages - expected.all;
    rec.rate = received / ((end - start) / 1000);
    rec.p50 = quantile(dones.map((d) => d.hist), 0.5);
    rec.p99 = quantile(dones.map((d) => d.hist), 0.99);
    rec.cpu = cpu / received * 1e6;
    return rec;
  } catch (err) {
    rec.error = String(err instanceof Error ? err.message : err).slice(0, 500);
    return rec;
  } finally {
    for (const w of workers) w.send("quit");
    if (port) await fetch(`http://127.0.0.1:${port}/quit`).then((r) => r.text()).catch(() => {});
    await Promise.race([server.exited, new Promise((r) => setTimeout(r, 2000))]);
    await server.stop();
    await Promise.all(workers.map((w) => w.stop()));
  }
}

/** A runtime's version line, or "missing". */
function version(cmd: string): string {
  try {
    return execFileSync(cmd, ["--version"], { encoding: "utf8" }).split("\n")[0].trim();
  } catch {
    return "missing";
  }
}

// ---- run ----

const started = Date.now();
const cpuModel = (fs.readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/) ?? [])[1] ??
  os.cpus()[0]?.model;
const machine = {
  cpu: cpuModel,
  cores: os.cpus().length,
  memGiB: Math.round(os.totalmem() / 2 ** 30),
  os: `${os.type()} ${os.release()}`,
  loadavg: os.loadavg(),
  deno: version(bin("deno")).replace(/ \(.*/, ""),
  bun: `bun ${version(bin("bun"))}`,
  node: `node ${version("node")}`,
};
console.error(`chorus bench:peers: ${JSON.stringify(cfg)}`);
console.error(`machine: ${JSON.stringify(machine)}`);
const records: Record_[] = [];
for (let run = 1; run <= cfg.runs; run++) {
  // alternate the order so no server always runs on a warmer (or busier) machine
  const order = run % 2 ? cfg.servers : [...cfg.servers].reverse();
  for (const name of order) {
    const r = await measure(name, run);
    records.push(r);
    console.error(
      `run ${run} ${name}: ` +
        (r.error
          ? `ERROR ${r.error}`
          : `${short(r.rate!)}/s p50 ${r.p50!.toFixed(2)} p99 ${r.p99!.toFixed(2)} ms, ${
            r.cpu!.toFixed(2)
          } µs CPU/delivery${r.lost ? ` LOST ${r.lost}` : ""}`),
    );
  }
}

// ---- summarize ----

const ok = (name: string) => records.filter((r) => r.server === name && !r.error);
/** The median over runs of `f(run of name) / f(same run of other)`. */
function ratio(name: string, other: string, f: (r: Record_) => number): number {
  return median(
    ok(name).flatMap((r) => {
      const o = ok(other).find((x) => x.run === r.run);
      return o ? [f(r) / f(o)] : [];
    }),
  );
}
const summary = cfg.servers.map((name) => {
  const rs = ok(name);
  return {
    server: name,
    label: servers[name].label,
    runtime: servers[name].runtime,
    rate: median(rs.map((r) => r.rate!)),
    p50: median(rs.map((r) => r.p50!)),
    p99: median(rs.map((r) => r.p99!)),
    cpu: median(rs.map((r) => r.cpu!)),
    vsChorusDeno: ratio(name, "chorus-deno", (r) => r.rate!),
    vsChorusBun: ratio(name, "chorus-bun", (r) => r.rate!),
    runs: rs.length,
    lost: records.filter((r) => r.server === name).reduce((a, r) => a + r.lost, 0),
    errors: records.filter((r) => r.server === name && r.error).length,
  };
});

const fmtRatio = (x: number) => Number.isFinite(x) ? `${x.toFixed(2)}×` : "-";
const header = [
  "server",
  "deliveries/s",
  "vs chorus (Deno)",
  "vs chorus (Bun)",
  "p50 latency ms",
  "p99 latency ms",
  "server CPU µs/delivery",
];
const rows = summary.map((s) => [
  s.server.startsWith("chorus") ? `**${s.label}**` : s.label,
  short(s.rate),
  fmtRatio(s.vsChorusDeno),
  fmtRatio(s.vsChorusBun),
  Number.isFinite(s.p50) ? s.p50.toFixed(1) : "-",
  Number.isFinite(s.p99) ? s.p99.toFixed(1) : "-",
  Number.isFinite(s.cpu) ? s.cpu.toFixed(2) : "-",
]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells: string[]) =>
  `| ${cells.map((c, i) => i ? c.padStart(widths[i]) : c.padEnd(widths[i])).join(" | ")} |`;
const table = [
  line(header),
  `|${widths.map((w, i) => "-".repeat(w + 1) + (i ? ":" : "-")).join("|")}|`,
  ...rows.map(line),
].join("\n");

const date = new Date().toISOString().slice(0, 10);
const load = `${cfg.clients} clients, ${cfg.senders} × ${cfg.messages} broadcasts, one in flight per sender`;
const where = `${machine.cpu}, ${machine.cores} cores, ${machine.memGiB} GiB, ${machine.os}`;
const minutes = ((Date.now() - started) / 60_000).toFixed(1);
const about =
  `Measured on ${date} (\`npm run bench:peers\`, ${minutes} min): ${where}; ${machine.deno}, ${machine.bun}, ` +
  `${machine.node}; load average (1 min) ${machine.loadavg[0].toFixed(2)} at the start, ${
    os.loadavg()[0].toFixed(2)
  } at the end${
    Math.max(machine.loadavg[0], os.loadavg()[0]) > machine.cores ? " (above the cores: other work shared them)" : ""
  }. ` +
  `Fan-out, ${load}; medians of ${cfg.runs} run${cfg.runs === 1 ? "" : "s"}; ${cfg.workers} load-generator process${
    cfg.workers === 1 ? "" : "es"
  } (Bun) on the same machine.`;
const chartRows: ChartRow[] = summary.map((s) => ({
  label: s.label,
  runtime: s.runtime,
  rate: s.rate,
  cpu: s.cpu,
  own: s.server.startsWith("chorus"),
}));
const svg = peersChart(
  chartRows,
  `chorus and its peers: fan-out to ${cfg.clients} WebSocket clients`,
  `${cfg.senders} × ${cfg.messages} broadcasts, medians of ${cfg.runs} run${
    cfg.runs === 1 ? "" : "s"
  }; ${machine.cores} cores (${machine.cpu}); ${date}`,
);

const lost = summary.reduce((a, s) => a + s.lost, 0);
const errors = records.filter((r) => r.error);
console.log(`\n${about}\n\n${table}\n`);
console.log(`lost or duplicated messages: ${lost}; failed runs: ${errors.length}`);
for (const e of errors) console.log(`  ${e.server} run ${e.run}: ${e.error}`);

fs.mkdirSync(cfg.out, { recursive: true });
fs.writeFileSync(`${cfg.out}/peers.svg`, svg);
fs.writeFileSync(
  `${cfg.out}/peers.json`,
  JSON.stringify({ date: new Date().toISOString(), machine, config: cfg, summary, records, table, about }, null, 2),
);
console.log(`wrote ${cfg.out}/peers.json and ${cfg.out}/peers.svg`);
if (cfg.docs) {
  if (lost > 0 || errors.length > 0) throw new Error("--docs: not with lost messages or failed runs");
  const doc = `${root}docs/performance.md`;
  const text = fs.readFileSync(doc, "utf8");
  const begin = "<!-- bench:peers -->";
  const end = "<!-- /bench:peers -->";
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${doc} has no ${begin} … ${end} block`);
  fs.writeFileSync(doc, `${text.slice(0, a + begin.length)}\n\n${about}\n\n${table}\n\n${text.slice(b)}`);
  fs.writeFileSync(`${root}docs/performance-peers.svg`, svg);
  execFileSync(bin("deno"), ["fmt", "--quiet", doc], { cwd: root, stdio: "inherit" }); // the table as deno fmt lays it out
  console.log(`updated ${doc} and docs/performance-peers.svg`);
}
process.exit(lost > 0 || errors.length > 0 ? 1 : 0);
