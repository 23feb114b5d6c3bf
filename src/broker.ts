/**
 * The broker contract: how a hub hands its hub-wide and room broadcasts to the hubs of other
 * processes (nodes), receives theirs, and counts sessions across all of them. The core knows
 * only this contract; `chorus-ws/redis` implements it on Redis, `src/brokers/memory.ts` in memory.
 *
 * @module
 */

// A leaf: the contract is types only. May import: nothing.

/**
 * What a broadcast was: to every session (`"all"`), to every session but the sender
 * (`"others"`), to a room (`"room"`) or to a room but the sender (`"room-others"`). The
 * sender is skipped on the node it is connected to; every other node delivers to all.
 */
export type BroadcastKind = "all" | "others" | "room" | "room-others";

/** A broadcast travelling between nodes. */
export interface BrokerMessage {
  /** Id of the node that published it. */
  readonly node: string;
  /** What kind of broadcast it is. */
  readonly kind: BroadcastKind;
  /** The room, for `"room"` and `"room-others"`. */
  readonly room?: string;
  /** The message: a string goes as a text frame, bytes as a binary frame. */
  readonly payload: string | Uint8Array;
  /** The session left out, for `"others"` and `"room-others"` sent through a stream. */
  readonly except?: string;
  /** Where the broadcast is in its stream, when it was appended to one (see {@linkcode BrokerStreams}). */
  readonly position?: StreamPosition;
}

/**
 * A message's place in a stream: the hub's (`"h"`), a room's (`"r:" + room`) or a session's
 * own (`"s:" + id`). Offsets increase by one within an epoch; a stream that was lost and made
 * anew gets a new epoch, so offsets of another epoch are never compared.
 */
export interface StreamPosition {
  /** The stream's key. */
  readonly key: string;
  /** The stream's epoch. */
  readonly epoch: string;
  /** The message's offset. */
  readonly offset: number;
  /** Order across every stream of the broker (increasing), to replay several streams in the order they were written. */
  readonly seq: number;
  /** When it was appended, in ms since 1970. */
  readonly time: number;
}

/** A message kept in a stream. */
export interface StreamEntry extends StreamPosition {
  /** What it was: a broadcast's kind, or `"own"` for a session's own message (`write`…). */
  readonly kind: BroadcastKind | "own";
  /** The session left out, for `"others"` and `"room-others"`. */
  readonly except?: string;
  /** The message: a string was a text frame, bytes a binary frame. */
  readonly payload: string | Uint8Array;
}

/** What a resumable session needs to continue on another node. */
export interface SessionState {
  /** The session's id (the same on every node). */
  readonly id: string;
  /** Its keys as JSON (what JSON cannot hold is not carried over). */
  readonly keys: string;
  /**
   * The streams it follows (`"h"`, `"r:" + room`, `"s:" + id`), each with where it follows it
   * from: the epoch and offset (the epoch `""` when its node had seen none of the stream yet), and
   * the last `seq` its node had seen then (messages of that stream up to it are not for it).
   */
  readonly from: Record<string, [epoch: string, offset: number, seq?: number]>;
  /** The rooms it is in. */
  readonly rooms: readonly string[];
  /** The last sequence number received from its client. */
  readonly received: number;
  /** Its current resume credential. */
  readonly token: string;
}

/**
 * Streams and sessions kept by the broker, shared by every node: what lets a resumable session
 * continue on any node, and a room keep its history. Optional: a broker without it carries
 * broadcasts only, and sessions resume on their own node only.
 */
export interface BrokerStreams {
  /**
   * Appends a broadcast to its stream (the hub's, or its room's) and publishes it to every node,
   * this one too, in one atomic step: each node's `link.deliver` gets it with `position` set.
   * Streams keep at most `limit` messages (and the hub trims nothing itself).
   * @param msg The broadcast.
   * @param limit How many messages the stream keeps.
   * @returns A promise that rejects when the broker could not (the hub then delivers locally).
   * @throws {RangeError} If the message is larger than the broker allows: nothing is kept or sent.
   */
  append(msg: BrokerMessage, limit: number): Promise<void>;
  /**
   * Appends a message to a session's own stream (`"s:" + id`), without publishing it.
   * @param session The session's id.
   * @param payload The message.
   * @param limit How many messages the stream keeps.
   * @returns Its position.
   */
  appendOwn(session: string, payload: string | Uint8Array, limit: number): Promise<StreamPosition>;
  /**
   * Reads a stream's messages after an offset, oldest first.
   * @param key The stream's key.
   * @param after The offset after which to read.
   * @param limit The most messages to return.
   * @returns The stream's epoch and last offset (`""` and 0 when it does not exist), and the messages.
   */
  read(key: string, after: number, limit: number): Promise<{ epoch: string; top: number; entries: StreamEntry[] }>;
  /**
   * Saves a resumable session's state, kept until `ttl` ms after this node last saved it or
   * refreshed it (its heartbeat refreshes the states of its sessions).
   * @param state The state.
   * @param ttl How long it outlives this node.
   * @returns `false` when another node has the session now (it was claimed there): nothing was
   * saved, and this node lets it go; `true` or nothing otherwise.
   */
  saveSession(state: SessionState, ttl: number): Promise<void | boolean>;
  /**
   * Moves the session a credential names to this node and returns its state (the node that had
   * it gets `link.released`). Each credential claims once.
   * @param token The credential.
   * @returns The state, or `undefined` when no live session has this credential.
   */
  claimSession(token: string): Promise<SessionState | undefined>;
  /**
   * Whether the broker keeps any state for a session id (claimed by any node or not). A node
   * whose claim found nothing asks it for a session it still holds itself: no state at all means
   * the broker lost it (a restart), and the session may go on there; a state means another node
   * took it. Optional: without it, such a session is not continued.
   * @param id The session's id.
   */
  hasSession?(id: string): Promise<boolean>;
  /**
   * Forgets a session that ended for good (or moved away: see `claimSession`).
   * @param id The session's id.
   */
  dropSession(id: string): Promise<void>;
}

