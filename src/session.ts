/**
 * A connected client: its keys, its rooms, and the ways to write to it and close it.
 *
 * @module
 */

import { MessageBufferFullError, SessionClosedError } from "./errors.ts";
import { CLOSED, ERRORED, type HubSocket, PONGED, RECEIVE, type SessionInit } from "./socket.ts";

/** Session keys: a record of the values a session carries (melody's `Keys`). */
export type Keys = Record<string, unknown>;

/** A message: a string goes as a text frame, bytes as a binary frame. */
export type Message = string | Uint8Array | ArrayBuffer;

/** What a session needs from its hub. One object per hub, shared by its sessions. @internal */
export interface SessionHost<K extends Keys> {
  readonly maxMessageSize: number;
  readonly maxBufferedAmount: number;
  readonly closeOnBufferFull: boolean;
  readonly concurrent: boolean;
  readonly hooks: Hooks<K>;
  /** The native topic every session with native fan-out is subscribed to. */
  readonly allTopic: string;
  /** Prefix of the native topic of a room (the room's name follows). */
  readonly roomPrefix: string;
  /**
   * How many native publishes the hub made. A native publish queues bytes on sockets behind
   * the sessions' backs, so a session re-reads `bufferedAmount` when this changed.
   */
  publishes: number;
  join(session: Session<K>, room: string): void;
  leave(session: Session<K>, room: string): void;
  /** Unregisters the session and runs the disconnect hook; resolves when the hook is done. */
  remove(session: Session<K>): Promise<void> | undefined;
  report(session: Session<K>, error: unknown): void;
}

/** The hub's handlers, as set by `handleConnect` and its siblings. @internal */
export interface Hooks<K extends Keys> {
  connect?: (s: Session<K>) => unknown;
  disconnect?: (s: Session<K>) => unknown;
  message?: (s: Session<K>, msg: string) => unknown;
  messageBinary?: (s: Session<K>, msg: Uint8Array) => unknown;
  sentMessage?: (s: Session<K>, msg: string) => unknown;
  sentMessageBinary?: (s: Session<K>, msg: Uint8Array) => unknown;
  pong?: (s: Session<K>) => unknown;
  error?: (s: Session<K>, err: Error) => unknown;
  close?: (s: Session<K>, code: number, reason: string) => unknown;
}

/** Internal: deliver a prepared message (the hub computed its size once). */
export const DELIVER: unique symbol = Symbol("chorus.deliver");
/** Internal: close from the hub and resolve after the disconnect hook. */
export const SHUTDOWN: unique symbol = Symbol("chorus.shutdown");
/** Internal: start the session (runs the connect hook). */
export const START: unique symbol = Symbol("chorus.start");
/** Internal: keepalive step, called by the hub's ticker. */
export const TICK: unique symbol = Symbol("chorus.tick");
/** Internal: the session's socket, for the hub's native fan-out. */
export const SOCKET: unique symbol = Symbol("chorus.socket");
/** Internal: a native publish was dropped for some subscriber; report it if it was this one. */
export const DROPPED: unique symbol = Symbol("chorus.dropped");

/**
 * Bytes a runtime may count per frame on top of the payload (the largest server frame header).
 * The outbound limit's bookkeeping adds it to every send so its estimate never falls short.
 */
const FRAME_OVERHEAD = 14;

const EMPTY_ROOMS: ReadonlySet<string> = new Set();
let counter = 0;
const idPrefix = crypto.randomUUID().slice(0, 8);

/**
 * A connected client. Created by the hub when a WebSocket opens; never constructed by users.
 *
 * @example
 * ```ts
 * import { Hub } from "@chorus/chorus";
 * const hub = new Hub<{ uid: string }>();
 * hub.handleMessage((s, msg) => {
 *   s.write(`${s.get("uid") ?? "anonymous"}: ${msg}`);
 * });
 * ```
 */
export class Session<K extends Keys = Keys> {
  /** Unique within the process. */
  readonly id: string;
  /** The peer's address, `""` where the runtime does not tell. */
  readonly remoteAddr: string;

  #host: SessionHost<K>;
  #socket: HubSocket;
  #init: SessionInit<K>;
  #keys: Partial<K> | undefined;
  #rooms: Set<string> | undefined;
  #closed = false;
  #busy = false;
  #queue: (string | Uint8Array)[] | undefined;
  #queuedBytes = 0;
  #pingAt = 0;
  #awaitingPong = false;
  /**
   * Bytes this session may still send before `bufferedAmount` must be read again: the limit
   * minus what was queued at the last read minus what was sent since (frame overhead included).
   * The runtime only ever drains its queue, so while this stays >= 0 the limit cannot be
   * crossed, and most sends skip a call into the runtime. Valid while `#epoch` equals the hub's
   * native publish count.
   */
  #credit = 0;
  #epoch = -1;

