/**
 * The hub users hold (hooks, broadcast, rooms, counts, close) over its core, `core/_hub_core.ts`, built
 * from the checked options (`options.ts`). May import: the core and the leaves; no adapter, server or broker.
 *
 * @module
 */

import { HubCore } from "./core/_hub_core.ts";
import { upgradeDeno } from "./core/_deno_socket.ts";
import { copyRequest } from "./core/_request.ts";
import { checkUpgrade } from "./core/_upgrade.ts";
import { byteLength, checkClose, checkRoom, toPayload } from "./core/_util.ts";
import type { SessionCore } from "./core/_session.ts";
import { refuse } from "./core/_refuse.ts";
import { HubClosedError } from "./errors.ts";
import type { HubMetrics } from "./metrics.ts";
import { type HubOptions, resolveOptions } from "./options.ts";
import { Room, type RoomHost } from "./room.ts";
import type { Session } from "./session.ts";
import type { HistoryEntry, Keys, Message, PresenceEvent } from "./types.ts";

/** Options of `handleRequest`. */
export interface HandleRequestOptions<K> {
  /** Initial session keys (melody's `HandleRequestWithKeys`). */
  keys?: Partial<K>;
  /** The peer's address, when the server knows it. */
  remoteAddr?: string;
}

/** A hook must be a function (a typo, or a value passed by mistake, must not be ignored). */
function handler<F>(fn: F, name: string): F {
  if (typeof fn !== "function") {
    throw new TypeError(`${name} takes a function, not ${fn === null ? "null" : typeof fn}`);
  }
  return fn;
}

/** The core of a hub, for the adapter contract (`chorus-ws/adapter`) and the servers. */
let coreOf: <K extends object>(hub: Hub<K>) => HubCore<K>;

/**
 * A WebSocket session hub: hooks, broadcast, rooms and per-session keys, on any runtime.
 *
 * @example
 * ```ts
 * import { Hub } from "chorus-ws";
 *
 * interface UserKeys {
 *   uid: string;
 * }
 * const hub = new Hub<UserKeys>();
 * hub.handleMessage((s, msg) => hub.broadcast(`${s.get("uid")}: ${msg}`));
 * // Deno: Deno.serve((req) => hub.handleRequest(req));
 * // either runtime: await serve(hub, { port: 8080 }) from "chorus-ws/serve"
 * ```
 */
export class Hub<K extends object = Keys> {
  readonly #core: HubCore<K>;
  #closing: Promise<void> | undefined;
  readonly #rooms: RoomHost<K>;

  static {
    coreOf = <K extends object>(hub: Hub<K>) => hub.#core;
  }

  /**
   * Creates a hub. Serve it with `serve()` (`chorus-ws/serve`), `chorus-ws/hono`, or an adapter.
   *
   * @param options Limits, keepalive and origin policy; see {@linkcode HubOptions}.
   * @throws {RangeError} If a number is out of range.
   * @throws {TypeError} If an option has the wrong type.
   */
  constructor(options: HubOptions<K> = {}) {
    const core = this.#core = new HubCore<K>(resolveOptions(options));
    const registry = core.registry;
    this.#rooms = {
      size: (room) => registry.count(room),
      sessions: (room) => Array.from(registry.rooms.get(room) ?? [], (s) => s.session),
      broadcast: (room, msg, except) => {
        core.delivery.broadcast(except ? "room-others" : "room", room, this.#prepare(msg), core.coreOf(except));
      },
      count: (room) => core.count(room),
      history: (room, limit) => this.#readHistory(room, limit),
      members: (room) => core.members(room),
    };
  }

  /** This hub's id among the nodes of a cluster. */
  get node(): string {
    return this.#core.node;
  }

  /**
   * Resolves once the broker is connected and receives other nodes' broadcasts (at once
   * without a broker). Broadcasts of other nodes sent before that are not received here.
   *
   * @returns A promise that rejects if the broker failed to start.
   */
  ready(): Promise<void> {
    return this.#core.ready;
  }

  /**
   * Sets the handler for a new session; it runs before any message of that session (if it
   * returns a promise, messages wait for it).
   * @param fn The handler.
   */
  handleConnect(fn: (s: Session<K>) => unknown): void {
    this.#core.hooks.connect = handler(fn, "handleConnect");
  }

