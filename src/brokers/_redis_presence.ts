/**
 * The Redis broker's presence ({@linkcode BrokerPresence}): room members in Redis, notices on
 * the broker's channel, and the sweep of dead nodes' members. Internal to `chorus-ws/redis`.
 *
 * Keys, under the broker's prefix (`<room>` made safe by `safeKey`):
 *
 * ```
 * <prefix>:pr:<room>   hash: session id → {"node":<node>,"keys":{…}} (JSON): the room's members
 * <prefix>:pn:<node>   set: "<id>\n<safe room>\n<room>" for each membership a node recorded (what
 *                      to sweep when it dies; entries another node took over are left alone)
 * <prefix>:pl          sorted set: node → the time (ms, Redis clock) after which it counts as
 *                      dead: its last heartbeat or update + presenceTtl
 * ```
 *
 * A node's batched update is one script (HSET/HDEL/SADD/SREM, then one PUBLISH of the notice),
 * sent without waiting. Every heartbeat, a node refreshes its own deadline (once it has members)
 * and sweeps up to 8 dead nodes: their members are removed and their leaves published (one
 * notice per dead node and room), so a dead node's members leave within presenceTtl plus one
 * heartbeat of the nodes still alive. `list` leaves dead nodes' members out even before a sweep.
 *
 * On a Redis Cluster (`{<prefix>}` for `<prefix>` above), a room's members are in
 * `{<prefix>:r:<safe room>}:pr`, on the room's slot; `pn:<node>` holds "<safe room>\n<room>" for
 * each room where the node has members, and `{<prefix>}:ps` the sweeps under way (node → when
 * another node may take the sweep over).
 *
 * The scripts' texts are in `_lua/presence.ts`. A presence notice arriving on the channel is
 * read by `receive` of `wire.ts`, as every message is.
 *
 * May import: `_redis_scripts.ts`, `_redis_keys.ts`, `_redis_client.ts` (types), `_redis_util.ts`,
 * `wire.ts`, `../broker.ts` (types), `node:buffer`.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { BrokerLink, BrokerPresence, PresenceEntry, PresenceUpdate } from "../broker.ts";
import type { RedisClientLike } from "./_redis_client.ts";
import { type RedisKeys, safeKey } from "./_redis_keys.ts";
import { type Script, SCRIPTS, type Scripts } from "./_redis_scripts.ts";
import { errorText, OneAtATime, type Run, StalledReads } from "./_redis_util.ts";
import { encodePresence } from "./wire.ts";

/** What the Redis broker gives its presence. */
export interface PresenceHost {
  /**
   * The broker's key and channel names: its keys but the rooms' members under `home`; on a Redis
   * Cluster a room's members on the room's slot (`roomMembers`), on one server
   * `<prefix>:pr:<room>` and every change in one script. Notices go on the hub's channel.
   */
  readonly keys: RedisKeys;
  /** Largest channel message in bytes. */
  readonly max: number;
  /** How long a node's members outlive its last heartbeat, in ms (`presenceTtl`). */
  readonly ttl: number;
  /** The hub's link; throws when the broker is not running. */
  link(): BrokerLink;
  /** The connection for commands. */
  client(): RedisClientLike;
  /** The broker's scripts, on that connection. */
  readonly scripts: Scripts;
  /**
   * Runs a command within the command timeout.
   * @param promise The command.
   * @param what What it is, for the error.
   */
  within<T>(promise: Promise<T>, what: string): Promise<T>;
}

/** Room members in Redis. */
export class RedisPresence implements BrokerPresence {
  #host: PresenceHost;
  /** This node has recorded members: its heartbeat keeps its deadline. */
  #active = false;
  #failing = false;
  /** A write failed: this node's members are written again once Redis answers a heartbeat. */
  #stale = false;
  /** The heartbeat's part, one at a time (see `OneAtATime`). */
  #beats = new OneAtATime(() => this.#beat());
  /** Member lists, which stop queueing behind a stalled Redis. */
  #lists: StalledReads;

