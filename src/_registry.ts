// The registry of a hub: its sessions and rooms, its hooks, the native topics, local delivery,
// keepalive, and the chorus.v1 handshake. One per hub; the hub, the adapters (through
// `chorus-ws/adapter`), sessions and connections all reach it. Internal.

import type { HubLimits, HubSocket, Publisher, SessionInit, SocketEvents } from "./adapter.ts";
import { Connection } from "./_connection.ts";
import { SessionCore } from "./_session_core.ts";
import type { Keys, Session } from "./session.ts";
import { dataOverhead, decodeFrame, encodeControl, encodeData, type Position, PROTOCOL } from "./protocol.ts";

/**
 * A stream of numbered messages to resumable sessions (see `src/protocol.ts`): the hub-wide one,
 * one per room, and one per session. Offsets increase within an epoch.
 */
export interface Stream {
  /** The id data frames carry (1: the session's own, 2: the hub's, rooms from 3). */
  readonly id: number;
  /** `"s"`, `"h"` or `"r:" + room`. */
  readonly key: string;
  /** Offsets of another epoch are not comparable. */
  readonly epoch: string;
  /** The last offset given. */
  offset: number;
}
import type { HubMetrics, LogEntry } from "./metrics.ts";
import type { BrokerStreams, SessionState } from "./broker.ts";
import { reportTo } from "./_util.ts";

/** The hub's handlers, as set by `handleConnect` and its siblings. */
export interface Hooks<K extends object> {
  connect?: (s: Session<K>) => unknown;
  disconnect?: (s: Session<K>) => unknown;
  resume?: (s: Session<K>) => unknown;
  message?: (s: Session<K>, msg: string) => unknown;
  messageBinary?: (s: Session<K>, msg: Uint8Array) => unknown;
  sentMessage?: (s: Session<K>, msg: string) => unknown;
  sentMessageBinary?: (s: Session<K>, msg: Uint8Array) => unknown;
  pong?: (s: Session<K>) => unknown;
  error?: (s: Session<K>, err: Error) => unknown;
  close?: (s: Session<K>, code: number, reason: string) => unknown;
}

/** Resumable sessions, resolved with their defaults. */
export interface ResumeLimits {
  /** How long a detached session waits for its client (ms). */
  readonly window: number;
  /** Most messages kept for one session. */
  readonly maxMessages: number;
}

/** What the registry needs from its hub beyond the limits. */
export interface RegistryInit<K extends object = Keys> extends HubLimits {
  /** `concurrentMessageHandling`. */
  readonly concurrent: boolean;
  /** The hub's node id: its native topics are named after it, so no two hubs' topics meet. */
  readonly node: string;
  /** `resume`, when on. */
  readonly resume: ResumeLimits | undefined;
  /** This node's count of a room's sessions (or of all, `undefined`) changed. */
  readonly countChanged: (room: string | undefined) => void;
  /** A session joined (`true`) or left a room (`presence` on). */
  readonly presence: ((core: SessionCore<K>, room: string, joined: boolean) => void) | undefined;
  /** `HubOptions.logger`. */
  readonly logger: ((entry: LogEntry) => void) | undefined;
}

/** The counters of `hub.metrics()` (the rest of it are gauges the hub reads when asked). */
export type Counters = Omit<HubMetrics, "sessions" | "detached" | "brokerLatency">;

// deno-lint-ignore no-explicit-any
const registries = new WeakMap<object, Registry<any>>();

/** The registry of a hub (the hub registers it when it is constructed). */
export function registryOf<K extends object>(hub: object): Registry<K> {
  const registry = registries.get(hub);
  if (!registry) throw new TypeError("Not a chorus Hub");
  return registry;
}

/** What a delivery is for: plain sessions, resumable ones (numbered frames), or both. */
export const PLAIN = 1;
export const FRAMED = 2;
export const BOTH = 3;

/** Pong deadlines and pings are compared with this much slack for timer jitter (ms). */
const SLACK = 5;