  /**
   * Sets the handler that runs exactly once per session when it is gone, however it ended.
   * @param fn The handler.
   */
  handleDisconnect(fn: (s: Session<K>) => unknown): void {
    this.#core.hooks.disconnect = handler(fn, "handleDisconnect");
  }

  /**
   * Sets the handler for a resumable session that continues on a new connection after its
   * client came back (see `HubOptions.resume`); `handleConnect` does not run again.
   * @param fn The handler.
   */
  handleResume(fn: (s: Session<K>) => unknown): void {
    this.#core.hooks.resume = handler(fn, "handleResume");
  }

  /**
   * Sets the handler for text messages. A session's messages arrive in order; a handler that
   * returns a promise is awaited before the next (see `concurrentMessageHandling`).
   * @param fn The handler.
   */
  handleMessage(fn: (s: Session<K>, msg: string) => unknown): void {
    this.#core.hooks.message = handler(fn, "handleMessage");
  }

  /**
   * Sets the handler for binary messages.
   * @param fn The handler.
   */
  handleMessageBinary(fn: (s: Session<K>, msg: Uint8Array) => unknown): void {
    this.#core.hooks.messageBinary = handler(fn, "handleMessageBinary");
  }

  /**
   * Sets the handler that runs after a text message was handed to the runtime.
   * @param fn The handler.
   */
  handleSentMessage(fn: (s: Session<K>, msg: string) => unknown): void {
    this.#core.hooks.sentMessage = handler(fn, "handleSentMessage");
  }

  /**
   * Sets the handler that runs after a binary message was handed to the runtime.
   * @param fn The handler.
   */
  handleSentMessageBinary(fn: (s: Session<K>, msg: Uint8Array) => unknown): void {
    this.#core.hooks.sentMessageBinary = handler(fn, "handleSentMessageBinary");
  }

  /**
   * Sets the handler for pongs, where the runtime reports them (Bun; not Deno).
   * @param fn The handler.
   */
  handlePong(fn: (s: Session<K>) => unknown): void {
    this.#core.hooks.pong = handler(fn, "handlePong");
  }

  /**
   * Sets the handler for errors: handlers that threw or rejected, refused writes, socket errors.
   * Without one, errors are logged with `console.error`.
   * @param fn The handler.
   */
  handleError(fn: (s: Session<K>, err: Error) => unknown): void {
    this.#core.hooks.error = handler(fn, "handleError");
  }

  /**
   * Sets the handler for a close the peer started (or a lost connection, code 1006); the
   * disconnect handler runs after it.
   * @param fn The handler.
   */
  handleClose(fn: (s: Session<K>, code: number, reason: string) => unknown): void {
    this.#core.hooks.close = handler(fn, "handleClose");
  }

  /**
   * Sets the handler for joins and leaves of rooms (`presence` on): it runs on every node for
   * the joins and leaves of every node, once per room per batching interval (`presence.interval`)
   * with what changed in it. A session that joins and leaves within one interval is not
   * reported; one that ends leaves its rooms; a detached resumable session stays a member until
   * it ends; one that resumes on another node moves there without a leave or a join.
   *
   * @example
   * ```ts
   * import { Hub } from "chorus-ws";
   * const hub = new Hub<{ name: string }>({ presence: { keys: ["name"] } });
   * hub.handlePresence((room, { joins, leaves }) => {
   *   hub.room(room).broadcast(JSON.stringify({ joins: joins.map((m) => m.keys.name), leaves: leaves.length }));
   * });
   * ```
   *
   * @param fn The handler.
   */
  handlePresence(fn: (room: string, change: PresenceEvent<K>) => unknown): void {
    const presence = this.#core.presence;
    if (presence) presence.hook = handler(fn, "handlePresence");
    else handler(fn, "handlePresence");
  }

  /**
   * Sets the handler for broker errors, which belong to no session: the connection to the
   * broker lost or refused (the broker reconnects by itself; local delivery goes on), a
   * message from another node refused as oversized or malformed (`BrokerMessageError`), a
   * publish that failed. Without one, they are logged with `console.error`.
   * @param fn The handler.
   */
  handleBrokerError(fn: (err: Error) => unknown): void {
    this.#core.brokerError = handler(fn, "handleBrokerError");
  }

