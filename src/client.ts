/**
 * `chorus-ws/client`: a WebSocket client that reconnects by itself and, against a hub with `resume`
 * on, resumes its session so that nothing is lost, duplicated or reordered in either direction.
 * It has no dependencies and uses web APIs only (`WebSocket`, `EventTarget`, timers), so it runs
 * in browsers, Deno and Bun.
 *
 * @example
 * ```ts ignore
 * import { connect } from "chorus-ws/client";
 *
 * const c = connect("wss://example.com/ws");
 * c.addEventListener("open", (e) => console.log(e.resumed ? "resumed" : "new session: reload state"));
 * c.addEventListener("message", (e) => console.log("got", e.data));
 * c.addEventListener("close", (e) => console.log("stopped for good", e.code));
 * c.send("hello"); // queued until the first connection is open
 * ```
 *
 * @module
 */

import {
  decodeFrame,
  encodeAck,
  encodeControl,
  encodeData,
  type Position,
  PROTOCOL,
  type WelcomeMessage,
} from "./protocol.ts";

/** What a {@linkcode ChorusClient} is doing. */
export type ClientState = "connecting" | "open" | "reconnecting" | "closed";

/** A message for {@linkcode ChorusClient.send}: a string goes as a text frame, bytes as binary. */
export type ClientMessage = string | ArrayBuffer | ArrayBufferView;

/** Options of {@linkcode connect}. Times are in milliseconds. */
export interface ClientOptions {
  /**
   * Subprotocols to offer besides `chorus.v1` (which is offered first while the server may speak
   * it). A server that answers one of these, or none, is a plain server: every frame is a message.
   * @default {[]}
   */
  protocols?: string[];
  /**
   * The shortest wait before a reconnect.
   * @default {500}
   */
  minDelay?: number;
  /**
   * The longest wait before a reconnect.
   * @default {20000}
   */
  maxDelay?: number;
  /**
   * How long a connection may take to open and finish the `chorus.v1` handshake (and how long
   * to wait for a `hello` before taking the server for a plain one) before it counts as lost.
   * @default {5000}
   */
  connectTimeout?: number;
  /**
   * The most messages kept for sending: those queued while not connected plus those sent and not
   * yet acknowledged by the server. Past it {@linkcode ChorusClient.send} returns `false`.
   * @default {1000}
   */
  maxQueued?: number;
  /**
   * Decides whether to reconnect after the server closed the connection or it was lost (the
   * event's code is 1006 for a lost connection, a connect timeout or a dead heartbeat). Without
   * it the client reconnects after 1001, 1006, 1011, 1012, 1013 and 1014, and stops for good on
   * any other code.
   * @default {undefined}
   */
  shouldReconnect?: (e: CloseEvent) => boolean;
  /**
   * The `WebSocket` constructor to use (a polyfill, or a wrapper that observes the sockets).
   * @default {globalThis.WebSocket}
   */
  WebSocket?: new (url: string | URL, protocols?: string | string[]) => WebSocket;
}

/** The `open` event: fired on every connection, once it may carry messages. */
export class ChorusOpenEvent extends Event {
  /**
   * Whether the session continued (nothing was lost either way). `false` on the first connection,
   * when the server started a new session (the app should reload its state), and always against
   * a plain server.
   */
  readonly resumed: boolean;

  /**
   * Makes an `open` event.
   *
   * @param resumed Whether the session continued.
   */
  constructor(resumed: boolean) {
    super("open");
    this.resumed = resumed;
  }
}

/** The `reconnecting` event: fired before each wait for a new connection. */
export class ChorusReconnectingEvent extends Event {
  /** How many attempts in a row this is (1 for the first since the last `open`). */
  readonly attempt: number;
  /** How long the client waits before the attempt, in milliseconds. */
  readonly delay: number;

