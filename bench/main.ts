/**
 * `npm run bench`: chorus against the raw runtime doing the same job, on Deno and on Bun, in
 * one run. Starts a server process per measurement (bench/server.ts) and several load-generator
 * processes (bench/client.ts, on Bun) so the client side is not one busy core. Prints one table
 * (medians of several runs, each figure with its hub/raw ratio), writes bench/results/latest.json,
 * and exits non-zero if a message was lost or a run failed.
 *
 * Settings (environment, or `--name=value` arguments with the same name in lower case without
 * the prefix, e.g. `--runs=5`): BENCH_RUNS (5), BENCH_DURATION seconds per throughput run (3),
 * BENCH_WORKERS client processes (3), BENCH_RUNTIMES (deno,bun), BENCH_SCENARIOS
 * (fanout,rooms,echo,connect,idle), BENCH_IDLE_SESSIONS (10000), BENCH_SCALE_MESSAGES (20),
 * BENCH_FANOUT_CLIENTS (500), BENCH_FANOUT_SENDERS (10), BENCH_ECHO_CLIENTS (100),
 * BENCH_CONNECT (2000), BENCH_MODES (hub,raw), BENCH_SERVER_FLAGS (extra runtime flags for the
 * server, e.g. "--cpu-prof"), BENCH_WINDOW (1, fan-out messages in flight per sender), BENCH_PAD (32 bytes).
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import * as fs from "node:fs";
import * as os from "node:os";
import process from "node:process";
import { median, quantile, type SparseHistogram } from "./stats.ts";
import type { WorkerConfig } from "./client.ts";

const root = new URL("..", import.meta.url).pathname;
const bin = (name: string): string => `${root}node_modules/.bin/${name}`;

function setting(name: string, fallback: string): string {
  const arg = process.argv.find((a) => a.startsWith(`--${name.toLowerCase().replaceAll("_", "-")}=`));
  return arg?.split("=")[1] ?? process.env[`BENCH_${name}`] ?? fallback;
}
const num = (name: string, fallback: number): number => Number(setting(name, String(fallback)));

const cfg = {
  runs: num("RUNS", 5),
  durationMs: num("DURATION", 3) * 1000,
  workers: num("WORKERS", 3),
  runtimes: setting("RUNTIMES", "deno,bun").split(",") as ("deno" | "bun")[],
  scenarios: setting("SCENARIOS", "fanout,rooms,echo,connect,idle").split(","),
  idleSessions: num("IDLE_SESSIONS", 10_000),
  scaleMessages: num("SCALE_MESSAGES", 20),
  fanoutClients: num("FANOUT_CLIENTS", 500),
  fanoutSenders: num("FANOUT_SENDERS", 10),
  echoClients: num("ECHO_CLIENTS", 100),
  connect: num("CONNECT", 2000),
  window: num("WINDOW", 1),
  pad: num("PAD", 32),
  drainMs: num("DRAIN_MS", 15_000),
  modes: setting("MODES", "hub,raw").split(","),
};

type Mode = "hub" | "raw";
interface Record_ {
  runtime: string;
  mode: Mode;
  scenario: string;
  run: number;
  rate?: number;
  p50?: number;
  p99?: number;
  lost: number;
  bytesPerSession?: number;
  /** JavaScript heap growth per session, after a full collection. */
  heapPerSession?: number;
  /** Share of one core the server used during the measured phase (1 = a full core). */
  serverCpu?: number;
  held?: number;
  error?: string;
}

/** A child process that speaks JSON lines. */
class Proc {
  readonly child: ChildProcess;
  #lines: unknown[] = [];
  #wait: (() => void) | undefined;
  #exited = false;
  readonly exited: Promise<void>;
  #stderr = "";

