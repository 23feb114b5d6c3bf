/**
 * A load-generator process of the benchmark (run by Bun; Deno works too). The orchestrator
 * (bench/main.ts, bench/peers.ts) starts several and steers them through stdin; each answers with JSON lines.
 *
 * Config (argv, JSON): `url`, `scenario`, `conns` (topic per connection), `senders` (indexes
 * of the connections that send), `kind` (b, r or e), `window`, `pad`, `concurrency`, and for
 * resumable sessions `v1`, `rate`, `reconnect`, and `engineIo` against Socket.IO (see {@linkcode WorkerConfig}).
 *
 * Commands: `go <durationMs> <maxPerSender>` → `{"t":"sent"}` (early on `stop`); `expect <json>`
 * → `{"t":"done"}`; `back <timeoutMs>` → `{"t":"back"}` once every connection that was lost is
 * back (with `reconnect`); `quit`. A `connect` scenario opens and closes its connections on `go`
 * and reports the rate.
 *
 * A `v1` connection is a minimal `chorus.v1` speaker, as cheap as we could make it: it answers
 * `hello` with `new` (or `resume` with its credential and last offset after a lost connection),
 * strips the `m<offset>;` header of data frames, acknowledges every 32 messages and on each
 * heartbeat `p`, numbers what it sends, and checks every delivery: an offset that does not grow
 * (duplicate or out of order), a sender's sequence number that repeats (duplicate) or skips.
 *
 * @module
 */

import process from "node:process";
import { createInterface } from "node:readline";
import { bucketOf, BUCKETS, now, toSparse } from "./stats.ts";
import { EngineIoSocket } from "./_engine_io.ts";

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
  /** Connections speak `chorus.v1` (resumable sessions). */
  v1?: boolean;
  /** Messages per second per sender, on a timer (0 or absent: `window` messages in flight). */
  rate?: number;
  /** Reconnect a lost connection with full-jitter backoff and resume (chorus/client's rule). */
  reconnect?: { minDelay: number; maxDelay: number };
  /** Connections speak Socket.IO (engine.io v4 over a WebSocket; bench/_engine_io.ts). */
  engineIo?: boolean;
}

/** ack every this many data frames (and on each heartbeat) */
const ACK_EVERY = 32;

interface Conn {
  ws: WebSocket | undefined;
  topic: string;
  received: number;
  expected: number;
  /** Sender id as it appears in messages ("" when not a sender). */
  id: string;
  sent: number;
  inflight: number;
  // chorus.v1
  /** Per stream key: its epoch and the highest offset received (the position a resume sends). */
  pos: Record<string, [string, number]>;
  /** This connection's stream declarations: id → key and epoch. */
  streams: Map<number, [string, string]>;
  /** Data frames received on this connection (what an ack counts). */
  frames: number;
  /** Data frames since the last ack. */
  unacked: number;
  /** Sequence number of the last message sent. */
  seq: number;
  token: string;
  /** Deliveries seen before (by the sender's sequence number). */
  dups: number;
  /** The last sequence number seen from each sender (by sender id). */
  lastSeq: Map<string, number>;
  /** Lost connection, not yet welcomed back. */
  down: boolean;
  downAt: number;
  backAt: number;
  attempt: number;
  welcomed: (() => void) | undefined;
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
// chorus.v1 checks, over all connections
let duplicates = 0; // a sender's sequence number seen again
let disorder = 0; // an offset that did not grow
let skipped = 0; // a sender's sequence number that skipped some (lost, or out of order)
let resumed = 0;
let fresh = 0;
let attempts = 0;
let down = 0;
let onBack: (() => void) | undefined;

const conns: Conn[] = config.conns.map((topic) => ({
  ws: undefined,
  topic,
  received: 0,
  expected: 0,
  id: "",
  sent: 0,
  inflight: 0,
  pos: {},
  streams: new Map(),
  frames: 0,
  unacked: 0,
  seq: 0,
  token: "",
  dups: 0,
  lastSeq: new Map(),
  down: false,
  downAt: 0,
  backAt: 0,
  attempt: 0,
  welcomed: undefined,
}));
for (const i of config.senders) conns[i].id = `${config.worker}.${i}`;

// A message: kind, send time (17 characters: epoch ms with 3 decimals), sender id, seq, padding.
function send(c: Conn): void {
  c.sent++;
  c.inflight++;
  const msg = `${config.kind}${now().toFixed(3)} ${c.id} ${c.sent}${pad}`;
  c.ws!.send(config.v1 ? `m0.${(++c.seq).toString(36)};${msg}` : msg);
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
    if (running && c.sent < maxPerSender && !config.rate) send(c);
    if (c.sent >= maxPerSender && c.inflight === 0) senderStopped();
  }
  if (remaining > 0 && c.received <= c.expected && --remaining === 0) onDrained?.();
}

