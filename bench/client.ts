/**
 * A load-generator process of the benchmark (run by Bun; Deno works too). The orchestrator
 * (bench/main.ts) starts several and steers them through stdin; each answers with JSON lines.
 *
 * Config (argv, JSON): `url`, `scenario`, `conns` (topic per connection), `senders` (indexes
 * of the connections that send), `kind` (b, r or e), `window`, `pad`, `concurrency`.
 *
 * Commands: `go <durationMs> <maxPerSender>` → `{"t":"sent"}`; `expect <json>` → `{"t":"done"}`;
 * `quit`. A `connect` scenario opens and closes its connections on `go` and reports the rate.
 *
 * @module
 */

import process from "node:process";
import { createInterface } from "node:readline";
import { bucketOf, BUCKETS, now, toSparse } from "./stats.ts";

/** What the orchestrator tells a worker. */
export interface WorkerConfig {
  /** ws:// URL of the server (without query). */
  url: string;
  /** Scenario name: only `connect` behaves differently. */
  scenario: string;
  /** One entry per connection: its topic (the room, `all`, or its own name for echo). */
  conns: string[];
  /** Indexes into `conns` of the connections that send. */
  senders: number[];
  /** Message kind: `b` broadcast, `r` room, `e` echo. */
  kind: string;
  /** Messages in flight per sender. */
  window: number;
  /** Padding characters per message. */
  pad: number;
  /** Connections opened at once. */
  concurrency: number;
  /** Worker number, part of sender ids. */
  worker: number;
  /** How long to wait for the last deliveries. */
  drainMs: number;
  /** Whether connections join their topic as a room (`/?room=<topic>`). */
  rooms: boolean;
}

interface Conn {
  ws: WebSocket | undefined;
  topic: string;
  received: number;
  expected: number;
  /** Sender id as it appears in messages ("" when not a sender). */
  id: string;
  sent: number;
  inflight: number;
}

const config = JSON.parse(process.argv[process.argv.length - 1]) as WorkerConfig;
const out = (msg: unknown): void => void process.stdout.write(JSON.stringify(msg) + "\n");
const hist = new Uint32Array(BUCKETS);
const pad = " " + "x".repeat(config.pad);
let running = false;
let maxPerSender = Infinity;
let goAt = 0;
let firstRecv = 0;
let lastRecv = 0;
let remaining = -1; // deliveries still expected once `expect` arrived
let onDrained: (() => void) | undefined;
let sendersActive = 0;
let onSendersDone: (() => void) | undefined;

const conns: Conn[] = config.conns.map((topic) => ({
  ws: undefined,
  topic,
  received: 0,
  expected: 0,
  id: "",
  sent: 0,
  inflight: 0,
}));
for (const i of config.senders) conns[i].id = `${config.worker}.${i}`;

// A message: kind, send time (17 characters: epoch ms with 3 decimals), sender id, seq, padding.
function send(c: Conn): void {
  c.sent++;
  c.inflight++;
  c.ws!.send(`${config.kind}${now().toFixed(3)} ${c.id} ${c.sent}${pad}`);
}

function senderStopped(): void {
  if (--sendersActive === 0) onSendersDone?.();
}

function receive(c: Conn, data: string): void {
  const t = now();
  c.received++;
  hist[bucketOf(t - Number(data.substring(1, 18)))]++;
  if (firstRecv === 0) firstRecv = t;
  lastRecv = t;
  if (c.id !== "" && data.startsWith(c.id, 19) && data.charCodeAt(19 + c.id.length) === 32) {
    c.inflight--;
    if (running && c.sent < maxPerSender) send(c);
    if (c.sent >= maxPerSender && c.inflight === 0) senderStopped();
  }
  if (remaining > 0 && c.received <= c.expected && --remaining === 0) onDrained?.();
}

