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
 * Resumable sessions (issue 9), opt-in: `BENCH_SCENARIOS=resumable,idle-resumable,cut`, each on a
 * hub with `resume: {}` (`bench/server.ts --resume hub`):
 * - `resumable`: BENCH_RESUMABLE_CLIENTS (500) `chorus.v1` clients and as many plain ones on the
 *   same hub, BENCH_FANOUT_SENDERS broadcasting as in `fanout` (half of them `chorus.v1`); the
 *   two kinds sit in separate client processes (BENCH_WORKERS rounded up to even), so each
 *   kind's deliveries/s, latency and client CPU per delivery come out of one run. Prints
 *   v1/plain (goal >= 0.8) and the v1 clients' lost, duplicated and out-of-order messages
 *   (checked by offset and by each sender's sequence number), and on Bun whether each broadcast
 *   was one native publish.
 * - `idle-resumable`: BENCH_IDLE_SESSIONS idle sessions, plain clients then `chorus.v1` clients,
 *   both on a resume hub: RSS and JS heap bytes per session of each and the difference (goal
 *   <= 1024 over plain); then the broadcasts of `idle`.
 * - `cut`: BENCH_CUT_CLIENTS (1000) `chorus.v1` clients through a TCP proxy (bench/proxy.ts),
 *   one plain sender straight to the hub at BENCH_CUT_RATE (200) broadcasts/s; after
 *   BENCH_CUT_WARM (2) seconds the proxy resets every connection at once; each client reconnects
 *   with full jitter (500 ms to 5 s, chorus/client's rule) and resumes with its credential and
 *   last offset. Prints the time from the cut to each client's welcome (p50/p99/max; max: all
 *   back), resumed vs fresh sessions, and lost/duplicated messages (goal 0). BENCH_CUT_TAIL (1)
 *   seconds of sending after the last is back, BENCH_RESUME_TIMEOUT (30) seconds at most to wait.
 *
 * @module
 */

import { setTimeout as sleep } from "node:timers/promises";
import * as fs from "node:fs";
import * as os from "node:os";
import process from "node:process";
import { median, quantile, type SparseHistogram } from "./stats.ts";
import type { WorkerConfig } from "./client.ts";
import { cpuSeconds, Proc } from "./_proc.ts";

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
  resumableClients: num("RESUMABLE_CLIENTS", 500),
  cutClients: num("CUT_CLIENTS", 1000),
  cutRate: num("CUT_RATE", 200),
  cutWarmMs: num("CUT_WARM", 2) * 1000,
  cutTailMs: num("CUT_TAIL", 1) * 1000,
  resumeTimeoutMs: num("RESUME_TIMEOUT", 30) * 1000,
};

/** Scenarios on a hub with `resume: {}`. In `idle-resumable`, "hub" is chorus.v1 clients and "raw" plain ones. */
const resumeScenarios = ["resumable", "idle-resumable", "cut"];

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
  /** `resumable`: the plain clients' figures (the record's own are the chorus.v1 clients'). */
  plain?: { rate: number; p50: number; p99: number };
  /** `resumable`: client CPU microseconds per delivery, chorus.v1 and plain client processes. */
  clientCpu?: { v1: number; plain: number };
  /** `resumable`: broadcasts sent, and the hub's native publishes (Bun: one per broadcast). */
  broadcasts?: number;
  publishes?: number;
  /** chorus.v1 clients: duplicates, offsets that did not grow, a sender's sequence numbers skipped. */
  duplicates?: number;
  disorder?: number;
  skipped?: number;
  /** `cut`: connections reset, ms from the cut to each client's welcome, sessions resumed / fresh / not back. */
  cut?: {
    n: number;
    p50: number;
    p99: number;
    max: number;
    noticedMax: number;
    resumed: number;
    fresh: number;
    notBack: number;
    neverLost: number;
    attempts: number;
    sent: number;
  };
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
  duplicates: number;
  disorder: number;
  skipped: number;
}

interface Back {
  t: "back";
  back: number[];
  downAt: number[];
  notBack: number;
  neverLost: number;
  resumed: number;
  fresh: number;
  attempts: number;
}

