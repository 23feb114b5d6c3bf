// Cross-node fan-out through Redis, against one node alone. Run: `npm run bench:redis`
// (Deno), or `bun run bench/redis.ts`. Hubs run in child processes of the same runtime; the
// clients run here. Needs Redis at REDIS_URL (default redis://127.0.0.1:6379).
//
// 1. Deliveries per second: CLIENTS clients get MESSAGES broadcasts of SIZE bytes; once all on
//    one node without a broker, once split over two nodes with the broadcasts sent from one.
// 2. Latency: ROUNDS sequential broadcasts from node A; the time until a client on A (local)
//    and a client on B (through Redis) receive each; the added latency is their difference.
//
// Env: CLIENTS (200), MESSAGES (2000), SIZE (64), ROUNDS (2000), SCENARIOS (fanout,latency),
// RUNS (or BENCH_RUNS; 1): runs of the opt-in scenarios below, each printed, with medians.
//
// Resume on any node, opt-in (SCENARIOS=recoverable,move,memory, or SCENARIOS=all):
// 3. `recoverable`: deliveries/s of plain pub/sub broadcasts against recoverable ones, side by
//    side: two nodes on one Redis, CLIENTS clients split over them, MESSAGES broadcasts of SIZE
//    bytes sent from node A; run A: hubs without `resume`, plain clients; run B: hubs with
//    `resume: {}` (every broadcast one Lua append-and-publish on a Redis stream), `chorus.v1`
//    clients that acknowledge every 32 messages and on each heartbeat. Each run starts fresh
//    nodes; A and B alternate. Prints both, B/A (goal >= 0.5), and the v1 clients' lost and
//    duplicated messages by offset in the hub's stream. A plain client on each node (the sender
//    on A, a probe on B) receives too and is not counted. RECOVERABLE_RESUME: run B's `resume`
//    options as JSON (default {"maxMessages": 2 × MESSAGES, at least 1000}: a connected session
//    whose unacknowledged messages pass maxMessages is ended, and a burst of 2,000 outruns the
//    acks; with "{}" the run fails on the first ended session).
// 4. `move`: MOVE_CLIENTS (200) `chorus.v1` clients through a TCP proxy (bench/proxy.ts) to node
//    1; a plain sender on node 2 broadcasts MOVE_RATE (200) numbered messages/s; after MOVE_WARM
//    (1) s the proxy is pointed at node 2 and node 1 is SIGKILLed; each client reconnects
//    (RECONNECT "min-max" ms of full jitter, chorus/client's rule, default 100-1000; "0" for at
//    once) through the proxy to node 2 and resumes with its credential and positions. Prints the
//    time from each client's lost connection to its welcome (p50/p99/max), resumed vs fresh
//    sessions, and lost/duplicated broadcasts (by the sender's numbers and by offset; goal 0).
//    Sending goes on MOVE_TAIL (1) s after the last is back; RESUME_TIMEOUT (30) s at most.
// 5. `memory`: a node with `resume: { maxMessages: KEEP }` (KEEP 10000) appends KEEP broadcasts
//    of each size in MEMORY_SIZES (64,1024 bytes) to a room's stream, then KEEP more (the
//    stream trimmed to KEEP); MEMORY USAGE of `<prefix>:st:r:<room>` (SAMPLES 0) and the change
//    of INFO used_memory, per kept message, and the overhead over the payload.

import { spawn } from "node:child_process";
import * as os from "node:os";
import process from "node:process";
import { createInterface } from "node:readline";
import { createClient } from "redis";
import { dropKeys, type Node, runtimeCmd, startNode as startHub } from "./_nodes.ts";