function open(c: Conn): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(config.rooms ? `${config.url}?room=${encodeURIComponent(c.topic)}` : config.url);
    c.ws = ws;
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("connection failed"));
    ws.onclose = () => reject(new Error("closed before open"));
    ws.onmessage = (e) => receive(c, e.data as string);
  });
}

/** Runs `task` over `items` with at most `limit` at once. */
async function pool<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await task(items[next++]);
  });
  await Promise.all(lanes);
}

async function connectChurn(): Promise<void> {
  let opened = 0;
  let failed = 0;
  let lastOpen = 0;
  goAt = now();
  await pool(conns, config.concurrency, (c) =>
    new Promise<void>((resolve) => {
      const ws = new WebSocket(config.url);
      ws.onopen = () => {
        opened++;
        lastOpen = now();
        ws.close();
      };
      ws.onerror = () => failed++;
      ws.onclose = () => resolve();
      c.ws = ws;
    }));
  out({ t: "done", opened, failed, goAt, lastOpen });
}

async function openAll(list: Conn[]): Promise<void> {
  try {
    await pool(list, config.concurrency, open);
  } catch (err) {
    out({ t: "error", error: String(err) });
    process.exit(1);
  }
  // once open, a close is a loss the drain phase reports
  for (const c of list) c.ws!.onclose = null;
}

async function main(): Promise<void> {
  // Receivers connect first, senders last (on the orchestrator's word, once every worker's
  // receivers are in): servers deliver in connection order, so a sender sees its own message
  // after the others got theirs, and its window of messages in flight really bounds the load.
  const senders = new Set(config.senders);
  if (config.scenario !== "connect") await openAll(conns.filter((_, i) => !senders.has(i)));
  out({ t: "open", n: conns.length });
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const [cmd, a, b] = line.split(" ");
    if (cmd === "senders") {
      await openAll(config.senders.map((i) => conns[i]));
      out({ t: "open", n: conns.length });
    } else if (cmd === "go" && config.scenario === "connect") await connectChurn();
    else if (cmd === "go") {
      const duration = Number(a);
      maxPerSender = b === "inf" ? Infinity : Number(b);
      goAt = now();
      running = true;
      const senders = config.senders.map((i) => conns[i]);
      sendersActive = senders.length;
      const done = new Promise<void>((resolve) => {
        onSendersDone = resolve;
        if (sendersActive === 0 && maxPerSender !== Infinity) resolve();
      });
      for (const c of senders) for (let w = 0; w < config.window && c.sent < maxPerSender; w++) send(c);
      const timer = setTimeout(() => {
        running = false;
        onSendersDone?.();
      }, duration);
      await done;
      clearTimeout(timer);
      running = false;
      const sent: Record<string, number> = {};
      for (const c of senders) sent[c.topic] = (sent[c.topic] ?? 0) + c.sent;
      out({ t: "sent", sent });
    } else if (cmd === "expect") {
      const expected = JSON.parse(line.slice(7)) as Record<string, number>;
      let missing = 0;
      for (const c of conns) {
        c.expected = expected[c.topic] ?? 0;
        missing += Math.max(0, c.expected - c.received);
      }
      remaining = missing;
      if (missing > 0) {
        await new Promise<void>((resolve) => {
          onDrained = resolve;
          setTimeout(resolve, config.drainMs);
        });
      }
      let lost = 0;
      let extra = 0;
      let received = 0;
      let expectedTotal = 0;
      for (const c of conns) {
        received += c.received;
        expectedTotal += c.expected;
        lost += Math.max(0, c.expected - c.received);
        extra += Math.max(0, c.received - c.expected);
      }
      out({
        t: "done",
        received,
        expected: expectedTotal,
        lost,
        extra,
        goAt,
        firstRecv,
        lastRecv,
        hist: toSparse(hist),
      });
    } else if (cmd === "quit") {
      process.exit(0);
    }
  }
  process.exit(0); // stdin closed: the orchestrator is gone
}

main();