  /**
   * The presence of one broker.
   * @param host The broker's side.
   */
  constructor(host: PresenceHost) {
    this.#host = host;
    this.#lists = new StalledReads(host.within);
  }

  update(room: string, change: PresenceUpdate): void {
    const host = this.#host;
    const link = host.link();
    const node = link.node;
    const p = host.keys.home;
    const safe = safeKey(room);
    const notice = change.joins.length + change.leaves.length > 0
      ? encodePresence(node, room, change, host.max)
      : undefined;
    this.#active = true;
    if (host.keys.sharded) return this.#updateSharded(link, room, change, notice, host.keys.roomMembers(room));
    const args: (string | Buffer)[] = [
      node,
      String(Math.ceil(host.ttl)),
      host.keys.channel,
      notice ? Buffer.from(notice.buffer, notice.byteOffset, notice.byteLength) : "",
      `${safe}\n${room}`,
      String(change.leaves.length),
      String(change.joins.length),
    ];
    for (const e of change.leaves) args.push(e.id);
    for (const e of [...change.joins, ...change.moves]) args.push(e.id, value(node, e));
    const keys = [`${p}:pr:${safe}`, `${p}:pn:${node}`, `${p}:pl`];
    this.#run(SCRIPTS.update, keys, args, "a presence update").then(
      (rejoined) => this.#recorded(room, change, rejoined as string[]),
      (err) => this.#failed("Presence not recorded in Redis", err),
    );
  }

  /** A room's changes on a Redis Cluster: its members on its slot, this node's index on {prefix}'s. */
  #updateSharded(
    link: BrokerLink,
    room: string,
    change: PresenceUpdate,
    notice: Uint8Array | undefined,
    roomKey: string,
    again = false,
  ): void {
    const host = this.#host;
    const node = link.node;
    const p = host.keys.home;
    // the index first: a node that dies after its members were recorded is swept in this room
    const mark = change.joins.length + change.moves.length > 0 ? "+" : link.localCount(room) > 0 ? "" : "-";
    this.#run(
      SCRIPTS.nodeUpdate,
      [`${p}:pl`, `${p}:pn:${node}`],
      [node, String(Math.ceil(host.ttl)), mark, `${safeKey(room)}\n${room}`],
      "a presence update",
    ).catch((err) => this.#failed("Presence not recorded in Redis", err));
    const joins = change.joins.length;
    const args: string[] = [node, String(change.leaves.length), String(again ? -joins : joins)];
    for (const e of change.leaves) args.push(e.id);
    for (const e of [...change.joins, ...change.moves]) args.push(e.id, value(node, e));
    this.#run(SCRIPTS.roomUpdate, [roomKey], args, "a presence update").then(
      (rejoined) => this.#recorded(room, change, rejoined as string[]),
      (err) => this.#failed("Presence not recorded in Redis", err),
    );
    if (notice) this.#publish(notice);
  }

  /**
   * Writes this node's members of every room again, without a notice (nobody heard them leave):
   * after Redis came back, perhaps empty, or after updates failed. Each room's entries are
   * replaced as a join would write them; the next heartbeat keeps this node's deadline.
   */
  rewrite(): void {
    const host = this.#host;
    const link = host.link();
    if (!this.#active || !link.members) return;
    for (const room of link.rooms()) {
      const joins = link.members(room);
      if (joins.length === 0) continue;
      const change = { joins, leaves: [], moves: [] };
      if (host.keys.sharded) {
        this.#updateSharded(link, room, change, undefined, host.keys.roomMembers(room), true);
        continue;
      }
      const p = host.keys.home;
      const safe = safeKey(room);
      const args: string[] = [link.node, String(Math.ceil(host.ttl)), host.keys.channel, "", `${safe}\n${room}`, "0"];
      args.push(String(-joins.length)); // written again: only where the room has none, or this node's
      for (const e of joins) args.push(e.id, value(link.node, e));
      this.#run(SCRIPTS.update, [`${p}:pr:${safe}`, `${p}:pn:${link.node}`, `${p}:pl`], args, "a presence update").then(
        () => this.#failing = false,
        (err) => this.#failed("Presence not recorded in Redis", err),
      );
    }
  }

  /** A change was recorded: moves whose old entries were swept meanwhile are joins. */
  #recorded(room: string, change: PresenceUpdate, rejoined: string[]): void {
    this.#failing = false;
    const ids = new Set(rejoined);
    const joins = change.moves.filter((e) => ids.has(e.id));
    if (joins.length === 0) return;
    // Moved here after their old node's entries were swept: joins, for every node, this one too.
    let link: BrokerLink;
    try {
      link = this.#host.link();
    } catch {
      return; // answered after the broker stopped
    }
    this.#publish(encodePresence(link.node, room, { joins, leaves: [] }, this.#host.max));
    link.presence(room, { joins, leaves: [] });
  }

  async list(room: string): Promise<PresenceEntry[]> {
    const host = this.#host;
    host.link();
    const p = host.keys.home;
    let flat: string[];
    let live: Set<string> | undefined;
    if (host.keys.sharded) {
      // the room's members from its slot, the live nodes from {prefix}'s, side by side
      const [members, nodes] = await this.#lists.read(
        room,
        () =>
          Promise.all([
            host.client().sendCommand(["HGETALL", host.keys.roomMembers(room)]),
            host.scripts.run(SCRIPTS.live, [`${p}:pl`], []),
          ]),
        "a member list",
      );
      flat = Array.isArray(members) ? members : Object.entries(members as Record<string, string>).flat();
      live = new Set((nodes as string[]).map(String));
    } else {
      const send = () => host.scripts.run(SCRIPTS.list, [`${p}:pr:${safeKey(room)}`, `${p}:pl`], []);
      flat = await this.#lists.read(room, send, "a member list") as string[];
    }
    const out: PresenceEntry[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const entry = parse(String(flat[i]), String(flat[i + 1]));
      if (entry && (!live || live.has(entry.node))) out.push(entry);
    }
    return out;
  }

  /**
   * A heartbeat: this node's deadline, and the sweep of dead nodes (their leaves announced).
   * Never issued while the previous one is unanswered (it goes once that answer comes).
   * @returns When it is done, or failed (reported), or put off.
   */
  beat(): Promise<void> {
    return this.#beats.run();
  }

  /** One heartbeat; `answered` once Redis answered each of its commands. */
  #beat(): Run {
    const commands: Promise<unknown>[] = [];
    const done = this.#beatOnce(commands);
    return { done, answered: done.then(() => Promise.allSettled(commands), () => Promise.allSettled(commands)) };
  }

  async #beatOnce(commands: Promise<unknown>[]): Promise<void> {
    const host = this.#host;
    const link = host.link();
    const p = host.keys.home;
    let flat: string[];
    try {
      if (host.keys.sharded) flat = await this.#sweepSharded(commands);
      else {
        const args = [link.node, String(Math.ceil(host.ttl)), `${p}:pr:`, `${p}:pn:`, this.#active ? "1" : "0"];
        flat = await this.#run(SCRIPTS.beat, [`${p}:pl`], args, "a presence heartbeat", commands) as string[];
      }
    } catch (err) {
      this.#failed("Presence heartbeat failed", err);
      return;
    }
    if (this.#stale) {
      this.#stale = false;
      this.rewrite();
    }
    const gone = new Map<string, { node: string; room: string; leaves: PresenceEntry[] }>();
    for (let i = 0; i < flat.length; i += 4) {
      const [node, room, id, v] = [flat[i], flat[i + 1], flat[i + 2], flat[i + 3]].map(String);
      const entry = parse(id, v);
      if (!entry) continue;
      const k = `${node}\n${room}`;
      let group = gone.get(k);
      if (!group) gone.set(k, group = { node, room, leaves: [] });
      group.leaves.push(entry);
    }
    // One notice per dead node and room, from that node: every live node hears it, this one too.
    for (const { node, room, leaves } of gone.values()) {
      try {
        this.#publish(encodePresence(node, room, { joins: [], leaves }, host.max));
      } catch (err) {
        link.report(err);
      }
    }
  }

  /**
   * A heartbeat on a Redis Cluster: claims dead nodes (one sweeper at a time, another after a
   * ttl if this one dies), clears their members room by room, then forgets them.
   * @param commands Where its commands go (the beat is answered when they are).
   * @returns {dead node, room, id, value, …} of the members removed.
   */
  async #sweepSharded(commands: Promise<unknown>[]): Promise<string[]> {
    const host = this.#host;
    const link = host.link();
    const p = host.keys.home;
    const args = [link.node, String(Math.ceil(host.ttl)), `${p}:pn:`, this.#active ? "1" : "0"];
    const claimed = await this.#run(
      SCRIPTS.claimDead,
      [`${p}:pl`, `${p}:ps`],
      args,
      "a presence heartbeat",
      commands,
    ) as string[];
    const rooms = new Map<string, string[]>();
    for (let i = 0; i < claimed.length; i += 2) {
      const [dead, entry] = [String(claimed[i]), String(claimed[i + 1])];
      if (!rooms.has(dead)) rooms.set(dead, []);
      const nl = entry.indexOf("\n");
      if (nl >= 0) rooms.get(dead)!.push(entry.slice(nl + 1));
    }
    const out: string[] = [];
    for (const [dead, names] of rooms) {
      const removed = await Promise.all(
        names.map((room) =>
          this.#run(SCRIPTS.sweepRoom, [host.keys.roomMembers(room)], [dead], "a presence sweep", commands).then((
            flat,
          ) => ({
            room,
            flat: flat as string[],
          }))
        ),
      );
      for (const { room, flat } of removed) {
        for (let i = 0; i < flat.length; i += 2) out.push(dead, room, String(flat[i]), String(flat[i + 1]));
      }
      const forget = [`${p}:pl`, `${p}:ps`, `${p}:pn:${dead}`];
      await this.#run(SCRIPTS.forgetDead, forget, [dead], "a presence sweep", commands);
    }
    return out;
  }

  #publish(bytes: Uint8Array): void {
    const host = this.#host;
    host.within(
      host.client().publish(host.keys.channel, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)),
      "a presence notice",
    ).catch((err) => this.#failed("Presence notice not published", err));
  }

  /** Reports a failure once until presence works again. */
  #failed(what: string, err: unknown): void {
    this.#stale = true; // written again after the next heartbeat Redis answers
    if (this.#failing) return;
    this.#failing = true;
    try {
      this.#host.link().report(
        new Error(`${what}: ${errorText(err)}`, { cause: err }),
      );
    } catch {
      // the broker stopped
    }
  }

  /** Runs a script within the command timeout; its command goes to `commands`, if given. */
  #run(
    script: Script,
    keys: string[],
    args: (string | Buffer)[],
    what: string,
    commands?: Promise<unknown>[],
  ): Promise<unknown> {
    const command = this.#host.scripts.run(script, keys, args);
    commands?.push(command);
    return this.#host.within(command, what);
  }
}

/** A member's hash value: its node first (the scripts match on it), then its keys. */
function value(node: string, e: PresenceEntry): string {
  return `{"node":${JSON.stringify(node)},"keys":${JSON.stringify(e.keys) ?? "{}"}}`;
}

function parse(id: string, v: string): PresenceEntry | undefined {
  try {
    const { node, keys } = JSON.parse(v);
    if (typeof node !== "string" || keys === null || typeof keys !== "object") return undefined;
    return { id, node, keys };
  } catch {
    return undefined;
  }
}
