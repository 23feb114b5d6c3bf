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
import { errorText, StalledReads, within } from "./_redis_util.ts";

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

/**
 * This node's session counts in Redis, and the other nodes' sums. A write is never issued while
 * the previous write of the same hash is unanswered: what changed meanwhile (and a heartbeat's
 * full write) is written once, when that answer comes. So a stalled Redis holds one write per
 * hash, however long it stalls and however many heartbeats pass.
 */
export class RedisCounts {
  #host: CountsHost;
  /** Fields to write: `""` for the hub's total, else rooms. */
  #dirty = new Set<string>();
  /** A full write is wanted (the heartbeat's): every field, and the node's hash replaced. */
  #full = false;
  /** On a Redis Cluster: this node's hash is to be replaced at its next write (a full write's). */
  #replace = false;
  /** Hashes written and not answered yet: `""` this node's hash, or (on a cluster) a room's. */
  #flight = new Set<string>();
  #flush: ReturnType<typeof setTimeout> | undefined;
  #failing = false;
  /** On a Redis Cluster: the rooms whose hash holds a count of this node (removed at stop). */
  #countedRooms = new Set<string>();
  /** `count()` reads, which stop queueing behind a stalled Redis. */
  #reads: StalledReads;

  /**
   * The counts of one broker.
   * @param host The broker's side.
   */
  constructor(host: CountsHost) {
    this.#host = host;
    this.#reads = new StalledReads((promise, what) => within(promise, host.timeout, what));
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
      this.#send();
    }, 0);
  }

  /**
   * Writes this node's counts: all of them (`full`, the heartbeat) or those that changed since
   * the last write. What is still unanswered is not written again now, but once its answer
   * comes. A failure is reported once until a write succeeds again; the next heartbeat (or the
   * reconnect) writes everything again.
   * @param full All of them.
   * @returns When what was written now is answered, or failed (never rejects).
   */
  write(full: boolean): Promise<void> {
    if (full) this.#full = true;
    return this.#send();
  }

  /** Writes what is wanted and not in flight. */
  #send(): Promise<void> {
    const host = this.#host;
    const link = host.link();
    if (!link) return Promise.resolve();
    const keys = host.keys;
    const writes: Promise<unknown>[] = [];
    if (!keys.sharded) {
      // one server: every field in this node's hash, in one script
      if (this.#flight.has("") || (!this.#full && this.#dirty.size === 0)) return Promise.resolve();
      const full = this.#full;
      const fields = full ? ["", ...link.rooms()] : this.#dirty;
      this.#full = false;
      this.#dirty = new Set();
      const args = [String(host.ttl), link.node, full ? "1" : "0"];
      for (const field of fields) args.push(field, String(link.localCount(field === "" ? undefined : field)));
      writes.push(
        this.#track("", host.scripts.run(SCRIPTS.writeCounts, [keys.nodePrefix + link.node, keys.nodes], args)),
      );
    } else {
      // a Redis Cluster: the hub's total in this node's hash, each room's count in the room's hash
      if (this.#full) {
        this.#full = false;
        this.#replace = true;
        for (const field of ["", ...link.rooms()]) this.#dirty.add(field);
      }
      for (const field of [...this.#dirty]) {
        if (this.#flight.has(field)) continue; // written again once answered
        this.#dirty.delete(field);
        if (field !== "") {
          writes.push(this.#track(field, this.#writeRoomCount(link, field, link.localCount(field))));
          continue;
        }
        const args = [String(host.ttl), link.node, this.#replace ? "1" : "0", "", String(link.localCount())];
        this.#replace = false;
        writes.push(
          this.#track("", host.scripts.run(SCRIPTS.writeCounts, [keys.nodePrefix + link.node, keys.nodes], args)),
        );
      }
    }
    if (writes.length === 0) return Promise.resolve();
    return within(Promise.all(writes), host.timeout, "a count write").then(
      () => {
        this.#failing = false;
      },
      (err) => {
        if (this.#failing || !host.link()) return;
        this.#failing = true;
        link.report(new Error(`Session counts not written to Redis: ${errorText(err)}`, { cause: err }));
      },
    );
  }

  /** A write of a hash is in flight until Redis answers it; then what is wanted meanwhile goes. */
  #track(hash: string, write: Promise<unknown>): Promise<unknown> {
    this.#flight.add(hash);
    const answered = () => {
      this.#flight.delete(hash);
      if (this.#full || this.#dirty.size > 0) this.#send();
    };
    write.then(answered, answered);
    return write;
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
    const others = await this.#reads.read(
      room === undefined ? "" : "r:" + room,
      () =>
        room !== undefined && keys.sharded
          ? host.scripts.run(SCRIPTS.sumRoomCounts, [keys.roomCounts(room)], [link.node])
          : host.scripts.run(SCRIPTS.sumCounts, [keys.nodes], [keys.nodePrefix, room ?? "", link.node]),
      "the count",
    );
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
