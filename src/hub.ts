/**
 * The hub: options, hooks, broadcast, rooms, counts and close.
 *
 * @module
 */

import type { BroadcastKind, Broker, BrokerLink, BrokerMessage } from "./broker.ts";
import { copyRequest } from "./adapter.ts";
import { upgradeDeno } from "./adapters/deno.ts";
import { checkUpgrade } from "./_upgrade.ts";
import { refuse } from "./_refuse.ts";
import { HubClosedError } from "./errors.ts";
import { BOTH, FRAMED, PLAIN, Registry } from "./_registry.ts";
import type { SessionCore } from "./_session_core.ts";
import { type Member, type PresenceEvent, Room, type RoomHost } from "./room.ts";
import { Presence } from "./_presence.ts";
import type { HubMetrics, LogEntry } from "./metrics.ts";
import type { Keys, Session } from "./session.ts";
import {
  byteLength,
  checkClose,
  checkRoom,
  type Message,
  randomId,
  reportTo,
  sizeOption,
  timeOption,
  toPayload,
} from "./_util.ts";

/** Options of a {@linkcode Hub}. Times are in milliseconds, sizes in bytes. */
export interface HubOptions<K extends object = Keys> {
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
   * `idleTimeout`, rounded up to whole seconds, and a peer whose outbound queue does not drain
   * at all for this long (it stopped reading) is disconnected too.
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
   * `chorus-ws/redis`. Without one the hub is a single node. `broadcastFilter`,
   * `broadcastMultiple`, `sessions()`, `get()` and `size` stay node-local either way.
   * @default {undefined}
   */
  broker?: Broker;
  /**
   * Resumable sessions, for clients that speak `chorus.v1` (`chorus-ws/client` does): when such a
   * client's connection is lost, its session waits `window` ms for it, keeping everything sent
   * to it (at most `maxMessages` messages and `maxBufferedAmount` bytes; past that, or once the
   * window passed, the session ends). When the client comes back, the same session continues:
   * what it missed arrives once, in order, and so does what it sent that the hub had not
   * received. Plain WebSocket clients are never detached. Off when absent.
   * @default {undefined}
   */
  resume?: ResumeOptions;
  /**
   * A log hook, silent by default: refused upgrades (`"info"`), sessions closed for a message
   * over `maxMessageSize` or for a client that did not keep up (`"warn"`), broker errors
   * (`"error"`). Each entry is a {@linkcode LogEntry}. Counts of the same are in `hub.metrics()`.
   * @default {undefined}
   */
  logger?: (entry: LogEntry) => void;
  /**
   * Room history: each room keeps its last `size` messages (none older than `ttl` ms), with
   * offsets; `await room.history(limit)` returns them oldest first. With a broker that keeps
   * streams (`redisBroker`), they live in the broker and every node reads the same history;
   * otherwise in this process. Off when absent.
   * @default {undefined}
   */
  history?: HistoryOptions;
  /**
   * Presence: `room.members()` lists a room's sessions on every node, each with its id, node and
   * the keys named in `keys` (nothing else of a session's keys leaves its node), and
   * `handlePresence` reports joins and leaves anywhere in the cluster, on every node. Changes are
   * gathered per room for `interval` ms and sent as one message per room per interval, so a storm
   * of joins costs a bounded number of messages, and a join costs the same in a room of any
   * size. With a broker that keeps presence (`redisBroker`, `MemoryNetwork`) it spans the
   * cluster; without one, this node. Off when absent.
   * @default {undefined}
   */
  presence?: PresenceOptions<K>;
}

/** Options of presence (`HubOptions.presence`). */
export interface PresenceOptions<K extends object = Keys> {
  /** The session keys a member shows (`member.keys`), as JSON values; the others stay private. */
  keys: readonly (keyof K & string)[];
  /**
   * How long joins and leaves are gathered before they are sent, per room, in ms: the delay of
   * `handlePresence`, and the bound on presence messages (one per room per node per interval).
   * @default {50}
   */
  interval?: number;
}

/** Options of room history (`HubOptions.history`). */
export interface HistoryOptions {
  /** How many messages each room keeps. */
  size: number;
  /**
   * How old a kept message may be, in ms.
   * @default {undefined}
   */
  ttl?: number;
}

/** A room message from its history: its offset in the room's stream and the message. */
export interface HistoryEntry {
  /** Its offset: increasing, one per room broadcast. */
  offset: number;
  /** The message: a string was a text frame, bytes a binary frame. */
  message: string | Uint8Array;
}