/** Splits `n` connections over the workers: a list of topics per worker. */
function plan(
  scenario: string,
  mode: Mode,
): { configs: Omit<WorkerConfig, "url" | "worker">[]; maxPerSender: number } {
  // resumable: an even number of workers, chorus.v1 on the even ones, plain on the odd ones
  const w = scenario === "resumable" ? Math.max(2, cfg.workers + (cfg.workers % 2)) : cfg.workers;
  const base = { scenario, pad: cfg.pad, drainMs: cfg.drainMs, rooms: false, concurrency: 100 };
  const configs = Array.from({ length: w }, () => ({ ...base, conns: [] as string[], senders: [] as number[] }));
  if (scenario === "resumable") {
    for (let i = 0; i < cfg.resumableClients; i++) {
      configs[2 * (i % (w / 2))].conns.push("all");
      configs[2 * (i % (w / 2)) + 1].conns.push("all");
    }
    for (let s = 0; s < cfg.fanoutSenders; s++) configs[s % w].senders.push(Math.floor(s / w));
    return {
      // "raw": the reference, the same clients all plain on a hub without resume
      configs: configs.map((c, i) => ({ ...c, kind: "b", window: cfg.window, v1: mode === "hub" && i % 2 === 0 })),
      maxPerSender: Infinity,
    };
  }
  if (scenario === "idle-resumable") {
    for (let i = 0; i < cfg.idleSessions; i++) configs[i % w].conns.push("all");
    configs[0].senders.push(0);
    return {
      configs: configs.map((c) => ({ ...c, kind: "b", window: 1, v1: mode === "hub" })),
      maxPerSender: cfg.scaleMessages,
    };
  }
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

async function memory(port: number): Promise<{ rss: number; heap: number; sessions: number; publishes: number }> {
  const res = await fetch(`http://127.0.0.1:${port}/mem`);
  return await res.json() as { rss: number; heap: number; sessions: number; publishes: number };
}

/** The value at quantile `q` of `sorted` (ascending); NaN when empty. */
function pick(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] : NaN;
}

/**
 * `cut`: chorus.v1 clients through the proxy, a plain sender straight to the hub; the proxy
 * resets every connection; the clients come back and resume.
 */
