/**
 * The hub: the registry of sessions, the hooks, broadcast, rooms and close.
 *
 * @module
 */

import type { BroadcastKind, Broker, BrokerLink, BrokerMessage } from "./broker.ts";
import { HubClosedError } from "./errors.ts";
import {
  byteLength,
  checkClose,
  DELIVER,
  DROPPED,
  type Hooks,
  type Keys,
  type Message,
  Session,
  type SessionHost,
  SHUTDOWN,
  SOCKET,
  START,
  TICK,
  toPayload,
} from "./session.ts";
import type { HubSocket, Publisher, SessionInit } from "./socket.ts";

/** Options of a {@linkcode Hub}. Times are in milliseconds, sizes in bytes. */
export interface HubOptions {
  /**
   * Largest inbound message; a larger one closes the session with 1009.
   * @default {1048576}
   */
  maxMessageSize?: number;
  /**
   * Most bytes a session may have queued for sending. A write that would exceed it is
   * refused (see `onBufferFull`), so memory stays bounded however slowly a client reads.
   * @default {4194304}
   */
  maxBufferedAmount?: number;
  /**
   * What a refused write does: `"drop"` drops the message and reports a
   * `MessageBufferFullError` to `handleError`; `"close"` also closes the session with 1008.
   * @default {"drop"}
   */
  onBufferFull?: "drop" | "close";
  /**
   * How often an idle peer is pinged, where the runtime lets the hub ping (Bun); `0` turns
   * keepalive off. On Deno the runtime pings by itself within `pongWait`.
   * @default {30000}
   */
  pingInterval?: number;
  /**
   * How long a ping may go unanswered before the peer is disconnected. On Deno this becomes
   * `idleTimeout`, rounded up to whole seconds.
   * @default {60000}
   */
  pongWait?: number;
  /**
   * When true, a handler that returns a promise does not hold back the session's next message.
   * @default {false}
   */
  concurrentMessageHandling?: boolean;
  /**
   * Decides whether an upgrade that carries an `Origin` header is accepted. By default only
   * an origin whose host equals the request's `Host` is (a request without `Origin`, from a
   * non-browser client, is always accepted). Refused upgrades get 403.
   * @default {sameOrigin}
   */
  checkOrigin?: (origin: string, req: Request) => boolean;
  /**
   * Carries hub-wide and room broadcasts to the hubs of other processes and machines, and
   * keeps cluster-wide counts (`hub.count()`, `room.count()`); e.g. `redisBroker()` from
   * `chorus/redis`. Without one the hub is a single node. `broadcastFilter`,
   * `broadcastMultiple`, `sessions()`, `get()` and `size` stay node-local either way.
   * @default {undefined}
   */
  broker?: Broker;
}

/** Options of `handleRequest`. */
export interface HandleRequestOptions<K> {
  /** Initial session keys (melody's `HandleRequestWithKeys`). */
  keys?: Partial<K>;
  /** The peer's address, when the server knows it. */
  remoteAddr?: string;
}

/**
 * Turns an accepted upgrade request into a WebSocket response and, once the socket opens,
 * attaches it to the hub. Adapters provide one.
 */
export type Upgrader = <K extends Keys>(hub: Hub<K>, req: Request, init: SessionInit<K>) => Response;

let defaultUpgrader: Upgrader | undefined;

/** Internal: a room broadcast (the room calls its hub). */
const ROOM_BROADCAST: unique symbol = Symbol("chorus.roomBroadcast");
/** Internal: a room's cluster-wide count (the room calls its hub). */
const ROOM_COUNT: unique symbol = Symbol("chorus.roomCount");

/**
 * Internal, for tests and benchmarks: how many broadcasts of a hub went out as one native
 * publish. Not part of the public API.
 * @internal
 */
export const NATIVE_PUBLISHES: unique symbol = Symbol("chorus.nativePublishes");

let hubCount = 0;

/**
 * Sets the upgrader `handleRequest` uses. The Deno adapter installs itself here when it runs
 * on Deno.
 *
 * @param upgrader The upgrader.
 */
export function setDefaultUpgrader(upgrader: Upgrader): void {
  defaultUpgrader = upgrader;
}

