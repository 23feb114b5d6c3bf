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
 * @module
 */

import { Buffer } from "node:buffer";
import type { BrokerLink, BrokerPresence, PresenceEntry, PresenceUpdate } from "../broker.ts";
import type { RedisClientLike } from "./redis.ts";
import { safeKey, Script, type Scripts } from "./_redis_streams.ts";
import { encodePresence } from "./wire.ts";

// The time on Redis's clock, in ms.
const NOW = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
`;

// One room's changes on this node. KEYS: room hash, this node's set, deadlines. ARGV: 1 node,
// 2 ttl (ms), 3 channel, 4 notice ('' for none), 5 "<safe room>\n<room>", 6 number of leaves,
// 7 number of joins, then the leaves' ids, the joins' id/value pairs, the moves' id/value pairs.
// Returns the ids of moves the room no longer had (they are joins).
const UPDATE = NOW + `
local node = ARGV[1]
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), node)
if redis.call('PTTL', KEYS[3]) < 2 * tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[3], 4 * tonumber(ARGV[2])) end
local mine = '{"node":"' .. node .. '"'
local tail = '\\n' .. ARGV[5]
local leaves, joins = tonumber(ARGV[6]), tonumber(ARGV[7])
local i = 8
for _ = 1, leaves do
  local id = ARGV[i]
  local v = redis.call('HGET', KEYS[1], id)
  if v and string.sub(v, 1, #mine) == mine then redis.call('HDEL', KEYS[1], id) end
  redis.call('SREM', KEYS[2], id .. tail)
  i = i + 1
end
for _ = 1, joins do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('SADD', KEYS[2], ARGV[i] .. tail)
  i = i + 2
end
local rejoined = {}
while i < #ARGV do
  if redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then rejoined[#rejoined + 1] = ARGV[i] end
  redis.call('SADD', KEYS[2], ARGV[i] .. tail)
  i = i + 2
end
if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return rejoined`;

// A heartbeat: this node's deadline (ARGV[5] "1": it has recorded members), then the sweep of
// up to 8 dead nodes. KEYS: deadlines. ARGV: 1 node, 2 ttl (ms), 3 room hash prefix, 4 node set
// prefix, 5 active. Returns {dead node, room, id, value, …} of the members removed.
const BEAT = NOW + `
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  if redis.call('PTTL', KEYS[1]) < 2 * tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], 4 * tonumber(ARGV[2])) end
end
local out = {}
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 8)) do
  redis.call('ZREM', KEYS[1], dead)
  local theirs = '{"node":"' .. dead .. '"'
  local set = ARGV[4] .. dead
  for _, m in ipairs(redis.call('SMEMBERS', set)) do
    local a = string.find(m, '\\n', 1, true)
    local b = a and string.find(m, '\\n', a + 1, true)
    if b then
      local id = string.sub(m, 1, a - 1)
      local key = ARGV[3] .. string.sub(m, a + 1, b - 1)
      local v = redis.call('HGET', key, id)
      if v and string.sub(v, 1, #theirs) == theirs then
        redis.call('HDEL', key, id)
        out[#out + 1] = dead
        out[#out + 1] = string.sub(m, b + 1)
        out[#out + 1] = id
        out[#out + 1] = v
      end
    end
  end
  redis.call('DEL', set)
end
return out`;

// A room's members on live nodes. KEYS: room hash, deadlines. Returns {id, value, …}.
const LIST = NOW + `
local live = {}
local out = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local node = string.match(flat[i + 1], '^{"node":"([^"]*)"')
  if node then
    if live[node] == nil then
      local until_ = redis.call('ZSCORE', KEYS[2], node)
      live[node] = until_ ~= false and tonumber(until_) > now
    end
    if live[node] then
      out[#out + 1] = flat[i]
      out[#out + 1] = flat[i + 1]
    end
  end
end
return out`;

// On a Redis Cluster a room's members live on the room's slot and the rest on the slot of
// {prefix}: a change is two scripts (the room's members, then this node's deadline and index of
// rooms), and a sweep three steps (claim a dead node, clear its members room by room, forget it).

// One room's changes on this node, on the room's slot. KEYS: room hash. ARGV: 1 node, 2 number
// of leaves, 3 number of joins, then the leaves' ids, the joins' id/value pairs, the moves'
// id/value pairs. Returns the ids of moves the room no longer had (they are joins).
const ROOM_UPDATE = `
local mine = '{"node":"' .. ARGV[1] .. '"'
local leaves, joins = tonumber(ARGV[2]), tonumber(ARGV[3])
local i = 4
for _ = 1, leaves do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v and string.sub(v, 1, #mine) == mine then redis.call('HDEL', KEYS[1], ARGV[i]) end
  i = i + 1
end
for _ = 1, joins do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
local rejoined = {}
while i < #ARGV do
  if redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then rejoined[#rejoined + 1] = ARGV[i] end
  i = i + 2
end
return rejoined`;

// This node's deadline, and its index of rooms with members (what to sweep when it dies), on the
// slot of {prefix}. KEYS: deadlines, this node's index. ARGV: 1 node, 2 ttl (ms), 3 "+" (it has
// members in the room), "-" (none any more) or "", 4 "<safe room>\n<room>".
const NODE_UPDATE = NOW + `
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if redis.call('PTTL', KEYS[1]) < 2 * tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], 4 * tonumber(ARGV[2])) end
if ARGV[3] == '+' then redis.call('SADD', KEYS[2], ARGV[4])
elseif ARGV[3] == '-' then redis.call('SREM', KEYS[2], ARGV[4]) end
return 1`;

// A heartbeat (ARGV[4] "1": this node's deadline), then claims up to 8 dead nodes for a sweep
// that nobody else claimed within a ttl. KEYS: deadlines, claims. ARGV: 1 node, 2 ttl (ms),
// 3 index prefix, 4 active. Returns {dead node, "<safe room>\n<room>", …} of the claimed nodes.
const CLAIM_DEAD = NOW + `
local ttl = tonumber(ARGV[2])
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  if redis.call('PTTL', KEYS[1]) < 2 * ttl then redis.call('PEXPIRE', KEYS[1], 4 * ttl) end
end
local out = {}
local claimed = 0
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 32)) do
  local claim = redis.call('ZSCORE', KEYS[2], dead)
  if claimed < 8 and (not claim or tonumber(claim) <= now) then
    claimed = claimed + 1
    redis.call('ZADD', KEYS[2], now + ttl, dead)
    redis.call('PEXPIRE', KEYS[2], 4 * ttl)
    local rooms = redis.call('SMEMBERS', ARGV[3] .. dead)
    if #rooms == 0 then out[#out + 1] = dead; out[#out + 1] = '' end
    for _, room in ipairs(rooms) do out[#out + 1] = dead; out[#out + 1] = room end
  end
end
return out`;

// Removes a dead node's members of one room, on the room's slot. KEYS: room hash. ARGV: 1 the
// dead node. Returns {id, value, …} of the members removed.
const SWEEP_ROOM = `
local theirs = '{"node":"' .. ARGV[1] .. '"'
local out = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if string.sub(flat[i + 1], 1, #theirs) == theirs then
    redis.call('HDEL', KEYS[1], flat[i])
    out[#out + 1] = flat[i]
    out[#out + 1] = flat[i + 1]
  end
end
return out`;

// Forgets a swept node, unless it came back meanwhile. KEYS: deadlines, claims, its index.
// ARGV: 1 the node.
const FORGET_DEAD = NOW + `
local until_ = redis.call('ZSCORE', KEYS[1], ARGV[1])
if until_ and tonumber(until_) > now then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
return 1`;

// The nodes alive now, on the slot of {prefix}. KEYS: deadlines. Returns their ids.
const LIVE = NOW + `
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')`;

const SCRIPTS = {
  update: new Script(UPDATE),
  beat: new Script(BEAT),
  list: new Script(LIST),
  roomUpdate: new Script(ROOM_UPDATE),
  nodeUpdate: new Script(NODE_UPDATE),
  claimDead: new Script(CLAIM_DEAD),
  sweepRoom: new Script(SWEEP_ROOM),
  forgetDead: new Script(FORGET_DEAD),
  live: new Script(LIVE),
};

/** What the Redis broker gives its presence. */
export interface PresenceHost {
  /** The prefix of its keys but the rooms' members: `<prefix>`, or `{<prefix>}` on a Redis Cluster. */
  readonly prefix: string;
  /**
   * On a Redis Cluster, the key of a room's members, on the room's slot (`undefined` on one
   * server: `<prefix>:pr:<room>`, and every change in one script).
   * @param room The room.
   */
  roomKey?(room: string): string;
  /** The broadcast channel. */
  readonly channel: string;
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

  constructor(host: PresenceHost) {
    this.#host = host;
  }

  update(room: string, change: PresenceUpdate): void {
    const host = this.#host;
    const link = host.link();
    const node = link.node;
    const p = host.prefix;
    const safe = safeKey(room);
    const notice = change.joins.length + change.leaves.length > 0
      ? encodePresence(node, room, change, host.max)
      : undefined;
    this.#active = true;
    if (host.roomKey) return this.#updateSharded(link, room, change, notice, host.roomKey(room));
    const args: (string | Buffer)[] = [
      node,
      String(Math.ceil(host.ttl)),
      host.channel,
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
  ): void {
    const host = this.#host;
    const node = link.node;
    const p = host.prefix;
    // the index first: a node that dies after its members were recorded is swept in this room
    const mark = change.joins.length + change.moves.length > 0 ? "+" : link.localCount(room) > 0 ? "" : "-";
    this.#run(
      SCRIPTS.nodeUpdate,
      [`${p}:pl`, `${p}:pn:${node}`],
      [node, String(Math.ceil(host.ttl)), mark, `${safeKey(room)}\n${room}`],
      "a presence update",
    ).catch((err) => this.#failed("Presence not recorded in Redis", err));
    const args: string[] = [node, String(change.leaves.length), String(change.joins.length)];
    for (const e of change.leaves) args.push(e.id);
    for (const e of [...change.joins, ...change.moves]) args.push(e.id, value(node, e));
    this.#run(SCRIPTS.roomUpdate, [roomKey], args, "a presence update").then(
      (rejoined) => this.#recorded(room, change, rejoined as string[]),
      (err) => this.#failed("Presence not recorded in Redis", err),
    );
    if (notice) this.#publish(notice);
  }

  /** A change was recorded: moves whose old entries were swept meanwhile are joins. */
  #recorded(room: string, change: PresenceUpdate, rejoined: string[]): void {
    this.#failing = false;
    const ids = new Set(rejoined);
    const joins = change.moves.filter((e) => ids.has(e.id));
    if (joins.length === 0) return;
    // Moved here after their old node's entries were swept: joins, for every node, this one too.
    const link = this.#host.link();
    this.#publish(encodePresence(link.node, room, { joins, leaves: [] }, this.#host.max));
    link.presence(room, { joins, leaves: [] });
  }

  async list(room: string): Promise<PresenceEntry[]> {
    const host = this.#host;
    host.link();
    const p = host.prefix;
    let flat: string[];
    let live: Set<string> | undefined;
    if (host.roomKey) {
      // the room's members from its slot, the live nodes from {prefix}'s, side by side
      const [members, nodes] = await Promise.all([
        host.within(host.client().sendCommand(["HGETALL", host.roomKey(room)]), "a member list"),
        this.#run(SCRIPTS.live, [`${p}:pl`], [], "a member list"),
      ]);
      flat = Array.isArray(members) ? members : Object.entries(members as Record<string, string>).flat();
      live = new Set((nodes as string[]).map(String));
    } else {
      flat = await this.#run(SCRIPTS.list, [`${p}:pr:${safeKey(room)}`, `${p}:pl`], [], "a member list") as string[];
    }
    const out: PresenceEntry[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const entry = parse(String(flat[i]), String(flat[i + 1]));
      if (entry && (!live || live.has(entry.node))) out.push(entry);
    }
    return out;
  }

  /** A heartbeat: this node's deadline, and the sweep of dead nodes (their leaves announced). */
  async beat(): Promise<void> {
    const host = this.#host;
    const link = host.link();
    const p = host.prefix;
    let flat: string[];
    try {
      if (host.roomKey) flat = await this.#sweepSharded(host.roomKey);
      else {
        const args = [link.node, String(Math.ceil(host.ttl)), `${p}:pr:`, `${p}:pn:`, this.#active ? "1" : "0"];
        flat = await this.#run(SCRIPTS.beat, [`${p}:pl`], args, "a presence heartbeat") as string[];
      }
    } catch (err) {
      this.#failed("Presence heartbeat failed", err);
      return;
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
   * @returns {dead node, room, id, value, …} of the members removed.
   */
  async #sweepSharded(roomKey: (room: string) => string): Promise<string[]> {
    const host = this.#host;
    const link = host.link();
    const p = host.prefix;
    const args = [link.node, String(Math.ceil(host.ttl)), `${p}:pn:`, this.#active ? "1" : "0"];
    const claimed = await this.#run(
      SCRIPTS.claimDead,
      [`${p}:pl`, `${p}:ps`],
      args,
      "a presence heartbeat",
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
          this.#run(SCRIPTS.sweepRoom, [roomKey(room)], [dead], "a presence sweep").then((flat) => ({
            room,
            flat: flat as string[],
          }))
        ),
      );
      for (const { room, flat } of removed) {
        for (let i = 0; i < flat.length; i += 2) out.push(dead, room, String(flat[i]), String(flat[i + 1]));
      }
      await this.#run(SCRIPTS.forgetDead, [`${p}:pl`, `${p}:ps`, `${p}:pn:${dead}`], [dead], "a presence sweep");
    }
    return out;
  }

  #publish(bytes: Uint8Array): void {
    const host = this.#host;
    host.within(
      host.client().publish(host.channel, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)),
      "a presence notice",
    ).catch((err) => this.#failed("Presence notice not published", err));
  }

  /** Reports a failure once until presence works again. */
  #failed(what: string, err: unknown): void {
    if (this.#failing) return;
    this.#failing = true;
    try {
      this.#host.link().report(
        new Error(`${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err }),
      );
    } catch {
      // the broker stopped
    }
  }

  #run(script: Script, keys: string[], args: (string | Buffer)[], what: string): Promise<unknown> {
    return this.#host.within(this.#host.scripts.run(script, keys, args), what);
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
