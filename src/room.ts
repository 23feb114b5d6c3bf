/**
 * A room of a hub: the sessions that joined it, and broadcast to them.
 *
 * @module
 */

// A leaf: the hub gives each Room its host (`RoomHost`). May import: `session.ts`, `types.ts` (types).

import type { Session } from "./session.ts";
import type { HistoryEntry, Keys, Member, Message } from "./types.ts";

export type { Member, PresenceEvent } from "./types.ts";

/** What a room needs of its hub. Internal. */
export interface RoomHost<K extends object> {
  size(room: string): number;
  sessions(room: string): Session<K>[];
  broadcast(room: string, msg: Message, except: Session<K> | undefined): void;
  count(room: string): Promise<number>;
  history(room: string, limit: number | undefined): Promise<HistoryEntry[]>;
  members(room: string): Promise<Member<K>[]>;
}

/**
 * A room: the sessions that joined it, and broadcast to them. Get one with `hub.room(name)`;
 * rooms exist while someone is in them.
 *
 * @example
 * ```ts
 * import { Hub } from "chorus-ws";
 * const hub = new Hub();
 * hub.handleConnect((s) => s.join("lobby"));
 * hub.handleMessage((s, msg) => hub.room("lobby").broadcastOthers(msg, s));
 * ```
 */
export class Room<K extends object = Keys> {
  /** The room's name. */
  readonly name: string;
  #host: RoomHost<K>;

  /** @ignore Use `hub.room(name)`. */
  constructor(host: RoomHost<K>, name: string) {
    this.#host = host;
    this.name = name;
  }

  /** How many sessions are in the room on this node. */
  get size(): number {
    return this.#host.size(this.name);
  }

  /**
   * Counts the room's sessions on every node of the cluster (with a broker), or on this node.
   *
   * @returns The count. It rejects with `HubClosedError` once the hub is closed and, with a
   * broker, while the broker cannot be reached.
   */
  count(): Promise<number> {
    return this.#host.count(this.name);
  }

  /**
   * The room's last messages, oldest first (`history` on; empty without it): from the broker
   * when it keeps streams, so every node reads the same, else from this process.
   *
   * @example
   * ```ts
   * import { Hub } from "chorus-ws";
   * const hub = new Hub({ history: { size: 50 } });
   * hub.handleConnect(async (s) => {
   *   s.join("lobby");
   *   for (const { message } of await hub.room("lobby").history(20)) s.write(message);
   * });
   * ```
   *
   * @param limit At most this many (default: `history.size`).
   * @returns The messages with their offsets. Rejects with `HubClosedError` once the hub is
   *   closed, and while the broker cannot be reached.
   */
  history(limit?: number): Promise<HistoryEntry[]> {
    return this.#host.history(this.name, limit);
  }

  /**
   * Lists the room's members on every node of the cluster (`presence` on): each session's id,
   * node and the keys named in `presence.keys`. With a broker that keeps presence
   * (`redisBroker`), other nodes' members as the broker has them (their joins
   * of the last batching interval may be missing) and this node's as they are now; without one,
   * this node's.
   *
   * @example
   * ```ts
   * import { Hub } from "chorus-ws";
   * const hub = new Hub<{ name: string; token: string }>({ presence: { keys: ["name"] } });
   * hub.handleConnect(async (s) => {
   *   s.join("lobby");
   *   s.write(JSON.stringify((await hub.room("lobby").members()).map((m) => m.keys.name)));
   * });
   * ```
   *
   * @returns The members, in no particular order. Rejects with `TypeError` when `presence` is
   *   off, with `HubClosedError` once the hub is closed, and while the broker cannot be reached.
   */
  members(): Promise<Member<K>[]> {
    return this.#host.members(this.name);
  }

  /**
   * Lists the room's sessions on this node.
   *
   * @returns A snapshot array.
   */
  sessions(): Session<K>[] {
    return this.#host.sessions(this.name);
  }

  /**
   * Sends a message to every session in the room, on every node when the hub has a broker.
   *
   * @param msg The message.
   * @throws {HubClosedError} If the hub is closed.
   */
  broadcast(msg: Message): void {
    this.#host.broadcast(this.name, msg, undefined);
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
    this.#host.broadcast(this.name, msg, except);
  }
}