/**
 * The default origin check: the origin's host must equal the request's `Host` header.
 *
 * @param origin The `Origin` header.
 * @param req The upgrade request.
 * @returns Whether the origin is the request's own.
 */
export function sameOrigin(origin: string, req: Request): boolean {
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return false;
  }
  const expected = req.headers.get("host") ?? new URL(req.url).host;
  return host.toLowerCase() === expected.toLowerCase();
}

/** A room: the sessions that joined it, and broadcast to them. */
export class Room<K extends Keys = Keys> {
  /** The room's name. */
  readonly name: string;
  #hub: Hub<K>;
  #members: (name: string) => ReadonlySet<Session<K>> | undefined;

  /** @internal Use `hub.room(name)`. */
  constructor(hub: Hub<K>, name: string, members: (name: string) => ReadonlySet<Session<K>> | undefined) {
    this.#hub = hub;
    this.name = name;
    this.#members = members;
  }

  /** How many sessions are in the room. */
  get size(): number {
    return this.#members(this.name)?.size ?? 0;
  }

  /**
   * Counts the room's sessions on every node of the cluster (with a broker), or on this node.
   *
   * @returns The count. It rejects with `HubClosedError` once the hub is closed and, with a
   * broker, while the broker cannot be reached.
   */
  count(): Promise<number> {
    return this.#hub[ROOM_COUNT](this.name);
  }

  /** @returns A snapshot of the room's sessions on this node. */
  sessions(): Session<K>[] {
    const members = this.#members(this.name);
    return members ? [...members] : [];
  }

  /**
   * Sends a message to every session in the room, on every node when the hub has a broker.
   *
   * @param msg The message.
   * @throws {HubClosedError} If the hub is closed.
   */
  broadcast(msg: Message): void {
    this.#hub[ROOM_BROADCAST](this.name, msg, undefined);
  }

  /**
   * Sends a message to every session in the room but one, on every node when the hub has a
   * broker (the other nodes deliver to all their members).
   *
   * @param msg The message.
   * @param except The session left out (usually the sender).
   * @throws {HubClosedError} If the hub is closed.
   */
  broadcastOthers(msg: Message, except: Session<K>): void {
    this.#hub[ROOM_BROADCAST](this.name, msg, except);
  }
}

/**
 * A WebSocket session hub: hooks, broadcast, rooms and per-session keys, on any runtime.
 *
 * @example
 * ```ts
 * import { Hub } from "@chorus/chorus";
 *
 * const hub = new Hub();
 * hub.handleMessage((_s, msg) => hub.broadcast(msg));
 * // Deno: Deno.serve((req) => hub.handleRequest(req));
 * // either runtime: await serve(hub, { port: 8080 }) from "./src/serve.ts"
 * ```
 */
export class Hub<K extends Keys = Keys> {
  #sessions = new Map<string, Session<K>>();
  #rooms = new Map<string, Set<Session<K>>>();
  #hooks: Hooks<K> = {};
  #closing: Promise<void> | undefined;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #host: SessionHost<K>;
  #pingInterval: number;
  #pongWait: number;
  #checkOrigin: (origin: string, req: Request) => boolean;
  #broker: Broker | undefined;
  #node: string;
  #ready: Promise<void>;
  #brokerError: ((err: Error) => unknown) | undefined;
  #publisher: Publisher | undefined;
  /** Sessions whose socket has no native fan-out: while any is connected, broadcasts loop. */
  #foreign = 0;

