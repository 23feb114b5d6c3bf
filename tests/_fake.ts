// A fake runtime adapter for unit tests of the core's lifecycle, as Hono tests its WebSocket
// helper beside the real-socket suite. It is built on `chorus-ws/adapter` alone (the hub is only a
// type here), so it also shows that a third party can write an adapter: a socket in the core's
// contract, and the events driven through the handle `attach` returns.

import type { Hub } from "../mod.ts";
import { attach, copyRequest, type HubSocket, type Publisher, type SocketEvents } from "../src/adapter.ts";

/** One call the hub made on a fake socket or publisher, with the time it was made. */
export interface Call {
  op: "send" | "close" | "ping" | "subscribe" | "unsubscribe" | "publish";
  args: unknown[];
  /** `performance.now()` at the call. */
  at: number;
}

/** What a fake socket offers. */
export interface FakeSocketOptions {
  /** Names the socket in the log; it is also the session's `remoteAddr`. @default {"fake"} */
  name?: string;
  /**
   * A log shared with the test's hooks: every call on the socket is pushed as a line,
   * `"<name> <op> <args…>"` (e.g. `"a send hi"`, `"a close 1000 bye"`), so one array shows the
   * order of hooks and socket calls.
   */
  log?: string[];
  /** Offer `ping()` (the hub then runs its own keepalive). @default {false} */
  ping?: boolean;
  /** Called after each recorded ping, e.g. to answer it with `ponged()`. */
  onPing?: (socket: FakeSocket) => void;
  /** Offer native pub/sub (`subscribe`, `unsubscribe`, `publish`). @default {false} */
  pubsub?: boolean;
  /** `subscribe` throws (after recording the call). @default {false} */
  subscribeThrows?: boolean;
  /** `bufferedAmount`: a number, or a function read on every access. @default {0} */
  bufferedAmount?: number | (() => number);
  /** What `publish` on the socket returns. @default {1} */
  publishStatus?: number;
}

/** Renders a call's arguments for a log line. */
function show(args: unknown[]): string {
  return args.map((a) => a instanceof Uint8Array ? `<${a.byteLength} bytes>` : String(a)).join(" ");
}

/** A socket in the core's contract that records every call the hub makes on it. */
export class FakeSocket implements HubSocket {
  readonly name: string;
  /** Every call the hub made, in order. */
  readonly calls: Call[] = [];
  ping?: () => void;
  subscribe?: (topic: string) => void;
  unsubscribe?: (topic: string) => void;
  publish?: (topic: string, data: string | Uint8Array) => number;
  #log: string[] | undefined;
  #buffered: number | (() => number);
  #events: SocketEvents | undefined;

  constructor(opts: FakeSocketOptions = {}) {
    this.name = opts.name ?? "fake";
    this.#log = opts.log;
    this.#buffered = opts.bufferedAmount ?? 0;
    if (opts.ping) {
      this.ping = () => {
        this.#record("ping", []);
        opts.onPing?.(this);
      };
    }
    if (opts.pubsub) {
      this.subscribe = (topic) => {
        this.#record("subscribe", [topic]);
        if (opts.subscribeThrows) throw new Error(`subscribe to ${topic} refused`);
      };
      this.unsubscribe = (topic) => void this.#record("unsubscribe", [topic]);
      this.publish = (topic, data) => {
        this.#record("publish", [topic, data]);
        return opts.publishStatus ?? 1;
      };
    }
  }

  get bufferedAmount(): number {
    const b = this.#buffered;
    return typeof b === "number" ? b : b();
  }

  set bufferedAmount(value: number | (() => number)) {
    this.#buffered = value;
  }

  send(data: string | Uint8Array): number {
    this.#record("send", [data]);
    return 1;
  }

  close(code?: number, reason?: string): void {
    this.#record("close", [code, reason]);
  }

  /**
   * Attaches the socket to a hub, as an adapter does when a socket opens (the session's
   * `remoteAddr` is the socket's name).
   *
   * @returns Whether the hub took it (false: the hub is closed).
   */
  attach<K extends object>(hub: Hub<K>, publisher?: Publisher, keys?: Partial<K>): boolean {
    const init = copyRequest<K>(new Request(`http://fake.test/${this.name}`), keys, this.name);
    this.#events = attach(hub, this, init, publisher);
    return this.#events !== undefined;
  }

  /** A frame arrives from the peer. */
  receive(data: string | ArrayBuffer | Uint8Array): void {
    this.#handle().receive(data);
  }

  /** The socket closed (the peer's close, or 1006 for a lost connection). */
  closed(code = 1000, reason = ""): void {
    this.#handle().closed(code, reason);
  }

  /** The runtime reports an error. */
  errored(err: unknown = new Error("socket error")): void {
    this.#handle().errored(err);
  }

  /** A pong arrives. */
  ponged(): void {
    this.#handle().ponged();
  }

  /** The calls of one kind, in order. */
  callsOf(op: Call["op"]): Call[] {
    return this.calls.filter((c) => c.op === op);
  }

  /** The data of every `send`, in order. */
  get sent(): (string | Uint8Array)[] {
    return this.callsOf("send").map((c) => c.args[0] as string | Uint8Array);
  }

  /** The calls rendered as log lines without the name: `["subscribe t", "send hi", …]`. */
  get ops(): string[] {
    return this.calls.map((c) => c.args.length ? `${c.op} ${show(c.args)}` : c.op);
  }

  #record(op: Call["op"], args: unknown[]): void {
    this.calls.push({ op, args, at: performance.now() });
    this.#log?.push(args.length ? `${this.name} ${op} ${show(args)}` : `${this.name} ${op}`);
  }

  #handle(): SocketEvents {
    if (!this.#events) throw new Error(`${this.name} is not attached`);
    return this.#events;
  }
}

/** A server's native fan-out that records its publishes. */
export class FakePublisher implements Publisher {
  readonly name: string;
  readonly publishes: { topic: string; data: string | Uint8Array }[] = [];
  #log: string[] | undefined;
  #status: number;

  constructor(name = "server", opts: { log?: string[]; status?: number } = {}) {
    this.name = name;
    this.#log = opts.log;
    this.#status = opts.status ?? 1;
  }

  publish(topic: string, data: string | Uint8Array): number {
    this.publishes.push({ topic, data });
    this.#log?.push(`${this.name} publish ${show([topic, data])}`);
    return this.#status;
  }
}
