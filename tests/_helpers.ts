// Shared test helpers: one suite, run by `deno test` and by `bun test`.
// Real servers on port 0, real WebSocket clients; waits are on events, with deadlines.

import * as nodeTest from "node:test";
import * as net from "node:net";
import { Hub, type HubOptions, type Keys } from "../mod.ts";
import { serve, type ServeOptions, type Server } from "../src/serve.ts";
import { type ChorusClient, type ClientOptions, connect } from "../src/client.ts";

/** The runtime running the suite. */
export const runtime: "deno" | "bun" = "Bun" in globalThis ? "bun" : "deno";

interface DenoTest {
  test(def: {
    name: string;
    fn: () => Promise<void> | void;
    ignore?: boolean;
    sanitizeOps?: boolean;
    sanitizeResources?: boolean;
  }): void;
}

/**
 * Declares a test. On Deno it is a `Deno.test` (so the leak checks run); elsewhere `node:test`.
 * `skip` is a reason, shown in the report. `sanitize: false` turns Deno's leak checks off, for
 * tests that share processes and sockets on purpose (a setup test, tests using it, a teardown test).
 */
export function test(
  name: string,
  fn: () => Promise<void> | void,
  opts: { skip?: string | false; sanitize?: false } = {},
): void {
  const deno = (globalThis as { Deno?: DenoTest }).Deno;
  if (deno && runtime === "deno") {
    deno.test({
      name: opts.skip ? `${name} (skipped: ${opts.skip})` : name,
      fn,
      ignore: !!opts.skip,
      // only when asked: Deno's own defaults otherwise
      ...(opts.sanitize === false ? { sanitizeOps: false, sanitizeResources: false } : {}),
    });
  } else nodeTest.test(name, { skip: opts.skip || undefined }, fn);
}

/** Resolves or rejects after `ms`, with a message saying what was awaited. The timer is always cleared. */
export function deadline<T>(promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A promise with its resolve function outside. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Waits until `check` returns true. `check` is re-evaluated whenever `signal.ping()` is called
 * (from a hook), so nothing polls on a timer.
 */
export class Signal {
  #waiters: { check: () => boolean; resolve: () => void }[] = [];

  /** Call from any hook whose effect a test may wait for. */
  ping = (): void => {
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.check()) return true;
      w.resolve();
      return false;
    });
  };

  /** Resolves once `check()` is true. */
  until(check: () => boolean, what: string, ms = 5000): Promise<void> {
    if (check()) return Promise.resolve();
    const d = deferred();
    this.#waiters.push({ check, resolve: d.resolve });
    return deadline(d.promise, what, ms);
  }
}

/** A hub served on a free loopback port, with recorders for its hooks. */
export interface TestServer<K extends Keys> {
  hub: Hub<K>;
  server: Server;
  port: number;
  /** `ws://127.0.0.1:port` + path. */
  wsUrl(path?: string): string;
  /** Re-checked on every connect, disconnect, message, close and error. */
  signal: Signal;
  /** Errors reported to handleError, in order. */
  errors: Error[];
  /** Ids of sessions whose disconnect hook ran, in order (duplicates would show). */
  disconnects: string[];
  /** Shuts the server down (closes the hub first). */
  close(): Promise<void>;
}

/**
 * Starts a hub on port 0. Tests set their own hooks after; `handleError` and
 * `handleDisconnect` are recorded here (a test that replaces them records itself).
 */
export async function startServer<K extends Keys = Keys>(
  hubOptions: HubOptions = {},
  serveOptions: ServeOptions<K> = {},
): Promise<TestServer<K>> {
  const hub = new Hub<K>(hubOptions);
  const signal = new Signal();
  const errors: Error[] = [];
  const disconnects: string[] = [];
  hub.handleError((_s, err) => {
    errors.push(err);
    signal.ping();
  });
  hub.handleDisconnect((s) => {
    disconnects.push(s.id);
    signal.ping();
  });
  hub.handleConnect(() => signal.ping());
  const server = await serve(hub, { port: 0, hostname: "127.0.0.1", ...serveOptions });
  return {
    hub,
    server,
    port: server.port,
    wsUrl: (path = "/") => `ws://127.0.0.1:${server.port}${path}`,
    signal,
    errors,
    disconnects,
    close: () => server.shutdown(),
  };
}

/** A WebSocket client that queues what it receives. */
export class Client {
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  /** Resolves with the close event's code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  #inbox: (string | Uint8Array)[] = [];
  #waiting: ((m: string | Uint8Array) => void) | undefined;

  constructor(url: string, protocols?: string[]) {
    this.ws = new WebSocket(url, protocols);
    this.ws.binaryType = "arraybuffer";
    const opened = deferred();
    const closed = deferred<{ code: number; reason: string }>();
    this.opened = opened.promise;
    this.closed = closed.promise;
    this.ws.onopen = () => opened.resolve();
    this.ws.onerror = () => opened.reject(new Error(`WebSocket to ${url} failed`));
    this.ws.onclose = (e) => {
      opened.reject(new Error(`WebSocket to ${url} closed before opening (${e.code})`));
      closed.resolve({ code: e.code, reason: e.reason });
    };
    this.opened.catch(() => {});
    this.ws.onmessage = (e) => {
      const m = typeof e.data === "string" ? e.data : new Uint8Array(e.data as ArrayBuffer);
      const w = this.#waiting;
      if (w) {
        this.#waiting = undefined;
        w(m);
      } else this.#inbox.push(m);
    };
  }

  /** Opens a client (offering `protocols`, if given) and waits for the open event. */
  static async open(url: string, protocols?: string[]): Promise<Client> {
    const c = new Client(url, protocols);
    await deadline(c.opened, `open ${url}`);
    return c;
  }

