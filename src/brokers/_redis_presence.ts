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
 * @module
 */

import { Buffer } from "node:buffer";
import type { BrokerLink, BrokerPresence, PresenceEntry, PresenceUpdate } from "../broker.ts";
import type { RedisClientLike } from "./redis.ts";
import { safeKey, Script, type Scripts } from "./_redis_streams.ts";
import { decodePresence, encodePresence } from "./wire.ts";

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

const SCRIPTS = { update: new Script(UPDATE), beat: new Script(BEAT), list: new Script(LIST) };

/** What the Redis broker gives its presence. */
export interface PresenceHost {
  /** The prefix of its keys: `<prefix>`, or `{<prefix>}` on a Redis Cluster (one slot). */
  readonly prefix: string;
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
    let notice: Uint8Array | string = "";
    if (change.joins.length + change.leaves.length > 0) {
      notice = encodePresence(node, room, change, host.max);
    }
    const args: (string | Buffer)[] = [
      node,
      String(Math.ceil(host.ttl)),
      host.channel,
      typeof notice === "string" ? notice : Buffer.from(notice.buffer, notice.byteOffset, notice.byteLength),
      `${safe}\n${room}`,
      String(change.leaves.length),
      String(change.joins.length),
    ];
    for (const e of change.leaves) args.push(e.id);
    for (const e of [...change.joins, ...change.moves]) args.push(e.id, value(node, e));
    this.#active = true;
    const keys = [`${p}:pr:${safe}`, `${p}:pn:${node}`, `${p}:pl`];
    this.#run(SCRIPTS.update, keys, args, "a presence update").then(
      (rejoined) => {
        this.#failing = false;
        const ids = new Set(rejoined as string[]);
        const joins = change.moves.filter((e) => ids.has(e.id));
        if (joins.length === 0) return;
        // Moved here after their old node's entries were swept: joins, for every node, this one too.
        this.#publish(encodePresence(node, room, { joins, leaves: [] }, host.max));
        link.presence(room, { joins, leaves: [] });
      },
      (err) => this.#failed("Presence not recorded in Redis", err),
    );
  }

  async list(room: string): Promise<PresenceEntry[]> {
    const host = this.#host;
    host.link();
    const p = host.prefix;
    const flat = await this.#run(
      SCRIPTS.list,
      [`${p}:pr:${safeKey(room)}`, `${p}:pl`],
      [],
      "a member list",
    ) as string[];
    const out: PresenceEntry[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const entry = parse(String(flat[i]), String(flat[i + 1]));
      if (entry) out.push(entry);
    }
    return out;
  }

  /** A heartbeat: this node's deadline, and the sweep of dead nodes (their leaves announced). */
  async beat(): Promise<void> {
    const host = this.#host;
    const link = host.link();
    const p = host.prefix;
    const args = [link.node, String(Math.ceil(host.ttl)), `${p}:pr:`, `${p}:pn:`, this.#active ? "1" : "0"];
    let flat: string[];
    try {
      flat = await this.#run(SCRIPTS.beat, [`${p}:pl`], args, "a presence heartbeat") as string[];
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
   * A message from the channel: a presence notice of another node goes to the hub.
   * @returns Whether it was a presence notice.
   */
  receive(message: Uint8Array, link: BrokerLink): boolean {
    const notice = decodePresence(message);
    if (!notice) return false;
    if (notice.node !== link.node) link.presence(notice.room, notice);
    return true;
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