function ack(c: Conn, ws: WebSocket): void {
  c.unacked = 0;
  ws.send(`a${c.frames.toString(36)}`);
}

/** A `chorus.v1` frame: data (checked, then as a plain delivery), heartbeat, handshake; acks from the hub are ignored. */
function receiveV1(c: Conn, ws: WebSocket, frame: string): void {
  const kind = frame.charCodeAt(0);
  if (kind === 109) { // m<stream id>.<offset>;<payload>
    const dot = frame.indexOf(".", 1);
    const end = frame.indexOf(";", dot);
    const stream = c.streams.get(parseInt(frame.slice(1, dot), 36))!;
    const n = parseInt(frame.slice(dot + 1, end), 36);
    c.frames++;
    const had = c.pos[stream[0]];
    if (had && had[0] === stream[1] && n <= had[1]) disorder++;
    else c.pos[stream[0]] = [stream[1], n];
    const data = frame.slice(end + 1);
    // the payload: kind, 17 characters of time, space, sender id, space, sequence number, padding
    const idEnd = data.indexOf(" ", 19);
    const sender = data.slice(19, idEnd);
    const seq = Number(data.slice(idEnd + 1, data.indexOf(" ", idEnd + 1)));
    const last = c.lastSeq.get(sender) ?? 0;
    if (seq <= last) {
      duplicates++;
      c.dups++;
    } else {
      if (seq !== last + 1) skipped += seq - last - 1;
      c.lastSeq.set(sender, seq);
    }
    if (++c.unacked >= ACK_EVERY) ack(c, ws);
    receive(c, data);
  } else if (kind === 112) ack(c, ws); // p: heartbeat
  else if (kind === 123) {
    const m = JSON.parse(frame) as {
      t: string;
      token: string;
      resumed: boolean;
      id: number;
      key: string;
      epoch: string;
      from?: number;
    };
    if (m.t === "hello") {
      c.streams = new Map();
      c.frames = 0;
      ws.send(c.token ? JSON.stringify({ t: "resume", token: c.token, pos: c.pos }) : '{"t":"new"}');
    } else if (m.t === "stream") {
      c.streams.set(m.id, [m.key, m.epoch]);
      const had = c.pos[m.key];
      if (m.from !== undefined && !(had && had[0] === m.epoch && had[1] >= m.from)) c.pos[m.key] = [m.epoch, m.from];
    } else if (m.t === "welcome") {
      c.token = m.token;
      if (!m.resumed) { // a new session: numbers from 1, positions anew
        c.seq = 0;
        c.pos = {};
      }
      if (c.down) {
        c.down = false;
        c.backAt = now();
        c.attempt = 0;
        if (m.resumed) resumed++;
        else fresh++;
        if (--down === 0) onBack?.();
      }
      c.welcomed?.();
    }
  }
}