  /**
   * Makes a `reconnecting` event.
   *
   * @param attempt The attempt's number.
   * @param delay The wait before it.
   */
  constructor(attempt: number, delay: number) {
    super("reconnecting");
    this.attempt = attempt;
    this.delay = delay;
  }
}

/** The events of a {@linkcode ChorusClient}, by name. */
export interface ChorusClientEventMap {
  /** A connection is ready (after the handshake, when the server speaks `chorus.v1`). */
  open: ChorusOpenEvent;
  /** A message: a string, or an `ArrayBuffer` for a binary one. */
  message: MessageEvent<string | ArrayBuffer>;
  /** The connection is gone and the client waits `delay` ms before its next attempt. */
  reconnecting: ChorusReconnectingEvent;
  /** The client stopped for good (fired once). */
  close: CloseEvent;
}

/** Close codes after which the client reconnects (without `shouldReconnect`). */
const RECONNECT_CODES: ReadonlySet<number> = new Set([1001, 1006, 1011, 1012, 1013, 1014]);
/** Data frames received before the client acknowledges at once. */
const ACK_EVERY = 32;
/** How long the client may hold back an acknowledgement, in milliseconds. */
const ACK_DELAY = 100;
type Payload = string | Uint8Array;

interface Outgoing {
  n: number;
  data: Payload;
}

/**
 * A WebSocket client that reconnects with full-jitter exponential backoff and, against a hub
 * that speaks `chorus.v1` (one with `resume` on), resumes its session: every message arrives
 * exactly once and in order, both ways, across lost connections. Against a plain WebSocket server
 * it is a reconnecting WebSocket with an offline queue (messages sent on a connection that dies
 * may then be lost).
 *
 * Made by {@linkcode connect}. It connects at once; `send` works from the start (messages wait in
 * a bounded queue until a connection is open).
 *
 * When the server starts a new session instead of resuming (its window passed, say: `open` with
 * `resumed: false`), the messages the old session had not acknowledged are sent to the new one,
 * then the queue: delivery to the server is at least once across that boundary (a message that
 * arrived just before the connection died may arrive again), exactly once otherwise.
 *
 * @example
 * ```ts
 * import { connect } from "chorus-ws/client";
 *
 * const c = connect("ws://127.0.0.1:8080/ws", { minDelay: 250, maxDelay: 10_000 });
 * c.addEventListener("message", (e) => console.log(e.data));
 * c.addEventListener("reconnecting", (e) => console.log(`retry ${e.attempt} in ${e.delay} ms`));
 * if (!c.send("hi")) console.log("queue full");
 * c.close();
 * ```
 */
export class ChorusClient extends EventTarget {
  readonly #url: string | URL;
  readonly #protocols: string[];
  readonly #minDelay: number;
  readonly #maxDelay: number;
  readonly #connectTimeout: number;
  readonly #maxQueued: number;
  readonly #shouldReconnect: ((e: CloseEvent) => boolean) | undefined;
  readonly #WebSocket: new (url: string | URL, protocols?: string | string[]) => WebSocket;

  #state: ClientState = "connecting";
  /** What the server turned out to be; fixed by the first connection that opens. */
  #kind: "unknown" | "chorus" | "plain" = "unknown";
  /** The immediate second half of a first attempt: the same, without `chorus.v1`. */
  #withoutChorus = false;

  #ws: WebSocket | undefined;
  /** Where the current connection is: socket opening, waiting for hello, for welcome, or ready. */
  #phase: "opening" | "hello" | "welcome" | "open" = "opening";
  #offeredChorus = false;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #deadAfter = 0;
  #seenAt = 0;

  #attempt = 0;
  #token: string | undefined;
  /** What this session received: per stream key, the epoch and the highest offset. */
  #pos: Position = {};
  /** The streams the server declared on this connection: id → key and epoch. */
  #streams = new Map<number, [key: string, epoch: string]>();
  /** Data frames received on this connection (what an acknowledgement counts). */
  #frames = 0;
  /** Whether this connection's frames are numbered (false: a hub that keeps nothing). */
  #framed = true;
  /** Data frames received since the last acknowledgement. */
  #unacked = 0;
  /** The next sequence number of an outgoing message. */
  #nextSeq = 1;
  /** Sent, not yet acknowledged (chorus mode), oldest first. */
  #sent: Outgoing[] = [];
  /** Not yet sent (no connection was ready). */
  #queue: Payload[] = [];
  #onOnline: (() => void) | undefined;