const env = process.env;
const CLIENTS = Number(env.CLIENTS ?? 200);
const MESSAGES = Number(env.MESSAGES ?? 2000);
const SIZE = Number(env.SIZE ?? 64);
const ROUNDS = Number(env.ROUNDS ?? 2000);
const REDIS_URL = env.REDIS_URL ?? "redis://127.0.0.1:6379";
const SCENARIOS = (env.SCENARIOS ?? "fanout,latency").split(",");
const RUNS = Number(env.RUNS ?? env.BENCH_RUNS ?? 1);
const MOVE_CLIENTS = Number(env.MOVE_CLIENTS ?? 200);
const MOVE_RATE = Number(env.MOVE_RATE ?? 200);
const MOVE_WARM = Number(env.MOVE_WARM ?? 1) * 1000;
const MOVE_TAIL = Number(env.MOVE_TAIL ?? 1) * 1000;
const RESUME_TIMEOUT = Number(env.RESUME_TIMEOUT ?? 30) * 1000;
const [MIN_DELAY, MAX_DELAY] = (env.RECONNECT ?? "100-1000").split("-").map(Number).concat(0);
const KEEP = Number(env.KEEP ?? 10_000);
const RECOVERABLE_RESUME = env.RECOVERABLE_RESUME ?? JSON.stringify({ maxMessages: Math.max(1000, 2 * MESSAGES) });
const MEMORY_SIZES = (env.MEMORY_SIZES ?? "64,1024").split(",").map(Number);
const has = (name: string) => SCENARIOS.includes(name) || SCENARIOS.includes("all");
const PREFIX = `chorus-bench:${crypto.randomUUID().slice(0, 8)}`;
const isBun = "Bun" in globalThis;

/** A bench node with this run's Redis and prefix, alone (`noBroker`) or in the cluster. */
function startNode(noBroker: boolean, extra: Record<string, string> = {}): Promise<Node> {
  return startHub({ REDIS_URL, PREFIX, ...(noBroker ? { NO_BROKER: "1" } : {}), ...extra });
}

/** A client that counts what it receives and can wait for a count or a given message. */
class Counter {
  ws: WebSocket;
  received = 0;
  #want = 0;
  #done: (() => void) | undefined;
  onText: ((data: string) => void) | undefined;

  constructor(port: number) {
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    this.ws.onmessage = (e) => {
      this.received++;
      this.onText?.(e.data as string);
      if (this.#done && this.received >= this.#want) {
        const done = this.#done;
        this.#done = undefined;
        done();
      }
    };
  }

  opened(): Promise<void> {
    return new Promise((res, rej) => {
      this.ws.onopen = () => res();
      this.ws.onerror = () => rej(new Error("client failed to connect"));
    });
  }