  /**
   * Sends a message to every session, on every node when the hub has a broker.
   *
   * @param msg The message: a string goes as a text frame, bytes as a binary frame.
   * @throws {HubClosedError} If the hub is closed.
   * @throws {TypeError} If `msg` is not a string, Uint8Array or ArrayBuffer.
   * @throws {RangeError} If the message is larger than the broker allows (nothing is sent).
   */
  broadcast(msg: Message): void {
    this.#core.delivery.broadcast("all", undefined, this.#prepare(msg), undefined);
  }

  /**
   * Sends a message to every session of this node for which `filter` returns true
   * (node-local: a broker does not carry it).
   *
   * @param msg The message.
   * @param filter Called once per session.
   * @throws {HubClosedError} If the hub is closed.
   */
  broadcastFilter(msg: Message, filter: (s: Session<K>) => boolean): void {
    const payload = this.#prepare(msg);
    if (typeof filter !== "function") throw new TypeError("filter must be a function");
    const picked: SessionCore<K>[] = [];
    const core = this.#core;
    for (const s of core.registry.sessions.values()) if (filter(s.session)) picked.push(s);
    core.fanout.deliverTo(picked.filter((s) => !s.ended), payload, byteLength(payload), undefined);
  }

  /**
   * Sends a message to every session but one, on every node when the hub has a broker (the
   * other nodes deliver to all their sessions).
   *
   * @param msg The message.
   * @param except The session left out (usually the sender).
   * @throws {HubClosedError} If the hub is closed.
   * @throws {RangeError} If the message is larger than the broker allows (nothing is sent).
   */
  broadcastOthers(msg: Message, except: Session<K>): void {
    this.#core.delivery.broadcast("others", undefined, this.#prepare(msg), this.#core.coreOf(except));
  }

  /**
   * Sends a message to the given sessions; closed ones are skipped (node-local: a broker does
   * not carry it).
   *
   * @param msg The message.
   * @param sessions The recipients.
   * @throws {HubClosedError} If the hub is closed.
   */
  broadcastMultiple(msg: Message, sessions: Iterable<Session<K>>): void {
    const payload = this.#prepare(msg);
    const cores: SessionCore<K>[] = [];
    for (const s of sessions) {
      const core = this.#core.coreOf(s);
      if (core) cores.push(core);
    }
    this.#core.fanout.deliverTo(cores.filter((core) => !core.ended), payload, byteLength(payload), undefined);
  }

  /**
   * Counts the sessions on every node of the cluster (with a broker), or on this node.
   *
   * @example
   * ```ts
   * import { Hub } from "chorus-ws";
   * const hub = new Hub();
   * console.log(`${await hub.count()} online, ${await hub.room("lobby").count()} in the lobby`);
   * ```
   *
   * @returns The count. It rejects with `HubClosedError` once the hub is closed and, with a
   * broker, while the broker cannot be reached.
   */
  count(): Promise<number> {
    return this.#core.count(undefined);
  }

