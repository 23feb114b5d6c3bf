/**
 * A session: one client of the hub, with its keys, its rooms, and the ways to write to it and
 * close it.
 *
 * @module
 */

// A leaf: the core gives each Session its record (`SessionRecord`). May import: `types.ts` (types).

import type { Keys, Message } from "./types.ts";

export type { Keys, Message } from "./types.ts";

/**
 * What a {@linkcode Session} is a view of: the hub's own record of the session (its core). Made
 * by the hub; users never implement it.
 */
export interface SessionRecord<K extends object> {
  /** The session's id. */
  readonly id: string;
  /** What the session kept of its upgrade request. */
  readonly init: { readonly request: Request; readonly remoteAddr: string; readonly protocol: string };
  /** Whether the session has ended. */
  readonly ended: boolean;
  /** Whether a connection carries the session now. */
  readonly connected: boolean;
  /** Bytes queued on its connection. */
  readonly bufferedAmount: number;
  /** Its keys, made on first use. */
  keys: Partial<K> | undefined;
  /** Its rooms, made on first join. */
  readonly rooms: ReadonlySet<string> | undefined;
  /** Writes a message to it. */
  write(msg: Message): void;
  /** Closes it. */
  close(code: number, reason: string): void;
  /** Its keys changed. */
  keysChanged(): void;
  /** Joins a room. */
  join(room: string): void;
  /** Leaves a room. */
  leave(room: string): void;
}

const EMPTY_ROOMS: ReadonlySet<string> = new Set();

/**
 * A client of the hub. Created by the hub when a WebSocket opens; never constructed by users.
 *
 * @example
 * ```ts
 * import { Hub } from "chorus-ws";
 * const hub = new Hub<{ uid: string }>();
 * hub.handleMessage((s, msg) => {
 *   s.write(`${s.get("uid") ?? "anonymous"}: ${msg}`);
 * });
 * ```
 */
export class Session<K extends object = Keys> {
  #core: SessionRecord<K>;

  /** @ignore Sessions are made by the hub. */
  constructor(core: SessionRecord<K>) {
    this.#core = core;
  }

  /** Unique within the process (and, with a broker, across the cluster). */
  get id(): string {
    return this.#core.id;
  }

  /**
   * A copy of the upgrade request: url and headers stay usable after the upgrade. (The copy
   * the adapters make keeps the url and headers as strings and builds the `Request` on first
   * use: an idle session costs a fraction of what a `Request` does.)
   */
  get request(): Request {
    return this.#core.init.request;
  }

  /** The peer's address, `""` where the runtime does not tell. */
  get remoteAddr(): string {
    return this.#core.init.remoteAddr;
  }

  /**
   * The subprotocol the upgrade answered (`Sec-WebSocket-Protocol`), `""` when it answered none:
   * `"chorus.v1"` for a `chorus-ws/client` client of a hub that speaks it.
   */
  get protocol(): string {
    return this.#core.init.protocol;
  }

  /**
   * Whether a connection carries the session now: false while a resumable session is detached
   * (its client away, within `resume.window`; what is sent to it is kept), and once it ended.
   */
  get connected(): boolean {
    return this.#core.connected;
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
    this.#core.write(msg);
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
    this.#core.close(code, reason);
  }

  /**
   * Tells whether the session has ended.
   *
   * @returns Whether the session is closed.
   */
  isClosed(): boolean {
    return this.#core.ended;
  }

  /** Bytes written to this session and not yet sent to the network. */
  get bufferedAmount(): number {
    return this.#core.bufferedAmount;
  }

  /**
   * Sets a key.
   *
   * @param key The key.
   * @param value Its value.
   */
  set<Key extends keyof K & string>(key: Key, value: K[Key]): void {
    this.keys[key] = value;
    this.#core.keysChanged();
  }

  /**
   * Reads a key.
   *
   * @param key The key.
   * @returns Its value, or `undefined` when it is not set.
   */
  get<Key extends keyof K & string>(key: Key): K[Key] | undefined {
    return this.#core.keys?.[key];
  }

  /**
   * Reads a key that must be set (melody's `MustGet`).
   *
   * @param key The key.
   * @returns Its value.
   * @throws {RangeError} If the key is not set, or is set to `undefined`.
   */
  mustGet<Key extends keyof K & string>(key: Key): K[Key] {
    const value = this.#core.keys?.[key];
    if (value === undefined) throw new RangeError(`Session key "${key}" is not set`);
    return value as K[Key];
  }

  /**
   * Removes a key.
   *
   * @param key The key.
   */
  unset<Key extends keyof K & string>(key: Key): void {
    const keys = this.#core.keys;
    if (keys) delete keys[key];
    this.#core.keysChanged();
  }

  /**
   * Tells whether a key is set.
   *
   * @param key The key.
   * @returns Whether the key is set.
   */
  has<Key extends keyof K & string>(key: Key): boolean {
    const keys = this.#core.keys;
    return keys !== undefined && key in keys;
  }

  /** The session's keys, as a live object. */
  get keys(): Partial<K> {
    return this.#core.keys ??= Object.create(null) as Partial<K>;
  }

  /**
   * Joins a room; its broadcasts reach this session from now on.
   *
   * @param room The room's name: a non-empty string of well-formed Unicode.
   * @throws {SessionClosedError} If the session is closed.
   * @throws {TypeError} If `room` is not a non-empty string, or holds a lone surrogate.
   */
  join(room: string): void {
    this.#core.join(room);
  }

  /**
   * Leaves a room. Leaving a room the session is not in does nothing.
   *
   * @param room The room's name.
   * @throws {TypeError} If `room` is not a non-empty string, or holds a lone surrogate.
   */
  leave(room: string): void {
    this.#core.leave(room);
  }

  /**
   * The rooms this session is in. Once the session has ended it still lists the rooms it was
   * in at the end, so `handleDisconnect` can tell them (it is in none of them any more).
   */
  get rooms(): ReadonlySet<string> {
    return this.#core.rooms ?? EMPTY_ROOMS;
  }
}