async function cutRun(rec: Record_, port: number, workers: Proc[], others: Proc[]): Promise<void> {
  const proxy = new Proc(bin("bun"), ["bench/proxy.ts", String(port)]);
  others.push(proxy);
  const { port: proxyPort } = await proxy.next<{ port: number }>("proxy start", 30_000);
  const w = cfg.workers;
  const base = {
    scenario: "cut",
    pad: cfg.pad,
    drainMs: cfg.drainMs,
    rooms: false,
    concurrency: 100,
    kind: "b",
    window: 1,
    senders: [] as number[],
  };
  const configs: WorkerConfig[] = Array.from({ length: w }, (_, i) => ({
    ...base,
    url: `ws://127.0.0.1:${proxyPort}/`,
    worker: i,
    conns: [] as string[],
    v1: true,
    reconnect: { minDelay: 500, maxDelay: 5000 },
  }));
  for (let i = 0; i < cfg.cutClients; i++) configs[i % w].conns.push("all");
  configs.push({ ...base, url: `ws://127.0.0.1:${port}/`, worker: w, conns: ["all"], senders: [0], rate: cfg.cutRate });
  for (const c of configs) workers.push(new Proc(bin("bun"), ["bench/client.ts", JSON.stringify(c)]));
  for (const p of workers) {
    const msg = await p.next<{ t: string; error?: string }>("receivers open", 180_000);
    if (msg.t !== "open") throw new Error(`client: ${msg.error}`);
  }
  const sender = workers[w];
  const receivers = workers.slice(0, w);
  sender.send("senders");
  if ((await sender.next<{ t: string; error?: string }>("sender open")).t !== "open") throw new Error("sender failed");
  sender.send("go 3600000 inf");
  await sleep(cfg.cutWarmMs);
  proxy.send("cut");
  const cut = await proxy.next<{ at: number; n: number }>("cut");
  for (const r of receivers) r.send(`back ${cfg.resumeTimeoutMs}`);
  const backs = await Promise.all(receivers.map((r) => r.next<Back>("back", cfg.resumeTimeoutMs + 30_000)));
  await sleep(cfg.cutTailMs);
  sender.send("stop");
  const { sent } = await sender.next<{ sent: Record<string, number> }>("send phase");
  for (const p of workers) p.send(`expect ${JSON.stringify(sent)}`);
  const dones = await Promise.all(workers.map((p) => p.next<Done>("drain", cfg.drainMs + 30_000)));
  const times = backs.flatMap((b) => b.back.map((t) => t - cut.at)).sort((a, b) => a - b);
  const noticed = backs.flatMap((b) => b.downAt.map((t) => t - cut.at));
  const sum = (f: (b: Back) => number) => backs.reduce((a, b) => a + f(b), 0);
  rec.cut = {
    n: cut.n,
    p50: pick(times, 0.5),
    p99: pick(times, 0.99),
    max: times.length ? times[times.length - 1] : NaN,
    noticedMax: Math.max(...noticed),
    resumed: sum((b) => b.resumed),
    fresh: sum((b) => b.fresh),
    notBack: sum((b) => b.notBack),
    neverLost: sum((b) => b.neverLost),
    attempts: sum((b) => b.attempts),
    sent: sent.all ?? 0,
  };
  // delivery latency, replays after the cut included: seconds here mean the box could not keep up
  rec.p50 = quantile(dones.map((d) => d.hist), 0.5);
  rec.p99 = quantile(dones.map((d) => d.hist), 0.99);
  rec.lost = dones.reduce((a, d) => a + d.lost, 0);
  rec.duplicates = dones.reduce((a, d) => a + d.extra, 0);
  rec.disorder = dones.reduce((a, d) => a + d.disorder, 0);
  rec.skipped = dones.reduce((a, d) => a + d.skipped, 0);
}

