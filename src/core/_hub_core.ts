// The hub's core: the wiring of its pieces from the resolved options (registry, fan-out, delivery
// table, keepalive, handshake, presence, history, streams, broker), and what a hub does beyond
// them — attaching sockets, opening sessions, reporting, closing. The one module that knows every
// concrete piece; each piece knows only the small interfaces it needs, which this implements.

import { Connection } from "./_connection.ts";
import type {
  AdapterHost,
  ConnectionHost,
  Counters,
  Hooks,
  HubLimits,
  HubSocket,
  Publisher,
  ResumeLimits,
  SessionInit,
  SocketEvents,
} from "./_contracts.ts";
import { Delivery, type DeliveryHost } from "./_delivery.ts";
import { Fanout } from "./_fanout.ts";
import { type HandshakeHost, Handshakes, plainWelcome } from "./_handshake.ts";
import { History } from "./_history.ts";
import { Keepalive } from "./_keepalive.ts";
import { Presence } from "./_presence.ts";
import { Registry } from "./_registry.ts";
import { SessionCore } from "./_session.ts";
import type { UpgradeChecks } from "./_upgrade.ts";
import { recover } from "./resume/_recovery.ts";
import { ResumableSession } from "./resume/_resumable.ts";
import type { ResumeHost } from "./resume/_state.ts";
import { StreamBook } from "./resume/_streams.ts";
import { errorText, isThenable, randomString, reportTo } from "./_util.ts";
import type { Broker, BrokerLink, BrokerStreams, SessionState } from "../broker.ts";
import { HubClosedError } from "../errors.ts";
import type { HubMetrics, LogEntry } from "../metrics.ts";
import type { ResolvedOptions } from "../options.ts";
import { type Position, PROTOCOL } from "../protocol.ts";
import type { Member } from "../types.ts";

