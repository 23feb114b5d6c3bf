// Presence (`HubOptions.presence`): this node's joins and leaves gathered per room and handed
// over once per interval — to `handlePresence` here and to the broker's presence, which records
// them and tells the other nodes — and `room.members()`. Imports the broker contract's types and
// the public types only.

import type { BrokerPresence, PresenceChange, PresenceEntry } from "../broker.ts";
import { isThenable } from "./_util.ts";
import type { Member, PresenceEvent } from "../types.ts";

/** What presence needs to know of a session. */
export interface PresenceMember {
  /** The session's id. */
  readonly id: string;
  /** It moves between nodes: no join or leave. */
  readonly moved: boolean;
  /** Its keys. */
  readonly keys: object | undefined;
}

/** One room's changes on this node since the last flush. */
interface Batch {
  joins: Map<string, PresenceMember>;
  leaves: Map<string, PresenceEntry>;
  moves: Map<string, PresenceMember>;
}

export class Presence<K extends object> {
  hook: ((room: string, change: PresenceEvent<K>) => unknown) | undefined;
  readonly #keys: readonly string[];
  readonly #interval: number;
  readonly #node: string;
  readonly #broker: BrokerPresence | undefined;
  readonly #report: (err: unknown) => void;
  #pending = new Map<string, Batch>();
  /** Leaves that go in the batch after the next (of sessions whose move here is in the next). */
  #later = new Map<string, Map<string, PresenceEntry>>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;

  constructor(
    keys: readonly string[],
    interval: number,
    node: string,
    broker: BrokerPresence | undefined,
    report: (err: unknown) => void,
  ) {
    this.#keys = keys;
    this.#interval = interval;
    this.#node = node;
    this.#broker = broker;
    this.#report = report;
  }

  /**
   * A session of this node joined or left a room: noted, nothing more (the hot path). A session
   * that moves between nodes (`core.moved`) is no join or leave: its new node records the move.
   */
  changed(core: PresenceMember, room: string, joined: boolean): void {
    if (this.#stopped) return;
    let batch = this.#pending.get(room);
    if (!batch) this.#pending.set(room, batch = { joins: new Map(), leaves: new Map(), moves: new Map() });
    this.#timer ??= setTimeout(() => this.flush(), this.#interval);
    const id = core.id;
    if (joined) {
      if (batch.leaves.delete(id)) return; // left and came back within the interval: no change
      (core.moved ? batch.moves : batch.joins).set(id, core);
      return;
    }
    const announced = !batch.joins.delete(id); // joined within the interval: nobody heard of it
    if (batch.moves.has(id) && !core.moved) {
      // It moved here and leaves before its move was recorded (its recovery failed): the move
      // goes first, so the entry its old node wrote is this node's, then this leave removes it.
      let later = this.#later.get(room);
      if (!later) this.#later.set(room, later = new Map());
      later.set(id, this.#entry(core));
      return;
    }
    if (announced && !core.moved) batch.leaves.set(id, this.#entry(core));
  }

  /** Hands every room's gathered changes to the broker, then to `handlePresence` here. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const pending = this.#pending;
    if (pending.size === 0) return;
    this.#pending = new Map();
    for (const [room, batch] of pending) {
      const joins = [...batch.joins.values()].map((core) => this.#entry(core));
      const leaves = [...batch.leaves.values()];
      const moves = [...batch.moves.values()].map((core) => this.#entry(core));
      if (joins.length + leaves.length + moves.length === 0) continue;
      if (this.#broker) {
        try {
          this.#broker.update(room, { joins, leaves, moves });
        } catch (err) {
          this.#report(err);
        }
      }
      if (joins.length + leaves.length > 0) this.emit(room, { joins, leaves });
    }
    if (this.#later.size === 0) return;
    for (const [room, later] of this.#later) {
      let batch = this.#pending.get(room);
      if (!batch) this.#pending.set(room, batch = { joins: new Map(), leaves: new Map(), moves: new Map() });
      for (const [id, entry] of later) batch.leaves.set(id, entry);
    }
    this.#later.clear();
    this.#timer ??= setTimeout(() => this.flush(), this.#interval);
  }

  /** Runs `handlePresence` (for this node's changes, or those a broker brings). */
  emit(room: string, change: PresenceChange): void {
    const hook = this.hook;
    if (!hook) return;
    const event = { joins: change.joins.map(toMember<K>), leaves: change.leaves.map(toMember<K>) };
    try {
      const result = hook(room, event);
      if (isThenable(result)) result.then(undefined, (err) => console.error("chorus: handlePresence failed:", err));
    } catch (err) {
      console.error("chorus: handlePresence failed:", err);
    }
  }

  /**
   * The room's members: the broker's list for the other nodes, and this node's own sessions
   * as they are now (so a join here shows at once, before the broker heard of it).
   */
  async members(room: string, local: () => Iterable<PresenceMember>): Promise<Member<K>[]> {
    const listed = this.#broker ? await this.#broker.list(room) : [];
    const own = Array.from(local(), (core) => toMember<K>(this.#entry(core)));
    const ids = new Set(own.map((m) => m.id));
    const others = listed.filter((e) => e.node !== this.#node && !ids.has(e.id)).map(toMember<K>);
    return [...others, ...own];
  }

  /** This node's members as the broker records them (for a broker that writes them again). */
  entries(local: Iterable<PresenceMember>): PresenceEntry[] {
    return Array.from(local, (core) => this.#entry(core));
  }

  /** Hands over what is pending (at `hub.close()`, before the broker stops); nothing is noted after. */
  stop(): void {
    this.flush();
    this.flush(); // the leaves that waited for a move's batch
    this.#stopped = true;
  }

  /** A session as a member: its shared keys, each as JSON carries it. */
  #entry(core: PresenceMember): PresenceEntry {
    const keys: Record<string, unknown> = {};
    const all = core.keys as Record<string, unknown> | undefined;
    if (all) {
      for (const key of this.#keys) {
        if (!Object.hasOwn(all, key)) continue;
        try {
          const json = JSON.stringify(all[key]);
          if (json !== undefined) keys[key] = JSON.parse(json);
        } catch {
          // not JSON (a BigInt, a cycle): not shared
        }
      }
    }
    return { id: core.id, node: this.#node, keys };
  }
}

function toMember<K extends object>(e: PresenceEntry): Member<K> {
  return { id: e.id, node: e.node, keys: { ...e.keys } as Partial<K> };
}
