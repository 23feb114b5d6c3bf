/**
 * An in-memory broker: hubs in one process that share a {@linkcode MemoryNetwork} behave as
 * the nodes of a cluster. Messages go through chorus' wire format and arrive asynchronously,
 * as they would through Redis. Its brokers share streams and session states
 * (`broker.streams`), as Redis brokers do; streams are trimmed to their limit and never expire,
 * and the states of a stopped broker's sessions expire their `ttl` after it stopped. They share
 * room members too (`broker.presence`): a stopped broker's members that are left (handed over)
 * leave at once, announced to the other nodes, as a dead node's would after a while. For tests
 * and for trying cluster code without a server.
 *
 * Its streams are `MemStream`s (`src/core/_memstream.ts`), and it reads what arrives with
 * `receive` of `wire.ts`, as the Redis broker does.
 *
 * May import: `wire.ts`, `../core/_memstream.ts`, `../core/_util.ts` (ids), `../broker.ts` (types). Internal: no entry
 * point exports it (the tests use it).
 *
 * @example
 * ```ts
 * import { Hub } from "../../mod.ts";
 * import { MemoryNetwork } from "./memory.ts";
 *
 * const network = new MemoryNetwork();
 * const a = new Hub({ broker: network.broker() });
 * const b = new Hub({ broker: network.broker() });
 * a.broadcast("reaches the sessions of a and of b");
 * await Promise.all([a.close(), b.close()]);
 * ```
 *
 * @module
 */

import type {
  Broker,
  BrokerLink,
  BrokerMessage,
  BrokerPresence,
  BrokerStreams,
  PresenceEntry,
  PresenceUpdate,
  SessionState,
  StreamEntry,
  StreamPosition,
} from "../broker.ts";
import { MemStream } from "../core/_memstream.ts";
import { randomString } from "../core/_util.ts";
import { encodeMessage, encodePresence, encodeReleased, receive } from "./wire.ts";

/** Options of {@linkcode MemoryNetwork}. */
export interface MemoryNetworkOptions {
  /**
   * Largest encoded message the network carries; a larger publish throws `RangeError`.
   * @default {4194304}
   */
  maxMessageSize?: number;
}

/** A session state kept by a {@linkcode MemoryNetwork}. */
interface MemorySession {
  state: SessionState;
  node: string;
  ttl: number;
  /** When it expires (ms since 1970); `undefined` while its node runs. */
  expires: number | undefined;
}

/** What the brokers of one network share. */
interface Shared {
  readonly links: Set<BrokerLink>;
  readonly max: number;
  readonly streams: Map<string, MemStream<StreamEntry>>;
  readonly sessions: Map<string, MemorySession>;
  readonly tokens: Map<string, string>;
  /** Room members: room → session id → entry. */
  readonly presence: Map<string, Map<string, PresenceEntry>>;
  seq: number;
}

/** A process-local message bus that any number of {@linkcode MemoryNetwork.broker} brokers share. */
export class MemoryNetwork {
  readonly #shared: Shared;

  /**
   * A new network, with no broker yet.
   * @param options The size limit.
   */
  constructor(options: MemoryNetworkOptions = {}) {
    const max = options.maxMessageSize ?? 4 << 20;
    if (typeof max !== "number" || !(max > 0)) throw new RangeError("maxMessageSize must be a positive number");
    this.#shared = {
      links: new Set(),
      max,
      streams: new Map(),
      sessions: new Map(),
      tokens: new Map(),
      presence: new Map(),
      seq: 0,
    };
  }

  /**
   * A new broker on this network, for one hub.
   * @returns The broker.
   */
  broker(): Broker {
    return new MemoryBroker(this.#shared);
  }

  /**
   * Forgets a stream, its epoch and its offsets, as a Redis that lost it would (for tests):
   * its next append starts a new epoch at offset 1.
   *
   * @param key The stream's key (`"h"`, `"r:" + room`, `"s:" + id`).
   */
  forget(key: string): void {
    this.#shared.streams.delete(key);
  }

  /**
   * Puts raw bytes on the network, as a foreign publisher could (for tests).
   *
   * @param bytes What every node receives.
   */
  inject(bytes: Uint8Array): void {
    const copy = bytes.slice();
    const { links, max } = this.#shared;
    for (const link of links) queueMicrotask(() => receive(link, copy, { max }));
  }

  /** How many brokers are started and not stopped. */
  get size(): number {
    return this.#shared.links.size;
  }
}

class MemoryBroker implements Broker {
  #shared: Shared;
  #link: BrokerLink | undefined;
  /** Streams and session states shared by the brokers of the network. */
  readonly streams: BrokerStreams;
  /** Room members shared by the brokers of the network. */
  readonly presence: MemoryPresence;

