// The harness's TCP proxy, one per client and one per node's Redis link: it cuts both directions
// (a reset) or one (its bytes vanish, the connection stays up), delays, stalls (stops reading), refuses
// new connections, retargets, and — for WebSocket links — loses a welcome: it parses the server's
// frames after the HTTP 101 and cuts the connection instead of forwarding a text frame that starts
// with `{"t":"welcome"`.

import * as net from "node:net";
import { deadline, deferred } from "../_helpers.ts";

const WELCOME = new TextEncoder().encode('{"t":"welcome"');

/** Finds server→client WebSocket frames in a byte stream and holds back a welcome's until it is sure. */
class FrameScanner {
  #head = true;
  #tail: number[] = [];
  #hdr: number[] = [];
  #need = 0;
  #prefix: number[] | undefined;
  #held: Uint8Array[] = [];
  #holding = false;

  /** The bytes to forward now, or "welcome" when a welcome frame begins (`armed` only). */
  scan(chunk: Uint8Array, armed: boolean): Uint8Array[] | "welcome" {
    const out: Uint8Array[] = [];
    let i = 0;
    let from = 0;
    const emit = (to: number) => {
      if (to <= from) return;
      if (this.#holding) this.#held.push(chunk.subarray(from, to));
      else out.push(chunk.subarray(from, to));
      from = to;
    };
    if (this.#head) {
      for (; i < chunk.length && this.#head; i++) {
        this.#tail.push(chunk[i]);
        if (this.#tail.length > 4) this.#tail.shift();
        if (this.#tail.join() === "13,10,13,10") this.#head = false;
      }
    }
    while (i < chunk.length) {
      if (this.#need > 0) {
        const take = Math.min(this.#need, chunk.length - i);
        if (this.#prefix) {
          for (let j = i; j < i + take && this.#prefix.length < WELCOME.length; j++) this.#prefix.push(chunk[j]);
        }
        i += take;
        this.#need -= take;
        if (this.#prefix && (this.#prefix.length === WELCOME.length || this.#need === 0)) {
          const welcome = this.#prefix.length === WELCOME.length && this.#prefix.every((b, k) => b === WELCOME[k]);
          this.#prefix = undefined;
          if (welcome) return "welcome";
          emit(i);
          out.push(...this.#held);
          this.#held = [];
          this.#holding = false;
        }
        continue;
      }
      if (this.#hdr.length === 0 && armed && !this.#holding) {
        emit(i);
        this.#holding = true;
      }
      this.#hdr.push(chunk[i++]);
      const len7 = this.#hdr.length >= 2 ? this.#hdr[1] & 0x7f : -1;
      if (len7 < 0) continue;
      const size = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (this.#hdr[1] & 0x80 ? 4 : 0);
      if (this.#hdr.length < size) continue;
      let length = len7;
      if (len7 === 126) length = this.#hdr[2] * 256 + this.#hdr[3];
      if (len7 === 127) length = this.#hdr.slice(2, 10).reduce((a, b) => a * 256 + b, 0);
      const text = (this.#hdr[0] & 0x0f) === 1;
      this.#hdr = [];
      this.#need = length;
      if (this.#holding && text && length > 0) this.#prefix = [];
      else if (this.#holding) {
        emit(i);
        out.push(...this.#held);
        this.#held = [];
        this.#holding = false;
      }
    }
    emit(i);
    return out;
  }
}

interface Pipe {
  from: net.Socket;
  to: net.Socket;
  blackholed: boolean;
  queue: { due: number; chunk: Uint8Array }[];
  timer: ReturnType<typeof setTimeout> | undefined;
  scanner?: FrameScanner;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  up: Pipe;
  down: Pipe;
}

/** A TCP proxy on 127.0.0.1 in front of a port; `port` is where its clients connect. */
export class ChaosProxy {
  readonly server: net.Server;
  port = 0;
  target: number;
  /** Connections accepted. */
  accepted = 0;
  #ws: boolean;
  #pairs = new Set<Pair>();
  #refusing = false;
  #stalled = false;
  #delay = 0;
  #loseWelcome = false;
  /** Welcomes it cut. */
  welcomesLost = 0;

  private constructor(target: number, ws: boolean) {
    this.target = target;
    this.#ws = ws;
    this.server = net.createServer((client) => this.#accept(client));
  }

  /** Starts a proxy to `target`; `ws`: its connections carry WebSocket (for `loseWelcome`). */
  static async start(target: number, ws = false): Promise<ChaosProxy> {
    const proxy = new ChaosProxy(target, ws);
    const listening = deferred();
    proxy.server.listen(0, "127.0.0.1", () => listening.resolve());
    await deadline(listening.promise, "proxy listening");
    proxy.port = (proxy.server.address() as import("node:net").AddressInfo).port;
    return proxy;
  }

  /** Points new connections at another port. */
  retarget(port: number): void {
    this.target = port;
  }

  /** How many connections are open through it. */
  get size(): number {
    return this.#pairs.size;
  }

  /** Resets every open connection (both sides); with `refuse`, new ones too until `heal()`. */
  cut(refuse = false): void {
    this.#refusing = refuse;
    for (const pair of [...this.#pairs]) this.#drop(pair, true);
  }

  /** The open connections lose every byte going `dir` ("up": to the server) from now on. */
  cutOne(dir: "up" | "down"): void {
    for (const pair of this.#pairs) pair[dir].blackholed = true;
  }

  /** Delays every byte by `ms` (order kept), until `heal()`. */
  delay(ms: number): void {
    this.#delay = ms;
  }

  /** Stops reading from both sides (the peers' writes pile up), new connections too, until `heal()`. */
  stall(): void {
    this.#stalled = true;
    for (const pair of this.#pairs) {
      pair.client.pause();
      pair.upstream.pause();
    }
  }

  /** The next welcome frame to pass (on any connection) is not forwarded: its connection is cut instead. */
  loseWelcome(): void {
    if (!this.#ws) throw new Error("loseWelcome needs a WebSocket proxy");
    this.#loseWelcome = true;
  }

  /** Ends refusing, delaying, stalling and any armed welcome loss; cut-one-way connections stay cut. */
  heal(): void {
    this.#refusing = false;
    this.#delay = 0;
    this.#loseWelcome = false;
    if (this.#stalled) {
      this.#stalled = false;
      for (const pair of this.#pairs) {
        pair.client.resume();
        pair.upstream.resume();
      }
    }
  }

  /** Cuts everything and stops listening. */
  async close(): Promise<void> {
    this.cut();
    const closed = deferred();
    this.server.close(() => closed.resolve());
    await deadline(closed.promise, "proxy close");
  }

  #accept(client: net.Socket): void {
    client.on("error", () => {});
    if (this.#refusing) {
      client.resetAndDestroy();
      return;
    }
    this.accepted++;
    const upstream = net.connect({ port: this.target, host: "127.0.0.1" });
    upstream.on("error", () => {});
    const pipe = (from: net.Socket, to: net.Socket, scan: boolean): Pipe => ({
      from,
      to,
      blackholed: false,
      queue: [],
      timer: undefined,
      scanner: scan ? new FrameScanner() : undefined,
    });
    const pair: Pair = { client, upstream, up: pipe(client, upstream, false), down: pipe(upstream, client, this.#ws) };
    this.#pairs.add(pair);
    if (this.#stalled) {
      client.pause();
      upstream.pause();
    }
    client.on("close", () => this.#drop(pair, false));
    upstream.on("close", () => this.#drop(pair, false));
    client.on("data", (chunk: Uint8Array) => this.#forward(pair, pair.up, chunk));
    upstream.on("data", (chunk: Uint8Array) => this.#forward(pair, pair.down, chunk));
  }

  #forward(pair: Pair, pipe: Pipe, chunk: Uint8Array): void {
    if (pipe.blackholed || !this.#pairs.has(pair)) return;
    let chunks: Uint8Array[] = [chunk];
    if (pipe.scanner) {
      const scanned = pipe.scanner.scan(chunk, this.#loseWelcome);
      if (scanned === "welcome") {
        this.#loseWelcome = false;
        this.welcomesLost++;
        this.#drop(pair, true);
        return;
      }
      chunks = scanned;
    }
    for (const c of chunks) {
      if (this.#delay === 0 && pipe.queue.length === 0) pipe.to.write(c);
      else pipe.queue.push({ due: Date.now() + this.#delay, chunk: Uint8Array.prototype.slice.call(c) });
    }
    this.#flush(pipe);
  }

  #flush(pipe: Pipe): void {
    if (pipe.timer !== undefined) return;
    while (pipe.queue.length > 0 && pipe.queue[0].due <= Date.now()) {
      if (!pipe.blackholed && !pipe.to.destroyed) pipe.to.write(pipe.queue.shift()!.chunk);
      else pipe.queue.shift();
    }
    if (pipe.queue.length === 0) return;
    pipe.timer = setTimeout(() => {
      pipe.timer = undefined;
      this.#flush(pipe);
    }, Math.max(1, pipe.queue[0].due - Date.now()));
  }

  #drop(pair: Pair, reset: boolean): void {
    if (!this.#pairs.delete(pair)) return;
    for (const pipe of [pair.up, pair.down]) {
      clearTimeout(pipe.timer);
      pipe.queue = [];
    }
    if (reset) {
      pair.client.resetAndDestroy();
      pair.upstream.resetAndDestroy();
    } else {
      pair.client.destroy();
      pair.upstream.destroy();
    }
  }
}