/** Options of resumable sessions (`HubOptions.resume`). */
export interface ResumeOptions {
  /**
   * How long a session whose connection was lost waits for its client, in ms.
   * @default {120000}
   */
  window?: number;
  /**
   * Most messages kept for one session (sent and not acknowledged by its client, or sent while
   * it was away); past it the session ends.
   * @default {1000}
   */
  maxMessages?: number;
}

/** Options of `handleRequest`. */
export interface HandleRequestOptions<K> {
  /** Initial session keys (melody's `HandleRequestWithKeys`). */
  keys?: Partial<K>;
  /** The peer's address, when the server knows it. */
  remoteAddr?: string;
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
  #registry: Registry<K>;
  #closing: Promise<void> | undefined;
  #checkOrigin: (origin: string, req: Request) => boolean;
  #broker: Broker | undefined;
  #node: string;
  #ready: Promise<void>;
  #brokerError: ((err: Error) => unknown) | undefined;
  #rooms: RoomHost<K>;
  #history: HistoryOptions | undefined;
  /** Room histories kept in this process (`history` without a broker's streams). */
  #kept = new Map<
    string,
    { offset: number; entries: { offset: number; time: number; message: string | Uint8Array }[] }
  >();
  /** How many messages a broker's stream keeps: enough for resuming and for history. */
  #streamLimit = 0;
  #presence: Presence<K> | undefined;