  /** @internal Use `hub.attach` (adapters) instead. */
  constructor(host: SessionHost<K>, socket: HubSocket, init: SessionInit<K>) {
    this.id = `${idPrefix}-${(++counter).toString(36)}`;
    this.#host = host;
    this.#socket = socket;
    this.#init = init;
    this.remoteAddr = init.remoteAddr;
    if (init.keys) this.#keys = Object.assign(Object.create(null), init.keys);
  }

  /**
   * A copy of the upgrade request: url and headers stay usable after the upgrade. (The copy
   * the adapters make keeps the url and headers as strings and builds the `Request` on first
   * use: an idle session costs a fraction of what a `Request` does.)
   */
  get request(): Request {
    return this.#init.request;
  }

  /**
   * Writes a message: a string as a text frame, bytes as a binary frame. A write that would
   * take the outbound buffer past `maxBufferedAmount` is refused and reported to
   * `handleError` as a `MessageBufferFullError` (or closes the session, per `onBufferFull`).
   *
   * @param msg The message.
   * @throws {SessionClosedError} If the session is closed.
   * @throws {TypeError} If `msg` is not a string, Uint8Array or ArrayBuffer.
   */
  write(msg: Message): void {
    if (this.#closed) throw new SessionClosedError("Cannot write to a closed session");
    const payload = toPayload(msg);
    this[DELIVER](payload, byteLength(payload));
  }

  /**
   * Closes the session. Its disconnect hook runs right away, whatever the runtime does next.
   *
   * @param code Close code, 1000 to 4999. @default {1000}
   * @param reason Close reason, at most 123 bytes of UTF-8. @default {""}
   * @throws {SessionClosedError} If the session is already closed.
   * @throws {RangeError} If the code or reason is out of range.
   */
  close(code = 1000, reason = ""): void {
    if (this.#closed) throw new SessionClosedError("Session is already closed");
    checkClose(code, reason);
    this.#finish(code, reason);
  }

  /** @returns Whether the session is closed. */
  isClosed(): boolean {
    return this.#closed;
  }

  /** Bytes written to this session and not yet sent to the network. */
  get bufferedAmount(): number {
    return this.#closed ? 0 : this.#socket.bufferedAmount;
  }

  /**
   * Sets a key.
   *
   * @param key The key.
   * @param value Its value.
   */
  set<Key extends keyof K & string>(key: Key, value: K[Key]): void {
    (this.#keys ??= Object.create(null) as Partial<K>)[key] = value;
  }

  /**
   * Reads a key.
   *
   * @param key The key.
   * @returns Its value, or `undefined` when it is not set.
   */
  get<Key extends keyof K & string>(key: Key): K[Key] | undefined {
    return this.#keys?.[key];
  }

  /**
   * Reads a key that must be set.
   *
   * @param key The key.
   * @returns Its value.
   * @throws {RangeError} If the key is not set.
   */
  mustGet<Key extends keyof K & string>(key: Key): K[Key] {
    if (!this.#keys || !(key in this.#keys)) throw new RangeError(`Session key "${key}" is not set`);
    return this.#keys[key] as K[Key];
  }

  /**
   * Removes a key.
   *
   * @param key The key.
   */
  unset<Key extends keyof K & string>(key: Key): void {
    if (this.#keys) delete this.#keys[key];
  }

  /**
   * @param key The key.
   * @returns Whether the key is set.
   */
  has<Key extends keyof K & string>(key: Key): boolean {
    return this.#keys !== undefined && key in this.#keys;
  }

  /** The session's keys, as a live object. */
  get keys(): Partial<K> {
    return this.#keys ??= Object.create(null) as Partial<K>;
  }

  /**
   * Joins a room; its broadcasts reach this session from now on.
   *
   * @param room The room's name.
   * @throws {SessionClosedError} If the session is closed.
   * @throws {TypeError} If `room` is not a non-empty string.
   */
  join(room: string): void {
    checkRoom(room);
    if (this.#closed) throw new SessionClosedError("A closed session cannot join a room");
    if ((this.#rooms ??= new Set()).has(room)) return;
    this.#rooms.add(room);
    this.#host.join(this, room);
    const socket = this.#socket;
    if (socket.subscribe) {
      try {
        socket.subscribe(this.#host.roomPrefix + room);
      } catch (err) {
        this.#host.report(this, err);
      }
    }
  }

  /**
   * Leaves a room. Leaving a room the session is not in does nothing.
   *
   * @param room The room's name.
   * @throws {TypeError} If `room` is not a non-empty string.
   */
  leave(room: string): void {
    checkRoom(room);
    if (!this.#rooms?.delete(room)) return;
    this.#host.leave(this, room);
    const socket = this.#socket;
    if (socket.unsubscribe && !this.#closed) {
      try {
        socket.unsubscribe(this.#host.roomPrefix + room);
      } catch (err) {
        this.#host.report(this, err);
      }
    }
  }

  /** The rooms this session is in. */
  get rooms(): ReadonlySet<string> {
    return this.#rooms ?? EMPTY_ROOMS;
  }

  /** @internal Sends a validated payload of known size, applying the outbound limit. */
  [DELIVER](payload: string | Uint8Array, size: number): void {
    const host = this.#host;
    const socket = this.#socket;
    let credit = this.#credit - size - FRAME_OVERHEAD;
    if (credit < 0 || this.#epoch !== host.publishes) {
      const queued = socket.bufferedAmount;
      if (queued + size > host.maxBufferedAmount) {
        this.#refuse(size, queued);
        return;
      }
      credit = host.maxBufferedAmount - queued - size - FRAME_OVERHEAD;
      this.#epoch = host.publishes;
    }
    let status: number | void;
    try {
      status = socket.send(payload);
    } catch (err) {
      this.#credit = 0;
      host.report(this, err);
      return;
    }
    if (status === 0) {
      this.#credit = 0;
      this.#refuse(size, socket.bufferedAmount);
      return;
    }
    this.#credit = credit;
    const hooks = host.hooks;
    if (typeof payload === "string") {
      if (hooks.sentMessage) this.#call(hooks.sentMessage, payload);
    } else if (hooks.sentMessageBinary) this.#call(hooks.sentMessageBinary, payload);
  }

  /** @internal The socket, for the hub's native fan-out. */
  get [SOCKET](): HubSocket {
    return this.#socket;
  }

  /**
   * @internal A native publish of `size` bytes was dropped for some subscriber. The runtime
   * drops for a socket whose queue is already past the limit, so a session whose queue is past
   * it now reports the drop (and closes, with `onBufferFull: "close"`), as a refused write would.
   */
  [DROPPED](size: number): void {
    if (this.#closed) return;
    const queued = this.#socket.bufferedAmount;
    if (queued > this.#host.maxBufferedAmount) this.#refuse(size, queued);
  }

  /** @internal Runs the connect hook; messages wait until it has finished. */
  [START](): void {
    const connect = this.#host.hooks.connect;
    if (connect) this.#run(connect, undefined);
  }

  /** @internal Closes on behalf of the hub; resolves after the disconnect hook. */
  [SHUTDOWN](code: number, reason: string): Promise<void> | undefined {
    return this.#closed ? undefined : this.#finish(code, reason);
  }

  /** @internal Keepalive: ping when due, close when a pong is overdue. */
  [TICK](now: number, interval: number, wait: number): void {
    if (this.#closed || !this.#socket.ping) return;
    if (this.#awaitingPong) {
      if (now - this.#pingAt >= wait) this.#finish(1001, "Pong timeout");
      return;
    }
    if (now - this.#pingAt < interval) return;
    this.#pingAt = now;
    this.#awaitingPong = true;
    try {
      this.#socket.ping();
    } catch (err) {
      this.#host.report(this, err);
    }
  }

  /** Adapter entry point: a frame arrived. */
  [RECEIVE](data: string | ArrayBuffer | Uint8Array): void {
    if (this.#closed) return;
    const msg = typeof data === "string" || data instanceof Uint8Array ? data : new Uint8Array(data);
    const host = this.#host;
    const max = host.maxMessageSize;
    if (typeof msg === "string" ? msg.length > max / 3 && utf8Length(msg) > max : msg.byteLength > max) {
      this.#finish(1009, "Message too big");
      return;
    }
    if (!this.#busy) {
      this.#dispatch(msg);
      return;
    }
    // A handler is still running: queue, within the same bound as the outbound side.
    const size = byteLength(msg);
    if (this.#queuedBytes + size > host.maxBufferedAmount) {
      host.report(
        this,
        new RangeError(
          `Closed the session: ${
            this.#queuedBytes + size
          } bytes of messages are waiting for a handler and maxBufferedAmount is ${host.maxBufferedAmount}`,
        ),
      );
      this.#finish(1008, "Too many pending messages");
      return;
    }
    this.#queuedBytes += size;
    (this.#queue ??= []).push(msg);
  }

  /** Adapter entry point: the runtime closed the socket. */
  [CLOSED](code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    const onClose = this.#host.hooks.close;
    if (onClose) this.#call(onClose, code, reason);
    this.#finish(code, reason, false);
  }

  /** Adapter entry point: the runtime reported an error. */
  [ERRORED](err: unknown): void {
    this.#host.report(this, err);
  }

  /** Adapter entry point: a pong arrived. */
  [PONGED](): void {
    this.#awaitingPong = false;
    const onPong = this.#host.hooks.pong;
    if (onPong) this.#call(onPong, undefined);
  }

  #refuse(size: number, queued: number): void {
    const host = this.#host;
    host.report(
      this,
      new MessageBufferFullError(
        `Dropped a message of ${size} bytes: ${queued} bytes are queued and maxBufferedAmount is ${host.maxBufferedAmount}`,
      ),
    );
    if (host.closeOnBufferFull && !this.#closed) this.#finish(1008, "Message buffer full");
  }

  #finish(code: number, reason: string, closeSocket = true): Promise<void> | undefined {
    this.#closed = true;
    const socket = this.#socket;
    const rooms = this.#rooms;
    if (closeSocket) {
      try {
        // Native fan-out: no publish may reach a socket the hub has let go of.
        if (socket.unsubscribe) {
          socket.unsubscribe(this.#host.allTopic);
          if (rooms) { for (const room of rooms) socket.unsubscribe(this.#host.roomPrefix + room); }
        }
        socket.close(code, reason);
      } catch (err) {
        this.#host.report(this, err);
      }
    }
    if (rooms) {
      for (const room of rooms) this.#host.leave(this, room);
      rooms.clear();
    }
    return this.#host.remove(this);
  }

  #dispatch(msg: string | Uint8Array): void {
    const hooks = this.#host.hooks;
    if (typeof msg === "string") {
      if (hooks.message) this.#run(hooks.message, msg);
    } else if (hooks.messageBinary) this.#run(hooks.messageBinary, msg);
  }

  /** Runs a connect or message handler; an async one holds the queue unless concurrent. */
  #run<A>(fn: (s: Session<K>, a: A) => unknown, arg: A): void {
    let result: unknown;
    try {
      result = fn(this, arg);
    } catch (err) {
      this.#host.report(this, err);
      return;
    }
    if (!isThenable(result)) return;
    if (this.#host.concurrent) {
      result.then(undefined, (err) => this.#host.report(this, err));
      return;
    }
    this.#busy = true;
    result.then(
      () => this.#resume(),
      (err) => {
        this.#host.report(this, err);
        this.#resume();
      },
    );
  }

  #resume(): void {
    this.#busy = false;
    const queue = this.#queue;
    while (queue && queue.length > 0 && !this.#busy) {
      const msg = queue.shift()!;
      this.#queuedBytes -= byteLength(msg);
      this.#dispatch(msg);
    }
  }

  /** Calls a hook whose result is not awaited; failures go to handleError. */
  #call<A, B>(fn: (s: Session<K>, a: A, b: B) => unknown, a: A, b?: B): void {
    try {
      const result = fn(this, a, b as B);
      if (isThenable(result)) result.then(undefined, (err) => this.#host.report(this, err));
    } catch (err) {
      this.#host.report(this, err);
    }
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === "object" && typeof (value as PromiseLike<unknown>).then === "function";
}

/**
 * Validates a message and turns an ArrayBuffer into a Uint8Array view (no copy).
 * @internal
 */
export function toPayload(msg: Message): string | Uint8Array {
  if (typeof msg === "string" || msg instanceof Uint8Array) return msg;
  if (msg instanceof ArrayBuffer) return new Uint8Array(msg);
  throw new TypeError(`A message must be a string, Uint8Array or ArrayBuffer, not ${describe(msg)}`);
}

/** Size in bytes of a payload as it goes on the wire. @internal */
export function byteLength(payload: string | Uint8Array): number {
  return typeof payload === "string" ? utf8Length(payload) : payload.byteLength;
}

/** UTF-8 length of a string without encoding it. @internal */
export function utf8Length(str: string): number {
  let bytes = str.length;
  for (let i = 0; i < str.length; i++) {
    const c = str.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < str.length) {
      const next = str.charCodeAt(i + 1);
      if (next >= 0xdc00 && next < 0xe000) {
        bytes += 2; // a surrogate pair: 2 code units, 4 bytes
        i++;
      } else bytes += 2;
    } else bytes += 2;
  }
  return bytes;
}

/** Validates a close code and reason the way `WebSocket.close` would for a server. @internal */
export function checkClose(code: number, reason: string): void {
  if (!Number.isInteger(code) || code < 1000 || code > 4999 || code === 1005 || code === 1006 || code === 1015) {
    throw new RangeError(`Close code must be an integer from 1000 to 4999 (not 1005, 1006 or 1015), not ${code}`);
  }
  if (typeof reason !== "string") throw new TypeError("Close reason must be a string");
  if (utf8Length(reason) > 123) throw new RangeError("Close reason must be at most 123 bytes of UTF-8");
}

function checkRoom(room: string): void {
  if (typeof room !== "string" || room === "") throw new TypeError("A room name must be a non-empty string");
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") return (value as object).constructor?.name ?? "object";
  return typeof value;
}