  constructor(shared: Shared) {
    this.#shared = shared;
    const node = () => {
      if (!this.#link) throw new Error("The memory broker is not running");
      return this.#link.node;
    };
    this.streams = new MemoryStreams(shared, node);
    this.presence = new MemoryPresence(shared, () => this.#link);
  }

  start(link: BrokerLink): Promise<void> {
    if (this.#link) return Promise.reject(new Error("A broker serves one hub: this one is already started"));
    this.#link = link;
    this.#shared.links.add(link);
    return Promise.resolve();
  }

  publish(msg: BrokerMessage): void {
    const { links, max } = this.#shared;
    const bytes = encodeMessage(msg, max);
    for (const link of links) queueMicrotask(() => receive(link, bytes, { max }));
  }

  changed(): void {}

  count(room?: string): Promise<number> {
    let total = 0;
    for (const link of this.#shared.links) total += link.localCount(room);
    return Promise.resolve(total);
  }

  /** Stops; this node's session states stay (another node may claim them) until their ttl passes. */
  stop(): Promise<void> {
    const link = this.#link;
    this.#link = undefined;
    if (link) {
      this.presence.sweep(link.node);
      this.#shared.links.delete(link);
      const now = Date.now();
      for (const session of this.#shared.sessions.values()) {
        if (session.node === link.node) session.expires = now + session.ttl;
      }
    }
    return Promise.resolve();
  }
}

/** Room members in memory: one map per room, notices in the wire format, asynchronous as through Redis. */
class MemoryPresence implements BrokerPresence {
  #shared: Shared;
  #link: () => BrokerLink | undefined;

  constructor(shared: Shared, link: () => BrokerLink | undefined) {
    this.#shared = shared;
    this.#link = link;
  }

  update(room: string, change: PresenceUpdate): void {
    const link = this.#link();
    if (!link) throw new Error("The memory broker is not running");
    const node = link.node;
    const shared = this.#shared;
    let members = shared.presence.get(room);
    if (!members) shared.presence.set(room, members = new Map());
    for (const e of change.leaves) if (members.get(e.id)?.node === node) members.delete(e.id);
    for (const e of change.joins) members.set(e.id, copy(e, node));
    const rejoined: PresenceEntry[] = [];
    for (const e of change.moves) {
      if (!members.has(e.id)) rejoined.push(e);
      members.set(e.id, copy(e, node));
    }
    if (members.size === 0) shared.presence.delete(room);
    this.#announce(node, room, change.joins, change.leaves, false);
    if (rejoined.length > 0) this.#announce(node, room, rejoined, [], true);
  }

  list(room: string): Promise<PresenceEntry[]> {
    if (!this.#link()) return Promise.reject(new Error("The memory broker is not running"));
    return Promise.resolve(Array.from(this.#shared.presence.get(room)?.values() ?? [], (e) => copy(e, e.node)));
  }

  /** A node stops: its members that are left leave, announced to the others. */
  sweep(node: string): void {
    for (const [room, members] of this.#shared.presence) {
      const leaves = [...members.values()].filter((e) => e.node === node);
      if (leaves.length === 0) continue;
      for (const e of leaves) members.delete(e.id);
      if (members.size === 0) this.#shared.presence.delete(room);
      this.#announce(node, room, [], leaves, false);
    }
  }

  /** One notice to every other node (to this one too with `self`: moves that turned out joins). */
  #announce(
    node: string,
    room: string,
    joins: readonly PresenceEntry[],
    leaves: readonly PresenceEntry[],
    self: boolean,
  ): void {
    if (joins.length + leaves.length === 0) return;
    const { links, max } = this.#shared;
    const bytes = encodePresence(node, room, { joins, leaves }, max);
    for (const link of links) {
      if (self || link.node !== node) queueMicrotask(() => receive(link, bytes, { max, self }));
    }
  }
}

/** An entry as JSON carries it, on `node`. */
function copy(e: PresenceEntry, node: string): PresenceEntry {
  return { id: e.id, node, keys: JSON.parse(JSON.stringify(e.keys)) };
}

class MemoryStreams implements BrokerStreams {
  #shared: Shared;
  #node: () => string;

  constructor(shared: Shared, node: () => string) {
    this.#shared = shared;
    this.#node = node;
  }

  append(msg: BrokerMessage, limit: number): Promise<void> {
    try {
      const node = this.#node();
      const key = msg.kind === "room" || msg.kind === "room-others" ? "r:" + msg.room : "h";
      const { links, max } = this.#shared;
      // encoded (and checked) before it is kept: a message too large is neither kept nor sent
      this.#add(key, msg.kind, msg.except, msg.payload, limit, (position) => {
        const bytes = encodeMessage({ ...msg, node, position }, max);
        return () => {
          for (const link of links) queueMicrotask(() => receive(link, bytes, { max }));
        };
      });
      return Promise.resolve();
    } catch (err) {
      if (err instanceof RangeError) throw err; // too large: thrown before anything is sent
      return Promise.reject(err);
    }
  }

  appendOwn(session: string, payload: string | Uint8Array, limit: number): Promise<StreamPosition> {
    try {
      this.#node();
      return Promise.resolve(this.#add("s:" + session, "own", undefined, payload, limit, () => () => {}));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Appends an entry; `prepare` may throw before anything is kept, its result runs after. */
  #add(
    key: string,
    kind: StreamEntry["kind"],
    except: string | undefined,
    payload: string | Uint8Array,
    limit: number,
    prepare: (position: StreamPosition) => () => void,
  ): StreamPosition {
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new RangeError(`A stream limit must be a positive integer, not ${limit}`);
    }
    const shared = this.#shared;
    const stream = shared.streams.get(key) ?? new MemStream<StreamEntry>(randomString(12, true));
    const position: StreamPosition = {
      key,
      epoch: stream.epoch,
      offset: stream.top + 1,
      seq: shared.seq + 1,
      time: Date.now(),
    };
    const send = prepare(position);
    shared.streams.set(key, stream);
    shared.seq++;
    const copy = typeof payload === "string" ? payload : payload.slice();
    stream.append(
      except === undefined ? { ...position, kind, payload: copy } : { ...position, kind, except, payload: copy },
      limit,
    );
    send();
    return position;
  }

  read(key: string, after: number, limit: number): Promise<{ epoch: string; top: number; entries: StreamEntry[] }> {
    try {
      this.#node();
      if (!Number.isSafeInteger(after) || after < 0) {
        throw new RangeError(`An offset must be an integer ≥ 0, not ${after}`);
      }
      if (!Number.isSafeInteger(limit) || limit < 0) {
        throw new RangeError(`A limit must be an integer ≥ 0, not ${limit}`);
      }
      const stream = this.#shared.streams.get(key);
      if (!stream) return Promise.resolve({ epoch: "", top: 0, entries: [] });
      const entries = stream.read(after, limit).map(({ value: e }) =>
        typeof e.payload === "string" ? e : { ...e, payload: e.payload.slice() }
      );
      return Promise.resolve({ epoch: stream.epoch, top: stream.top, entries });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  saveSession(state: SessionState, ttl: number): Promise<boolean> {
    try {
      const node = this.#node();
      if (!(ttl > 0) || !Number.isFinite(ttl)) {
        throw new RangeError(`A session ttl must be a positive number, not ${ttl}`);
      }
      const shared = this.#shared;
      const old = this.#live(state.id);
      if (old && old.node !== node) return Promise.resolve(false); // claimed by another node meanwhile
      if (old && old.state.token !== state.token && shared.tokens.get(old.state.token) === state.id) {
        shared.tokens.delete(old.state.token);
      }
      shared.sessions.set(state.id, { state: structuredClone(state), node, ttl, expires: undefined });
      if (state.token !== "") shared.tokens.set(state.token, state.id); // an empty credential names nothing
      return Promise.resolve(true);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  claimSession(token: string): Promise<SessionState | undefined> {
    try {
      const node = this.#node();
      const shared = this.#shared;
      const id = token === "" ? undefined : shared.tokens.get(token);
      if (id === undefined) return Promise.resolve(undefined);
      shared.tokens.delete(token);
      const session = this.#live(id);
      if (!session || session.state.token !== token) return Promise.resolve(undefined);
      const from = session.node;
      session.node = node;
      session.expires = undefined;
      if (from !== node) {
        const bytes = encodeReleased(node, from, id);
        for (const link of shared.links) queueMicrotask(() => receive(link, bytes, { max: shared.max }));
      }
      return Promise.resolve(structuredClone(session.state));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  hasSession(id: string): Promise<boolean> {
    try {
      this.#node();
      return Promise.resolve(this.#live(id) !== undefined);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  dropSession(id: string): Promise<void> {
    try {
      const node = this.#node();
      const shared = this.#shared;
      const session = this.#live(id);
      if (session && session.node !== node) return Promise.resolve(); // another node has it now
      if (session && shared.tokens.get(session.state.token) === id) shared.tokens.delete(session.state.token);
      shared.sessions.delete(id);
      shared.streams.delete("s:" + id);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** A session's state, unless it expired (then it is forgotten). */
  #live(id: string): MemorySession | undefined {
    const shared = this.#shared;
    const session = shared.sessions.get(id);
    if (session?.expires !== undefined && session.expires <= Date.now()) {
      shared.sessions.delete(id);
      if (shared.tokens.get(session.state.token) === id) shared.tokens.delete(session.state.token);
      return undefined;
    }
    return session;
  }
}