/** A broadcast numbered in its stream, encoded once for every resumable recipient. */
interface NumberedFrame {
  offset: number;
  frame: string | Uint8Array;
  /** The frame's size: the payload's and the header's. */
  size: number;
}

/**
 * Numbers a broadcast in `stream`: at the broker's offset `at` (which moves the stream on), or
 * at the stream's next one here; then encodes its frame.
 */
function numberFrame(stream: Stream, at: number, payload: string | Uint8Array, size: number): NumberedFrame {
  const offset = at || ++stream.offset;
  if (offset > stream.offset) stream.offset = offset;
  return { offset, frame: encodeData(stream.id, offset, payload), size: size + dataOverhead(stream.id, offset) };
}
/** How long a `chorus.v1` connection may take to say whether it is new or resumes (ms). */
const HANDSHAKE_WAIT = 10_000;
const HELLO = encodeControl({ t: "hello", v: 1 });

export class Registry<K extends object = Keys> {
  readonly limits: HubLimits;
  readonly concurrent: boolean;
  readonly resume: ResumeLimits | undefined;
  readonly hooks: Hooks<K> = {};
  readonly sessions: Map<string, SessionCore<K>> = new Map();
  readonly rooms: Map<string, Set<SessionCore<K>>> = new Map();
  /** Resumable sessions (they get numbered frames, kept until acknowledged), and per room. */
  readonly framed: Set<SessionCore<K>> = new Set();
  readonly framedRooms: Map<string, Set<SessionCore<K>>> = new Map();
  /** Resume credentials, each naming its session. */
  readonly tokens: Map<string, SessionCore<K>> = new Map();
  /** The stream of hub-wide broadcasts, and those of the rooms that have members. */
  hubStream: Stream;
  /**
   * The broker's streams, when the hub shares them with other nodes (a broker that keeps them,
   * and `resume` or `history` on): numbered frames then carry the broker's positions.
   */
  streams: BrokerStreams | undefined;
  #streamsFailing = false;
  /** The highest `seq` of the broker's streams seen here. */
  lastSeq = 0;
  #localEpochs = 0;
  readonly #roomStreams = new Map<string, Stream>();
  #nextStreamId = 3;
  readonly #node: string;
  /** The native topic of every plain session with native fan-out; `chorus.v1` sessions have their own. */
  readonly allTopic: string;
  /** Prefix of a room's native topic (the room's name follows). */
  readonly roomPrefix: string;
  readonly #v1Topic: string;
  readonly #v1RoomPrefix: string;
  /**
   * How many native publishes were made. A native publish queues bytes on sockets behind the
   * sessions' backs, so a connection re-reads `bufferedAmount` when this changed.
   */
  publishes = 0;
  /** Set from the first moment of `hub.close()`. */
  closing = false;
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
  };
  /** Resumable sessions whose client is away. */
  detached = 0;
  readonly #logger: ((entry: LogEntry) => void) | undefined;
  /** Servers whose native fan-out reaches some session, with how many sessions each. */
  #publishers = new Map<Publisher, number>();
  /** Connected sessions without native fan-out: while any is here, broadcasts loop. */
  #foreign = 0;
  /** `chorus.v1` connections that have not said yet whether they are new or resume. */
  #handshakes = new Map<Connection<K>, { init: SessionInit<K>; timer: ReturnType<typeof setTimeout> }>();
  /** Connections the hub closed whose socket has not reported its close yet. */
  #closingConns = new Set<Connection<K>>();
  #noneClosing: (() => void) | undefined;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #pongTimer: ReturnType<typeof setTimeout> | undefined;
  #countChanged: (room: string | undefined) => void;
  #presence: ((core: SessionCore<K>, room: string, joined: boolean) => void) | undefined;

  constructor(hub: object, init: RegistryInit<K>) {
    this.limits = {
      maxMessageSize: init.maxMessageSize,
      maxBufferedAmount: init.maxBufferedAmount,
      closeOnBufferFull: init.closeOnBufferFull,
      pingInterval: init.pingInterval,
      pongWait: init.pongWait,
    };
    this.concurrent = init.concurrent;
    this.resume = init.resume;
    this.#countChanged = init.countChanged;
    this.#presence = init.presence;
    this.#logger = init.logger;
    // "chorus.<node>.all" and "chorus.<node>.room.<name>": distinct for every hub (the node id is
    // random, so two copies of this module in one process do not meet) and for every name.
    this.allTopic = `chorus.${init.node}.all`;
    this.roomPrefix = `chorus.${init.node}.room.`;
    this.#v1Topic = `chorus.${init.node}.v1.all`;
    this.#v1RoomPrefix = `chorus.${init.node}.v1.room.`;
    this.#node = init.node;
    this.hubStream = { id: 2, key: "h", epoch: init.node, offset: 0 };
    registries.set(hub, this);
  }

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
    if (init.protocol === PROTOCOL) {
      // The client says whether it is new or resumes before there is a session.
      const timer = setTimeout(() => this.#refuseHandshake(conn, "No chorus.v1 request"), HANDSHAKE_WAIT);
      this.#handshakes.set(conn, { init, timer });
      conn.sendControl(HELLO);
      return conn;
    }
    this.#open(conn, init, false);
    return conn;
  }

  /** A frame from a `chorus.v1` connection in its handshake: the client's request. */
  handshake(conn: Connection<K>, data: string | Uint8Array): void {
    const init = this.#handshakes.get(conn)?.init;
    if (!init) return;
    const frame = typeof data === "string" ? decodeFrame(data) : undefined;
    const request = frame?.kind === "control" ? frame.message : undefined;
    if (request?.t !== "new" && request?.t !== "resume") {
      this.#refuseHandshake(conn, "Expected a chorus.v1 request");
      return;
    }
    this.#endHandshake(conn);
    if (request.t === "resume" && this.resume) {
      const core = this.tokens.get(request.token);
      // A forged, used or expired credential gets a fresh session, never someone else's.
      if (core && !core.ended && core.framed) {
        core.resumeOn(conn, request.token, request.pos);
        return;
      }
      // Not here: maybe a session of another node (or of this node before a restart).
      if (this.streams) {
        this.#claim(this.streams, conn, init, request.token, request.pos);
        return;
      }
    }
    this.#open(conn, init, true);
  }

  /** A `chorus.v1` connection closed during its handshake. */
  handshakeGone(conn: Connection<K>): void {
    this.#endHandshake(conn);
    this.#claiming.delete(conn);
  }

  /** Connections whose session is being claimed from the broker. */
  #claiming = new Set<Connection<K>>();

  /** Claims the session a credential names from the broker, and recovers it here. */
  #claim(streams: BrokerStreams, conn: Connection<K>, init: SessionInit<K>, token: string, pos: Position): void {
    this.#claiming.add(conn);
    streams.claimSession(token).then(
      (state) => {
        const open = this.#claiming.delete(conn); // false: the client left meanwhile
        if (this.closing) {
          if (open) conn.close(1012, "Server restarting");
          if (state) streams.saveSession(state, this.resume!.window).catch(() => {}); // give it back
          return;
        }
        if (state) this.#recover(open ? conn : undefined, init, state, pos);
        else if (open) this.#open(conn, init, true);
      },
      (err) => {
        const open = this.#claiming.delete(conn);
        this.streamFailed(err);
        if (open && !this.closing) this.#open(conn, init, true);
      },
    );
  }

  /** A session claimed from the broker: registered here at once, continued once its streams are read. */
  #recover(conn: Connection<K> | undefined, init: SessionInit<K>, state: SessionState, pos: Position): void {
    const core = new SessionCore(this, init, state.id);
    core.makeResumable();
    core.restore(state);
    this.sessions.set(core.id, core);
    this.framed.add(core);
    core.moved = true; // a member already: its rooms' presence moves here, no join
    for (const room of state.rooms) {
      (core.rooms ??= new Set()).add(room);
      this.join(core, room);
    }
    core.moved = false;
    this.#countChanged(undefined);
    core.recover(conn, pos, state).then(undefined, (err) => this.report(core, err));
  }

  /** A connection becomes a new session (a claimed session could not be continued). */
  openFresh(conn: Connection<K>, init: SessionInit<K>): void {
    this.#open(conn, init, true);
  }

  /** Hands this node's resumable sessions over to the others (`hub.close()` with a broker's streams). */
  handOver(): Promise<void>[] {
    const waits: Promise<void>[] = [];
    for (const core of [...this.framed]) waits.push(core.handOver());
    return waits;
  }

  /** Takes an ended session out of the sessions and its rooms, before any hook sees the hub. */
  unregister(core: SessionCore<K>): void {
    if (this.sessions.get(core.id) !== core) return;
    this.sessions.delete(core.id);
    this.framed.delete(core);
    if (core.conn) this.release(core.conn);
    if (core.rooms) { for (const room of core.rooms) this.leave(core, room); }
    this.#countChanged(undefined);
    if (this.sessions.size === 0) this.stopTicker();
  }

  join(core: SessionCore<K>, room: string): void {
    let members = this.rooms.get(room);
    if (!members) this.rooms.set(room, members = new Set());
    members.add(core);
    if (core.framed) {
      let framed = this.framedRooms.get(room);
      if (!framed) this.framedRooms.set(room, framed = new Set());
      framed.add(core);
    }
    this.#countChanged(room);
    this.#presence?.(core, room, true);
  }

  leave(core: SessionCore<K>, room: string): void {
    const members = this.rooms.get(room);
    if (!members?.delete(core)) return;
    if (members.size === 0) {
      this.rooms.delete(room);
      this.#roomStreams.delete(room);
    }
    const framed = this.framedRooms.get(room);
    if (framed?.delete(core) && framed.size === 0) this.framedRooms.delete(room);
    this.#countChanged(room);
    this.#presence?.(core, room, false);
  }

  /** A room's stream, made with a new epoch when the room (re)appears. */
  roomStream(room: string): Stream {
    let stream = this.#roomStreams.get(room);
    if (!stream) {
      const id = this.#nextStreamId++;
      this.#roomStreams.set(
        room,
        // With the broker's streams the epoch is the broker's, unknown until a message brings it.
        stream = { id, key: `r:${room}`, epoch: this.streams ? "" : `${this.#node}.${id.toString(36)}`, offset: 0 },
      );
    }
    return stream;
  }

  /** The native topic of the hub, or of a room, for a session of this kind. */
  topic(core: SessionCore<K>, room?: string): string {
    if (room === undefined) return core.framed ? this.#v1Topic : this.allTopic;
    return (core.framed ? this.#v1RoomPrefix : this.roomPrefix) + room;
  }

  /** A connection now carries a session: count it for native fan-out, subscribe it to its topics. */
  adopt(conn: Connection<K>): void {
    this.#track(conn);
    const core = conn.core!;
    conn.subscribe(this.topic(core));
    if (core.rooms) { for (const room of core.rooms) conn.subscribe(this.topic(core, room)); }
    this.#startTicker();
  }

  /** A connection no longer carries a session. */
  release(conn: Connection<K>): void {
    this.#untrack(conn);
  }

  /** A connection whose socket refused a subscription: from now on it is reached by the loop. */
  demote(conn: Connection<K>): void {
    if (!conn.publisher) return;
    const tracked = conn.core !== undefined && conn.core.conn === conn && !conn.core.ended;
    if (tracked) this.#untrack(conn);
    conn.publisher = undefined;
    if (tracked) this.#track(conn);
  }

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

  /** An upgrade was refused (by the hub's checks, `onUpgrade`, the Hono middleware or an adapter). */
  refusedUpgrade(status: number, why: string): void {
    this.counters.refused++;
    this.log({ level: "info", event: "refused", status, message: `Upgrade refused (${status}): ${why}` });
  }

  /** A client did not keep up: its session closed, or its connection given up. */
  slowClient(core: SessionCore<K>, code: number, message: string): void {
    this.counters.slowClients++;
    this.log({ level: "warn", event: "slow-client", session: core.id, code, message });
  }

  /** Runs the disconnect hook; resolves when it is done. */
  disconnected(core: SessionCore<K>): Promise<void> | undefined {
    this.counters.disconnects++;
    const onDisconnect = this.hooks.disconnect;
    if (!onDisconnect) return undefined;
    try {
      const result = onDisconnect(core.session);
      if (result instanceof Promise) return result.then(undefined, (err) => this.report(core, err));
    } catch (err) {
      this.report(core, err);
    }
    return undefined;
  }

  /**
   * Delivers a message on this node to every session, or to a room's, but `except`: the one
   * place a hub-wide or room broadcast reaches sessions.
   */
  deliver(
    payload: string | Uint8Array,
    size: number,
    room: string | undefined,
    except: SessionCore<K> | undefined,
    parts: number = BOTH,
    offset = 0,
  ): void {
    if (this.#foreign === 0 && this.#publishers.size > 0) {
      const hooks = this.hooks;
      if (typeof payload === "string" ? !hooks.sentMessage : !hooks.sentMessageBinary) {
        this.#publish(payload, size, room, except, parts, offset);
        return;
      }
    }
    const targets = room === undefined ? this.sessions.values() : this.rooms.get(room);
    if (targets) {
      const stream = room === undefined ? this.hubStream : this.roomStream(room);
      this.deliverTo(targets, payload, size, except, stream, parts, offset);
    }
  }

  /**
   * The loop: delivers to each target but `except`. Resumable sessions get a numbered frame of
   * `stream`, encoded once for all of them, or, without a stream, one of their own stream each.
   * Nothing is allocated per plain recipient.
   */
  deliverTo(
    targets: Iterable<SessionCore<K>>,
    payload: string | Uint8Array,
    size: number,
    except: SessionCore<K> | undefined,
    stream?: Stream,
    parts: number = BOTH,
    at = 0,
  ): void {
    let frame: NumberedFrame | undefined;
    for (const core of targets) {
      if (core === except) continue;
      if (!core.framed) {
        if (parts & PLAIN) core.deliver(payload, size);
      } else if (!(parts & FRAMED)) {
        continue;
      } else if (!stream) {
        core.deliverOwn(payload, size);
      } else {
        frame ??= numberFrame(stream, at, payload, size);
        core.deliverFrame(stream, frame.offset, frame.frame, frame.size, payload);
      }
    }
  }

  /**
   * The stream object of a key at the position the broker gave: a new epoch makes a new object
   * (same id), declared again to the sessions that follow it.
   */
  streamAt(key: string, epoch: string, offset: number): Stream {
    const room = key === "h" ? undefined : key.slice(2);
    let stream = room === undefined ? this.hubStream : this.roomStream(room);
    if (stream.epoch !== epoch) {
      stream = { id: stream.id, key: stream.key, epoch, offset: 0 };
      if (room === undefined) this.hubStream = stream;
      else this.#roomStreams.set(room, stream);
      const followers = room === undefined ? this.framed : this.framedRooms.get(room);
      if (followers) { for (const core of followers) core.redeclare(stream); }
    }
    if (offset > stream.offset) stream.offset = offset;
    return stream;
  }

  /** An epoch of this node's own, for numbered frames sent while the broker's streams fail. */
  localEpoch(current: string | undefined): string {
    const mine = `${this.#node}~`;
    return current?.startsWith(mine) ? current : `${mine}${(++this.#localEpochs).toString(36)}`;
  }

  /**
   * A broadcast the broker's streams could not take: this node's resumable sessions get it in
   * a local epoch (other nodes miss it; a client that saw it resumes elsewhere as a new session).
   */
  deliverLocally(
    payload: string | Uint8Array,
    size: number,
    room: string | undefined,
    except: SessionCore<K> | undefined,
  ): void {
    const key = room === undefined ? "h" : `r:${room}`;
    const current = room === undefined ? this.hubStream : this.roomStream(room);
    const stream = this.streamAt(key, this.localEpoch(current.epoch), 0);
    this.deliver(payload, size, room, except, FRAMED, stream.offset + 1);
  }

  /** The broker's streams failed: reported once until they work again. */
  streamFailed(err: unknown): void {
    if (this.#streamsFailing) return;
    this.#streamsFailing = true;
    this.#reportBroker?.(
      new Error(`Broker streams: ${err instanceof Error ? err.message : String(err)}`, { cause: err }),
    );
  }

  /** The broker's streams work (again). */
  streamWorked(): void {
    this.#streamsFailing = false;
  }

  /** Reports a broker error (set by the hub). */
  #reportBroker: ((err: unknown) => void) | undefined;

  /** Sets where broker errors go. */
  onBrokerError(report: (err: unknown) => void): void {
    this.#reportBroker = report;
  }

  /** A connection the hub closed: its closing handshake is under way. */
  closeStarted(conn: Connection<K>): void {
    this.#closingConns.add(conn);
  }

  /** A connection's socket reported its close. */
  closeEnded(conn: Connection<K>): void {
    if (this.#closingConns.delete(conn) && this.#closingConns.size === 0) this.#noneClosing?.();
  }

  /** Resolves when no closing handshake is pending, or after `ms`. */
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

  /** Closes the connections still in their handshake (`hub.close()`). */
  closeHandshakes(code: number, reason: string): void {
    for (const conn of [...this.#handshakes.keys()]) {
      this.#endHandshake(conn);
      conn.close(code, reason);
    }
    for (const conn of [...this.#claiming]) {
      this.#claiming.delete(conn);
      conn.close(this.streams ? 1012 : code, reason);
    }
  }

  report(core: SessionCore<K>, err: unknown): void {
    const onError = this.hooks.error;
    reportTo(onError && ((error) => onError(core.session, error)), err, `session ${core.id}`, "handleError");
  }

  stopTicker(): void {
    clearInterval(this.#ticker);
    clearTimeout(this.#pongTimer);
    this.#ticker = this.#pongTimer = undefined;
  }

  /** A connection becomes a new session. With `chorus.v1`, the welcome goes first. */
  #open(conn: Connection<K>, init: SessionInit<K>, v1: boolean): void {
    const core = new SessionCore(this, init);
    if (v1 && this.resume !== undefined) core.makeResumable(true);
    this.counters.connects++;
    core.conn = conn;
    conn.core = core;
    this.sessions.set(core.id, core);
    if (core.framed) this.framed.add(core);
    this.#countChanged(undefined);
    this.adopt(conn);
    if (v1) core.welcome(false);
    core.start();
  }

  #refuseHandshake(conn: Connection<K>, reason: string): void {
    if (!this.#handshakes.has(conn)) return;
    this.#endHandshake(conn);
    conn.close(1002, reason);
  }

  #endHandshake(conn: Connection<K>): void {
    clearTimeout(this.#handshakes.get(conn)?.timer);
    this.#handshakes.delete(conn);
  }

  /**
   * `deliver` through the runtime's native fan-out: one publish per server to the hub's or the
   * room's topic, from `except`'s own socket on its server (the runtime skips it); plain and
   * resumable sessions have topics of their own, and each resumable one keeps the frame.
   */
  #publish(
    payload: string | Uint8Array,
    size: number,
    room: string | undefined,
    except: SessionCore<K> | undefined,
    parts: number,
    at: number,
  ): void {
    let members: Set<SessionCore<K>> | undefined;
    let framed: Set<SessionCore<K>> | undefined;
    let exceptIn: boolean;
    if (room === undefined) {
      framed = this.framed;
      exceptIn = except !== undefined && this.sessions.get(except.id) === except;
    } else {
      members = this.rooms.get(room);
      if (!members) return;
      framed = this.framedRooms.get(room);
      exceptIn = except !== undefined && members.has(except);
    }
    const all = members ? members.size : this.sessions.size;
    const framedCount = framed?.size ?? 0;
    const plain = parts & PLAIN ? all - framedCount - (exceptIn && !except!.framed ? 1 : 0) : 0;
    const numbered = parts & FRAMED ? framedCount - (exceptIn && except!.framed ? 1 : 0) : 0;
    if (plain <= 0 && numbered <= 0) return;
    this.publishes++;
    const from = exceptIn ? except!.conn : undefined;
    let dropped = false;
    const counters = this.counters;
    if (plain > 0) {
      dropped = this.#publishAll(room === undefined ? this.allTopic : this.roomPrefix + room, payload, from);
      counters.messagesOut += plain;
      counters.bytesOut += plain * size;
    }
    if (numbered > 0) {
      const stream = room === undefined ? this.hubStream : this.roomStream(room);
      const { offset, frame, size: frameSize } = numberFrame(stream, at, payload, size);
      const topic = room === undefined ? this.#v1Topic : this.#v1RoomPrefix + room;
      if (this.#publishAll(topic, frame, from)) dropped = true;
      // Each resumable session keeps the frame until its client acknowledges it.
      for (const core of framed!) {
        if (core === except || !core.keep(stream, offset, frame, frameSize) || !core.conn) continue;
        counters.messagesOut++;
        counters.bytesOut += size;
      }
    }
    if (!dropped) return;
    // Dropped for some subscriber: find the sessions past their limit.
    for (const core of members ?? this.sessions.values()) if (core !== except) core.conn?.dropped(size);
  }

  /** One publish per server; returns whether some server dropped it (or had no subscriber). */
  #publishAll(topic: string, data: string | Uint8Array, from: Connection<K> | undefined): boolean {
    let dropped = false;
    for (const publisher of this.#publishers.keys()) {
      const status = from?.publisher === publisher ? from.socket.publish!(topic, data) : publisher.publish(topic, data);
      // 0 is also "no subscriber there": with several servers, one may hold none of the room.
      if (status === 0) dropped = true;
    }
    return dropped;
  }

  #track(conn: Connection<K>): void {
    const publisher = conn.publisher;
    if (publisher) this.#publishers.set(publisher, (this.#publishers.get(publisher) ?? 0) + 1);
    else this.#foreign++;
  }

  #untrack(conn: Connection<K>): void {
    const publisher = conn.publisher;
    if (!publisher) {
      this.#foreign--;
      return;
    }
    const n = this.#publishers.get(publisher)! - 1;
    if (n > 0) this.#publishers.set(publisher, n);
    else this.#publishers.delete(publisher);
  }

  #startTicker(): void {
    const { pingInterval, pongWait } = this.limits;
    if (pingInterval <= 0 || this.#ticker !== undefined) return;
    this.#ticker = setInterval(this.#tick, Math.max(Math.min(pingInterval, pongWait), 10));
  }

  /** Keepalive: pings where due; where a socket cannot ping, checks that its queue drains. */
  #tick = (): void => {
    const now = Date.now();
    const { pingInterval, pongWait } = this.limits;
    let pinged = false;
    for (const core of this.sessions.values()) {
      if (core.conn?.tick(now, pingInterval - SLACK, pongWait)) pinged = true;
    }
    // A pong is due exactly `pongWait` after the ping, not at some later tick.
    if (pinged && this.#pongTimer === undefined) this.#pongTimer = setTimeout(this.#checkPongs, pongWait);
  };

  #checkPongs = (): void => {
    this.#pongTimer = undefined;
    const now = Date.now();
    const wait = this.limits.pongWait;
    let next = Infinity;
    for (const core of this.sessions.values()) {
      const left = core.conn?.checkPong(now, wait - SLACK) ?? -1;
      if (left >= 0 && left < next) next = left;
    }
    if (next !== Infinity && this.#ticker !== undefined) this.#pongTimer = setTimeout(this.#checkPongs, next + SLACK);
  };
}