async function measure(runtime: "deno" | "bun", mode: Mode, scenario: string, run: number): Promise<Record_> {
  const rec: Record_ = { runtime, mode, scenario, run, lost: 0 };
  const flags = (process.env.BENCH_SERVER_FLAGS ?? "").split(" ").filter((f) => f);
  const resume = resumeScenarios.includes(scenario) && !(scenario === "resumable" && mode === "raw");
  const args = ["bench/server.ts", ...(resume ? ["--resume", "hub"] : [mode])];
  const server = runtime === "deno"
    ? new Proc(bin("deno"), ["run", "-A", "--v8-flags=--expose-gc", ...flags, ...args])
    : new Proc(bin("bun"), [...flags, ...args]);
  let port = 0;
  const workers: Proc[] = [];
  const others: Proc[] = [];
  try {
    ({ port } = await server.next<{ port: number }>("server start", 30_000));
    if (scenario === "cut") {
      await cutRun(rec, port, workers, others);
      return rec;
    }
    const idle = scenario === "idle" || scenario === "idle-resumable";
    const base = idle ? await memory(port) : undefined;
    const { configs, maxPerSender } = plan(scenario, mode);
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
    const duration = idle ? 600_000 : cfg.durationMs;
    const cpu0 = cpuSeconds(server.child.pid);
    const clientCpu0 = workers.map((w) => cpuSeconds(w.child.pid));
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
    rec.lost += dones.reduce((a, d) => a + d.lost + d.extra, 0);
    if (configs.some((c) => c.v1)) {
      rec.duplicates = dones.reduce((a, d) => a + d.duplicates, 0);
      rec.disorder = dones.reduce((a, d) => a + d.disorder, 0);
      rec.skipped = dones.reduce((a, d) => a + d.skipped, 0);
    }
    if (scenario === "resumable") {
      // each kind on its own: deliveries/s from the go to its last delivery, latency, client CPU
      const clientCpu = workers.map((w, i) => cpuSeconds(w.child.pid) - clientCpu0[i]);
      const kind = (v1: boolean) => {
        const ds = dones.filter((_, i) => !!configs[i].v1 === v1);
        const received = ds.reduce((a, d) => a + d.received, 0);
        const cpu = clientCpu.filter((_, i) => !!configs[i].v1 === v1).reduce((a, c) => a + c, 0);
        return {
          rate: received / ((Math.max(...ds.map((d) => d.lastRecv)) - Math.min(...ds.map((d) => d.goAt))) / 1000),
          p50: quantile(ds.map((d) => d.hist), 0.5),
          p99: quantile(ds.map((d) => d.hist), 0.99),
          cpu: cpu / received * 1e6,
        };
      };
      const v1 = kind(true);
      const plain = kind(false);
      rec.rate = v1.rate;
      rec.p50 = v1.p50;
      rec.p99 = v1.p99;
      rec.plain = { rate: plain.rate, p50: plain.p50, p99: plain.p99 };
      rec.clientCpu = { v1: v1.cpu, plain: plain.cpu };
      rec.broadcasts = expected.all ?? 0;
      rec.publishes = (await memory(port)).publishes;
      return rec;
    }
    const received = dones.reduce((a, d) => a + d.received, 0);
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
    for (const p of others) await p.stop();
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
      // (`cut` measures its clients in one run of the hub; `resumable` both kinds in one run, then the all-plain reference)
      const modes = scenario === "cut"
        ? ["hub"] as Mode[]
        : (run % 2 ? ["hub", "raw"] : ["raw", "hub"]).filter((m) => cfg.modes.includes(m)) as Mode[];
      for (const mode of modes) {
        const rec = await measure(runtime, mode, scenario, run);
        records.push(rec);
        if (rec.plain || rec.cut || rec.duplicates !== undefined) {
          console.error(`run ${run} ${runtime} ${scenario} ${mode} (load ${loadavg()}): ${details(rec)}`);
          if (scenario !== "idle-resumable") continue;
        }
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

function loadavg(): string {
  return os.loadavg().map((x) => x.toFixed(2)).join(" ");
}

/** One run of a resumable scenario, in a line. */
function details(r: Record_): string {
  const parts: string[] = [];
  if (r.plain && r.mode === "raw") {
    parts.push(`all plain, no resume: ${Math.round(r.rate! + r.plain.rate)} deliveries/s`);
  } else if (r.plain) {
    parts.push(
      `v1 ${Math.round(r.rate!)}/s plain ${Math.round(r.plain.rate)}/s v1/plain ${fmtRatio(r.rate! / r.plain.rate)}`,
      `p50 v1 ${r.p50!.toFixed(2)} plain ${r.plain.p50.toFixed(2)} ms, p99 v1 ${r.p99!.toFixed(2)} plain ${
        r.plain.p99.toFixed(2)
      } ms`,
      `client CPU µs/delivery v1 ${r.clientCpu!.v1.toFixed(2)} plain ${r.clientCpu!.plain.toFixed(2)}`,
      `native publishes ${r.publishes} for ${r.broadcasts} broadcasts`,
    );
  }
  if (r.cut) {
    const c = r.cut;
    parts.push(
      `${c.n} connections reset; back after p50 ${Math.round(c.p50)} p99 ${Math.round(c.p99)} max ${
        Math.round(c.max)
      } ms (all noticed within ${Math.round(c.noticedMax)} ms)`,
      `resumed ${c.resumed} fresh ${c.fresh} not back ${c.notBack} never cut ${c.neverLost}; ${c.attempts} attempts`,
      `${c.sent} broadcasts, delivery latency p50 ${r.p50!.toFixed(1)} p99 ${r.p99!.toFixed(1)} ms`,
    );
  }
  if (r.duplicates !== undefined && r.mode === "hub") {
    parts.push(`v1 lost ${r.lost} duplicated ${r.duplicates} out of order ${r.disorder} skipped ${r.skipped}`);
  }
  return parts.join("; ") + (r.error ? ` ERROR ${r.error}` : "");
}

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
function fmtRatio(x: number): string {
  return Number.isNaN(x) || !Number.isFinite(x) ? "-" : x.toFixed(2);
}
const rows: string[][] = [];
const labels: Record<string, string> = {
  fanout: `(a) fan-out, ${cfg.fanoutClients} clients`,
  rooms: "(b) 100 rooms of 10",
  echo: `(c) echo, ${cfg.echoClients} clients`,
  connect: `(d) connection set-up`,
  idle: `(e) ${cfg.idleSessions} idle sessions`,
};
for (const scenario of cfg.scenarios.filter((s) => labels[s])) {
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
/** A Markdown table: two left-aligned columns, the rest right-aligned. */
function render(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join(" | ")} |`;
  return [
    line(header),
    `|${widths.map((w, i) => i < 2 ? "-".repeat(w + 2) : "-".repeat(w + 1) + ":").join("|")}|`,
    ...rows.map(line),
  ].join("\n");
}
const header = ["scenario", "metric", ...cfg.runtimes.flatMap((r) => [`${r} hub`, `${r} raw`, "hub/raw"])];
const table = rows.length ? render(header, rows) : "";

// ---- resumable sessions: chorus.v1 against plain clients (one table), and the cut (another) ----

const okOf = (runtime: string, scenario: string, mode: Mode = "hub") =>
  records.filter((r) => r.runtime === runtime && r.scenario === scenario && r.mode === mode && !r.error);
const med = (rs: Record_[], f: (r: Record_) => number | undefined): number => median(rs.map((r) => f(r) ?? NaN));
const total = (rs: Record_[], f: (r: Record_) => number | undefined): number => rs.reduce((a, r) => a + (f(r) ?? 0), 0);
const resumeSummary: Record<string, Record<string, number>> = {};
const v1Rows: string[][] = [];
if (cfg.scenarios.includes("resumable")) {
  const of = (runtime: string) => okOf(runtime, "resumable");
  for (const runtime of cfg.runtimes) {
    const rs = of(runtime);
    resumeSummary[runtime] = {
      ...resumeSummary[runtime],
      ratio: med(rs, (r) => r.rate! / r.plain!.rate),
      publishes: total(rs, (r) => r.publishes),
      broadcasts: total(rs, (r) => r.broadcasts),
      anomalies: total(rs, (r) => r.lost + (r.disorder ?? 0) + (r.skipped ?? 0)),
      runs: rs.length,
    };
  }
  const triple = (label: string, metric: string, v1: (r: Record_) => number, plain: (r: Record_) => number) => {
    const row = [label, metric];
    for (const runtime of cfg.runtimes) {
      const rs = of(runtime);
      row.push(fmtNum(med(rs, v1)), fmtNum(med(rs, plain)), fmtRatio(med(rs, (r) => v1(r) / plain(r))));
    }
    v1Rows.push(row);
  };
  triple(
    `(f) resumable fan-out, ${cfg.resumableClients}+${cfg.resumableClients}`,
    "deliveries/s",
    (r) => r.rate!,
    (r) => r.plain!.rate,
  );
  triple("", "p50 latency ms", (r) => r.p50!, (r) => r.plain!.p50);
  triple("", "p99 latency ms", (r) => r.p99!, (r) => r.plain!.p99);
  triple("", "client CPU µs/delivery", (r) => r.clientCpu!.v1, (r) => r.clientCpu!.plain);
  const one = (metric: string, cell: (rs: Record_[]) => string) => {
    const row = ["", metric];
    for (const runtime of cfg.runtimes) row.push(cell(of(runtime)), "", "");
    v1Rows.push(row);
  };
  // the mixed hub against the same 2 × N clients all plain on a hub without resume (the "raw" runs)
  const both = (r: Record_) => r.rate! + r.plain!.rate;
  for (
    const [metric, f] of [["all deliveries/s", both], [
      "  per server CPU-second",
      (r: Record_) => both(r) / (r.serverCpu ?? NaN),
    ]] as [string, (r: Record_) => number][]
  ) {
    const row = ["", `${metric}: mixed hub, all plain no resume`];
    for (const runtime of cfg.runtimes) {
      const mixed = of(runtime);
      const ref = okOf(runtime, "resumable", "raw");
      const pairs = mixed.flatMap((h) => ref.filter((p) => p.run === h.run).map((p) => f(h) / f(p)));
      row.push(fmtNum(med(mixed, f)), fmtNum(med(ref, f)), fmtRatio(median(pairs)));
      resumeSummary[runtime][metric.trim()] = median(pairs);
    }
    v1Rows.push(row);
  }
  one("native publishes / broadcasts", (rs) => `${total(rs, (r) => r.publishes)} / ${total(rs, (r) => r.broadcasts)}`);
  one(
    "v1 lost / dup / disorder / skipped",
    (rs) =>
      [(r: Record_) => r.lost, (r: Record_) => r.duplicates, (r: Record_) => r.disorder, (r: Record_) => r.skipped]
        .map((f) => total(rs, f)).join(" / "),
  );
}
if (cfg.scenarios.includes("idle-resumable")) {
  for (const [metric, key] of [["RSS bytes/session", "bytesPerSession"], ["JS heap bytes/session", "heapPerSession"]]) {
    const row = [metric === "RSS bytes/session" ? `(g) ${cfg.idleSessions} idle, resume hub` : "", metric];
    for (const runtime of cfg.runtimes) {
      const v1 = okOf(runtime, "idle-resumable", "hub");
      const plain = okOf(runtime, "idle-resumable", "raw");
      const f = (r: Record_) => r[key as "bytesPerSession"];
      const pairs = v1.flatMap((h) => plain.filter((p) => p.run === h.run).map((p) => [h, p]));
      row.push(fmtNum(med(v1, f)), fmtNum(med(plain, f)), `+${fmtNum(median(pairs.map(([h, p]) => f(h)! - f(p)!)))}`);
      (resumeSummary[runtime] ??= {})[`${key}Over`] = median(pairs.map(([h, p]) => f(h)! - f(p)!));
    }
    v1Rows.push(row);
  }
  const row = ["", `broadcast to all ×${cfg.scaleMessages}: held / lost`];
  for (const runtime of cfg.runtimes) {
    const v1 = records.filter((r) => r.runtime === runtime && r.scenario === "idle-resumable" && r.mode === "hub");
    const plain = records.filter((r) => r.runtime === runtime && r.scenario === "idle-resumable" && r.mode === "raw");
    const held = (rs: Record_[]) => fmtNum(Math.min(...rs.map((r) => r.held ?? 0)));
    row.push(`${held(v1)} / ${total(v1, (r) => r.lost)}`, `${held(plain)} / ${total(plain, (r) => r.lost)}`, "");
  }
  v1Rows.push(row);
}
const v1Header = ["scenario", "metric", ...cfg.runtimes.flatMap((r) => [`${r} v1`, `${r} plain`, "v1/plain"])];
const v1Table = v1Rows.length ? render(v1Header, v1Rows) : "";

const cutRows: string[][] = [];
const ms = (x: number): string => Number.isFinite(x) ? String(Math.round(x)) : "-";
if (cfg.scenarios.includes("cut")) {
  const lines: [string, (rs: Record_[]) => string][] = [
    ["connections reset (per run)", (rs) => fmtNum(med(rs, (r) => r.cut!.n))],
    ["cut to welcome p50 ms", (rs) => ms(med(rs, (r) => r.cut!.p50))],
    ["cut to welcome p99 ms", (rs) => ms(med(rs, (r) => r.cut!.p99))],
    ["cut to all back (max) ms", (rs) => ms(med(rs, (r) => r.cut!.max))],
    [
      "resumed / fresh / not back",
      (rs) =>
        [(r: Record_) => r.cut!.resumed, (r: Record_) => r.cut!.fresh, (r: Record_) => r.cut!.notBack]
          .map((f) => total(rs, f)).join(" / "),
    ],
    [
      "lost / dup / disorder / skipped",
      (rs) =>
        [(r: Record_) => r.lost, (r: Record_) => r.duplicates, (r: Record_) => r.disorder, (r: Record_) => r.skipped]
          .map((f) => total(rs, f)).join(" / "),
    ],
    ["connection attempts", (rs) => String(total(rs, (r) => r.cut!.attempts))],
    ["delivery latency p50 / p99 ms", (rs) => `${ms(med(rs, (r) => r.p50))} / ${ms(med(rs, (r) => r.p99))}`],
  ];
  lines.forEach(([metric, cell], i) => {
    const row = [i === 0 ? `(h) cut ${cfg.cutClients} v1 clients, ${cfg.cutRate}/s` : "", metric];
    for (const runtime of cfg.runtimes) row.push(cell(okOf(runtime, "cut")));
    cutRows.push(row);
  });
}
const cutTable = cutRows.length
  ? render(["scenario", `metric (medians; counts: totals of ${cfg.runs} runs)`, ...cfg.runtimes], cutRows)
  : "";

const lost = records.reduce((a, r) => a + r.lost + (r.duplicates ?? 0) + (r.disorder ?? 0) + (r.skipped ?? 0), 0);
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
for (const runtime of cfg.runtimes) {
  if (cfg.scenarios.includes("resumable")) {
    const s = resumeSummary[runtime];
    goals.push(
      `${s.ratio >= 0.8 ? "met   " : "MISSED"} ${runtime} resumable: v1/plain ${fmtRatio(s.ratio)} (goal >= 0.80; ` +
        `the mixed hub's deliveries/s against all plain without resume ${fmtRatio(s["all deliveries/s"])}, ` +
        `per server CPU-second ${fmtRatio(s["per server CPU-second"])})`,
    );
    if (runtime === "bun") {
      const native = s.publishes >= s.broadcasts && s.broadcasts > 0;
      goals.push(
        `${native ? "met   " : "MISSED"} bun resumable: ${s.publishes} native publishes for ${s.broadcasts} broadcasts`,
      );
    }
    goals.push(
      `${s.anomalies === 0 ? "met   " : "MISSED"} ${runtime} resumable: ${s.anomalies} v1 messages lost, ` +
        `duplicated or out of order`,
    );
  }
  if (cfg.scenarios.includes("idle-resumable")) {
    const over = resumeSummary[runtime].bytesPerSessionOver;
    goals.push(
      `${over <= 1024 ? "met   " : "MISSED"} ${runtime} idle-resumable: ${Math.round(over)} B/session over plain ` +
        `(goal <= 1024; JS heap ${Math.round(resumeSummary[runtime].heapPerSessionOver)})`,
    );
  }
  if (cfg.scenarios.includes("cut")) {
    const rs = okOf(runtime, "cut");
    const fresh = total(rs, (r) => r.cut!.fresh + r.cut!.notBack);
    const bad = total(rs, (r) => r.lost + (r.duplicates ?? 0) + (r.disorder ?? 0) + (r.skipped ?? 0));
    goals.push(
      `${fresh === 0 && bad === 0 && rs.length > 0 ? "met   " : "MISSED"} ${runtime} cut: all back in ` +
        `${ms(med(rs, (r) => r.cut!.max))} ms (p50 ${ms(med(rs, (r) => r.cut!.p50))}), ${
          total(rs, (r) => r.cut!.resumed)
        } resumed, ${fresh} fresh or not back, ${bad} lost/duplicated/out of order (goal 0)`,
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
console.log(`load average now ${loadavg()}\n`);
for (const t of [table, v1Table, cutTable]) if (t) console.log(`${t}\n`);
console.log(goals.join("\n"));
console.log(`lost messages: ${lost}; failed runs: ${errors.length}`);
for (const e of errors) console.log(`  ${e.runtime} ${e.scenario} ${e.mode} run ${e.run}: ${e.error}`);

const out = `${root}bench/results/latest.json`;
fs.mkdirSync(`${root}bench/results`, { recursive: true });
fs.writeFileSync(
  out,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      machine,
      loadavgAtEnd: os.loadavg(),
      config: cfg,
      summary,
      resumeSummary,
      records,
      table,
      v1Table,
      cutTable,
      goals,
    },
    null,
    2,
  ),
);
console.log(`wrote ${out}`);
process.exit(lost > 0 || errors.length > 0 ? 1 : 0);
