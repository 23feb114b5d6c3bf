// A chorus.v1 peer at the frame level, for testing the hub's side of the protocol exactly
// (what chorus/client does for real users). It never acknowledges on its own: the test says when.

import { decodeFrame, encodeAck, encodeControl, encodeData, PROTOCOL, type WelcomeMessage } from "../src/protocol.ts";
import { deadline, deferred } from "./_helpers.ts";

/** A message the peer received: its offset and payload. */
export interface Numbered {
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
  #seq = 0;
  #waiters: { check: () => boolean; resolve: () => void }[] = [];

  /**
   * Opens a connection offering chorus.v1 and sends `request` once the hub says hello.
   * @param request `{ t: "new" }` or a resume.
   */
  constructor(url: string, request: { t: "new" } | { t: "resume"; token: string; last: number }) {
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
        if (frame.message.t === "hello") this.ws.send(encodeControl(request));
        else if (frame.message.t === "welcome") welcome.resolve(frame.message);
      } else if (frame.kind === "data") {
        const p = frame.payload;
        this.got.push({ n: frame.n, data: typeof p === "string" ? p : [...p] });
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

  /** Resumes with a credential and waits for the welcome. */
  static async resume(url: string, token: string, last: number): Promise<{ peer: V1Peer; welcome: WelcomeMessage }> {
    const peer = new V1Peer(url, { t: "resume", token, last });
    return { peer, welcome: await deadline(peer.welcome, "welcome") };
  }

  /** The highest offset received. */
  get last(): number {
    return this.got.length ? this.got[this.got.length - 1].n : 0;
  }

  /** The payloads received, in order. */
  get texts(): (string | number[])[] {
    return this.got.map((m) => m.data);
  }

  /** Sends a numbered message (the next number, or the one given). */
  send(data: string | Uint8Array, n = ++this.#seq): void {
    this.ws.send(encodeData(n, data));
  }

  /** Acknowledges everything received. */
  ack(n = this.last): void {
    this.ws.send(encodeAck(n));
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