  /** The next message received. */
  next(ms = 5000): Promise<string | Uint8Array> {
    const m = this.#inbox.shift();
    if (m !== undefined) return Promise.resolve(m);
    const d = deferred<string | Uint8Array>();
    this.#waiting = d.resolve;
    return deadline(d.promise, "a message", ms);
  }

  /** The next `n` messages. */
  async take(n: number, ms = 5000): Promise<(string | Uint8Array)[]> {
    const out: (string | Uint8Array)[] = [];
    for (let i = 0; i < n; i++) out.push(await this.next(ms));
    return out;
  }

  /** Messages received and not yet taken. */
  get pending(): number {
    return this.#inbox.length;
  }

  send(data: string | Uint8Array): void {
    this.ws.send(data);
  }

  /** Closes (if open) and waits for the close event. */
  async close(code = 1000, reason = ""): Promise<{ code: number; reason: string }> {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) {
      this.ws.close(code, reason);
    }
    return await deadline(this.closed, "client close");
  }
}

/** Opens `n` clients at once. */
export function openClients(url: string, n: number): Promise<Client[]> {
  return Promise.all(Array.from({ length: n }, () => Client.open(url)));
}

/** Closes clients and waits for each close event. */
export async function closeAll(clients: Client[]): Promise<void> {
  await Promise.all(clients.map((c) => c.close()));
}

/**
 * A raw TCP peer that sends an HTTP upgrade request with the given headers, then does nothing
 * it is not told to: it never answers pings and, once paused, never reads.
 */
export class RawPeer {
  readonly socket: net.Socket;
  /** The response head (status line and headers). */
  head = "";
  readonly ended: Promise<void>;
  #received = 0;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    const ended = deferred();
    this.ended = ended.promise;
    socket.on("close", () => ended.resolve());
    socket.on("error", () => {});
  }

  /** Connects and sends the upgrade; resolves once the response head has arrived. */
  static async upgrade(port: number, path = "/", headers: Record<string, string> = {}): Promise<RawPeer> {
    const socket = net.connect({ port, host: "127.0.0.1" });
    const peer = new RawPeer(socket);
    const head = deferred<string>();
    let buf = "";
    const onData = (chunk: Uint8Array) => {
      peer.#received += chunk.byteLength;
      if (peer.head) return;
      buf += new TextDecoder().decode(chunk);
      const end = buf.indexOf("\r\n\r\n");
      if (end >= 0) {
        peer.head = buf.slice(0, end);
        head.resolve(peer.head);
      }
    };
    socket.on("data", onData);
    socket.on("close", () => head.reject(new Error("connection closed before a response")));
    await deadline(new Promise<void>((res) => socket.once("connect", () => res())), "tcp connect");
    const lines = [
      `GET ${path} HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Version: 13",
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      "",
      "",
    ];
    socket.write(lines.join("\r\n"));
    await deadline(head.promise, "upgrade response");
    return peer;
  }

  /** The HTTP status of the upgrade response. */
  get status(): number {
    return Number(this.head.split(" ")[1]);
  }

  /** Bytes received so far (head included). */
  get received(): number {
    return this.#received;
  }

  /** Stops reading: the kernel buffers fill and the server's queue grows. */
  pause(): void {
    this.socket.pause();
  }

  /** Resets the connection (TCP RST, as a peer that crashed) and waits until it is gone. */
  async reset(): Promise<void> {
    this.socket.resetAndDestroy();
    await deadline(this.ended, "raw socket reset");
  }

  /** Destroys the connection and waits until it is gone. */
  async destroy(): Promise<void> {
    this.socket.destroy();
    await deadline(this.ended, "raw socket close");
  }
}

/** Encodes a string as UTF-8. */
export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/**
 * A chorus-ws/client client with what it received (as text), its opens and its close, each
 * pinging `signal`; `end()` closes it and waits until its sockets are closed. Reconnects fast
 * (20 to 200 ms) unless `options` say otherwise.
 */
export class Watched {
  readonly c: ChorusClient;
  readonly got: string[] = [];
  readonly opens: boolean[] = [];
  closed: number | undefined;
  readonly signal: Signal;
  #sockets: Promise<void>[] = [];

  constructor(url: string, signal: Signal, options: ClientOptions = {}) {
    this.signal = signal;
    const sockets = this.#sockets;
    class Tracked extends WebSocket {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols);
        const d = deferred();
        this.addEventListener("close", () => d.resolve());
        sockets.push(d.promise);
      }
    }
    this.c = connect(url, { minDelay: 20, maxDelay: 200, connectTimeout: 3000, WebSocket: Tracked, ...options });
    this.c.addEventListener("open", (e) => {
      this.opens.push(e.resumed);
      signal.ping();
    });
    this.c.addEventListener("message", (e) => {
      this.got.push(e.data as string);
      signal.ping();
    });
    this.c.addEventListener("close", (e) => {
      this.closed = e.code;
      signal.ping();
    });
  }

  /** The messages received that start with `prefix`, without it. */
  only(prefix: string): string[] {
    return this.got.filter((m) => m.startsWith(prefix)).map((m) => m.slice(prefix.length));
  }

  /** Closes the client and waits until its sockets are closed. */
  async end(): Promise<void> {
    if (this.c.state !== "closed") this.c.close();
    await deadline(Promise.all(this.#sockets), "the client's sockets to close", 10_000);
  }
}