  /**
   * @param options Limits, keepalive and origin policy; see {@linkcode HubOptions}.
   * @throws {RangeError} If a number is out of range.
   * @throws {TypeError} If an option has the wrong type.
   */
  constructor(options: HubOptions = {}) {
    const maxMessageSize = size(options.maxMessageSize, 1 << 20, "maxMessageSize");
    const maxBufferedAmount = size(options.maxBufferedAmount, 4 << 20, "maxBufferedAmount");
    this.#pingInterval = time(options.pingInterval, 30_000, "pingInterval");
    this.#pongWait = time(options.pongWait, 60_000, "pongWait");
    const onBufferFull = options.onBufferFull ?? "drop";
    if (onBufferFull !== "drop" && onBufferFull !== "close") {
      throw new TypeError(`onBufferFull must be "drop" or "close", not ${String(onBufferFull)}`);
    }
    const checkOrigin = options.checkOrigin ?? sameOrigin;
    if (typeof checkOrigin !== "function") throw new TypeError("checkOrigin must be a function");
    this.#checkOrigin = checkOrigin;
    const hooks = this.#hooks;
    const sessions = this.#sessions;
    const rooms = this.#rooms;
    const countChanged = (room: string | undefined) => this.#broker?.changed(room);
    // Native topics: "chorus.<hub>.all" and "chorus.<hub>.room.<name>" never collide with each
    // other, with another hub's, or with a room name, whatever the name.
    const topic = `chorus.${(++hubCount).toString(36)}.`;
    this.#host = {
      maxMessageSize,
      maxBufferedAmount,
      closeOnBufferFull: onBufferFull === "close",
      concurrent: options.concurrentMessageHandling === true,
      hooks,
      allTopic: `${topic}all`,
      roomPrefix: `${topic}room.`,
      publishes: 0,
      join(session, room) {
        let members = rooms.get(room);
        if (!members) rooms.set(room, members = new Set());
        members.add(session);
        countChanged(room);
      },
      leave(session, room) {
        const members = rooms.get(room);
        if (members?.delete(session) && members.size === 0) rooms.delete(room);
        countChanged(room);
      },
      remove: (session) => {
        if (sessions.delete(session.id) && !session[SOCKET].subscribe) this.#foreign--;
        countChanged(undefined);
        if (sessions.size === 0) this.#stopTicker();
        const onDisconnect = hooks.disconnect;
        if (!onDisconnect) return undefined;
        try {
          const result = onDisconnect(session);
          if (result instanceof Promise) return result.then(undefined, (err) => this.#report(session, err));
        } catch (err) {
          this.#report(session, err);
        }
        return undefined;
      },
      report: (session, err) => this.#report(session, err),
    };
    this.#node = randomId();
    const broker = options.broker;
    if (broker !== undefined && (broker === null || typeof broker.start !== "function")) {
      throw new TypeError("broker must be a Broker (e.g. redisBroker() from chorus/redis)");
    }
    this.#broker = broker;
    this.#ready = Promise.resolve();
    if (broker) {
      const link: BrokerLink = {
        node: this.#node,
        deliver: (msg) => this.#deliverRemote(msg),
        report: (err) => this.#reportBroker(err),
        localCount: (room) => room === undefined ? sessions.size : rooms.get(room)?.size ?? 0,
        rooms: () => rooms.keys(),
      };
      try {
        this.#ready = Promise.resolve(broker.start(link));
      } catch (err) {
        this.#ready = Promise.reject(err);
      }
      this.#ready.catch((err) => this.#reportBroker(err));
    }
  }

  /** This hub's id among the nodes of a cluster. */
  get node(): string {
    return this.#node;
  }

  /**
   * Resolves once the broker is connected and receives other nodes' broadcasts (at once
   * without a broker). Broadcasts of other nodes sent before that are not received here.
   *
   * @returns A promise that rejects if the broker failed to start.
   */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** The options adapters map onto the runtime (keepalive and limits), resolved with defaults. */
  get options(): {
    readonly maxMessageSize: number;
    readonly maxBufferedAmount: number;
    readonly closeOnBufferFull: boolean;
    readonly pingInterval: number;
    readonly pongWait: number;
  } {
    const host = this.#host;
    return {
      maxMessageSize: host.maxMessageSize,
      maxBufferedAmount: host.maxBufferedAmount,
      closeOnBufferFull: host.closeOnBufferFull,
      pingInterval: this.#pingInterval,
      pongWait: this.#pongWait,
    };
  }

  /**
   * Sets the handler for a new session; it runs before any message of that session (if it
   * returns a promise, messages wait for it).
   * @param fn The handler.
   */
  handleConnect(fn: (s: Session<K>) => unknown): void {
    this.#hooks.connect = fn;
  }

