// The registry of a hub: its sessions and rooms, its hooks, the native topics, local delivery
// and keepalive. One per hub; the hub, the adapters (through `chorus/adapter`), sessions and
// connections all reach it. Internal.

import type { HubLimits, HubSocket, Publisher, SessionInit, SocketEvents } from "./adapter.ts";
import { Connection } from "./_connection.ts";
import { SessionCore } from "./_session_core.ts";
import type { Keys, Session } from "./session.ts";
import { reportTo } from "./_util.ts";

/** The hub's handlers, as set by `handleConnect` and its siblings. */
export interface Hooks<K extends object> {
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

/** What the registry needs from its hub beyond the limits. */
export interface RegistryInit extends HubLimits {
  /** `concurrentMessageHandling`. */
  readonly concurrent: boolean;
  /** The hub's node id: its native topics are named after it, so no two hubs' topics meet. */
  readonly node: string;
  /** This node's count of a room's sessions (or of all, `undefined`) changed. */
  readonly countChanged: (room: string | undefined) => void;
}

// deno-lint-ignore no-explicit-any
const registries = new WeakMap<object, Registry<any>>();

/** The registry of a hub (the hub registers it when it is constructed). */
export function registryOf<K extends object>(hub: object): Registry<K> {
  const registry = registries.get(hub);
  if (!registry) throw new TypeError("Not a chorus Hub");
  return registry;
}

/** Pong deadlines and pings are compared with this much slack for timer jitter (ms). */
const SLACK = 5;

export class Registry<K extends object = Keys> {
  readonly limits: HubLimits;
  readonly concurrent: boolean;
  readonly hooks: Hooks<K> = {};
  readonly sessions: Map<string, SessionCore<K>> = new Map();
  readonly rooms: Map<string, Set<SessionCore<K>>> = new Map();
  /** The native topic of every session with native fan-out. */
  readonly allTopic: string;
  /** Prefix of a room's native topic (the room's name follows). */
  readonly roomPrefix: string;
  /**
   * How many native publishes were made. A native publish queues bytes on sockets behind the
   * sessions' backs, so a connection re-reads `bufferedAmount` when this changed.
   */
  publishes = 0;
  /** Set from the first moment of `hub.close()`. */
  closing = false;
  /** Servers whose native fan-out reaches some session, with how many sessions each. */
  #publishers = new Map<Publisher, number>();
  /** Sessions without native fan-out: while any is here, broadcasts loop. */
  #foreign = 0;
  /** Connections the hub closed whose socket has not reported its close yet. */
  #closingConns = new Set<Connection<K>>();
  #noneClosing: (() => void) | undefined;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #pongTimer: ReturnType<typeof setTimeout> | undefined;
  #countChanged: (room: string | undefined) => void;

  constructor(hub: object, init: RegistryInit) {
    this.limits = {
      maxMessageSize: init.maxMessageSize,
      maxBufferedAmount: init.maxBufferedAmount,
      closeOnBufferFull: init.closeOnBufferFull,
      pingInterval: init.pingInterval,
      pongWait: init.pongWait,
    };
    this.concurrent = init.concurrent;
    this.#countChanged = init.countChanged;
    // "chorus.<node>.all" and "chorus.<node>.room.<name>": distinct for every hub (the node id is
    // random, so two copies of this module in one process do not meet) and for every name.
    this.allTopic = `chorus.${init.node}.all`;
    this.roomPrefix = `chorus.${init.node}.room.`;
    registries.set(hub, this);
  }

  /** An open socket becomes a session (see `attach` in `chorus/adapter`). */
  attach(socket: HubSocket, init: SessionInit<K>, publisher: Publisher | undefined): SocketEvents | undefined {
    if (this.closing) {
      try {
        socket.close(1001, "Hub is closed");
      } catch {
        // the socket is gone already
      }
      return undefined;
    }
    const core = new SessionCore(this, init);
    const conn = new Connection(this, socket, socket.subscribe && publisher ? publisher : undefined);
    conn.core = core;
    core.conn = conn;
    this.sessions.set(core.id, core);
    this.#track(conn);
    this.#countChanged(undefined);
    this.#startTicker();
    conn.subscribe(this.allTopic);
    core.start();
    return conn;
  }