/**
 * A room member as a broker keeps it: a session, its node, and the keys the hub shares
 * (`HubOptions.presence.keys`), as JSON values.
 */
export interface PresenceEntry {
  /** The session's id. */
  readonly id: string;
  /** The node the session is on. */
  readonly node: string;
  /** The shared keys: JSON values only (what JSON cannot hold is not carried). */
  readonly keys: Readonly<Record<string, unknown>>;
}

/** Joins and leaves of one room, as the hub gathered them over one batching interval. */
export interface PresenceChange {
  /** Sessions that joined the room (on the node that reports them). */
  readonly joins: readonly PresenceEntry[];
  /** Sessions that left the room, or ended. */
  readonly leaves: readonly PresenceEntry[];
}

/** What a hub hands its broker's presence once per room per batching interval. */
export interface PresenceUpdate extends PresenceChange {
  /**
   * Sessions that continue on this node after they were members on another (resumed here): the
   * broker records their new node without any event, unless it no longer had them (their old
   * node's entries were swept); then they are joins, announced to every node, this one too.
   */
  readonly moves: readonly PresenceEntry[];
}

/**
 * Cluster-wide room membership kept by the broker (`HubOptions.presence`). The hub gathers its
 * sessions' joins and leaves per room and hands them over once per batching interval; the broker
 * records them and sends them to every other node as one notice per room per interval, whose
 * `link.presence` reports them there. So a storm of joins costs a bounded number of notices, and
 * a join costs the same whatever the room's size (no full list is ever sent). A node that dies
 * without closing loses its members within a bounded time (the broker's to say: `redisBroker`
 * within `presenceTtl` + `heartbeatInterval`), announced as leaves by another node. Optional: a
 * hub whose broker has none lists and reports only its own node's members.
 */
export interface BrokerPresence {
  /**
   * Records one room's changes on this node and announces them to the other nodes (not to this
   * one: the hub reports its own). It does not wait for the broker: failures go to `link.report`.
   * @param room The room.
   * @param change Its joins, leaves and moves since the last update.
   */
  update(room: string, change: PresenceUpdate): void;
  /**
   * Lists a room's members on every live node (this one's included, as far as it recorded them:
   * the hub merges its own members in).
   * @param room The room.
   * @returns The members, in no particular order.
   */
  list(room: string): Promise<PresenceEntry[]>;
}

/** What a hub gives its broker when it starts it: its identity and the way back in. */
export interface BrokerLink {
  /** This node's id, unique in the cluster. */
  readonly node: string;
  /** Delivers a message from another node to this node's sessions. */
  deliver(msg: BrokerMessage): void;
  /** Reports a broker failure (connection lost, malformed message…) to the hub's broker error hook. */
  report(err: unknown): void;
  /**
   * How many sessions this node has.
   * @param room A room's name, or `undefined` for the whole hub.
   */
  localCount(room?: string): number;
  /** The rooms that have members on this node. */
  rooms(): Iterable<string>;
  /**
   * Another node claimed a session of this node (its client came back there): let it go
   * without ending it. Called by brokers with streams.
   */
  released(session: string): void;
  /**
   * Joins and leaves of a room on other nodes (or those a broker announces for a dead node, or
   * moves that turned out to be joins): the hub runs `handlePresence`. Called by brokers with
   * presence.
   * @param room The room.
   * @param change What changed.
   */
  presence(room: string, change: PresenceChange): void;
  /**
   * This node's members of a room as the broker's presence records them (`HubOptions.presence`),
   * for a broker that writes them again after its store lost them (a restart, failed writes).
   * Optional: a hub without presence has none.
   * @param room The room.
   */
  members?(room: string): readonly PresenceEntry[];
}

/**
 * Carries broadcasts between hubs in different processes or on different machines, and keeps
 * cluster-wide session counts. A broker instance serves one hub. Pass it as `new Hub({ broker })`.
 */
export interface Broker {
  /**
   * Connects and subscribes. Called once by the hub's constructor.
   * @param link The hub's side of the connection.
   * @returns A promise that resolves once messages from other nodes are received.
   */
  start(link: BrokerLink): Promise<void>;
  /**
   * Sends a broadcast to the other nodes. Transport failures go to `link.report`, never to the caller.
   * @param msg The broadcast.
   * @throws {RangeError} If the message is larger than the broker allows.
   */
  publish(msg: BrokerMessage): void;
  /**
   * Tells the broker that this node's count of a room's sessions (or of all sessions) changed.
   * @param room A room's name, or `undefined` for the hub's total.
   */
  changed(room: string | undefined): void;
  /**
   * Counts sessions across every live node.
   * @param room A room's name, or `undefined` for every session.
   * @returns The cluster-wide count.
   */
  count(room?: string): Promise<number>;
  /** Unsubscribes, removes this node's counts and releases what `start` took. */
  stop(): Promise<void>;
  /** Streams and sessions shared by every node, where the broker keeps them. */
  readonly streams?: BrokerStreams;
  /** Cluster-wide room membership (`HubOptions.presence`), where the broker keeps it. */
  readonly presence?: BrokerPresence;
  /**
   * The broker's recent publish round trip in ms, for `hub.metrics()`; optional.
   * @returns The latency, or `undefined` when none was measured yet.
   */
  latency?(): number | undefined;
}
