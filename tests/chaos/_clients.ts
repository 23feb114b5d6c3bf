// The harness's clients: chorus-ws/client through a WebSocket wrapper that observes its frames (the
// credentials it presents and receives), and the app-level messages both kinds of client record.
// The raw chorus.v1 peers are in _raw.ts.

import { type ChorusClient, connect } from "../../src/client.ts";
import { decodeFrame } from "../../src/protocol.ts";
import { type Ev, now } from "./_events.ts";

/** Where clients put what they see. */
export type Record = (e: Ev) => void;

/** What the harness needs of a client of either kind. */
export interface RunClient {
  readonly name: string;
  /** Whether it has a connection that carries messages now. */
  readonly open: boolean;
  /** Whether it stopped for good. */
  readonly stopped: boolean;
  /** The credential of its last welcome (its session's current one). */
  readonly current: string | undefined;
  /** Credentials it presented and was welcomed back with `resumed: true` (used). */
  readonly used: string[];
  /** Called once, with the credential just used, at its next `resumed: true` welcome. */
  onResumed: ((used: string) => void) | undefined;
  /**
   * While true the client sends nothing of its own (no "e", no "who" after an open): an idle
   * client, whose used credential the hub retires only once the client speaks.
   */
  quiet: boolean;
  /** Sends "e <n>"; the harness numbers them. */
  send(n: number): boolean;
  /** Stops it (a clean close: its session ends). */
  close(): void;
}

/** Records an app-level message: "H n", "R room n", "E n", "I sid", "W sid name". */
export function recordMessage(record: Record, c: string, data: string): void {
  const t = now();
  const [kind, a, b] = data.split(" ", 3);
  if (kind === "H") record({ k: "msg", t, c, s: "h", n: Number(a) });
  else if (kind === "R") record({ k: "msg", t, c, s: `r:${a}`, n: Number(b) });
  else if (kind === "E") record({ k: "msg", t, c, s: "e", n: Number(a) });
  else if (kind === "I" || kind === "W") record({ k: "sid", t, c, sid: a });
}

/** A chorus-ws/client client of the run, observed through its WebSocket. */
export class ObservedClient implements RunClient {
  readonly name: string;
  readonly c: ChorusClient;
  current: string | undefined;
  readonly used: string[] = [];
  onResumed: ((used: string) => void) | undefined;
  quiet = false;
  stopped = false;
  #closing = false;

  constructor(name: string, url: string, record: Record) {
    this.name = name;
    // deno-lint-ignore no-this-alias
    const self = this;
    let conns = 0;
    class Observed extends WebSocket {
      readonly conn = `${name}#${++conns}`;
      #presented: string | undefined;
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols);
        // added before the client sets onmessage, so this sees each frame first
        this.addEventListener("message", (e) => {
          if (typeof e.data !== "string" || !e.data.startsWith('{"t":"welcome"')) return;
          const frame = decodeFrame(e.data);
          if (frame?.kind !== "control" || frame.message.t !== "welcome") return;
          const w = frame.message;
          record({ k: "welcome", t: now(), conn: this.conn, resumed: w.resumed, token: w.token });
          self.current = w.token || undefined;
          if (w.resumed && this.#presented) {
            self.used.push(this.#presented);
            const hook = self.onResumed;
            self.onResumed = undefined;
            hook?.(this.#presented);
          }
        });
      }
      override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
        if (typeof data === "string" && data.startsWith('{"t":')) {
          const m = decodeFrame(data);
          if (m?.kind === "control" && (m.message.t === "new" || m.message.t === "resume")) {
            const token = m.message.t === "resume" ? m.message.token : "";
            this.#presented = token || undefined;
            record({ k: "present", t: now(), conn: this.conn, who: name, kind: token ? "client" : "new", token });
          }
        }
        super.send(data as string);
      }
    }
    this.c = connect(url, {
      minDelay: 20,
      maxDelay: 300,
      connectTimeout: 3000,
      maxQueued: 10_000,
      WebSocket: Observed,
    });
    this.c.addEventListener("open", (e) => {
      record({ k: "open", t: now(), c: name, resumed: e.resumed });
      if (!this.quiet) this.c.send("who");
    });
    this.c.addEventListener("message", (e) => {
      if (typeof e.data === "string") recordMessage(record, name, e.data);
    });
    this.c.addEventListener("close", (e) => {
      this.stopped = true;
      if (!this.#closing) record({ k: "stop", t: now(), c: name, code: e.code });
    });
  }

  get open(): boolean {
    return this.c.state === "open";
  }

  send(n: number): boolean {
    return this.c.send(`e ${n}`);
  }

  close(): void {
    this.#closing = true;
    this.c.close();
  }
}
