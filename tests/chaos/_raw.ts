// Raw chorus.v1 peers of the harness, written against src/protocol.ts alone: a resuming client that
// acknowledges by stream position (`ack()` is the one place that says how), and one-shot attackers
// that present a credential (replayed, used, current, empty or forged) and record what they got.

import {
  decodeFrame,
  encodeControl,
  encodeData,
  encodeReceived,
  type Position,
  PROTOCOL,
  type RequestMessage,
  type WelcomeMessage,
} from "../../src/protocol.ts";
import { deadline, deferred } from "../_helpers.ts";
import { now, type Presented } from "./_events.ts";
import { type Record, recordMessage, type RunClient } from "./_clients.ts";

/** Close codes after which the raw client reconnects (those of chorus-ws/client, and a lost connection). */
const AGAIN = new Set([0, 1001, 1005, 1006, 1011, 1012, 1013, 1014]);

/**
 * Tells the hub what this connection received: per stream id, the highest offset since the last
 * time. The one acknowledgement of the raw peers (a protocol change is an edit here).
 */
function ack(ws: WebSocket, moved: Map<number, number>): void {
  if (ws.readyState !== WebSocket.OPEN) return;
  ws.send(encodeReceived(moved));
  moved.clear();
}

/** A resuming chorus.v1 client on a raw WebSocket, through its own proxy. */
export class RawClient implements RunClient {
  readonly name: string;
  readonly used: string[] = [];
  current: string | undefined;
  onResumed: ((used: string) => void) | undefined;
  quiet = false;
  stopped = false;
  open = false;
  #url: string;
  #record: Record;
  #ws: WebSocket | undefined;
  #conns = 0;
  #closing = false;
  #pos: Position = {};
  #streams = new Map<number, [key: string, epoch: string]>();
  #moved = new Map<number, number>();
  #seq = 1;
  #sent: { n: number; data: string }[] = [];
  #queue: string[] = [];
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #seenAt = 0;
  /** Data frames it had already received (sent again by the hub; dropped by position). */
  again = 0;

  constructor(name: string, url: string, record: Record) {
    this.name = name;
    this.#url = url;
    this.#record = record;
    this.#connect();
  }

  send(n: number): boolean {
    if (this.stopped) return false;
    this.#transmit(`e ${n}`);
    return true;
  }

  close(): void {
    this.#closing = true;
    this.stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    if (this.#ws && this.#ws.readyState <= WebSocket.OPEN) this.#ws.close(1000);
  }

  #later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
  }

