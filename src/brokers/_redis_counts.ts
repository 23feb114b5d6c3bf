/**
 * The Redis broker's session counts (`hub.count()` across nodes): this node's counts written to
 * Redis (all of them every heartbeat, the changed ones soon after a change), the sums of the
 * other live nodes' counts, and their removal at stop. Internal to `chorus-ws/redis`.
 *
 * Keys: on one server, one hash per node, `<prefix>:node:<id>` (field `""` the hub's total, one
 * field per room), expiring `presenceTtl` after the node's last write, and the set
 * `<prefix>:nodes`. On a Redis Cluster the hub's total stays there (slot of `{<prefix>}`) and a
 * room's counts live in `{<prefix>:r:<safe room>}:cn` on the room's slot, node →
 * `"<count>:<deadline>"`, swept by the reader.
 *
 * May import: `_redis_scripts.ts`, `_redis_keys.ts`, `_redis_client.ts` (types), `_redis_util.ts`,
 * `../broker.ts` (types).
 *
 * @module
 */

import type { BrokerLink } from "../broker.ts";
import type { RedisClientLike } from "./_redis_client.ts";
import type { RedisKeys } from "./_redis_keys.ts";
import { SCRIPTS, type Scripts } from "./_redis_scripts.ts";
import { errorMessage, within } from "./_redis_util.ts";

/** What the broker gives its counts. */
export interface CountsHost {
  /** The broker's key names. */
  readonly keys: RedisKeys;
  /** The broker's scripts, on its connection. */
  readonly scripts: Scripts;
  /** How long a node's counts outlive its last write, in ms (`presenceTtl`). */
  readonly ttl: number;
  /** How long a command may wait for its answer, in ms (`commandTimeout`). */
  readonly timeout: number;
  /** The connection for commands. */
  client(): RedisClientLike;
  /** The hub's link while the broker runs (started, not stopped), else `undefined`. */
  link(): BrokerLink | undefined;
  /** Whether changes are written as they come (the broker started its heartbeat, and runs). */
  running(): boolean;
}

/** This node's session counts in Redis, and the other nodes' sums. */
export class RedisCounts {
  #host: CountsHost;
  /** Fields changed since the last write: `""` for the hub's total, else rooms. */
  #dirty = new Set<string>();
  #flush: ReturnType<typeof setTimeout> | undefined;
  #failing = false;
  /** On a Redis Cluster: the rooms whose hash holds a count of this node (removed at stop). */
  #countedRooms = new Set<string>();

  /**
   * The counts of one broker.
   * @param host The broker's side.
   */
  constructor(host: CountsHost) {
    this.#host = host;
  }

  /**
   * This node's count of a room (or of all sessions) changed: it is written soon, with the others
   * that changed in the same turn.
   * @param room The room, or `undefined` for the hub's total.
   */
  changed(room: string | undefined): void {
    if (!this.#host.running()) return;
    this.#dirty.add(room ?? "");
    this.#flush ??= setTimeout(() => {
      this.#flush = undefined;
      this.write(false);
    }, 0);
  }

  /**
   * Writes this node's counts: all of them (`full`, the heartbeat) or those that changed since
   * the last write. A failure is reported once until a write succeeds again; the next heartbeat
   * (or the reconnect) writes everything again.
   * @param full All of them.
   * @returns When the write is answered, or failed (never rejects).
   */
  write(full: boolean): Promise<void> {
    const host = this.#host;
    const link = host.link();
    if (!link) return Promise.resolve();
    let fields: Iterable<string>;
    if (full) {
      this.#dirty.clear();
      fields = ["", ...link.rooms()];
    } else {
      fields = this.#dirty;
      this.#dirty = new Set();
    }
    const keys = host.keys;
    const args = [String(host.ttl), link.node, full ? "1" : "0"];
    const writes: Promise<unknown>[] = [];
    for (const field of fields) {
      const count = link.localCount(field === "" ? undefined : field);
      if (field === "" || !keys.sharded) args.push(field, String(count));
      else writes.push(this.#writeRoomCount(link, field, count));
    }
    writes.push(host.scripts.run(SCRIPTS.writeCounts, [keys.nodePrefix + link.node, keys.nodes], args));
    return within(Promise.all(writes), host.timeout, "a count write").then(
      () => {
        this.#failing = false;
      },
      (err) => {
        if (this.#failing || !host.link()) return;
        this.#failing = true;
        link.report(new Error(`Session counts not written to Redis: ${errorMessage(err)}`, { cause: err }));
      },
    );
  }

  /** On a Redis Cluster: this node's count of a room, in the room's hash on the room's slot. */
  #writeRoomCount(link: BrokerLink, room: string, count: number): Promise<unknown> {
    if (count > 0) this.#countedRooms.add(room);
    else this.#countedRooms.delete(room);
    const host = this.#host;
    return host.scripts.run(SCRIPTS.writeRoomCount, [host.keys.roomCounts(room)], [
      link.node,
      String(count),
      String(host.ttl),
    ]);
  }

  /**
   * Counts sessions on every live node.
   * @param room A room, or `undefined` for every session.
   * @returns This node's count plus the other nodes' sum.
   */
  async count(room?: string): Promise<number> {
    const host = this.#host;
    const link = host.link();
    if (!link) throw new Error("The Redis broker is not running");
    const keys = host.keys;
    const count = room !== undefined && keys.sharded
      ? host.scripts.run(SCRIPTS.sumRoomCounts, [keys.roomCounts(room)], [link.node])
      : host.scripts.run(SCRIPTS.sumCounts, [keys.nodes], [keys.nodePrefix, room ?? "", link.node]);
    const others = await within(count, host.timeout, "the count");
    return link.localCount(room) + Number(others);
  }

  /** Stops writing changes. */
  stop(): void {
    clearTimeout(this.#flush);
    this.#flush = undefined;
  }

  /**
   * Removes this node's counts (at stop). Commands on one connection run in order: the DEL comes
   * after any count write in flight.
   * @param node This node's id.
   * @param left How long may still be spent, in ms.
   */
  async remove(node: string, left: () => number): Promise<void> {
    const host = this.#host;
    const pub = host.client();
    const keys = host.keys;
    try {
      await within(pub.sendCommand(["DEL", keys.nodePrefix + node]), left(), "the DEL at close");
      await within(pub.sendCommand(["SREM", keys.nodes, node]), left(), "the SREM at close");
      const rooms = [...this.#countedRooms].map((room) => pub.sendCommand(["HDEL", keys.roomCounts(room), node]));
      await within(Promise.all(rooms), left(), "the HDELs at close");
    } catch {
      // Redis is away or stalled: the counts expire by themselves within presenceTtl.
    }
  }
}