  /**
   * A room by name; rooms exist while someone is in them.
   *
   * @param name The room's name: a non-empty string of well-formed Unicode.
   * @returns The room.
   * @throws {TypeError} If `name` is not a non-empty string, or holds a lone surrogate.
   */
  room(name: string): Room<K> {
    checkRoom(name);
    return new Room(this.#rooms, name);
  }

  /**
   * Lists the sessions of this node.
   *
   * @returns A snapshot array of the sessions connected to this node.
   */
  sessions(): Session<K>[] {
    return Array.from(this.#core.registry.sessions.values(), (s) => s.session);
  }

  /**
   * Finds a session of this node by id.
   *
   * @param id A session id.
   * @returns The connected session with that id, if any.
   */
  get(id: string): Session<K> | undefined {
    return this.#core.registry.sessions.get(id)?.session;
  }

  /**
   * How many sessions this node has, detached resumable ones included (see `count()` for the
   * cluster, and `session.connected`).
   */
  get size(): number {
    return this.#core.registry.sessions.size;
  }

  /**
   * Closes every session and refuses new ones. `isClosed()` is true from the first moment, so
   * the disconnect hooks it runs see it (and broadcasts from them throw `HubClosedError`).
   * Resolves once every disconnect handler has finished and the broker, if any, has stopped
   * (unsubscribed, this node's counts removed; the other nodes live on). Calling it again,
   * from a hook too, returns the same promise.
   *
   * @param code Close code sent to every session. @default {1001}
   * @param reason Close reason. @default {""}
   * @returns A promise that resolves when every session is gone (rejects with a RangeError
   *   for a bad code or reason).
   */
  close(code = 1001, reason = ""): Promise<void> {
    if (this.#closing) return this.#closing;
    try {
      checkClose(code, reason);
    } catch (err) {
      return Promise.reject(err);
    }
    // Closed from this moment: the disconnect hooks that close runs see it.
    let done!: (result: Promise<void>) => void;
    this.#closing = new Promise<void>((resolve) => done = resolve);
    done(this.#core.close(code, reason));
    return this.#closing;
  }

  /**
   * What a person running chorus watches, on this node: sessions (and detached ones), connects,
   * disconnects, resumes, refused upgrades, messages and bytes in and out, drops, clients that
   * did not keep up, 1009 closes, broker errors and latency. `prometheusText(hub.metrics())`
   * gives the Prometheus text format.
   *
   * @example
   * ```ts
   * import { Hub, prometheusText } from "chorus-ws";
   * const hub = new Hub();
   * const { sessions, messagesOut } = hub.metrics();
   * console.log(sessions, messagesOut, prometheusText(hub.metrics()).length > 0);
   * ```
   *
   * @returns A snapshot: gauges now, counters since the hub was made.
   */
  metrics(): HubMetrics {
    return this.#core.metrics();
  }

  /**
   * Tells whether the hub is closed (or closing).
   *
   * @returns Whether `close` has been called.
   */
  isClosed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Upgrades a request to a WebSocket session (melody's `HandleRequest`) on Deno:
   * `Deno.serve((req) => hub.handleRequest(req))`. On Bun, whose upgrade needs the server
   * object, use `serve()`, `chorus-ws/hono` or `bunAdapter`.
   * It answers as every other path does: 426 for a request that is not an upgrade, 403 for a
   * refused origin, 503 once the hub is closed, 400 for a malformed upgrade.
   *
   * @param req The request.
   * @param opts Initial keys and the peer's address.
   * @returns The response to send.
   */
  handleRequest(req: Request, opts: HandleRequestOptions<K> = {}): Promise<Response> {
    try {
      const core = this.#core;
      const refused = checkUpgrade(core, req);
      if (refused) return Promise.resolve(refuse(req, refused) ?? refused);
      return Promise.resolve(upgradeDeno(core, req, copyRequest(req, opts.keys, opts.remoteAddr ?? "")));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * The checks every upgrade passes first: the hub is open, the request asks for a
   * WebSocket, and its origin is allowed.
   *
   * @param req The request.
   * @returns A refusal (426 or 403), or `undefined` when the upgrade may go on.
   * @throws {HubClosedError} If the hub is closed.
   */
  checkRequest(req: Request): Response | undefined {
    return this.#core.checkRequest(req);
  }

  /** A room's last messages, oldest first. */
  #readHistory(room: string, limit: number | undefined): Promise<HistoryEntry[]> {
    if (this.#core.closing) return Promise.reject(new HubClosedError("Hub is closed: history refused"));
    return this.#core.history.read(room, limit);
  }

  #prepare(msg: Message): string | Uint8Array {
    if (this.#core.closing) throw new HubClosedError("Hub is closed: broadcast refused");
    return toPayload(msg);
  }
}

/**
 * The core of a hub: what `chorus-ws/adapter` and the servers reach. Internal.
 *
 * @param hub A hub.
 * @returns Its core.
 * @throws {TypeError} If `hub` is not a chorus `Hub`.
 */
export function hubCore<K extends object>(hub: Hub<K>): HubCore<K> {
  if (!(hub instanceof Hub)) throw new TypeError("Not a chorus Hub");
  return coreOf(hub);
}
