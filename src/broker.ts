/**
 * The broker contract: how a hub hands its hub-wide and room broadcasts to the hubs of other
 * processes (nodes), receives theirs, and counts sessions across all of them. The core knows
 * only this contract; `chorus-ws/redis` implements it on Redis, `src/brokers/memory.ts` in memory.
 *
 * @module
 */

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
  /**
   * The broker's recent publish round trip in ms, for `hub.metrics()`; optional.
   * @returns The latency, or `undefined` when none was measured yet.
   */
  latency?(): number | undefined;
}