/** The core of one hub. */
export class HubCore<K extends object>
  implements ResumeHost<K>, ConnectionHost, HandshakeHost<K>, DeliveryHost<K>, AdapterHost<K>, UpgradeChecks {
  readonly node: string = randomString(12, true);
  readonly limits: HubLimits;
  readonly concurrent: boolean;
  readonly hooks: Hooks<K> = {};
  /** What `hub.metrics()` reports. */
  readonly counters: Counters = {
    connects: 0,
    disconnects: 0,
    resumes: 0,
    refused: 0,
    messagesIn: 0,
    bytesIn: 0,
    messagesOut: 0,
    bytesOut: 0,
    dropped: 0,
    slowClients: 0,
    tooBig: 0,
    brokerErrors: 0,
    brokerIn: 0,
    brokerDropped: 0,
  };
  readonly registry: Registry<SessionCore<K>>;
  readonly fanout: Fanout<K>;
  readonly delivery: Delivery<K>;
  readonly keepalive: Keepalive;
  readonly handshakes: Handshakes<K>;
  readonly book: StreamBook;
  readonly history: History;
  readonly presence: Presence<K> | undefined;
  readonly broker: Broker | undefined;
  /** The broker's streams, when the hub shares them (a broker that keeps them, and `resume` or `history` on). */
  readonly streams: BrokerStreams | undefined;
  /** How many messages a broker's stream keeps: enough for resuming and for history. */
  readonly streamLimit: number;
  /** Resume credentials, each naming its session. */
  readonly tokens: Map<string, ResumableSession<K>> = new Map();
  /** Set from the first moment of `hub.close()`. */
  closing = false;
  /** Resolves once the broker receives other nodes' broadcasts. */
  readonly ready: Promise<void>;
  /** `handleBrokerError`. */
  brokerError: ((err: Error) => unknown) | undefined;
  readonly #resume: ResumeLimits | undefined;
  readonly #checkOrigin: (origin: string, req: Request) => boolean;
  readonly #logger: ((entry: LogEntry) => void) | undefined;
  /** Connections the hub closed whose socket has not reported its close yet. */
  readonly #closingConns = new Set<object>();
  #noneClosing: (() => void) | undefined;

  constructor(options: ResolvedOptions<K>) {
    this.limits = {
      maxMessageSize: options.maxMessageSize,
      maxBufferedAmount: options.maxBufferedAmount,
      closeOnBufferFull: options.closeOnBufferFull,
      pingInterval: options.pingInterval,
      pongWait: options.pongWait,
    };
    this.concurrent = options.concurrent;
    this.#resume = options.resume;
    this.#checkOrigin = options.checkOrigin;
    this.#logger = options.logger;
    const broker = this.broker = options.broker;
    const report = (err: unknown) => this.reportBroker(err);
    const presence = options.presence;
    if (presence) {
      this.presence = new Presence<K>(presence.keys, presence.interval, this.node, broker?.presence, report);
    }
    this.registry = new Registry<SessionCore<K>>({
      counted: (room) => broker?.changed(room),
      membership: (s, room, joined) => this.presence?.changed(s, room, joined),
      roomGone: (room) => this.book.roomGone(room),
    });
    // Resumable sessions and history use the broker's streams where it keeps them, for every node.
    const shared = broker?.streams && (options.resume !== undefined || options.history !== undefined);
    this.streams = shared ? broker!.streams : undefined;
    this.streamLimit = shared ? Math.max(options.resume?.maxMessages ?? 0, options.history?.size ?? 0) : 0;
    const registry = this.registry;
    this.book = new StreamBook(
      this.node,
      this.streams !== undefined,
      (room) =>
        (room === undefined ? registry.framed : registry.framedRooms.get(room)) as
          | Iterable<ResumableSession<K>>
          | undefined,
      report,
    );
    this.history = new History(options.history, this.streams);
    this.fanout = new Fanout<K>(this.node, registry, this.hooks, this.counters, this.book);
    this.delivery = new Delivery<K>(this);
    this.keepalive = new Keepalive(this.limits, function* () {
      for (const s of registry.sessions.values()) yield s.conn;
    });
    this.handshakes = new Handshakes<K>(this);
    let ready = Promise.resolve();
    if (broker) {
      const link: BrokerLink = {
        node: this.node,
        deliver: (msg) => this.delivery.fromBroker(msg),
        report,
        localCount: (room) => registry.count(room),
        rooms: () => registry.rooms.keys(),
        released: (id) =>
          (registry.sessions.get(id) as ResumableSession<K> | undefined)?.leaveNode?.("Resumed on another node", 1001),
        presence: (room, change) => this.presence?.emit(room, change),
        members: (room) => this.presence?.entries(registry.rooms.get(room) ?? []) ?? [],
      };
      try {
        ready = Promise.resolve(broker.start(link));
      } catch (err) {
        ready = Promise.reject(err);
      }
      ready.catch(report);
    }
    this.ready = ready;
  }

  // --- sockets and sessions -----------------------------------------------------------------

  /** An open socket becomes a session (see `attach` in `chorus-ws/adapter`). */
  attach(socket: HubSocket, init: SessionInit<K>, publisher: Publisher | undefined): SocketEvents | undefined {
    if (this.closing) {
      try {
        socket.close(1001, "Hub is closed");
      } catch {
        // the socket is gone already
      }
      return undefined;
    }
    const conn = new Connection(this, socket, socket.subscribe && publisher ? publisher : undefined);
    // The client says whether it is new or resumes before there is a session.
    if (init.protocol === PROTOCOL) this.handshakes.start(conn, init);
    else this.open(conn, init, false);
    return conn;
  }

  /** A connection becomes a new session. With `chorus.v1`, the welcome goes first. */
  open(conn: Connection, init: SessionInit<K>, v1: boolean): void {
    const s = v1 && this.#resume !== undefined
      ? new ResumableSession<K>(this, init, true)
      : new SessionCore<K>(this, init);
    this.counters.connects++;
    s.conn = conn;
    conn.owner = s;
    this.registry.add(s);
    this.adopt(conn, s);
    if (s instanceof ResumableSession) s.welcome(false);
    else if (v1) conn.sendControl(plainWelcome(this.limits.maxMessageSize));
    s.start();
  }

  held(id: string): ResumableSession<K> | undefined {
    const s = this.registry.sessions.get(id);
    return s instanceof ResumableSession && !s.ended ? s : undefined;
  }

  /** A connection becomes a new session (a claimed session could not be continued). */
  openFresh(conn: Connection, init: SessionInit<K>): void {
    this.open(conn, init, true);
  }

  /** A session claimed from the broker: registered here at once, continued once its streams are read. */
  recoverClaimed(conn: Connection | undefined, init: SessionInit<K>, state: SessionState, pos: Position): void {
    // One core per session: one this node still had for that id leaves first (none left behind).
    (this.registry.sessions.get(state.id) as ResumableSession<K> | undefined)?.leaveNode?.(
      "Resumed on another connection",
      1001,
    );
    const s = new ResumableSession<K>(this, init, false, state.id);
    s.restore(state);
    s.moved = true; // a member already: its rooms' presence moves here, no join
    this.registry.add(s);
    for (const room of state.rooms) {
      (s.rooms ??= new Set()).add(room);
      this.registry.join(s, room);
    }
    s.moved = false;
    recover(this, s, conn, pos, state).then(undefined, (err) => this.report(s, err));
  }

  /** The session leaves this node: out of the sessions and its rooms, before any hook sees the hub. */
  unregister(s: SessionCore<K>): void {
    if (!this.registry.remove(s, s.rooms)) return;
    if (s.conn) this.fanout.release(s.conn);
    if (this.registry.sessions.size === 0) this.keepalive.stop();
  }

  join(s: SessionCore<K>, room: string): void {
    this.registry.join(s, room);
  }

  leave(s: SessionCore<K>, room: string): void {
    this.registry.leave(s, room);
  }

  topic(s: SessionCore<K>, room?: string): string {
    return this.fanout.topic(s, room);
  }

  /** A connection now carries a session: count it for native fan-out, subscribe it to its topics. */
  adopt(conn: Connection, s: SessionCore<K>): void {
    this.fanout.adopt(conn, s);
    this.keepalive.start();
  }

  /** A connection no longer carries a session. */
  release(conn: Connection): void {
    this.fanout.release(conn);
  }

  /** A connection whose socket refused a subscription: from now on it is reached by the loop. */
  demote(conn: object): void {
    const c = conn as Connection;
    const owner = c.owner as SessionCore<K> | undefined;
    this.fanout.demote(c, owner instanceof SessionCore && owner.conn === c && !owner.ended);
  }

  get publishes(): number {
    return this.fanout.publishes;
  }

  /** Whether resumable sessions are on. */
  get resumable(): boolean {
    return this.#resume !== undefined;
  }

  /** `resume`, resolved (only read where resumable sessions exist). */
  get resume(): ResumeLimits {
    return this.#resume!;
  }

  /** A session's client went away or came back; past `maxDetached` waiting, the longest waiting ends. */
  detached(s: SessionCore<K>, away: boolean): void {
    const max = this.resume.maxDetached;
    const oldest = this.registry.away(s, away, max);
    if (!oldest) return;
    this.report(oldest, new Error(`Ended detached session ${oldest.id}: more than resume.maxDetached (${max}) wait`));
    oldest.end(1001, "Too many detached sessions", false);
  }

  /** The registered core of a public session (or `undefined`). */
  coreOf(session: unknown): SessionCore<K> | undefined {
    if (session === undefined || session === null) return undefined;
    const core = this.registry.sessions.get((session as { id: string }).id);
    return core?.session === session ? core : undefined;
  }

  // --- reporting ------------------------------------------------------------------------------

  /** Hands an entry to the log hook, if there is one (a hook that throws is logged, never thrown). */
  log(entry: LogEntry): void {
    const logger = this.#logger;
    if (!logger) return;
    try {
      logger(entry);
    } catch (err) {
      console.error("chorus: logger failed:", err);
    }
  }

  refusedUpgrade(status: number, why: string): void {
    this.counters.refused++;
    this.log({ level: "info", event: "refused", status, message: `Upgrade refused (${status}): ${why}` });
  }

  slowClient(s: SessionCore<K>, code: number, message: string): void {
    this.counters.slowClients++;
    this.log({ level: "warn", event: "slow-client", session: s.id, code, message });
  }

  tooBig(s: SessionCore<K>): void {
    this.counters.tooBig++;
    this.log({
      level: "warn",
      event: "too-big",
      session: s.id,
      code: 1009,
      message: `Closed session ${s.id} with 1009: a message larger than maxMessageSize (${this.limits.maxMessageSize})`,
    });
  }

  /** Runs the disconnect hook; resolves when it is done. */
  disconnected(s: SessionCore<K>): Promise<void> | undefined {
    this.counters.disconnects++;
    const onDisconnect = this.hooks.disconnect;
    if (!onDisconnect) return undefined;
    try {
      const result = onDisconnect(s.session);
      if (isThenable(result)) return Promise.resolve(result).then(undefined, (err) => this.report(s, err));
    } catch (err) {
      this.report(s, err);
    }
    return undefined;
  }

  report(s: SessionCore<K>, err: unknown): void {
    const onError = this.hooks.error;
    reportTo(onError && ((error) => onError(s.session, error)), err, `session ${s.id}`, "handleError");
  }

  reportBroker(err: unknown): void {
    this.counters.brokerErrors++;
    this.log({ level: "error", event: "broker", message: `Broker: ${errorText(err)}` });
    const onError = this.brokerError;
    reportTo(onError && ((error) => onError(error)), err, "broker", "handleBrokerError");
  }

  failed(err: unknown): void {
    this.book.failed(err);
  }

  // --- closing --------------------------------------------------------------------------------

  closeStarted(conn: object): void {
    this.#closingConns.add(conn);
  }

  closeEnded(conn: object): void {
    if (this.#closingConns.delete(conn) && this.#closingConns.size === 0) this.#noneClosing?.();
  }

  socketsClosed(ms: number): Promise<void> {
    if (this.#closingConns.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#noneClosing = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#noneClosing = done;
    });
  }

  /**
   * Closes every session and refuses new ones; with a broker's streams, resumable sessions go on
   * elsewhere (their state to the broker, their clients to another node with 1012).
   */
  close(code: number, reason: string): Promise<void> {
    this.closing = true;
    const registry = this.registry;
    const handOver = this.streams !== undefined && this.#resume !== undefined;
    const waits: Promise<void>[] = [];
    if (handOver) {
      for (const s of [...registry.framed]) waits.push((s as ResumableSession<K>).handOver());
    }
    for (const s of [...registry.sessions.values()]) {
      if (s.framed && handOver) continue;
      const wait = s.end(code, reason, false);
      if (wait) waits.push(wait);
    }
    this.handshakes.closeAll(code, reason);
    this.keepalive.stop();
    const broker = this.broker;
    const sessionsGone = Promise.all(waits).then(() => this.presence?.stop());
    return !broker ? sessionsGone : sessionsGone.then(async () => {
      try {
        await broker.stop();
      } catch (err) {
        this.reportBroker(err);
      }
    });
  }

  /**
   * The checks every upgrade passes first: the hub is open, the request asks for a WebSocket,
   * and its origin is allowed.
   */
  checkRequest(req: Request): Response | undefined {
    if (this.closing) throw new HubClosedError("Hub is closed: upgrade refused");
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("Expected a WebSocket upgrade", { status: 426, headers: { upgrade: "websocket" } });
    }
    const origin = req.headers.get("origin");
    if (origin !== null && !this.#checkOrigin(origin, req)) {
      return new Response("Origin not allowed", { status: 403 });
    }
    return undefined;
  }

  // --- what the hub asks across the cluster ---------------------------------------------------

  count(room: string | undefined): Promise<number> {
    if (this.closing) return Promise.reject(new HubClosedError("Hub is closed: count refused"));
    const broker = this.broker;
    if (!broker) return Promise.resolve(this.registry.count(room));
    try {
      return broker.count(room);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  members(room: string): Promise<Member<K>[]> {
    if (this.closing) return Promise.reject(new HubClosedError("Hub is closed: members refused"));
    const presence = this.presence;
    if (!presence) return Promise.reject(new TypeError("presence is off: new Hub({ presence: { keys } })"));
    return presence.members(room, () => this.registry.rooms.get(room) ?? []);
  }

  metrics(): HubMetrics {
    return {
      sessions: this.registry.sessions.size,
      detached: this.registry.waiting.size,
      ...this.counters,
      brokerLatency: this.broker?.latency?.(),
    };
  }
}