  constructor(cmd: string, args: string[]) {
    this.child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], cwd: root });
    this.exited = new Promise((resolve) =>
      this.child.on("exit", () => {
        this.#exited = true;
        this.#wait?.();
        resolve();
      })
    );
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      try {
        this.#lines.push(JSON.parse(line));
      } catch {
        return; // not ours
      }
      this.#wait?.();
    });
    this.child.stderr!.on("data", (d) => this.#stderr = (this.#stderr + d).slice(-2000));
  }

  /** The next JSON line, within `ms`. */
  async next<T>(what: string, ms = 120_000): Promise<T> {
    const until = Date.now() + ms;
    while (this.#lines.length === 0) {
      if (this.#exited) throw new Error(`${what}: process exited. ${this.#stderr}`);
      const left = until - Date.now();
      if (left <= 0) throw new Error(`${what}: timed out. ${this.#stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wait = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wait = undefined;
    }
    return this.#lines.shift() as T;
  }

  send(line: string): void {
    this.child.stdin!.write(line + "\n");
  }

  async stop(): Promise<void> {
    if (this.#exited) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 3000);
    await this.exited;
    clearTimeout(timer);
  }
}

interface Done {
  t: "done";
  received: number;
  expected: number;
  lost: number;
  extra: number;
  goAt: number;
  firstRecv: number;
  lastRecv: number;
  hist: SparseHistogram;
  opened: number;
  failed: number;
  lastOpen: number;
}

/** Splits `n` connections over the workers: a list of topics per worker. */
function plan(scenario: string): { configs: Omit<WorkerConfig, "url" | "worker">[]; maxPerSender: number } {
  const w = cfg.workers;
  const base = { scenario, pad: cfg.pad, drainMs: cfg.drainMs, rooms: false, concurrency: 100 };
  const configs = Array.from({ length: w }, () => ({ ...base, conns: [] as string[], senders: [] as number[] }));
  if (scenario === "fanout" || scenario === "idle") {
    const n = scenario === "fanout" ? cfg.fanoutClients : cfg.idleSessions;
    const senders = scenario === "fanout" ? cfg.fanoutSenders : 1;
    for (let i = 0; i < n; i++) configs[i % w].conns.push("all");
    for (let s = 0; s < senders; s++) configs[s % w].senders.push(Math.floor(s / w));
    return {
      configs: configs.map((c) => ({ ...c, kind: "b", window: scenario === "fanout" ? cfg.window : 1 })),
      maxPerSender: scenario === "idle" ? cfg.scaleMessages : Infinity,
    };
  }
  if (scenario === "rooms") {
    for (let r = 0; r < 100; r++) {
      const c = configs[r % w];
      c.senders.push(c.conns.length);
      for (let m = 0; m < 10; m++) c.conns.push(`room${r}`);
    }
    return { configs: configs.map((c) => ({ ...c, kind: "r", window: 1, rooms: true })), maxPerSender: Infinity };
  }
  if (scenario === "echo") {
    for (let i = 0; i < cfg.echoClients; i++) {
      const c = configs[i % w];
      c.senders.push(c.conns.length);
      c.conns.push(`echo${i}`);
    }
    return { configs: configs.map((c) => ({ ...c, kind: "e", window: 1 })), maxPerSender: Infinity };
  }
  if (scenario === "connect") {
    for (let i = 0; i < cfg.connect; i++) configs[i % w].conns.push("c");
    return { configs: configs.map((c) => ({ ...c, kind: "e", window: 1, concurrency: 32 })), maxPerSender: 0 };
  }
  throw new Error(`unknown scenario ${scenario}`);
}

/** CPU seconds (user + system) a process has used so far, from /proc (NaN where there is none). */
function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in ticks of 1/100 s
  } catch {
    return NaN;
  }
}

async function memory(port: number): Promise<{ rss: number; heap: number; sessions: number }> {
  const res = await fetch(`http://127.0.0.1:${port}/mem`);
  return await res.json() as { rss: number; heap: number; sessions: number };
}

async function measure(runtime: "deno" | "bun", mode: Mode, scenario: string, run: number): Promise<Record_> {
  const rec: Record_ = { runtime, mode, scenario, run, lost: 0 };
  const flags = (process.env.BENCH_SERVER_FLAGS ?? "").split(" ").filter((f) => f);
  const server = runtime === "deno"
    ? new Proc(bin("deno"), ["run", "-A", "--v8-flags=--expose-gc", ...flags, "bench/server.ts", mode])
    : new Proc(bin("bun"), [...flags, "bench/server.ts", mode]);
  let port = 0;
  const workers: Proc[] = [];
  try {
    ({ port } = await server.next<{ port: number }>("server start", 30_000));
    const base = scenario === "idle" ? await memory(port) : undefined;
    const { configs, maxPerSender } = plan(scenario);
    configs.forEach((c, i) => {
      const config: WorkerConfig = { ...c, url: `ws://127.0.0.1:${port}/`, worker: i };
      workers.push(new Proc(bin("bun"), ["bench/client.ts", JSON.stringify(config)]));
    });
    for (const phase of ["receivers", "senders"]) {
      if (phase === "senders") { for (const w of workers) w.send("senders"); }
      for (const w of workers) {
        const msg = await w.next<{ t: string; error?: string }>(`${phase} open`, 180_000);
        if (msg.t !== "open") throw new Error(`client: ${msg.error}`);
      }
    }
    if (base) {
      const after = await memory(port);
      rec.held = after.sessions;
      rec.bytesPerSession = (after.rss - base.rss) / cfg.idleSessions;
      rec.heapPerSession = (after.heap - base.heap) / cfg.idleSessions;
      if (after.sessions !== cfg.idleSessions) rec.lost += cfg.idleSessions - after.sessions;
    }
    const duration = scenario === "idle" ? 600_000 : cfg.durationMs;
    const cpu0 = cpuSeconds(server.child.pid);
    const wall0 = Date.now();
    const cpuShare = () => (cpuSeconds(server.child.pid) - cpu0) / ((Date.now() - wall0) / 1000);
    for (const w of workers) w.send(`go ${duration} ${maxPerSender === Infinity ? "inf" : maxPerSender}`);
    if (scenario === "connect") {
      const dones = await Promise.all(workers.map((w) => w.next<Done>("connect churn")));
      const opened = dones.reduce((a, d) => a + d.opened, 0);
      const start = Math.min(...dones.map((d) => d.goAt));
      const end = Math.max(...dones.map((d) => d.lastOpen));
      rec.rate = opened / ((end - start) / 1000);
      rec.serverCpu = cpuShare();
      rec.lost = cfg.connect - opened;
      return rec;
    }
    const sents = await Promise.all(workers.map((w) => w.next<{ sent: Record<string, number> }>("send phase")));
    rec.serverCpu = cpuShare();
    const expected: Record<string, number> = {};
    for (const s of sents) for (const [k, v] of Object.entries(s.sent)) expected[k] = (expected[k] ?? 0) + v;
    for (const w of workers) w.send(`expect ${JSON.stringify(expected)}`);
    const dones = await Promise.all(workers.map((w) => w.next<Done>("drain", cfg.drainMs + 30_000)));
    const received = dones.reduce((a, d) => a + d.received, 0);
    rec.lost += dones.reduce((a, d) => a + d.lost + d.extra, 0);
    const start = Math.min(...dones.map((d) => d.goAt));
    const end = Math.max(...dones.map((d) => d.lastRecv));
    rec.rate = received / ((end - start) / 1000);
    rec.p50 = quantile(dones.map((d) => d.hist), 0.5);
    rec.p99 = quantile(dones.map((d) => d.hist), 0.99);
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

// ---- run everything ----

const started = Date.now();
const cpu = (fs.readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/) ?? [])[1] ?? os.cpus()[0]?.model;
const machine = { cpu, cores: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30), loadavg: os.loadavg() };
console.error(`chorus bench: ${JSON.stringify(cfg)}`);
console.error(
  `machine: ${cpu}, ${machine.cores} cores; load average at start ${machine.loadavg.map((x) => x.toFixed(2))}`,
);
const records: Record_[] = [];
for (let run = 1; run <= cfg.runs; run++) {
  for (const runtime of cfg.runtimes) {
    for (const scenario of cfg.scenarios) {
      // alternate the order so neither side always runs on a warmer (or busier) machine
      const modes = (run % 2 ? ["hub", "raw"] : ["raw", "hub"]).filter((m) => cfg.modes.includes(m)) as Mode[];
      for (const mode of modes) {
        const rec = await measure(runtime, mode, scenario, run);
        records.push(rec);
        const fig = rec.rate !== undefined ? `${Math.round(rec.rate)}/s` : "";
        const mem = rec.bytesPerSession !== undefined
          ? ` ${Math.round(rec.bytesPerSession)} B/session (heap ${Math.round(rec.heapPerSession ?? NaN)})`
          : "";
        console.error(
          `run ${run} ${runtime} ${scenario} ${mode}: ${fig}${mem}` +
            (rec.p50 !== undefined ? ` p50 ${rec.p50.toFixed(2)} p99 ${rec.p99!.toFixed(2)} ms` : "") +
            (rec.serverCpu !== undefined ? ` server cpu ${Math.round(rec.serverCpu * 100)}%` : "") +
            (rec.lost ? ` LOST ${rec.lost}` : "") + (rec.error ? ` ERROR ${rec.error}` : ""),
        );
      }
    }
  }
}

// ---- summarize ----

type Summary = Record<string, Record<string, Record<Mode | "ratio", Record<string, number>>>>;
const metrics = ["rate", "perCpu", "p50", "p99", "bytesPerSession", "heapPerSession"] as const;
const value = (r: Record_, key: string): number =>
  key === "perCpu" ? (r.rate ?? NaN) / (r.serverCpu ?? NaN) : (r[key as keyof Record_] as number | undefined) ?? NaN;
const summary: Summary = {};
for (const runtime of cfg.runtimes) {
  summary[runtime] = {};
  for (const scenario of cfg.scenarios) {
    const of = (mode: Mode) =>
      records.filter((r) => r.runtime === runtime && r.scenario === scenario && r.mode === mode);
    const stat = (mode: Mode) => {
      const rs = of(mode);
      const ok = rs.filter((r) => !r.error);
      return {
        rate: median(ok.map((r) => r.rate ?? NaN)),
        perCpu: median(ok.map((r) => (r.rate ?? NaN) / (r.serverCpu ?? NaN))),
        serverCpu: median(ok.map((r) => r.serverCpu ?? NaN)),
        p50: median(ok.map((r) => r.p50 ?? NaN)),
        p99: median(ok.map((r) => r.p99 ?? NaN)),
        bytesPerSession: median(ok.map((r) => r.bytesPerSession ?? NaN)),
        heapPerSession: median(ok.map((r) => r.heapPerSession ?? NaN)),
        held: Math.min(...ok.map((r) => r.held ?? Infinity)),
        lost: rs.reduce((a, r) => a + r.lost, 0),
        errors: rs.filter((r) => r.error).length,
        runs: ok.length,
      };
    };
    // hub/raw: the median of the ratios of runs measured back to back, which cancels the
    // machine's slow swings in load better than a ratio of medians
    const pairs = of("hub").flatMap((h) => {
      const r = of("raw").find((x) => x.run === h.run);
      return r && !h.error && !r.error ? [[h, r]] : [];
    });
    const ratio: Record<string, number> = {};
    for (const key of metrics) ratio[key] = median(pairs.map(([h, r]) => value(h, key) / value(r, key)));
    summary[runtime][scenario] = { hub: stat("hub"), raw: stat("raw"), ratio };
  }
}

const fmtNum = (x: number): string =>
  Number.isNaN(x) || !Number.isFinite(x)
    ? "-"
    : x >= 100_000
    ? `${(x / 1e6).toFixed(2)}M`
    : x >= 1000
    ? `${(x / 1e3).toFixed(1)}k`
    : x >= 10
    ? x.toFixed(0)
    : x.toFixed(2);
const fmtRatio = (x: number): string => Number.isNaN(x) || !Number.isFinite(x) ? "-" : x.toFixed(2);
const rows: string[][] = [];
const labels: Record<string, string> = {
  fanout: `(a) fan-out, ${cfg.fanoutClients} clients`,
  rooms: "(b) 100 rooms of 10",
  echo: `(c) echo, ${cfg.echoClients} clients`,
  connect: `(d) connection set-up`,
  idle: `(e) ${cfg.idleSessions} idle sessions`,
};
for (const scenario of cfg.scenarios) {
  const lines: [string, string, boolean][] = scenario === "connect"
    ? [["connections/s", "rate", true], ["  per server CPU-second", "perCpu", true]]
    : scenario === "idle"
    ? [["RSS bytes/session", "bytesPerSession", false], ["  JS heap bytes/session", "heapPerSession", false]]
    : [
      [scenario === "echo" ? "round trips/s" : "deliveries/s", "rate", true],
      ["  per server CPU-second", "perCpu", true],
      [scenario === "echo" ? "p50 round trip ms" : "p50 latency ms", "p50", false],
      [scenario === "echo" ? "p99 round trip ms" : "p99 latency ms", "p99", false],
    ];
  lines.forEach(([metric, key], i) => {
    const row = [i === 0 ? labels[scenario] : "", metric];
    for (const runtime of cfg.runtimes) {
      const s = summary[runtime][scenario];
      row.push(fmtNum(s.hub[key]), fmtNum(s.raw[key]), fmtRatio(s.ratio[key]));
    }
    rows.push(row);
  });
  if (scenario === "idle") {
    const row = ["", `broadcast to all ×${cfg.scaleMessages}: held / lost`];
    for (const runtime of cfg.runtimes) {
      const s = summary[runtime][scenario];
      row.push(`${fmtNum(s.hub.held)} / ${s.hub.lost}`, `${fmtNum(s.raw.held)} / ${s.raw.lost}`, "");
    }
    rows.push(row);
  }
}
const header = ["scenario", "metric", ...cfg.runtimes.flatMap((r) => [`${r} hub`, `${r} raw`, "hub/raw"])];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells: string[]) =>
  `| ${cells.map((c, i) => i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join(" | ")} |`;
const table = [
  line(header),
  `|${widths.map((w, i) => i < 2 ? "-".repeat(w + 2) : "-".repeat(w + 1) + ":").join("|")}|`,
  ...rows.map(line),
].join("\n");

const lost = records.reduce((a, r) => a + r.lost, 0);
const errors = records.filter((r) => r.error);
const goals: string[] = [];
for (const runtime of cfg.runtimes) {
  for (const scenario of ["fanout", "rooms", "echo"].filter((s) => cfg.scenarios.includes(s))) {
    const s = summary[runtime][scenario];
    const r = s.ratio.rate;
    goals.push(
      `${r >= 0.9 ? "met   " : "MISSED"} ${runtime} ${scenario}: hub/raw ${fmtRatio(r)} (goal >= 0.90; ` +
        `per server CPU-second ${fmtRatio(s.ratio.perCpu)})`,
    );
  }
  if (cfg.scenarios.includes("idle")) {
    const s = summary[runtime].idle;
    const over = s.hub.bytesPerSession - s.raw.bytesPerSession;
    goals.push(
      `${over <= 1024 ? "met   " : "MISSED"} ${runtime} idle: ${Math.round(over)} B/session over raw (goal <= 1024)`,
    );
    const held = s.hub.held === cfg.idleSessions && s.hub.lost === 0;
    goals.push(
      `${held ? "met   " : "MISSED"} ${runtime} scale: ${fmtNum(s.hub.held)} sessions held, ${s.hub.lost} lost`,
    );
  }
}
const minutes = ((Date.now() - started) / 60_000).toFixed(1);
console.log(
  `\nchorus vs raw runtime: medians of ${cfg.runs} runs (hub/raw: median of the runs' own ratios), ${
    cfg.durationMs / 1000
  } s each, ${cfg.workers} client processes (Bun)`,
);
console.log(`${cpu}, ${machine.cores} cores, loopback; ${minutes} min\n`);
console.log(table);
console.log(`\n${goals.join("\n")}`);
console.log(`lost messages: ${lost}; failed runs: ${errors.length}`);
for (const e of errors) console.log(`  ${e.runtime} ${e.scenario} ${e.mode} run ${e.run}: ${e.error}`);

const out = `${root}bench/results/latest.json`;
fs.mkdirSync(`${root}bench/results`, { recursive: true });
fs.writeFileSync(
  out,
  JSON.stringify({ date: new Date().toISOString(), machine, config: cfg, summary, records, table, goals }, null, 2),
);
console.log(`wrote ${out}`);
process.exit(lost > 0 || errors.length > 0 ? 1 : 0);