  /**
   * Sets the handler that runs exactly once per session when it is gone, however it ended.
   * @param fn The handler.
   */
  handleDisconnect(fn: (s: Session<K>) => unknown): void {
    this.#hooks.disconnect = fn;
  }

  /**
   * Sets the handler for text messages. A session's messages arrive in order; a handler that
   * returns a promise is awaited before the next (see `concurrentMessageHandling`).
   * @param fn The handler.
   */
  handleMessage(fn: (s: Session<K>, msg: string) => unknown): void {
    this.#hooks.message = fn;
  }

  /**
   * Sets the handler for binary messages.
   * @param fn The handler.
   */
  handleMessageBinary(fn: (s: Session<K>, msg: Uint8Array) => unknown): void {
    this.#hooks.messageBinary = fn;
  }

  /**
   * Sets the handler that runs after a text message was handed to the runtime.
   * @param fn The handler.
   */
  handleSentMessage(fn: (s: Session<K>, msg: string) => unknown): void {
    this.#hooks.sentMessage = fn;
  }

  /**
   * Sets the handler that runs after a binary message was handed to the runtime.
   * @param fn The handler.
   */
  handleSentMessageBinary(fn: (s: Session<K>, msg: Uint8Array) => unknown): void {
    this.#hooks.sentMessageBinary = fn;
  }

  /**
   * Sets the handler for pongs, where the runtime reports them (Bun; not Deno).
   * @param fn The handler.
   */
  handlePong(fn: (s: Session<K>) => unknown): void {
    this.#hooks.pong = fn;
  }

  /**
   * Sets the handler for errors: handlers that threw or rejected, refused writes, socket errors.
   * Without one, errors are logged with `console.error`.
   * @param fn The handler.
   */
  handleError(fn: (s: Session<K>, err: Error) => unknown): void {
    this.#hooks.error = fn;
  }

  /**
   * Sets the handler for a close the peer started (or a lost connection, code 1006); the
   * disconnect handler runs after it.
   * @param fn The handler.
   */
  handleClose(fn: (s: Session<K>, code: number, reason: string) => unknown): void {
    this.#hooks.close = fn;
  }

