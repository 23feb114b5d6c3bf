// A chorus.v1 peer at the frame level, for testing the hub's side of the protocol exactly
// (what chorus-ws/client does for real users). It never acknowledges on its own: the test says when.

import {
  decodeFrame,
  encodeAck,
  encodeControl,
  encodeData,
  type Position,
  PROTOCOL,
  type RequestMessage,
  type WelcomeMessage,
} from "../src/protocol.ts";
import { deadline, deferred } from "./_helpers.ts";

/** A message the peer received: its stream's key, its offset and its payload. */
export interface Numbered {
  key: string;
  n: number;
  data: string | number[];
}

export class V1Peer {
  readonly ws: WebSocket;
  readonly welcome: Promise<WelcomeMessage>;
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Numbered messages received, in order. */
  readonly got: Numbered[] = [];
  /** Acks received from the hub (the last sequence number it has). */
  readonly acks: number[] = [];
  pings = 0;
  /** Data frames received on this connection (what an ack counts). */
  frames = 0;
  /** Stream declarations: id → key and epoch. */
  readonly streams = new Map<number, { key: string; epoch: string }>();
  #seq = 0;
  #waiters: { check: () => boolean; resolve: () => void }[] = [];

  /**
   * Opens a connection offering chorus.v1 and sends `request` once the hub says hello.
   * @param request `{ t: "new" }` or a resume.
   */
  constructor(url: string, request: RequestMessage) {
    this.ws = new WebSocket(url, [PROTOCOL]);
    this.ws.binaryType = "arraybuffer";
    const welcome = deferred<WelcomeMessage>();
    const closed = deferred<{ code: number; reason: string }>();
    this.welcome = welcome.promise;
    this.closed = closed.promise;
    this.welcome.catch(() => {});
    this.ws.onclose = (e) => {
      welcome.reject(new Error(`closed before welcome (${e.code})`));
      closed.resolve({ code: e.code, reason: e.reason });
      this.#check();
    };
    this.ws.onmessage = (e) => {
      const frame = decodeFrame(e.data as string | ArrayBuffer);
      if (!frame) throw new Error(`not a chorus.v1 frame: ${String(e.data)}`);
      if (frame.kind === "control") {
        const m = frame.message;
        if (m.t === "hello") this.ws.send(encodeControl(request));
        else if (m.t === "welcome") welcome.resolve(m);
        else if (m.t === "stream") this.streams.set(m.id, { key: m.key, epoch: m.epoch });
      } else if (frame.kind === "data") {
        const p = frame.payload;
        const stream = this.streams.get(frame.id);
        if (!stream) throw new Error(`data of an undeclared stream ${frame.id}`);
        this.frames++;
        this.got.push({ key: stream.key, n: frame.n, data: typeof p === "string" ? p : [...p] });
      } else if (frame.kind === "ack") this.acks.push(frame.n);
      else this.pings++;
      this.#check();
    };
  }

  /** Opens a new session and waits for its welcome. */
  static async open(url: string): Promise<{ peer: V1Peer; welcome: WelcomeMessage }> {
    const peer = new V1Peer(url, { t: "new" });
    return { peer, welcome: await deadline(peer.welcome, "welcome") };
  }

  /** Resumes with a credential and a position, and waits for the welcome. */
  static async resume(url: string, token: string, pos: Position): Promise<{ peer: V1Peer; welcome: WelcomeMessage }> {
    const peer = new V1Peer(url, { t: "resume", token, pos });
    return { peer, welcome: await deadline(peer.welcome, "welcome") };
  }

  /** The position after the first `count` messages received (all by default). */
  position(count = this.got.length): Position {
    const pos: Position = {};
    const epochs = new Map([...this.streams.values()].map((s) => [s.key, s.epoch]));
    for (const m of this.got.slice(0, count)) pos[m.key] = [epochs.get(m.key)!, m.n];
    return pos;
  }

  /** The payloads received, in order. */
  get texts(): (string | number[])[] {
    return this.got.map((m) => m.data);
  }

  /** Sends a numbered message (the next number, or the one given). */
  send(data: string | Uint8Array, n = ++this.#seq): void {
    this.ws.send(encodeData(0, n, data));
  }

  /** Acknowledges the first `count` data frames of this connection (all by default). */
  ack(count = this.frames): void {
    this.ws.send(encodeAck(count));
  }

  /** Resolves once `check()` holds (re-checked on every frame and on close). */
  until(check: () => boolean, what: string, ms = 5000): Promise<void> {
    if (check()) return Promise.resolve();
    const d = deferred();
    this.#waiters.push({ check, resolve: d.resolve });
    return deadline(d.promise, what, ms);
  }

  /** Closes cleanly and waits for the close. */
  async close(code = 1000): Promise<void> {
    if (this.ws.readyState <= WebSocket.OPEN) this.ws.close(code);
    await deadline(this.closed, "v1 peer close");
  }

  #check(): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.check()) return true;
      w.resolve();
      return false;
    });
  }
}