  #transmit(data: string): void {
    const ws = this.#ws;
    if (!this.open || !ws) {
      this.#queue.push(data);
      return;
    }
    const n = this.#seq++;
    this.#sent.push({ n, data });
    ws.send(encodeData(0, n, data));
  }

  #connect(): void {
    const ws = new WebSocket(this.#url, [PROTOCOL]);
    const conn = `${this.name}#${++this.#conns}`;
    this.#ws = ws;
    this.#streams = new Map();
    const moved = this.#moved = new Map();
    let presented: string | undefined;
    let hb = 0;
    this.#later(3000, () => ws === this.#ws && !this.open && ws.close());
    ws.onmessage = (e) => {
      if (ws !== this.#ws) return;
      this.#seenAt = Date.now();
      const frame = decodeFrame(e.data as string | ArrayBuffer);
      if (!frame) return;
      if (frame.kind === "control") {
        const m = frame.message;
        if (m.t === "hello") {
          presented = this.current;
          const request: RequestMessage = presented ? { t: "resume", token: presented, pos: this.#pos } : { t: "new" };
          const kind = presented ? "client" : "new";
          this.#record({ k: "present", t: now(), conn, who: this.name, kind, token: presented ?? "" });
          ws.send(encodeControl(request));
        } else if (m.t === "welcome") {
          hb = m.hb;
          this.#welcomed(ws, conn, m, presented);
          if (hb > 0) this.#watch(ws, 2 * hb + 1000);
        } else if (m.t === "stream") {
          this.#streams.set(m.id, [m.key, m.epoch]);
          const had = Object.hasOwn(this.#pos, m.key) ? this.#pos[m.key] : undefined;
          if (m.from !== undefined && !(had && had[0] === m.epoch && had[1] >= m.from)) {
            this.#pos[m.key] = [m.epoch, m.from];
          }
        } else if (m.t === "end") delete this.#pos[m.key];
      } else if (frame.kind === "data") {
        const stream = this.#streams.get(frame.id);
        if (!stream) return ws.close();
        const [key, epoch] = stream;
        moved.set(frame.id, frame.n);
        if (moved.size === 1) this.#later(100, () => ack(ws, moved));
        const had = Object.hasOwn(this.#pos, key) ? this.#pos[key] : undefined;
        if (had && had[0] === epoch && frame.n <= had[1]) {
          this.again++;
          return;
        }
        this.#pos[key] = [epoch, frame.n];
        if (typeof frame.payload === "string") recordMessage(this.#record, this.name, frame.payload);
      } else if (frame.kind === "ack") {
        this.#sent = this.#sent.filter((o) => o.n > frame.n);
      } else if (frame.kind === "ping") ack(ws, moved);
    };
    ws.onclose = (e) => {
      if (ws !== this.#ws) return;
      this.open = false;
      this.#ws = undefined;
      if (this.#closing) return;
      if (!AGAIN.has(e.code)) {
        this.stopped = true;
        this.#record({ k: "stop", t: now(), c: this.name, code: e.code });
        return;
      }
      this.#later(20 + Math.random() * 180, () => this.#connect());
    };
  }

  #welcomed(ws: WebSocket, conn: string, w: WelcomeMessage, presented: string | undefined): void {
    this.#record({ k: "welcome", t: now(), conn, resumed: w.resumed, token: w.token });
    this.current = w.token || undefined;
    if (w.resumed && presented) {
      this.used.push(presented);
      const hook = this.onResumed;
      this.onResumed = undefined;
      hook?.(presented);
    }
    ack(ws, this.#moved); // confirms the welcome: the presented credential is retired
    this.open = true;
    if (w.resumed) this.#sent = this.#sent.filter((o) => o.n > w.recv);
    else {
      this.#pos = {};
      this.#seq = 1;
      this.#queue = [...this.#sent.map((o) => o.data), ...this.#queue];
      this.#sent = [];
    }
    for (const o of this.#sent) ws.send(encodeData(0, o.n, o.data));
    this.#record({ k: "open", t: now(), c: this.name, resumed: w.resumed });
    const queue = this.#queue;
    this.#queue = [];
    for (const data of queue) this.#transmit(data);
    if (!this.quiet) this.#transmit("who");
  }

  /** Gives up a connection that has been silent for `ms` (as chorus-ws/client does). */
  #watch(ws: WebSocket, ms: number): void {
    this.#later(Math.max(10, this.#seenAt + ms - Date.now()), () => {
      if (ws !== this.#ws) return;
      if (Date.now() - this.#seenAt >= ms) ws.close();
      else this.#watch(ws, ms);
    });
  }
}

/**
 * One attacker: connects straight to a node, presents `token` (with an empty position), and records
 * the welcome; one that got a session asks whose ("who") before closing it cleanly. A 1013 ("not
 * yet") is tried again, up to three times.
 */
export async function attack(
  port: number,
  who: string,
  kind: Presented,
  token: string,
  record: Record,
): Promise<void> {
  for (let attempt = 0; attempt < 4; attempt++) {
    const conn = `${who}#${attempt + 1}`;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/?name=${who}`, [PROTOCOL]);
    const done = deferred<number>();
    let welcome: WelcomeMessage | undefined;
    const streams = new Map<number, string>();
    ws.onmessage = (e) => {
      const frame = decodeFrame(e.data as string | ArrayBuffer);
      if (frame?.kind === "control") {
        const m = frame.message;
        if (m.t === "hello") {
          record({ k: "present", t: now(), conn, who, kind, token });
          ws.send(encodeControl({ t: "resume", token, pos: {} }));
        } else if (m.t === "welcome") {
          welcome = m;
          record({ k: "welcome", t: now(), conn, resumed: m.resumed, token: m.token });
          if (m.resumed && m.token) ws.send(encodeData(0, m.recv + 1, "who"));
          else ws.close(1000);
        } else if (m.t === "stream") streams.set(m.id, m.key);
      } else if (frame?.kind === "data" && typeof frame.payload === "string" && frame.payload.startsWith("W ")) {
        const [, sid, name] = frame.payload.split(" ");
        record({ k: "who", t: now(), conn, sid, name: name ?? "" });
        ws.close(1000);
      }
    };
    ws.onclose = (e) => done.resolve(e.code);
    ws.onerror = () => {};
    let code: number;
    try {
      code = await deadline(done.promise, "an attacker's connection", 4000);
    } catch {
      ws.close();
      code = await deadline(done.promise, "an attacker's close", 2000).catch(() => 0);
    }
    if (welcome || code !== 1013) return;
    await new Promise((r) => setTimeout(r, 150));
  }
}