function open(c: Conn): Promise<void> {
  return new Promise((resolve, reject) => {
    const url = config.rooms ? `${config.url}?room=${encodeURIComponent(c.topic)}` : config.url;
    // a Socket.IO connection offers the part of WebSocket used here
    const ws = config.engineIo
      ? new EngineIoSocket(url) as unknown as WebSocket
      : config.v1
      ? new WebSocket(url, ["chorus.v1"])
      : new WebSocket(url);
    c.ws = ws;
    let ready = false;
    const opened = () => {
      ready = true;
      resolve();
    };
    if (config.v1) {
      c.welcomed = opened;
      ws.onmessage = (e) => receiveV1(c, ws, e.data as string);
    } else {
      ws.onopen = opened;
      ws.onmessage = (e) => receive(c, e.data as string);
    }
    ws.onerror = () => {
      if (!ready) reject(new Error("connection failed"));
    };
    ws.onclose = () => {
      if (c.ws !== ws) return;
      if (!ready) {
        reject(new Error("closed before open"));
        if (c.down) reconnect(c); // a failed attempt: try again, later
        return;
      }
      if (!config.reconnect) return; // a loss the drain phase reports
      c.down = true;
      c.downAt = now();
      down++;
      reconnect(c);
    };
  });
}

/** Full jitter, as chorus/client: min(max, min + random() * min(max, min * 2 ** attempt)). */
function reconnect(c: Conn): void {
  const { minDelay, maxDelay } = config.reconnect!;
  const delay = Math.min(maxDelay, minDelay + Math.random() * Math.min(maxDelay, minDelay * 2 ** c.attempt));
  c.attempt++;
  attempts++;
  setTimeout(() => open(c).catch(() => {}), delay);
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
}

async function main(): Promise<void> {
  // Receivers connect first, senders last (on the orchestrator's word, once every worker's
  // receivers are in): servers deliver in connection order, so a sender sees its own message
  // after the others got theirs, and its window of messages in flight really bounds the load.
  const senders = new Set(config.senders);
  if (config.scenario !== "connect") await openAll(conns.filter((_, i) => !senders.has(i)));
  out({ t: "open", n: conns.length });
  const lines = createInterface({ input: process.stdin });
  // commands run as they come: `stop` and `back` arrive while `go` is under way
  lines.on("line", (line) => void command(line));
  lines.on("close", () => process.exit(0)); // stdin closed: the orchestrator is gone
}

async function command(line: string): Promise<void> {
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
    let pace: ReturnType<typeof setInterval> | undefined;
    if (config.rate) {
      // a steady rate: every 10 ms, catch up with rate × elapsed
      const rate = config.rate;
      pace = setInterval(() => {
        const due = Math.floor(rate * (now() - goAt) / 1000);
        for (const c of senders) while (running && c.sent < due && c.sent < maxPerSender) send(c);
      }, 10);
    } else {
      for (const c of senders) for (let w = 0; w < config.window && c.sent < maxPerSender; w++) send(c);
    }
    const timer = setTimeout(() => {
      running = false;
      onSendersDone?.();
    }, duration);
    await done;
    clearTimeout(timer);
    clearInterval(pace);
    running = false;
    const sent: Record<string, number> = {};
    for (const c of senders) sent[c.topic] = (sent[c.topic] ?? 0) + c.sent;
    out({ t: "sent", sent });
  } else if (cmd === "stop") {
    running = false;
    onSendersDone?.();
  } else if (cmd === "back") {
    // every connection that was lost is welcomed back (or the time is up)
    if (down > 0) {
      await new Promise<void>((resolve) => {
        onBack = resolve;
        setTimeout(resolve, Number(a));
      });
    }
    const lost = conns.filter((c) => c.downAt > 0);
    out({
      t: "back",
      back: lost.filter((c) => !c.down).map((c) => c.backAt),
      downAt: lost.map((c) => c.downAt),
      notBack: down,
      neverLost: conns.length - lost.length,
      resumed,
      fresh,
      attempts,
    });
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
      lost += Math.max(0, c.expected - (c.received - c.dups));
      extra += c.dups + Math.max(0, c.received - c.dups - c.expected);
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
      duplicates,
      disorder,
      skipped,
    });
  } else if (cmd === "quit") {
    process.exit(0);
  }
}

main();