  /**
   * Starts a client; prefer {@linkcode connect}.
   *
   * @param url The server's `ws:`/`wss:` URL.
   * @param options Options.
   * @throws {TypeError} If an option has the wrong type.
   * @throws {RangeError} If a number is out of range.
   */
  constructor(url: string | URL, options: ClientOptions = {}) {
    super();
    if (typeof url !== "string" && !(url instanceof URL)) throw new TypeError("url must be a string or a URL");
    const {
      protocols = [],
      minDelay = 500,
      maxDelay = 20000,
      connectTimeout = 5000,
      maxQueued = 1000,
      shouldReconnect,
      WebSocket: ctor = globalThis.WebSocket,
    } = options;
    if (!Array.isArray(protocols) || protocols.some((p) => typeof p !== "string")) {
      throw new TypeError("protocols must be an array of strings");
    }
    this.#minDelay = number("minDelay", minDelay, 0);
    this.#maxDelay = number("maxDelay", maxDelay, 0);
    if (this.#maxDelay < this.#minDelay) throw new RangeError("maxDelay must not be less than minDelay");
    this.#connectTimeout = number("connectTimeout", connectTimeout, 1);
    this.#maxQueued = number("maxQueued", maxQueued, 1);
    if (!Number.isInteger(this.#maxQueued)) throw new RangeError("maxQueued must be an integer");
    if (shouldReconnect !== undefined && typeof shouldReconnect !== "function") {
      throw new TypeError("shouldReconnect must be a function");
    }
    if (typeof ctor !== "function") throw new TypeError("no WebSocket constructor: pass options.WebSocket");
    this.#url = url;
    this.#protocols = protocols.filter((p) => p !== PROTOCOL);
    this.#shouldReconnect = shouldReconnect;
    this.#WebSocket = ctor;
    const g = globalThis as unknown as Partial<EventTarget> & { navigator?: { onLine?: boolean } };
    if (typeof g.addEventListener === "function" && typeof g.navigator?.onLine === "boolean") {
      this.#onOnline = () => {
        if (this.#retryTimer === undefined) return;
        clearTimeout(this.#retryTimer);
        this.#retryTimer = undefined;
        this.#connect();
      };
      g.addEventListener("online", this.#onOnline);
    }
    try {
      this.#connect();
    } catch (err) {
      this.#stop();
      throw err;
    }
  }

  /**
   * `"connecting"` (the first attempt), `"open"`, `"reconnecting"` (the connection was lost or an
   * attempt failed; waiting, or trying again) or `"closed"` (for good).
   */
  get state(): ClientState {
    return this.#state;
  }

  /**
   * Sends a message, or queues it until the next connection is ready. In `chorus.v1` mode a sent
   * message is kept until the server acknowledges it, and sent again after a reconnect if needed.
   *
   * @param data A string (a text frame) or bytes (a binary frame; copied).
   * @returns `true` if the message was sent or queued; `false` if the queue is full
   * (`maxQueued` messages queued or unacknowledged) or the client is closed; then nothing was
   * queued.
   * @throws {TypeError} If `data` is neither a string nor bytes.
   */
  send(data: ClientMessage): boolean {
    const payload = toPayload(data);
    if (this.#state === "closed") return false;
    const ws = this.#ws;
    if ((this.#kind === "plain" || !this.#framed) && this.#phase === "open" && ws?.readyState === 1) {
      ws.send(payload as string | Uint8Array<ArrayBuffer>);
      return true;
    }
    if (this.#queue.length + this.#sent.length >= this.#maxQueued) return false;
    if (this.#kind === "chorus" && this.#phase === "open" && ws) this.#transmit(ws, payload);
    else this.#queue.push(payload);
    return true;
  }

  /**
   * Stops for good: closes the connection cleanly (a hub ends the session), cancels any
   * reconnect, and fires `close` with `code` at once; `state` is `"closed"` when this returns.
   * Queued and unacknowledged messages are discarded. Calling it again does nothing.
   *
   * @param code The close code: 1000 (the default), or 3000–4999.
   * @param reason The close reason (default empty), at most 123 bytes of UTF-8.
   * @throws {RangeError} If the code or the reason is not allowed.
   */
  close(code: number = 1000, reason: string = ""): void {
    if (code !== 1000 && !(Number.isInteger(code) && code >= 3000 && code <= 4999)) {
      throw new RangeError(`close code must be 1000 or 3000-4999, got ${code}`);
    }
    if (typeof reason !== "string" || new TextEncoder().encode(reason).byteLength > 123) {
      throw new RangeError("close reason must be a string of at most 123 bytes");
    }
    if (this.#state === "closed") return;
    const ws = this.#ws;
    this.#stop();
    if (ws && ws.readyState <= 1) ws.close(code, reason);
    this.dispatchEvent(new CloseEvent("close", { code, reason, wasClean: true }));
  }

  /**
   * Listens to `open`, `message`, `reconnecting` or `close` (see {@linkcode ChorusClientEventMap}).
   *
   * @param type The event's name.
   * @param listener The listener.
   * @param options As for `EventTarget`.
   */
  override addEventListener<E extends keyof ChorusClientEventMap>(
    type: E,
    listener: (this: ChorusClient, ev: ChorusClientEventMap[E]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /**
   * Listens to an event.
   *
   * @param type The event's name.
   * @param listener The listener.
   * @param options As for `EventTarget`.
   */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener, options);
  }

  /**
   * Stops listening.
   *
   * @param type The event's name.
   * @param listener The listener.
   * @param options As for `EventTarget`.
   */
  override removeEventListener<E extends keyof ChorusClientEventMap>(
    type: E,
    listener: (this: ChorusClient, ev: ChorusClientEventMap[E]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  /**
   * Stops listening.
   *
   * @param type The event's name.
   * @param listener The listener.
   * @param options As for `EventTarget`.
   */
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void {
    super.removeEventListener(type, listener, options);
  }

  // --- one connection ---------------------------------------------------------------------

  #connect(): void {
    const chorus = this.#kind === "chorus" || (this.#kind === "unknown" && !this.#withoutChorus);
    this.#withoutChorus = false;
    const protocols = chorus ? [PROTOCOL, ...this.#protocols] : this.#protocols;
    const ws = new this.#WebSocket(this.#url, protocols);
    ws.binaryType = "arraybuffer";
    this.#ws = ws;
    this.#phase = "opening";
    this.#offeredChorus = chorus;
    this.#streams = new Map();
    this.#frames = 0;
    this.#framed = true;
    ws.onopen = () => this.#opened(ws);
    ws.onmessage = (e) => this.#received(ws, e.data);
    ws.onclose = (e) => this.#lost(ws, e, false);
    ws.onerror = () => {}; // a close event follows
    this.#connectTimer = setTimeout(() => this.#handshakeTimedOut(ws), this.#connectTimeout);
  }

  #opened(ws: WebSocket): void {
    if (ws !== this.#ws) return;
    this.#seenAt = Date.now();
    if (this.#offeredChorus && ws.protocol === PROTOCOL) this.#phase = "hello";
    else if (this.#kind === "chorus") this.#giveUp(ws, "the server no longer speaks chorus.v1");
    else this.#openPlain();
  }

  #received(ws: WebSocket, data: unknown): void {
    if (ws !== this.#ws) return;
    this.#seenAt = Date.now();
    if (typeof data !== "string" && !(data instanceof ArrayBuffer)) return; // a Blob: binaryType was changed
    if ((this.#kind === "plain" || !this.#framed) && this.#phase === "open") {
      this.#deliver(typeof data === "string" ? data : data.slice(0));
      return;
    }
    const frame = decodeFrame(data);
    switch (this.#phase) {
      case "hello":
        if (frame?.kind === "control" && frame.message.t === "hello") {
          this.#phase = "welcome";
          const request = this.#token === undefined
            ? { t: "new" as const }
            : { t: "resume" as const, token: this.#token, pos: this.#pos };
          ws.send(encodeControl(request));
        } else if (this.#kind === "chorus") {
          this.#giveUp(ws, "no hello from the server");
        } else {
          // The server answered chorus.v1 without speaking it (Bun echoes the first offered).
          this.#openPlain();
          if (this.#ws === ws) this.#deliver(typeof data === "string" ? data : data.slice(0));
        }
        return;
      case "welcome":
        if (frame?.kind === "control" && frame.message.t === "welcome") this.#welcomed(ws, frame.message);
        else if (frame?.kind === "ping") ws.send(encodeAck(this.#frames));
        return; // nothing else may come before welcome
      case "open":
        if (!frame) return;
        if (frame.kind === "data") {
          const stream = this.#streams.get(frame.id);
          if (!stream) return this.#giveUp(ws, `a message of undeclared stream ${frame.id}`);
          this.#frames++;
          this.#countForAck(ws);
          const [key, epoch] = stream;
          const had = Object.hasOwn(this.#pos, key) ? this.#pos[key] : undefined;
          if (had !== undefined && had[0] === epoch && frame.n <= had[1]) return; // received before
          this.#pos[key] = [epoch, frame.n];
          const p = frame.payload;
          this.#deliver(typeof p === "string" ? p : p.slice().buffer as ArrayBuffer);
        } else if (frame.kind === "control" && frame.message.t === "stream") {
          const { id, key, epoch, from } = frame.message;
          this.#streams.set(id, [key, epoch]);
          // Where the session starts following a stream: nothing before it is missing.
          const had = Object.hasOwn(this.#pos, key) ? this.#pos[key] : undefined;
          if (from !== undefined && !(had !== undefined && had[0] === epoch && had[1] >= from)) {
            this.#pos[key] = [epoch, from];
          }
        } else if (frame.kind === "ack") {
          let k = 0;
          while (k < this.#sent.length && this.#sent[k].n <= frame.n) k++;
          if (k > 0) this.#sent.splice(0, k);
        } else if (frame.kind === "ping") {
          this.#ack(ws);
        }
        return;
    }
  }

  #welcomed(ws: WebSocket, w: WelcomeMessage): void {
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#kind = "chorus";
    this.#phase = "open";
    // An empty credential: the hub keeps nothing (no resume), and its frames are plain.
    this.#framed = w.token !== "";
    this.#token = this.#framed ? w.token : undefined;
    if (w.resumed) {
      let k = 0;
      while (k < this.#sent.length && this.#sent[k].n <= w.recv) k++;
      this.#sent.splice(0, k);
    } else {
      // A new session: offsets and sequence numbers start over; what the old one had not
      // acknowledged goes to the new one first (at least once).
      this.#pos = {};
      this.#nextSeq = 1;
      this.#queue = [...this.#sent.map((o) => o.data), ...this.#queue];
      this.#sent = [];
    }
    if (w.hb > 0) {
      this.#deadAfter = 2 * w.hb + 1000;
      this.#watch(ws);
    }
    this.#state = "open";
    this.#attempt = 0;
    for (const o of this.#sent) ws.send(encodeData(0, o.n, o.data) as string | Uint8Array<ArrayBuffer>);
    const queue = this.#queue;
    this.#queue = [];
    for (const data of queue) this.#transmit(ws, data);
    this.dispatchEvent(new ChorusOpenEvent(w.resumed));
  }

  #openPlain(): void {
    const ws = this.#ws!;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#kind = "plain";
    this.#phase = "open";
    this.#state = "open";
    this.#attempt = 0;
    const queue = this.#queue;
    this.#queue = [];
    for (const data of queue) ws.send(data as string | Uint8Array<ArrayBuffer>);
    this.dispatchEvent(new ChorusOpenEvent(false));
  }

  #transmit(ws: WebSocket, data: Payload): void {
    if (!this.#framed) {
      ws.send(data as string | Uint8Array<ArrayBuffer>);
      return;
    }
    const n = this.#nextSeq++;
    this.#sent.push({ n, data });
    ws.send(encodeData(0, n, data) as string | Uint8Array<ArrayBuffer>);
  }

  #deliver(data: string | ArrayBuffer): void {
    this.dispatchEvent(new MessageEvent("message", { data }));
  }

  #countForAck(ws: WebSocket): void {
    if (++this.#unacked >= ACK_EVERY) this.#ack(ws);
    else if (this.#ackTimer === undefined) this.#ackTimer = setTimeout(() => this.#ack(ws), ACK_DELAY);
  }

  #ack(ws: WebSocket): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    this.#unacked = 0;
    if (ws === this.#ws && ws.readyState === 1) ws.send(encodeAck(this.#frames));
  }

  /** Gives up on the connection when no frame arrived for `2 * hb + 1000` ms. */
  #watch(ws: WebSocket): void {
    const left = this.#seenAt + this.#deadAfter - Date.now();
    if (left > 0) this.#watchdog = setTimeout(() => this.#watch(ws), left);
    else this.#giveUp(ws, "heartbeat timeout");
  }

  #handshakeTimedOut(ws: WebSocket): void {
    this.#connectTimer = undefined;
    if (ws !== this.#ws) return;
    // Opened, answered chorus.v1, said nothing: a plain server that echoes subprotocols.
    if (this.#phase === "hello" && this.#kind === "unknown") this.#openPlain();
    else this.#giveUp(ws, "connect timeout");
  }

  /** Drops a socket that failed the client, as if the connection had been lost. */
  #giveUp(ws: WebSocket, reason: string): void {
    this.#lost(ws, new CloseEvent("close", { code: 1006, reason, wasClean: false }), true);
  }

  #lost(ws: WebSocket, e: CloseEvent, givenUp: boolean): void {
    if (ws !== this.#ws) return;
    // Deno reports a connection that ended without a close frame with code 0: that is a 1006.
    if (!(e.code >= 1000 && e.code <= 4999)) {
      e = new CloseEvent("close", { code: 1006, reason: e.reason, wasClean: false });
    }
    const beforeOpen = this.#phase === "opening";
    this.#dropSocket(givenUp);
    if (this.#state === "closed") return;
    // A browser fails a handshake whose answer names none of the offered subprotocols, so a
    // server that answers none fails every attempt that offers chorus.v1. Until the server's
    // kind is known, a first attempt that fails before opening is tried again at once without.
    if (!givenUp && beforeOpen && this.#offeredChorus && this.#kind === "unknown") {
      this.#withoutChorus = true;
      this.#connect();
      return;
    }
    let again: boolean;
    try {
      again = this.#shouldReconnect ? this.#shouldReconnect(e) : RECONNECT_CODES.has(e.code);
    } catch (err) {
      this.#finish(e);
      throw err;
    }
    if ((this.#state as ClientState) === "closed") return; // shouldReconnect closed the client
    if (!again) return this.#finish(e);
    const attempt = ++this.#attempt;
    const delay = Math.min(
      this.#maxDelay,
      this.#minDelay + Math.random() * Math.min(this.#maxDelay, this.#minDelay * 2 ** (attempt - 1)),
    );
    this.#state = "reconnecting";
    this.dispatchEvent(new ChorusReconnectingEvent(attempt, delay));
    if ((this.#state as ClientState) !== "reconnecting") return; // a listener closed the client
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#connect();
    }, delay);
  }

  #finish(e: CloseEvent): void {
    this.#stop();
    this.dispatchEvent(new CloseEvent("close", { code: e.code, reason: e.reason, wasClean: e.wasClean }));
  }

  /** Forgets the current socket and its timers; closes it if it is still up. */
  #dropSocket(close: boolean): void {
    const ws = this.#ws;
    this.#ws = undefined;
    this.#phase = "opening";
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#ackTimer);
    clearTimeout(this.#watchdog);
    this.#connectTimer = this.#ackTimer = this.#watchdog = undefined;
    this.#unacked = 0;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
    if (close && ws.readyState <= 1) {
      try {
        // No status code (the server sees 1005): not a clean end, unlike close(), which always
        // sends one, so a hub keeps the session for the client's next connection.
        ws.close();
      } catch {
        // already failing
      }
    }
  }

  /** Ends everything: no socket, no timer, no listener; `state` is `"closed"`. */
  #stop(): void {
    this.#state = "closed";
    this.#dropSocket(false);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    if (this.#onOnline) {
      (globalThis as unknown as EventTarget).removeEventListener("online", this.#onOnline);
      this.#onOnline = undefined;
    }
    this.#queue = [];
    this.#sent = [];
  }
}

/**
 * Connects to a chorus hub (or any WebSocket server) and keeps connecting: see
 * {@linkcode ChorusClient}.
 *
 * Offers the `chorus.v1` subprotocol first. When the server answers it and says `hello`, the
 * client resumes its session on every reconnect (messages numbered, acknowledged, sent again and
 * deduplicated: exactly once, in order, both ways). When the server answers another subprotocol
 * or none, every frame is a message and `open` always has `resumed: false`. Which kind the server
 * is gets fixed by the first connection that opens. Browsers fail a handshake whose answer names
 * none of the offered subprotocols, so until then an attempt that fails before opening is
 * repeated at once without `chorus.v1`.
 *
 * Reconnects after a lost connection (no close frame, a connect timeout, no frame at all for
 * twice the server's heartbeat interval plus a second) and after close codes 1001, 1011, 1012,
 * 1013 and 1014, waiting `min(maxDelay, minDelay + random() * min(maxDelay, minDelay * 2 **
 * (attempt - 1)))` ms, drawn anew each time; the attempt count restarts after each `open`. Any
 * other code from the server, or {@linkcode ChorusClient.close}, is final, unless
 * `shouldReconnect` says otherwise. In a browser, going back online retries at once.
 *
 * @example
 * ```ts
 * import { connect } from "chorus-ws/client";
 *
 * const c = connect("ws://127.0.0.1:8080/ws", { maxQueued: 100 });
 * c.addEventListener("open", (e) => {
 *   if (!e.resumed) c.send(JSON.stringify({ type: "sync" })); // a new session: ask for the state
 * });
 * c.addEventListener("message", (e) => {
 *   if (typeof e.data === "string") console.log(JSON.parse(e.data));
 * });
 * c.close(1000, "bye");
 * ```
 *
 * @param url The server's `ws:`/`wss:` URL.
 * @param options Options.
 * @returns The client, already connecting.
 * @throws {TypeError} If an option has the wrong type.
 * @throws {RangeError} If a number is out of range.
 */
export function connect(url: string | URL, options?: ClientOptions): ChorusClient {
  return new ChorusClient(url, options);
}

function number(name: string, value: unknown, min: number): number {
  if (typeof value !== "number") throw new TypeError(`${name} must be a number`);
  if (!(value >= min) || !Number.isFinite(value)) throw new RangeError(`${name} must be a finite number >= ${min}`);
  return value;
}

function toPayload(data: ClientMessage): Payload {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data.slice(0));
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  throw new TypeError("send() takes a string, an ArrayBuffer or an ArrayBufferView");
}