  /** Takes an ended session out of the sessions and its rooms, before any hook sees the hub. */
  unregister(core: SessionCore<K>): void {
    if (this.sessions.get(core.id) !== core) return;
    this.sessions.delete(core.id);
    if (core.conn) this.#untrack(core.conn);
    if (core.rooms) { for (const room of core.rooms) this.leave(core, room); }
    this.#countChanged(undefined);
    if (this.sessions.size === 0) this.stopTicker();
  }

  join(core: SessionCore<K>, room: string): void {
    let members = this.rooms.get(room);
    if (!members) this.rooms.set(room, members = new Set());
    members.add(core);
    this.#countChanged(room);
  }

  leave(core: SessionCore<K>, room: string): void {
    const members = this.rooms.get(room);
    if (!members?.delete(core)) return;
    if (members.size === 0) this.rooms.delete(room);
    this.#countChanged(room);
  }

  /** A connection whose socket refused a subscription: from now on it is reached by the loop. */
  demote(conn: Connection<K>): void {
    if (!conn.publisher) return;
    const registered = conn.core !== undefined && this.sessions.get(conn.core.id) === conn.core;
    if (registered) this.#untrack(conn);
    conn.publisher = undefined;
    if (registered) this.#track(conn);
  }

  /** Runs the disconnect hook; resolves when it is done. */
  disconnected(core: SessionCore<K>): Promise<void> | undefined {
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
  ): void {
    if (this.#foreign === 0 && this.#publishers.size > 0) {
      const hooks = this.hooks;
      if (typeof payload === "string" ? !hooks.sentMessage : !hooks.sentMessageBinary) {
        this.#publish(payload, size, room, except);
        return;
      }
    }
    // The loop walks the live registry: no snapshot, no closure, nothing allocated per session.
    const targets = room === undefined ? this.sessions.values() : this.rooms.get(room);
    if (!targets) return;
    for (const core of targets) if (core !== except) core.deliver(payload, size);
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

  report(core: SessionCore<K>, err: unknown): void {
    const onError = this.hooks.error;
    reportTo(onError && ((error) => onError(core.session, error)), err, `session ${core.id}`, "handleError");
  }

  stopTicker(): void {
    clearInterval(this.#ticker);
    clearTimeout(this.#pongTimer);
    this.#ticker = this.#pongTimer = undefined;
  }

  /**
   * `deliver` through the runtime's native fan-out: one publish per server to the hub's or the
   * room's topic; on `except`'s own server from its socket (the runtime skips it).
   */
  #publish(
    payload: string | Uint8Array,
    size: number,
    room: string | undefined,
    except: SessionCore<K> | undefined,
  ): void {
    let members: Set<SessionCore<K>> | undefined;
    let recipients: number;
    let exceptIn: boolean;
    if (room === undefined) {
      recipients = this.sessions.size;
      exceptIn = except !== undefined && this.sessions.get(except.id) === except;
    } else {
      members = this.rooms.get(room);
      if (!members) return;
      recipients = members.size;
      exceptIn = except !== undefined && members.has(except);
    }
    if (exceptIn) recipients--;
    if (recipients <= 0) return;
    const topic = room === undefined ? this.allTopic : this.roomPrefix + room;
    const from = exceptIn ? except!.conn : undefined;
    this.publishes++;
    let dropped = false;
    for (const publisher of this.#publishers.keys()) {
      const status = from?.publisher === publisher
        ? from.socket.publish!(topic, payload)
        : publisher.publish(topic, payload);
      // 0 is also "no subscriber there": with several servers, one may hold none of the room.
      if (status === 0) dropped = true;
    }
    if (!dropped) return;
    // Dropped for some subscriber: find the sessions past their limit and report them.
    for (const core of members ?? this.sessions.values()) if (core !== except) core.conn?.dropped(size);
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