  until(n: number): Promise<void> {
    if (this.received >= n) return Promise.resolve();
    this.#want = n;
    return new Promise((res) => this.#done = res);
  }

  close(): void {
    this.ws.close();
  }
}

/** What fanOut and watchdog need of a client. */
interface Receiver {
  received: number;
  until(n: number): Promise<void>;
}

/** Fails after `ms` with a report of what each client received, so a lost message never hangs the bench. */
function watchdog<T>(what: string, work: Promise<T>, clients: Receiver[], ms = 120_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const counts = new Map<number, number>();
      for (const c of clients) counts.set(c.received, (counts.get(c.received) ?? 0) + 1);
      reject(new Error(`${what}: timed out; clients by messages received: ${JSON.stringify([...counts])}`));
    }, ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

async function connect(port: number, n: number): Promise<Counter[]> {
  const clients = Array.from({ length: n }, () => new Counter(port));
  await watchdog("connect", Promise.all(clients.map((c) => c.opened())), clients, 30_000);
  return clients;
}

/** Waits until the node of `probe` has attached `n` sessions (a client may see its open first). */
async function attached(probe: Counter, n: number): Promise<void> {
  for (let tries = 0; tries < 1000; tries++) {
    const size = await new Promise<number>((res) => {
      probe.onText = (d) => d.startsWith("size ") && res(Number(d.slice(5)));
      probe.ws.send("size");
    });
    probe.onText = undefined;
    if (size === n) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`the node never attached ${n} sessions`);
}

async function fanOut(sender: Counter, clients: Receiver[]): Promise<number> {
  // warm up: one message to everyone
  const base = clients.map((c) => c.received);
  sender.ws.send("warmup");
  await watchdog("warm-up", Promise.all(clients.map((c, i) => c.until(base[i] + 1))), clients);
  const start = performance.now();
  sender.ws.send(`burst ${MESSAGES} ${SIZE}`);
  await watchdog("burst", Promise.all(clients.map((c, i) => c.until(base[i] + 1 + MESSAGES))), clients);
  const seconds = (performance.now() - start) / 1000;
  return (clients.length * MESSAGES) / seconds;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const ms = (n: number) => `${n.toFixed(3)} ms`;
const runtimeName = isBun
  ? `bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
  : `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`;
console.log(`chorus redis bench on ${runtimeName}: ${CLIENTS} clients, ${MESSAGES} messages of ${SIZE} bytes`);

/**
 * A minimal `chorus.v1` client (as bench/client.ts): answers `hello` with `new`, or `resume` with
 * its credential and positions after a lost connection; acknowledges every 32 data frames and on
 * each heartbeat; checks offsets per stream (a gap: lost, one not above the last: duplicated).
 */
class V1Client implements Receiver {
  ws!: WebSocket;
  /** Data frames received. */
  received = 0;
  /** Per stream key: its epoch and the highest offset received. */
  pos: Record<string, [string, number]> = {};
  /** Offsets skipped and offsets seen again, over every stream. */
  gaps = 0;
  dups = 0;
  resumed = 0;
  fresh = 0;
  /** Lost connection, not welcomed back yet. */
  down = false;
  downAt = 0;
  backAt = 0;
  onData: ((payload: string) => void) | undefined;
  #token = "";
  #streams = new Map<number, [string, string]>();
  #frames = 0;
  #unacked = 0;
  #attempt = 0;
  #closing = false;
  #opened: Promise<void>;
  #want = 0;
  #done: (() => void) | undefined;
  #fail: ((err: Error) => void) | undefined;

  constructor(readonly url: string, readonly reconnect = false) {
    this.#opened = this.#open();
  }

  opened(): Promise<void> {
    return this.#opened;
  }

  until(n: number): Promise<void> {
    if (this.received >= n) return Promise.resolve();
    this.#want = n;
    return new Promise((res, rej) => (this.#done = res, this.#fail = rej));
  }

  close(): void {
    this.#closing = true;
    this.ws.close();
  }

  #open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = this.ws = new WebSocket(this.url, ["chorus.v1"]);
      let welcomed = false;
      ws.onmessage = (e) => {
        if (typeof e.data !== "string") return; // this bench's hubs send text only
        if (this.#frame(ws, e.data) && !welcomed) {
          welcomed = true;
          resolve();
        }
      };
      ws.onclose = (e) => {
        if (this.ws !== ws || this.#closing) return;
        if (!welcomed) {
          reject(new Error("closed before welcome"));
          if (this.down) this.#again(); // a failed attempt: try again, later
          return;
        }
        if (!this.reconnect) {
          this.#fail?.(new Error(`a chorus.v1 connection was closed: ${e.code} ${e.reason}`));
          return;
        }
        this.down = true;
        this.downAt = performance.now();
        this.#again();
      };
      ws.onerror = () => {};
    });
  }

  /** Full jitter, as chorus/client (MAX_DELAY 0: at once). */
  #again(): void {
    const delay = MAX_DELAY === 0
      ? 0
      : Math.min(MAX_DELAY, MIN_DELAY + Math.random() * Math.min(MAX_DELAY, MIN_DELAY * 2 ** this.#attempt));
    this.#attempt++;
    setTimeout(() => this.#open().catch(() => {}), delay);
  }

  #ack(ws: WebSocket): void {
    this.#unacked = 0;
    ws.send(`a${this.#frames.toString(36)}`);
  }

  /** Handles a frame; true on the welcome. */
  #frame(ws: WebSocket, frame: string): boolean {
    const kind = frame.charCodeAt(0);
    if (kind === 109) { // m<stream id>.<offset>;<payload>
      const dot = frame.indexOf(".", 1);
      const end = frame.indexOf(";", dot);
      const [key, epoch] = this.#streams.get(parseInt(frame.slice(1, dot), 36))!;
      const n = parseInt(frame.slice(dot + 1, end), 36);
      this.#frames++;
      const had = this.pos[key];
      if (had && had[0] === epoch && n <= had[1]) this.dups++;
      else {
        if (had && had[0] === epoch && n > had[1] + 1) this.gaps += n - had[1] - 1;
        this.pos[key] = [epoch, n];
      }
      if (++this.#unacked >= 32) this.#ack(ws);
      this.received++;
      this.onData?.(frame.slice(end + 1));
      if (this.#done && this.received >= this.#want) {
        const done = this.#done;
        this.#done = undefined;
        done();
      }
    } else if (kind === 112) this.#ack(ws); // p: heartbeat
    else if (kind === 123) {
      const m = JSON.parse(frame);
      if (m.t === "hello") {
        this.#streams = new Map();
        this.#frames = 0;
        ws.send(this.#token ? JSON.stringify({ t: "resume", token: this.#token, pos: this.pos }) : '{"t":"new"}');
      } else if (m.t === "stream") {
        this.#streams.set(m.id, [m.key, m.epoch]);
        const had = this.pos[m.key];
        if (m.from !== undefined && !(had && had[0] === m.epoch && had[1] >= m.from)) {
          this.pos[m.key] = [m.epoch, m.from];
        }
      } else if (m.t === "welcome") {
        this.#token = m.token;
        if (!m.resumed) this.pos = {};
        if (this.down) {
          this.down = false;
          this.backAt = performance.now();
          this.#attempt = 0;
          if (m.resumed) this.resumed++;
          else this.fresh++;
        }
        return true;
      }
    }
    return false;
  }
}

async function connectV1(url: string, n: number, reconnect = false): Promise<V1Client[]> {
  const clients = Array.from({ length: n }, () => new V1Client(url, reconnect));
  await watchdog("connect (chorus.v1)", Promise.all(clients.map((c) => c.opened())), clients, 30_000);
  return clients;
}

/** bench/proxy.ts in a child process of this runtime, in front of `target`. */
async function startProxy(target: number) {
  const [cmd, args] = runtimeCmd(new URL("./proxy.ts", import.meta.url).pathname);
  const child = spawn(cmd, [...args, String(target)], { stdio: ["pipe", "pipe", "inherit"] });
  const waiting: ((msg: Record<string, unknown>) => void)[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => waiting.shift()?.(JSON.parse(line)));
  const next = () => new Promise<Record<string, unknown>>((res) => waiting.push(res));
  const port = Number((await next()).port);
  const exited = new Promise<void>((res) => child.on("exit", () => res()));
  return {
    port,
    async target(port: number): Promise<void> {
      const answer = next();
      child.stdin!.write(`target ${port}\n`);
      await answer;
    },
    stop(): Promise<void> {
      child.kill("SIGTERM");
      return exited;
    },
  };
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[(xs.length - 1) >> 1];
const sum = (xs: number[]) => xs.reduce((x, y) => x + y, 0);
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(" ");

/** 3. plain pub/sub broadcasts (run A) against recoverable ones through Redis streams (run B). */
async function recoverable(): Promise<void> {
  const rates: Record<"A" | "B", number[]> = { A: [], B: [] };
  let gaps = 0;
  let dups = 0;
  let payloadDups = 0;
  for (let run = 1; run <= RUNS; run++) {
    for (const mode of ["A", "B"] as const) {
      const resume = mode === "B";
      const extra = { PREFIX: `${PREFIX}:${mode}${run}`, ...(resume ? { RESUME: RECOVERABLE_RESUME } : {}) };
      const [a, b] = [await startNode(false, extra), await startNode(false, extra)];
      try {
        const [sender] = await connect(a.port, 1);
        const [probe] = await connect(b.port, 1);
        const half = CLIENTS / 2;
        const onA = resume ? await connectV1(`ws://127.0.0.1:${a.port}/`, half) : await connect(a.port, half);
        const onB = resume
          ? await connectV1(`ws://127.0.0.1:${b.port}/`, CLIENTS - half)
          : await connect(b.port, CLIENTS - half);
        await attached(sender, onA.length + 1);
        await attached(probe, onB.length + 1);
        // the burst's numbers each client got (as a check across epochs: a broadcast that the hub
        // delivered in a local epoch after a failed append, and Redis published after all)
        const got = [...onA, ...onB].map(() => new Set<number>());
        let again = 0;
        if (resume) {
          (onA as V1Client[]).concat(onB as V1Client[]).forEach((c, i) =>
            c.onData = (d) => {
              const n = parseInt(d, 10);
              if (got[i].has(n)) again++;
              else got[i].add(n);
            }
          );
        }
        const rate = await fanOut(sender, [...onA, ...onB]);
        rates[mode].push(rate);
        let lost = 0;
        let twice = 0;
        if (resume) {
          await new Promise((r) => setTimeout(r, 500)); // late copies
          for (const c of [...onA, ...onB] as V1Client[]) {
            lost += c.gaps;
            twice += c.dups;
          }
          gaps += lost;
          dups += twice;
          payloadDups += again;
        }
        console.log(
          `recoverable run ${run} ${mode}: ${fmt(rate)} deliveries/s` +
            (resume ? ` (by offset: lost ${lost}, duplicated ${twice}; by number: ${again} twice)` : "") +
            `; load ${load()}`,
        );
        [sender, probe, ...onA, ...onB].forEach((c) => c.close());
      } finally {
        await Promise.all([a.stop(), b.stop()]);
      }
    }
  }
  const [ma, mb] = [median(rates.A), median(rates.B)];
  console.log(`run B's hubs: resume ${RECOVERABLE_RESUME}`);
  console.log(`plain pub/sub (A):     ${fmt(ma)} deliveries/s (median of ${RUNS})`);
  console.log(
    `recoverable (B):       ${fmt(mb)} deliveries/s (median of ${RUNS}); B/A ${(mb / ma).toFixed(2)}` +
      ` (goal >= 0.5); per run ${rates.B.map((x, i) => (x / rates.A[i]).toFixed(2)).join(", ")}`,
  );
  console.log(
    `recoverable v1 clients: lost ${gaps}, duplicated ${dups} by offset; ${payloadDups} twice by number (all runs)`,
  );
}

/** 4. clients behind a proxy move to another node when theirs is SIGKILLed, and resume. */
async function move(): Promise<void> {
  const summary: string[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const extra = { PREFIX: `${PREFIX}:M${run}`, RESUME: "{}" };
    const [n1, n2] = [await startNode(false, extra), await startNode(false, extra)];
    const proxy = await startProxy(n1.port);
    let clients: V1Client[] = [];
    let sender: Counter | undefined;
    let pace: ReturnType<typeof setInterval> | undefined;
    try {
      clients = await connectV1(`ws://127.0.0.1:${proxy.port}/`, MOVE_CLIENTS, true);
      const seen = clients.map(() => new Set<number>());
      let twice = 0;
      let sent = 0;
      const examples: string[] = [];
      clients.forEach((c, i) =>
        c.onData = (d) => {
          if (!d.startsWith("s ")) return;
          const n = Number(d.slice(2));
          if (seen[i].has(n)) {
            twice++;
            if (examples.length < 5) {
              const c = clients[i];
              examples.push(
                `client ${i} got ${n} again (of ${sent} sent), ${
                  (performance.now() - c.backAt).toFixed(1)
                } ms after its welcome`,
              );
            }
          } else seen[i].add(n);
        }
      );
      [sender] = await connect(n2.port, 1);
      const s = sender;
      const t0 = performance.now();
      pace = setInterval(() => {
        const due = Math.floor(MOVE_RATE * (performance.now() - t0) / 1000);
        while (sent < due) s.ws.send(`s ${++sent}`);
      }, 5);
      await new Promise((r) => setTimeout(r, MOVE_WARM));
      await proxy.target(n2.port);
      const killAt = performance.now();
      await n1.kill();
      const back = () => clients.every((c) => c.backAt > 0);
      while (!back() && performance.now() - killAt < RESUME_TIMEOUT) await new Promise((r) => setTimeout(r, 20));
      const allBack = performance.now();
      await new Promise((r) => setTimeout(r, MOVE_TAIL));
      clearInterval(pace);
      const total = sent;
      // drain: every client has every message (or 10 s passed)
      const drainFrom = performance.now();
      while (seen.some((x) => x.size < total) && performance.now() - drainFrom < 10_000) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const times = clients.filter((c) => c.backAt > 0).map((c) => c.backAt - c.downAt).sort((x, y) => x - y);
      const lost = sum(seen.map((x) => total - x.size));
      const resumed = sum(clients.map((c) => c.resumed));
      const fresh = sum(clients.map((c) => c.fresh));
      const gaps = sum(clients.map((c) => c.gaps));
      const dups = sum(clients.map((c) => c.dups));
      const line = `p50 ${ms(percentile(times, 50))}, p99 ${ms(percentile(times, 99))}, ` +
        `max ${ms(times[times.length - 1] ?? NaN)}; resumed ${resumed}, fresh ${fresh}, ` +
        `not back ${clients.length - times.length}; lost ${lost}, duplicated ${twice} of ${total} each ` +
        `(by offset: ${gaps} skipped, ${dups} again)`;
      console.log(
        `move run ${run}: ${line}; all back ${ms(allBack - killAt)} after the kill; load ${load()}`,
      );
      examples.forEach((e) => console.log(`  duplicate: ${e}`));
      summary.push(line);
    } finally {
      clearInterval(pace);
      clients.forEach((c) => c.close());
      sender?.close();
      await proxy.stop();
      await Promise.all([n1.stop(), n2.stop()]);
    }
  }
  console.log(
    `resume on another node (${MOVE_CLIENTS} clients, ` +
      `${
        MAX_DELAY === 0 ? "at once" : `jitter ${MIN_DELAY}-${MAX_DELAY} ms`
      }, from the lost connection to the welcome):`,
  );
  summary.forEach((l) => console.log(`  ${l}`));
}

/** 5. Redis memory per message kept in a room's stream. */
async function memory(): Promise<void> {
  const prefix = `${PREFIX}:mem`;
  const node = await startNode(false, {
    PREFIX: prefix,
    RESUME: JSON.stringify({ maxMessages: KEEP }),
    MAX_PENDING: String(256 << 20),
  });
  const redis = createClient({ url: REDIS_URL });
  redis.on("error", () => {});
  await redis.connect();
  const used = async () => Number((await redis.info("memory")).match(/used_memory:(\d+)/)![1]);
  const [control] = await connect(node.port, 1);
  try {
    for (const size of MEMORY_SIZES) {
      const room = `m${size}`;
      const key = `${prefix}:st:r:${room}`;
      const meta = `${prefix}:sm:r:${room}`;
      const report: string[] = [];
      for (const [step, top] of [["filled", KEEP], ["trimmed", 2 * KEEP]] as const) {
        const before = await used();
        const t0 = performance.now();
        control.ws.send(`room ${room} ${KEEP} ${size}`);
        const from = performance.now();
        while (Number(await redis.hGet(meta, "s") ?? 0) < top) {
          if (performance.now() - from > 120_000) throw new Error(`${key}: appends did not arrive`);
          await new Promise((r) => setTimeout(r, 20));
        }
        const seconds = (performance.now() - t0) / 1000;
        const after = await used();
        const length = await redis.xLen(key);
        const bytes = Number(await redis.sendCommand(["MEMORY", "USAGE", key, "SAMPLES", "0"]));
        const per = bytes / length;
        report.push(
          `${step} (${fmt(length)} kept): MEMORY USAGE ${fmt(bytes)} B, ${per.toFixed(1)} B per message ` +
            `(+${(per - size).toFixed(1)} over the payload); used_memory ${after - before >= 0 ? "+" : ""}` +
            `${fmt(after - before)} B (${((after - before) / KEEP).toFixed(1)} per append); ` +
            `${fmt(KEEP / seconds)} appends/s`,
        );
      }
      console.log(`memory, ${size}-byte payloads, maxMessages ${KEEP}:`);
      report.forEach((l) => console.log(`  ${l}`));
    }
  } finally {
    control.close();
    await redis.close();
    await node.stop();
  }
}

// 1a. one node, no broker
if (has("fanout")) {
  const node = await startNode(true);
  const clients = await connect(node.port, CLIENTS);
  await attached(clients[0], CLIENTS);
  const rate = await fanOut(clients[0], clients);
  console.log(`single node:           ${fmt(rate)} deliveries/s`);
  clients.forEach((c) => c.close());
  await node.stop();
}

// 1b. two nodes through Redis, broadcasts from node A, half of the clients on each
const [a, b]: (Node | undefined)[] = has("fanout") || has("latency")
  ? [await startNode(false), await startNode(false)]
  : [];
try {
  if (a && b && has("fanout")) {
    const onA = await connect(a.port, CLIENTS / 2);
    const onB = await connect(b.port, CLIENTS - CLIENTS / 2);
    await attached(onA[0], onA.length);
    await attached(onB[0], onB.length);
    const rate = await fanOut(onA[0], [...onA, ...onB]);
    console.log(`two nodes via Redis:   ${fmt(rate)} deliveries/s (half of them cross-node)`);
    [...onA, ...onB].forEach((c) => c.close());
  }

  // 2. latency of one broadcast, local vs cross-node
  if (a && b && has("latency")) {
    const [sender, local] = await connect(a.port, 2);
    const [remote] = await connect(b.port, 1);
    await attached(sender, 2);
    await attached(remote, 1);
    const localMs: number[] = [];
    const remoteMs: number[] = [];
    const added: number[] = [];
    for (let i = 0; i < ROUNDS + 100; i++) {
      const tag = `lat ${i}`;
      const t0 = performance.now();
      let tl = 0;
      let tr = 0;
      await watchdog(
        `latency round ${i}`,
        new Promise<void>((res) => {
          local.onText = (d) => {
            if (d === tag) tl = performance.now();
            if (tl && tr) res();
          };
          remote.onText = (d) => {
            if (d === tag) tr = performance.now();
            if (tl && tr) res();
          };
          sender.ws.send(tag);
        }),
        [sender, local, remote],
        10_000,
      );
      if (i < 100) continue; // warm-up rounds
      localMs.push(tl - t0);
      remoteMs.push(tr - t0);
      added.push(tr - tl);
    }
    for (const xs of [localMs, remoteMs, added]) xs.sort((x, y) => x - y);
    console.log(`local delivery:        p50 ${ms(percentile(localMs, 50))}, p99 ${ms(percentile(localMs, 99))}`);
    console.log(`cross-node delivery:   p50 ${ms(percentile(remoteMs, 50))}, p99 ${ms(percentile(remoteMs, 99))}`);
    console.log(`added by Redis:        p50 ${ms(percentile(added, 50))}, p99 ${ms(percentile(added, 99))}`);
    [sender, local, remote].forEach((c) => c.close());
  }
  await Promise.all([a?.stop(), b?.stop()]);

  if (has("recoverable")) await recoverable();
  if (has("move")) await move();
  if (has("memory")) await memory();
} finally {
  await Promise.all([a?.stop(), b?.stop()]);
  await dropKeys(REDIS_URL, PREFIX);
}
process.exit(0);