  /**
   * Creates a hub. Serve it with `serve()` (`chorus-ws/serve`), `chorus-ws/hono`, or an adapter.
   *
   * @param options Limits, keepalive and origin policy; see {@linkcode HubOptions}.
   * @throws {RangeError} If a number is out of range.
   * @throws {TypeError} If an option has the wrong type.
   */
  constructor(options: HubOptions<K> = {}) {
    const onBufferFull = options.onBufferFull ?? "drop";
    if (onBufferFull !== "drop" && onBufferFull !== "close") {
      throw new TypeError(`onBufferFull must be "drop" or "close", not ${String(onBufferFull)}`);
    }
    const checkOrigin = options.checkOrigin ?? sameOrigin;
    if (typeof checkOrigin !== "function") throw new TypeError("checkOrigin must be a function");
    this.#checkOrigin = checkOrigin;
    const broker = options.broker;
    if (broker !== undefined && (broker === null || typeof broker.start !== "function")) {
      throw new TypeError("broker must be a Broker (e.g. redisBroker() from chorus-ws/redis)");
    }
    this.#broker = broker;
    this.#node = randomId();
    if (options.logger !== undefined && typeof options.logger !== "function") {
      throw new TypeError("logger must be a function");
    }
    const history = options.history;
    if (history !== undefined) {
      if (history === null || typeof history !== "object") {
        throw new TypeError("history must be an object: { size, ttl? }");
      }
      sizeOption(history.size, 0, "history.size");
      if (!Number.isInteger(history.size)) throw new RangeError("history.size must be an integer");
      if (history.ttl !== undefined) sizeOption(history.ttl, 0, "history.ttl");
      this.#history = { size: history.size, ttl: history.ttl };
    }
    const resume = options.resume;
    if (resume !== undefined && (resume === null || typeof resume !== "object")) {
      throw new TypeError("resume must be an object: { window?, maxMessages? }");
    }
    const presence = options.presence;
    if (presence !== undefined) {
      if (presence === null || typeof presence !== "object" || !Array.isArray(presence.keys)) {
        throw new TypeError("presence must be an object: { keys: string[], interval? }");
      }
      for (const key of presence.keys) {
        if (typeof key !== "string") throw new TypeError("presence.keys must be strings");
      }
      this.#presence = new Presence<K>(
        [...presence.keys],
        timeOption(presence.interval, 50, "presence.interval"),
        this.#node,
        broker?.presence,
        (err) => this.#reportBroker(err),
      );
    }
    const registry = this.#registry = new Registry<K>(this, {
      maxMessageSize: sizeOption(options.maxMessageSize, 1 << 20, "maxMessageSize"),
      maxBufferedAmount: sizeOption(options.maxBufferedAmount, 4 << 20, "maxBufferedAmount"),
      closeOnBufferFull: onBufferFull === "close",
      pingInterval: timeOption(options.pingInterval, 30_000, "pingInterval"),
      pongWait: timeOption(options.pongWait, 60_000, "pongWait"),
      concurrent: options.concurrentMessageHandling === true,
      resume: resume && {
        window: sizeOption(resume.window, 120_000, "resume.window"),
        maxMessages: sizeOption(resume.maxMessages, 1000, "resume.maxMessages"),
      },
      node: this.#node,
      countChanged: (room) => this.#broker?.changed(room),
      presence: this.#presence && ((core, room, joined) => this.#presence!.changed(core, room, joined)),
      logger: options.logger,
    });
    this.#rooms = {
      size: (room) => registry.rooms.get(room)?.size ?? 0,
      sessions: (room) => Array.from(registry.rooms.get(room) ?? [], (core) => core.session),
      broadcast: (room, msg, except) => {
        this.#broadcast(except ? "room-others" : "room", room, this.#prepare(msg), except);
      },
      count: (room) => this.#count(room),
      history: (room, limit) => this.#readHistory(room, limit),
      members: (room) => this.#members(room),
    };
    // Resumable sessions and history use the broker's streams where it keeps them, for every node.
    if (broker?.streams && (resume !== undefined || history !== undefined)) {
      registry.streams = broker.streams;
      registry.hubStream = { id: 2, key: "h", epoch: "", offset: 0 }; // the broker's epoch, once a message brings it
      this.#streamLimit = Math.max(registry.resume?.maxMessages ?? 0, history?.size ?? 0);
    }
    registry.onBrokerError((err) => this.#reportBroker(err));
    this.#ready = Promise.resolve();
    if (broker) {
      const link: BrokerLink = {
        node: this.#node,
        deliver: (msg) => this.#deliverRemote(msg),
        report: (err) => this.#reportBroker(err),
        localCount: (room) => room === undefined ? registry.sessions.size : registry.rooms.get(room)?.size ?? 0,
        rooms: () => registry.rooms.keys(),
        released: (id) => registry.sessions.get(id)?.leaveNode("Resumed on another node"),
        presence: (room, change) => this.#presence?.emit(room, change),
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

  /**
   * Sets the handler for a new session; it runs before any message of that session (if it
   * returns a promise, messages wait for it).
   * @param fn The handler.
   */
  handleConnect(fn: (s: Session<K>) => unknown): void {
    this.#registry.hooks.connect = fn;
  }

  /**
   * Sets the handler that runs exactly once per session when it is gone, however it ended.
   * @param fn The handler.
   */
  handleDisconnect(fn: (s: Session<K>) => unknown): void {
    this.#registry.hooks.disconnect = fn;
  }

  /**
   * Sets the handler for a resumable session that continues on a new connection after its
   * client came back (see `HubOptions.resume`); `handleConnect` does not run again.
   * @param fn The handler.
   */
  handleResume(fn: (s: Session<K>) => unknown): void {
    this.#registry.hooks.resume = fn;
  }

  /**
   * Sets the handler for text messages. A session's messages arrive in order; a handler that
   * returns a promise is awaited before the next (see `concurrentMessageHandling`).
   * @param fn The handler.
   */
  handleMessage(fn: (s: Session<K>, msg: string) => unknown): void {
    this.#registry.hooks.message = fn;
  }

  /**
   * Sets the handler for binary messages.
   * @param fn The handler.
   */
  handleMessageBinary(fn: (s: Session<K>, msg: Uint8Array) => unknown): void {
    this.#registry.hooks.messageBinary = fn;
  }

  /**
   * Sets the handler that runs after a text message was handed to the runtime.
   * @param fn The handler.
   */
  handleSentMessage(fn: (s: Session<K>, msg: string) => unknown): void {
    this.#registry.hooks.sentMessage = fn;
  }

  /**
   * Sets the handler that runs after a binary message was handed to the runtime.
   * @param fn The handler.
   */
  handleSentMessageBinary(fn: (s: Session<K>, msg: Uint8Array) => unknown): void {
    this.#registry.hooks.sentMessageBinary = fn;
  }

  /**
   * Sets the handler for pongs, where the runtime reports them (Bun; not Deno).
   * @param fn The handler.
   */
  handlePong(fn: (s: Session<K>) => unknown): void {
    this.#registry.hooks.pong = fn;
  }

  /**
   * Sets the handler for errors: handlers that threw or rejected, refused writes, socket errors.
   * Without one, errors are logged with `console.error`.
   * @param fn The handler.
   */
  handleError(fn: (s: Session<K>, err: Error) => unknown): void {
    this.#registry.hooks.error = fn;
  }

  /**
   * Sets the handler for a close the peer started (or a lost connection, code 1006); the
   * disconnect handler runs after it.
   * @param fn The handler.
   */
  handleClose(fn: (s: Session<K>, code: number, reason: string) => unknown): void {
    this.#registry.hooks.close = fn;
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
    if (this.#presence) this.#presence.hook = fn;
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
    this.#broadcast("all", undefined, this.#prepare(msg), undefined);
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
    for (const core of this.#registry.sessions.values()) if (filter(core.session)) picked.push(core);
    this.#registry.deliverTo(picked.filter((core) => !core.ended), payload, byteLength(payload), undefined);
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
    this.#broadcast("others", undefined, this.#prepare(msg), except);
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
      const core = this.#coreOf(s);
      if (core) cores.push(core);
    }
    this.#registry.deliverTo(cores.filter((core) => !core.ended), payload, byteLength(payload), undefined);
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
    return this.#count(undefined);
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
    return Array.from(this.#registry.sessions.values(), (core) => core.session);
  }

  /**
   * Finds a session of this node by id.
   *
   * @param id A session id.
   * @returns The connected session with that id, if any.
   */
  get(id: string): Session<K> | undefined {
    return this.#registry.sessions.get(id)?.session;
  }

  /**
   * How many sessions this node has, detached resumable ones included (see `count()` for the
   * cluster, and `session.connected`).
   */
  get size(): number {
    return this.#registry.sessions.size;
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
    let done!: (result: Promise<void>) => void;
    this.#closing = new Promise<void>((resolve) => done = resolve);
    const registry = this.#registry;
    registry.closing = true;
    // With a broker's streams, resumable sessions go on elsewhere: their state to the broker,
    // their clients to another node (1012); the others end here.
    const waits: Promise<void>[] = registry.streams && registry.resume ? registry.handOver() : [];
    for (const core of [...registry.sessions.values()]) {
      if (core.framed && registry.streams && registry.resume) continue;
      const wait = core.end(code, reason, false);
      if (wait) waits.push(wait);
    }
    registry.closeHandshakes(code, reason);
    registry.stopTicker();
    const broker = this.#broker;
    const sessionsGone = Promise.all(waits).then(() => this.#presence?.stop());
    done(
      !broker ? sessionsGone : sessionsGone.then(async () => {
        try {
          await broker.stop();
        } catch (err) {
          this.#reportBroker(err);
        }
      }),
    );
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
    const registry = this.#registry;
    return {
      sessions: registry.sessions.size,
      detached: registry.detached,
      ...registry.counters,
      brokerLatency: this.#broker?.latency?.(),
    };
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
      const refused = checkUpgrade(this, req);
      if (refused) return Promise.resolve(refuse(req, refused) ?? refused);
      return Promise.resolve(upgradeDeno(this, req, copyRequest(req, opts.keys, opts.remoteAddr ?? "")));
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

  /** The core of a session of this hub that is still registered. */
  #coreOf(session: Session<K> | undefined): SessionCore<K> | undefined {
    if (session === undefined) return undefined;
    const core = this.#registry.sessions.get(session.id);
    return core?.session === session ? core : undefined;
  }

  /** Hands a broadcast to the broker (before local delivery, so an oversized one throws first). */
  #publish(kind: BroadcastKind, room: string | undefined, payload: string | Uint8Array): void {
    const broker = this.#broker;
    if (!broker) return;
    broker.publish(
      room === undefined ? { node: this.#node, kind, payload } : { node: this.#node, kind, room, payload },
    );
  }

  /**
   * The one path of a hub-wide or room broadcast. Without a broker's streams: to the broker (an
   * oversized one throws first), then to this node's sessions. With them: appended to its
   * stream (which validates it first), plain sessions here at once, resumable ones (on every
   * node) and plain ones elsewhere when the broker hands it back with its position.
   */
  #broadcast(
    kind: BroadcastKind,
    room: string | undefined,
    payload: string | Uint8Array,
    except: Session<K> | undefined,
  ): void {
    const registry = this.#registry;
    const size = byteLength(payload);
    const exceptCore = this.#coreOf(except);
    const streams = registry.streams;
    if (!streams) {
      this.#publish(kind, room, payload);
      registry.deliver(payload, size, room, exceptCore);
      if (room !== undefined) this.#remember(room, payload);
      return;
    }
    const msg: BrokerMessage = {
      node: this.#node,
      kind,
      payload,
      ...(room === undefined ? {} : { room }),
      ...(exceptCore ? { except: exceptCore.id } : {}),
    };
    const appended = streams.append(msg, this.#streamLimit);
    registry.deliver(payload, size, room, exceptCore, PLAIN);
    appended.then(
      () => registry.streamWorked(),
      (err) => {
        // Local delivery goes on: this node's resumable sessions get it in an epoch of its own.
        registry.streamFailed(err);
        if (!this.#closing) registry.deliverLocally(payload, size, room, this.#coreOf(except));
      },
    );
  }

  /**
   * A broadcast from the broker: from another node (delivered here to all but its `except`),
   * or one that went through a stream, this node's too (its resumable sessions get it here,
   * numbered with its position; plain ones only when another node sent it).
   */
  #deliverRemote(msg: BrokerMessage): void {
    if (this.#closing) return;
    const inRoom = msg.kind === "room" || msg.kind === "room-others";
    if (inRoom && msg.room === undefined) return;
    const registry = this.#registry;
    const room = inRoom ? msg.room : undefined;
    const size = byteLength(msg.payload);
    const except = msg.except === undefined ? undefined : registry.sessions.get(msg.except);
    const own = msg.node === this.#node;
    if (!own) registry.counters.brokerIn++;
    const at = msg.position;
    if (at && registry.streams) {
      if (at.seq > registry.lastSeq) registry.lastSeq = at.seq;
      registry.streamAt(at.key, at.epoch, at.offset);
      registry.deliver(msg.payload, size, room, except, own ? FRAMED : BOTH, at.offset);
      return;
    }
    if (own) return; // its own echo: this node delivered it at once
    registry.deliver(msg.payload, size, room, except);
    if (room !== undefined && !at) this.#remember(room, msg.payload);
  }

  /** Keeps a room broadcast in this node's history (`history` on, without a broker's streams). */
  #remember(room: string, payload: string | Uint8Array): void {
    const history = this.#history;
    if (!history) return;
    let kept = this.#kept.get(room);
    if (!kept) this.#kept.set(room, kept = { offset: 0, entries: [] });
    kept.entries.push({ offset: ++kept.offset, time: Date.now(), message: payload });
    if (kept.entries.length > history.size) kept.entries.shift();
  }

  /** A room's last messages, oldest first: from the broker's streams, or this node's memory. */
  async #readHistory(room: string, limit: number | undefined): Promise<HistoryEntry[]> {
    if (this.#closing) throw new HubClosedError("Hub is closed: history refused");
    const history = this.#history;
    if (!history) return [];
    const n = limit === undefined ? history.size : Math.min(limit, history.size);
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`limit must be an integer >= 0, not ${limit}`);
    const oldest = history.ttl === undefined ? -Infinity : Date.now() - history.ttl;
    const streams = this.#registry.streams;
    if (!streams) {
      const recent = (this.#kept.get(room)?.entries ?? []).filter((e) => e.time >= oldest);
      return (n === 0 ? [] : recent.slice(-n)).map(({ offset, message }) => ({ offset, message }));
    }
    const key = `r:${room}`;
    const { top } = await streams.read(key, Number.MAX_SAFE_INTEGER, 0);
    if (n === 0 || top === 0) return [];
    const { entries } = await streams.read(key, Math.max(0, top - n), n);
    return entries.filter((e) => e.time >= oldest).map(({ offset, payload }) => ({ offset, message: payload }));
  }

  #members(room: string): Promise<Member<K>[]> {
    if (this.#closing) return Promise.reject(new HubClosedError("Hub is closed: members refused"));
    const presence = this.#presence;
    if (!presence) return Promise.reject(new TypeError("presence is off: new Hub({ presence: { keys } })"));
    return presence.members(room, () => this.#registry.rooms.get(room) ?? []);
  }

  #count(room: string | undefined): Promise<number> {
    if (this.#closing) return Promise.reject(new HubClosedError("Hub is closed: count refused"));
    const broker = this.#broker;
    const registry = this.#registry;
    if (!broker) {
      return Promise.resolve(room === undefined ? registry.sessions.size : registry.rooms.get(room)?.size ?? 0);
    }
    try {
      return broker.count(room);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #reportBroker(err: unknown): void {
    const registry = this.#registry;
    registry.counters.brokerErrors++;
    registry.log({
      level: "error",
      event: "broker",
      message: `Broker: ${err instanceof Error ? err.message : String(err)}`,
    });
    const onError = this.#brokerError;
    reportTo(onError && ((error) => onError(error)), err, "broker", "handleBrokerError");
  }

  #prepare(msg: Message): string | Uint8Array {
    if (this.#closing) throw new HubClosedError("Hub is closed: broadcast refused");
    return toPayload(msg);
  }
}