  /**
   * Sets the handler for broker errors, which belong to no session: the connection to the
   * broker lost or refused (the broker reconnects by itself; local delivery goes on), a
   * message from another node refused as oversized or malformed (`BrokerMessageError`), a
   * publish that failed. Without one, they are logged with `console.error`.
   * @param fn The handler.
   */
  handleBrokerError(fn: (err: Error) => unknown): void {
    this.#brokerError = fn;
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
    const payload = this.#prepare(msg);
    this.#publish("all", undefined, payload);
    this.#deliverLocal(payload, byteLength(payload), undefined, undefined);
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
    const size = byteLength(payload);
    for (const s of [...this.#sessions.values()]) {
      if (!s.isClosed() && filter(s)) s[DELIVER](payload, size);
    }
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
    const payload = this.#prepare(msg);
    this.#publish("others", undefined, payload);
    this.#deliverLocal(payload, byteLength(payload), undefined, except);
  }

  /** @internal Room broadcasts, from {@linkcode Room}. */
  [ROOM_BROADCAST](room: string, msg: Message, except: Session<K> | undefined): void {
    const payload = this.#prepare(msg);
    this.#publish(except ? "room-others" : "room", room, payload);
    this.#deliverLocal(payload, byteLength(payload), room, except);
  }

  /** @internal A room's count, from {@linkcode Room}. */
  [ROOM_COUNT](room: string): Promise<number> {
    return this.#count(room);
  }

  /**
   * Counts the sessions on every node of the cluster (with a broker), or on this node.
   *
   * @example
   * ```ts
   * import { Hub } from "@chorus/chorus";
   * const hub = new Hub();
   * console.log(`${await hub.count()} online, ${await hub.room("lobby").count()} in the lobby`);
   * ```
   *
   * @returns The count. It rejects with `HubClosedError` once the hub is closed and, with a
   * broker, while the broker cannot be reached.
   */
  count(): Promise<number> {
    return this.#count(undefined);
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
    const size = byteLength(payload);
    for (const s of [...sessions]) if (!s.isClosed()) s[DELIVER](payload, size);
  }

  /**
   * A room by name; rooms exist while someone is in them.
   *
   * @param name The room's name.
   * @returns The room.
   * @throws {TypeError} If `name` is not a non-empty string.
   */
  room(name: string): Room<K> {
    if (typeof name !== "string" || name === "") throw new TypeError("A room name must be a non-empty string");
    return new Room(this, name, (n) => this.#rooms.get(n));
  }

  /** @returns A snapshot of the sessions connected to this node. */
  sessions(): Session<K>[] {
    return [...this.#sessions.values()];
  }

  /**
   * @param id A session id.
   * @returns The connected session with that id, if any.
   */
  get(id: string): Session<K> | undefined {
    return this.#sessions.get(id);
  }

  /** How many sessions are connected to this node (see `count()` for the cluster). */
  get size(): number {
    return this.#sessions.size;
  }

  /**
   * Closes every session and refuses new ones. Resolves once every disconnect handler has
   * finished and the broker, if any, has stopped (unsubscribed, this node's counts removed;
   * the other nodes live on). Calling it again returns the same promise.
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
    const waits: Promise<void>[] = [];
    for (const s of [...this.#sessions.values()]) {
      const done = s[SHUTDOWN](code, reason);
      if (done) waits.push(done);
    }
    this.#stopTicker();
    const broker = this.#broker;
    const sessionsGone = Promise.all(waits).then(() => {});
    return this.#closing = !broker ? sessionsGone : sessionsGone.then(async () => {
      try {
        await broker.stop();
      } catch (err) {
        this.#reportBroker(err);
      }
    });
  }

  /** @returns Whether `close` has been called. */
  isClosed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Upgrades a request to a WebSocket session (melody's `HandleRequest`) on Deno:
   * `Deno.serve((req) => hub.handleRequest(req))`. On Bun, whose upgrade needs the server
   * object, use `serve()`, `chorus/hono` or `bunAdapter`.
   * A request that is not an upgrade gets 426; a refused origin gets 403.
   *
   * @param req The request.
   * @param opts Initial keys and the peer's address.
   * @returns The response to send.
   * @throws {HubClosedError} If the hub is closed.
   */
  handleRequest(req: Request, opts: HandleRequestOptions<K> = {}): Promise<Response> {
    try {
      const refused = this.checkRequest(req);
      if (refused) return Promise.resolve(refused);
      const upgrader = defaultUpgrader;
      if (!upgrader) {
        throw new Error(
          "hub.handleRequest upgrades with Deno.upgradeWebSocket; on Bun use serve(), chorus/hono or bunAdapter (Bun's upgrade needs its server)",
        );
      }
      return Promise.resolve(upgrader(this, req, sessionInit(req, opts.keys, opts.remoteAddr ?? "")));
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
    if (this.#closing) throw new HubClosedError("Hub is closed: upgrade refused");
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("Expected a WebSocket upgrade", { status: 426, headers: { upgrade: "websocket" } });
    }
    const origin = req.headers.get("origin");
    if (origin !== null && !this.#checkOrigin(origin, req)) {
      return new Response("Origin not allowed", { status: 403 });
    }
    return undefined;
  }

  /**
  /**
   * For adapters: installs (or, with `undefined`, removes) the runtime's native fan-out. From
   * then on a hub-wide or room broadcast is one `publish` to a topic, as long as every
   * session's socket offers `subscribe` and no sent-message hook is set for the message's
   * kind; otherwise it loops over the sessions. `broadcastFilter` and `broadcastMultiple`
   * always loop. The Bun adapter and `serve()` on Bun install `server.publish` here.
   *
   * A session's outbound limit holds on both paths, but differently: a native publish is
   * dropped by the runtime for a socket whose queue is already past its limit, and when the
   * runtime says a publish was dropped, each session whose queue is past `maxBufferedAmount`
   * gets a `MessageBufferFullError` (and is closed, with `onBufferFull: "close"`).
   *
   * @param publisher The runtime's publisher, or `undefined` to always loop.
   */
  usePublisher(publisher: Publisher | undefined): void {
    this.#publisher = publisher;
  }

  /** @internal For tests and benchmarks: how many broadcasts went out as one native publish. */
  get [NATIVE_PUBLISHES](): number {
    return this.#host.publishes;
  }

  /**
   * For adapters: turns an open socket into a session and runs the connect hook. On a
   * closed hub the socket is closed with 1001 and nothing is returned.
   *
   * @param socket The socket, in the core's contract.
   * @param init What the adapter kept from the upgrade request.
   * @returns The session, whose symbol-keyed entry points take the socket's events.
   */
  attach(socket: HubSocket, init: SessionInit<K>): Session<K> | undefined {
    if (this.#closing) {
      socket.close(1001, "Hub is closed");
      return undefined;
    }
    const session = new Session(this.#host, socket, init);
    this.#sessions.set(session.id, session);
    this.#broker?.changed(undefined);
    if (socket.subscribe) socket.subscribe(this.#host.allTopic);
    else this.#foreign++;
    if (socket.ping && this.#pingInterval > 0 && !this.#ticker) {
      const step = Math.min(this.#pingInterval, this.#pongWait);
      this.#ticker = setInterval(() => {
        const now = Date.now();
        for (const s of this.#sessions.values()) s[TICK](now, this.#pingInterval, this.#pongWait);
      }, step);
    }
    session[START]();
    return session;
  }

  /**
   * Delivers a message on this node to every session, or to a room's, but `except`: the one
   * place a hub-wide or room broadcast reaches sessions.
   */
  #deliverLocal(
    payload: string | Uint8Array,
    size: number,
    room: string | undefined,
    except: Session<K> | undefined,
  ): void {
    const publisher = this.#publisher;
    if (publisher !== undefined && this.#foreign === 0) {
      const hooks = this.#hooks;
      if (typeof payload === "string" ? !hooks.sentMessage : !hooks.sentMessageBinary) {
        this.#publishLocal(publisher, payload, size, room, except);
        return;
      }
    }
    // The loop walks the live registry: no snapshot, no closure, nothing allocated per session.
    const targets = room === undefined ? this.#sessions.values() : this.#rooms.get(room);
    if (!targets) return;
    for (const s of targets) if (s !== except) s[DELIVER](payload, size);
  }

  /** Hands a broadcast to the broker (before local delivery, so an oversized one throws first). */
  #publish(kind: BroadcastKind, room: string | undefined, payload: string | Uint8Array): void {
    const broker = this.#broker;
    if (!broker) return;
    broker.publish(
      room === undefined ? { node: this.#node, kind, payload } : { node: this.#node, kind, room, payload },
    );
  }

  /** A broadcast from another node: delivered here to all (the sender is not on this node). */
  #deliverRemote(msg: BrokerMessage): void {
    if (this.#closing || msg.node === this.#node) return;
    const inRoom = msg.kind === "room" || msg.kind === "room-others";
    if (inRoom && msg.room === undefined) return;
    this.#deliverLocal(msg.payload, byteLength(msg.payload), inRoom ? msg.room : undefined, undefined);
  }

  #count(room: string | undefined): Promise<number> {
    if (this.#closing) return Promise.reject(new HubClosedError("Hub is closed: count refused"));
    const broker = this.#broker;
    if (!broker) return Promise.resolve(room === undefined ? this.#sessions.size : this.#rooms.get(room)?.size ?? 0);
    try {
      return broker.count(room);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #reportBroker(err: unknown): void {
    const onError = this.#brokerError;
    reportTo(onError && ((error) => onError(error)), err, "broker", "handleBrokerError");
  }

  /**
   * `#deliverLocal` through the runtime's native fan-out: one publish to the hub's or the
   * room's topic, from `except`'s own socket when it is a recipient (the runtime skips it).
   */
  #publishLocal(
    publisher: Publisher,
    payload: string | Uint8Array,
    size: number,
    room: string | undefined,
    except: Session<K> | undefined,
  ): void {
    const host = this.#host;
    let members: Set<Session<K>> | undefined;
    let topic: string;
    let recipients: number;
    let fromExcept: boolean;
    if (room === undefined) {
      topic = host.allTopic;
      recipients = this.#sessions.size;
      fromExcept = except !== undefined && this.#sessions.get(except.id) === except;
    } else {
      members = this.#rooms.get(room);
      if (!members) return;
      topic = host.roomPrefix + room;
      recipients = members.size;
      fromExcept = except !== undefined && members.has(except);
    }
    if (fromExcept) recipients--;
    if (recipients <= 0) return;
    host.publishes++;
    const status = fromExcept ? except![SOCKET].publish!(topic, payload) : publisher.publish(topic, payload);
    if (status !== 0) return;
    // Dropped for some subscriber: find the sessions past their limit and report them.
    for (const s of members ?? this.#sessions.values()) if (s !== except) s[DROPPED](size);
  }

  #prepare(msg: Message): string | Uint8Array {
    if (this.#closing) throw new HubClosedError("Hub is closed: broadcast refused");
    return toPayload(msg);
  }

  #stopTicker(): void {
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    this.#ticker = undefined;
  }

  #report(session: Session<K>, err: unknown): void {
    const onError = this.#hooks.error;
    reportTo(onError && ((error) => onError(session, error)), err, `session ${session.id}`, "handleError");
  }
}

/** Hands an error to an error hook, or logs it; a hook that fails is logged, never thrown. */
function reportTo(hook: ((err: Error) => unknown) | undefined, err: unknown, origin: string, name: string): void {
  const error = err instanceof Error ? err : new Error(String(err));
  if (!hook) {
    console.error(`chorus: ${origin}:`, error);
    return;
  }
  try {
    const result = hook(error);
    if (result instanceof Promise) result.catch((e) => console.error(`chorus: ${name} failed:`, e));
  } catch (e) {
    console.error(`chorus: ${name} failed:`, e);
  }
}

/**
 * Copies what a session keeps of its upgrade request (the original may be unusable after it).
 *
 * @param req The upgrade request.
 * @param keys Initial keys.
 * @param remoteAddr The peer's address.
 * @returns The session's init record.
 */
export function sessionInit<K>(req: Request, keys: Partial<K> | undefined, remoteAddr: string): SessionInit<K> {
  return new RequestCopy(req, keys, remoteAddr);
}

/**
 * A session's init record that keeps the request's url, method and headers as three strings
 * and builds the `Request` on first use: a `Request` per idle session costs kilobytes (about
 * 2.7 KB of heap on Deno), its strings a few hundred bytes. Headers are kept as one string of
 * `name:value` lines (a header can hold neither a newline nor, in its name, a colon).
 *
 * The headers must be copied before the upgrade: on Deno they are unreadable after it. Reading
 * them all has a cost on Deno that no copy avoids: Deno keeps the upgraded request alive as
 * long as its socket, with the full header list the read fetched (about 2 KB per session).
 */
class RequestCopy<K> implements SessionInit<K> {
  remoteAddr: string;
  keys: Partial<K> | undefined;
  #url: string;
  #method: string;
  #headers: string | undefined;
  #request: Request | undefined;

  constructor(req: Request, keys: Partial<K> | undefined, remoteAddr: string) {
    this.remoteAddr = remoteAddr;
    this.keys = keys;
    this.#url = req.url;
    this.#method = req.method;
    const lines: string[] = [];
    req.headers.forEach((value, name) => void lines.push(`${name}:${value}`));
    this.#headers = lines.join("\n"); // one flat string, not a rope of concatenations
  }

  get request(): Request {
    if (this.#request) return this.#request;
    const headers = new Headers();
    for (const line of this.#headers!.split("\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.append(line.slice(0, colon), line.slice(colon + 1));
    }
    this.#headers = undefined;
    return this.#request = new Request(this.#url, { method: this.#method, headers });
  }
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function size(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value)) throw new TypeError(`${name} must be a number`);
  if (value <= 0) throw new RangeError(`${name} must be positive, not ${value}`);
  return value;
}

function time(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value)) throw new TypeError(`${name} must be a number`);
  if (value < 0 || !Number.isFinite(value)) throw new RangeError(`${name} must be a finite number >= 0, not ${value}`);
  return value;
}
