/**
 * `chorus-ws/redis`: a broker on Redis pub/sub (the `redis` npm package, node-redis), for hubs
 * in several processes or on several machines. Works on Deno and on Bun.
 *
 * Every node publishes its hub-wide and room broadcasts on one channel and subscribes to it
 * (with `routing: "rooms"`, a room's broadcasts go on the room's own channel, which a node
 * subscribes to only while it has members there); a node delivers its own broadcasts at once and ignores their echo. Session counts live in
 * one hash per node that expires unless the node's heartbeat refreshes it, so a crashed node's
 * sessions leave `hub.count()` within `presenceTtl`.
 *
 * With `broker.streams`, broadcasts can also be appended to Redis streams (one Lua script appends
 * and publishes, with the message's offset in its stream and the stream's epoch), and resumable
 * sessions' states are kept in Redis, so that a session resumes on any node: the node's heartbeat
 * keeps its sessions' states alive, and they expire after a node dies. See `BrokerStreams`.
 *
 * With `broker.presence` (used by hubs with `presence` on), room members live in one hash per
 * room, each node's batched joins and leaves are one script call and one notice on the channel
 * per room per interval, and every node's heartbeat sweeps the members of nodes that missed
 * theirs: a dead node's members leave (announced to every node) within `presenceTtl` plus one
 * `heartbeatInterval`. See `BrokerPresence`.
 *
 * On a Redis Cluster (`redisBroker({ cluster: [urls] })`), pub/sub is sharded and a room's
 * channel, stream, history, members and counts live on the shard of the room's hash slot, so room
 * traffic spreads over the shards; the rest (the hub's channel and stream, session states) lives
 * on the slot of `{<prefix>}`. A failover is followed by itself; see `RedisBrokerOptions.cluster`.
 *
 * When Redis stalls (frozen, or cut off without a reset), at most `maxPendingBytes` of
 * broadcasts (and appends) wait for it; past that they are dropped and reported once. Commands time out after
 * `commandTimeout`, and `hub.close()` finishes within about that time, whatever Redis does.
 *
 * @example
 * ```ts ignore
 * import { Hub } from "chorus-ws";
 * import { redisBroker } from "chorus-ws/redis";
 * import { serve } from "chorus-ws/serve";
 *
 * const hub = new Hub({ broker: redisBroker({ url: "redis://127.0.0.1:6379" }) });
 * hub.handleMessage((_s, msg) => hub.broadcast(msg)); // reaches the sessions of every node
 * await hub.ready();
 * await serve(hub, { port: 8080 });
 * ```
 *
 * @example On a Redis Cluster, by some of its nodes
 * ```ts ignore
 * import { Hub } from "chorus-ws";
 * import { redisBroker } from "chorus-ws/redis";
 *
 * const hub = new Hub({
 *   broker: redisBroker({ cluster: ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"] }),
 *   resume: {}, // sessions resume on any node
 * });
 * ```
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createClient, createCluster } from "redis";
import type { Broker, BrokerLink, BrokerMessage, BrokerPresence, BrokerStreams } from "../broker.ts";
import { RedisStreams, safeKey, Script, Scripts } from "./_redis_streams.ts";
import { ClusterClient } from "./_redis_cluster.ts";
import { RedisPresence } from "./_redis_presence.ts";
import { encodeMessage, receive } from "./wire.ts";

/**
 * The parts of a node-redis client (`createClient()` of the `redis` package, v5 or later)
 * the broker uses.
 */
export interface RedisClientLike {
  /** Whether the socket is open (connected or reconnecting). */
  readonly isOpen: boolean;
  /** Whether the client is connected and ready for commands. */
  readonly isReady: boolean;
  /** Connects. */
  connect(): Promise<unknown>;
  /** A new, unconnected client with the same options (the subscriber connection). */
  duplicate(): RedisClientLike;
  /**
   * Sends a command.
   * @param args The command and its arguments.
   * @param options With `typeMapping: { 36: Buffer }`, bulk strings arrive as bytes.
   */
  sendCommand(
    args: ReadonlyArray<string | Buffer>,
    options?: { typeMapping?: Record<number, unknown> },
  ): Promise<unknown>;
  /** Publishes a message on a channel. */
  publish(channel: string, message: Buffer): Promise<unknown>;
  /** Subscribes to a channel; with `bufferMode` true, messages arrive as bytes. */
  subscribe(channel: string, listener: (message: Buffer, channel: Buffer) => unknown, bufferMode: true): Promise<void>;
  /** Removes a subscription. */
  unsubscribe(
    channel: string | string[],
    listener: (message: Buffer, channel: Buffer) => unknown,
    bufferMode: true,
  ): Promise<void>;
  /** Listens for connection errors. */
  on(event: "error", listener: (err: Error) => void): unknown;
  /** Listens for the client being ready, after connecting or reconnecting. */
  on(event: "ready", listener: () => void): unknown;
  /** Stops listening for connection errors. */
  off(event: "error", listener: (err: Error) => void): unknown;
  /** Stops listening for readiness. */
  off(event: "ready", listener: () => void): unknown;
  /** Closes after pending commands. */
  close(): Promise<void>;
  /** Closes at once. */
  destroy(): void;
}

/**
 * The parts of a node-redis cluster client (`createCluster()` of the `redis` package, v5 or
 * later) the broker uses on a Redis Cluster.
 */
export interface RedisClusterLike {
  /** Whether its connections are open. */
  readonly isOpen: boolean;
  /** Whether it is connected and ready for commands. */
  readonly isReady: boolean;
  /** Connects (finds the shards from its root nodes). */
  connect(): Promise<unknown>;
  /** A new, unconnected cluster client with the same options (the subscriber side). */
  duplicate(): RedisClusterLike;
  /**
   * Sends a command to the shard of `firstKey`.
   * @param firstKey The key that picks the shard.
   * @param isReadonly Whether a replica may answer (the broker always sends `false`).
   * @param args The command and its arguments.
   * @param options With `typeMapping: { 36: Buffer }`, bulk strings arrive as bytes.
   */
  sendCommand(
    firstKey: string | Buffer | undefined,
    isReadonly: boolean | undefined,
    args: ReadonlyArray<string | Buffer>,
    options?: { typeMapping?: Record<number, unknown> },
  ): Promise<unknown>;
  /**
   * The primary serving a hash slot now, by its address (`host:port`).
   * @param slot The slot.
   */
  getSlotMaster(slot: number): { readonly address: string };
  /** Publishes on a shard channel (SPUBLISH). */
  sPublish(channel: string, message: Buffer): Promise<unknown>;
  /** Subscribes to a shard channel (SSUBSCRIBE); with `bufferMode` true, messages arrive as bytes. */
  sSubscribe(channel: string, listener: (message: Buffer, channel: Buffer) => unknown, bufferMode: true): Promise<void>;
  /** Removes a shard channel subscription. */
  sUnsubscribe(
    channel: string | string[],
    listener: (message: Buffer, channel: Buffer) => unknown,
    bufferMode: true,
  ): Promise<void>;
  /** Listens for errors. */
  on(event: "error", listener: (err: Error) => void): unknown;
  /** Listens for a shard's connection becoming ready (after a failover, among others). */
  on(event: "node-ready", listener: () => void): unknown;
  /** Stops listening for errors. */
  off(event: "error", listener: (err: Error) => void): unknown;
  /** Stops listening for readiness. */
  off(event: "node-ready", listener: () => void): unknown;
  /** Closes after pending commands. */
  close(): Promise<void>;
  /** Closes at once. */
  destroy(): void;
}

/**
 * Options of {@linkcode redisBroker}: a `url`, a `client` or a `cluster`, and the cluster's
 * settings.
 */
export interface RedisBrokerOptions {
  /**
   * The Redis server, `redis[s]://[[user][:password]@][host][:port][/db]`. The broker opens
   * two connections (publish and subscribe), reconnects them after failures, and closes them
   * when the hub closes.
   * @default {"redis://127.0.0.1:6379"}
   */
  url?: string;
  /**
   * Your own node-redis client instead of `url`: it publishes and keeps counts, and its
   * `duplicate()` subscribes. It is connected if it is not; closing the hub closes the
   * duplicate, never your client. Its own reconnect strategy and offline queue apply.
   */
  client?: RedisClientLike;
  /**
   * A Redis Cluster (Redis 7 or later) instead of one server: the URLs of some of its nodes
   * (the broker finds the others, and follows failovers), or your own node-redis cluster client
   * (`createCluster()`), which closing the hub leaves open.
   *
   * On a cluster, pub/sub is sharded (SPUBLISH/SSUBSCRIBE) and `routing` defaults to `"rooms"`: a
   * room's channel (`{<prefix>:r:<room>}:ch`), its stream and history, its members and its counts
   * live on the shard of the room's slot, so room traffic spreads over the shards. The hub's
   * channel and stream, session states, hub-wide counts and presence's node deadlines live on the
   * slot of `{<prefix>}`. Across shards, the order of a resumed session's missed messages of
   * different rooms follows the shards' clocks (each room's own order is exact). A failover is
   * followed by itself; a stream written last by another primary continues in a new epoch.
   */
  cluster?: readonly string[] | RedisClusterLike;
  /**
   * Names the pub/sub channels (`<prefix>:broadcast`, and `<prefix>:room:<room>` with `routing:
   * "rooms"`), the count keys (`<prefix>:nodes`,
   * `<prefix>:node:<id>`) and the keys of `broker.streams` (`<prefix>:seq`, `<prefix>:st:…`,
   * `:sm:`, `:ss:`, `:tk:`, `:ns:`), and those of `broker.presence` (`<prefix>:pr:<room>`,
   * `<prefix>:pn:<node>`, `<prefix>:pl`). Hubs with the same prefix on the same Redis are one cluster.
   * On a Redis Cluster, `<prefix>` in these names is `{<prefix>}`, but a room's keys and channel
   * are on its own slot (`{<prefix>:r:<room>}:…`, see `cluster`), and a prefix may not contain `{`
   * or `}`.
   * @default {"chorus"}
   */
  prefix?: string;
  /**
   * Largest channel message in bytes (a broadcast plus its header of about 20 bytes and the
   * room name). A larger broadcast throws `RangeError`; a larger message arriving from the
   * channel is refused with a `BrokerMessageError`.
   * @default {4194304}
   */
  maxMessageSize?: number;
  /**
   * Most bytes of broadcasts handed to Redis and not yet acknowledged. When Redis stalls, they
   * wait in this process (and in its socket buffers); past this bound a broadcast for other
   * nodes is dropped (local delivery goes on) and the outage is reported once. This also caps
   * the backlog Redis must relay once it comes back (see its `client-output-buffer-limit pubsub`).
   * A broadcast larger than this bound still goes when nothing else waits.
   * @default {4194304}
   */
  maxPendingBytes?: number;
  /**
   * How long a command (`count()`, a count write, the cleanup at close) may wait for Redis's
   * answer before it fails, and how long a broadcast may go unacknowledged before the stall is
   * reported. `hub.close()` gives the broker at most this long, then drops the connections.
   * @default {2000}
   */
  commandTimeout?: number;
  /**
   * How often this node refreshes its counts in Redis.
   * @default {5000}
   */
  heartbeatInterval?: number;
  /**
   * How long a node's counts outlive its last heartbeat: a node that dies without closing
   * its hub drops out of `count()` within this time, and its room members (presence) leave
   * within this time plus one `heartbeatInterval`. Must exceed `heartbeatInterval`.
   * @default {15000}
   */
  presenceTtl?: number;
  /**
   * How long a stream (the hub's, a room's, a session's own: see `broker.streams`) outlives its
   * last append, in ms. Streams are trimmed to their length limit on every append; this only
   * removes streams nobody writes to any more. Keep it well above the hubs' resume `window`.
   * @default {86400000}
   */
  streamTtl?: number;
  /**
   * How long a stream's epoch and top offset outlive its last append, in ms: while they live, a
   * stream that expired is known to have lost its messages. Must exceed `streamTtl`.
   * @default {2592000000}
   */
  metaTtl?: number;
  /**
   * How broadcasts travel between nodes. `"single"`: every broadcast goes on one channel that
   * every node receives, so every node handles every room's traffic. `"rooms"`: a room's
   * broadcasts go on the room's own channel (`<prefix>:room:<room>`), which a node subscribes to
   * only while it has members in that room (and leaves when its last member does), so a node
   * receives only its rooms' traffic; hub-wide broadcasts, presence notices and hand-overs stay on
   * the hub's channel. A join never waits for Redis: a node receives the room's broadcasts of other
   * nodes from about one Redis round trip after its first member in that room joined (this node's
   * own broadcasts reach its members at once, whatever the mode). Pick `"rooms"` when nodes hold
   * different rooms; `"single"` when every node has members in nearly every room, or when rooms
   * come and go faster than a subscribe round trip (one SUBSCRIBE and one UNSUBSCRIBE per room a
   * node enters and leaves). All hubs of a cluster must use the same mode.
   * @default {"single", or "rooms" with `cluster`}
   */
  routing?: "single" | "rooms";
}

// Writes this node's counts. KEYS: node hash, node set. ARGV: ttl, node id, "1" to replace
// the hash, then field/value pairs (field "" is the hub total; a room at 0 is removed).
const PRESENCE = new Script(`
if ARGV[3] == '1' then redis.call('DEL', KEYS[1]) end
for i = 4, #ARGV, 2 do
  if ARGV[i + 1] == '0' and ARGV[i] ~= '' then redis.call('HDEL', KEYS[1], ARGV[i])
  else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1`);

// Sums a field over the live nodes but this one, forgetting nodes whose hash expired.
// KEYS: node set. ARGV: node hash prefix, field, this node's id.
const COUNT = new Script(`
local total = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[3] then
    local key = ARGV[1] .. id
    local n = redis.call('HGET', key, ARGV[2])
    if n then total = total + tonumber(n)
    elseif redis.call('EXISTS', key) == 0 then redis.call('SREM', KEYS[1], id) end
  end
end
return total`);

// On a Redis Cluster, a room's counts live on the room's slot: one hash per room, node →
// "<count>:<deadline ms>", the deadline presenceTtl after the write (every heartbeat rewrites).
// Writes one node's count. KEYS: the room's count hash. ARGV: node, count, ttl (ms).
const ROOM_COUNT = new Script(`
if ARGV[2] == '0' then redis.call('HDEL', KEYS[1], ARGV[1]) return 1 end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. string.format('%d', now + tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[3]))
return 1`);

// Sums the room's counts of the nodes but this one whose deadline has not passed, forgetting the
// others. KEYS: the room's count hash. ARGV: this node.
const ROOM_SUM = new Script(`
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local total = 0
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local n, deadline = string.match(flat[i + 1], '^(%d+):(%d+)$')
  if not deadline or tonumber(deadline) <= now then redis.call('HDEL', KEYS[1], flat[i])
  elseif flat[i] ~= ARGV[1] then total = total + tonumber(n) end
end
return total`);

/**
 * Creates a Redis broker for one hub: `new Hub({ broker: redisBroker({ url }) })`.
 *
 * @param options The server (`url` or `client`) and the cluster's settings.
 * @returns The broker.
 * @throws {TypeError} If both `url` and `client` are given, or an option has the wrong type.
 * @throws {RangeError} If a number is out of range.
 */
export function redisBroker(options: RedisBrokerOptions = {}): Broker {
  return new RedisBroker(options);
}

class RedisBroker implements Broker {
  #pub: RedisClientLike;
  #sub: RedisClientLike | undefined;
  #ownsPub: boolean;
  #channel: string;
  #nodesKey: string;
  #nodePrefix: string;
  #max: number;
  #maxPending: number;
  #timeout: number;
  #heartbeatInterval: number;
  #ttl: number;
  #link: BrokerLink | undefined;
  #nodeBytes: Uint8Array | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #flush: ReturnType<typeof setTimeout> | undefined;
  #dirty = new Set<string>();
  #latency: number | undefined;
  #stopped = false;
  #publishFailing = false;
  /** Bytes of broadcasts handed to Redis and not acknowledged yet. */
  #pending = 0;
  /** Broadcasts handed to Redis and acknowledged (or failed), to tell a stall from a slow stream. */
  #published = 0;
  #settled = 0;
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  #presenceFailing = false;
  #sessionsFailing = false;
  #prefix: string;
  #streamTtl: number;
  #metaTtl: number;
  #routing: "single" | "rooms";
  /** On a Redis Cluster: sharded pub/sub, and keys on the slots of their rooms or of `{prefix}`. */
  #sharded: boolean;
  /** The scripts of the streams and presence, sent once per server (see `Scripts`). */
  #scripts: Scripts;
  /** On a Redis Cluster: the rooms whose hash holds a count of this node (removed at stop). */
  #countedRooms = new Set<string>();
  /**
   * Rooms whose channel this node subscribed to (`"rooms"` routing): a pending SUBSCRIBE's
   * promise, or `true` once Redis confirmed it.
   */
  #roomChannels = new Map<string, Promise<void> | true>();
  /** Streams and session states in Redis. */
  readonly streams: BrokerStreams;
  /** Room members in Redis. */
  readonly presence: BrokerPresence;

  constructor(options: RedisBrokerOptions) {
    const given = [options.url, options.client, options.cluster].filter((o) => o !== undefined).length;
    if (given > 1) throw new TypeError("redisBroker takes one of url, client and cluster");
    if (options.url !== undefined && typeof options.url !== "string") throw new TypeError("url must be a string");
    const prefix = options.prefix ?? "chorus";
    if (typeof prefix !== "string" || prefix === "") throw new TypeError("prefix must be a non-empty string");
    const cluster = options.cluster;
    this.#sharded = cluster !== undefined;
    if (cluster !== undefined && /[{}]/.test(prefix)) {
      throw new TypeError("On a Redis Cluster, the prefix may not contain { or }");
    }
    this.#max = positive(options.maxMessageSize, 4 << 20, "maxMessageSize");
    this.#maxPending = positive(options.maxPendingBytes, 4 << 20, "maxPendingBytes");
    this.#timeout = positive(options.commandTimeout, 2000, "commandTimeout");
    this.#heartbeatInterval = positive(options.heartbeatInterval, 5000, "heartbeatInterval");
    this.#ttl = positive(options.presenceTtl, 15_000, "presenceTtl");
    if (this.#ttl <= this.#heartbeatInterval) {
      throw new RangeError(`presenceTtl (${this.#ttl}) must exceed heartbeatInterval (${this.#heartbeatInterval})`);
    }
    this.#streamTtl = positive(options.streamTtl, 24 * 3600_000, "streamTtl");
    this.#metaTtl = positive(options.metaTtl, 30 * 24 * 3600_000, "metaTtl");
    if (this.#metaTtl <= this.#streamTtl) {
      throw new RangeError(`metaTtl (${this.#metaTtl}) must exceed streamTtl (${this.#streamTtl})`);
    }
    if (options.routing !== undefined && options.routing !== "single" && options.routing !== "rooms") {
      throw new TypeError(`routing must be "single" or "rooms", not ${JSON.stringify(options.routing)}`);
    }
    this.#routing = options.routing ?? (cluster ? "rooms" : "single");
    this.#prefix = prefix;
    // on a cluster, everything but the rooms' channels and streams shares the slot of {prefix}
    const home = cluster ? `{${prefix}}` : prefix;
    this.#channel = `${home}:broadcast`;
    this.#nodesKey = `${home}:nodes`;
    this.#nodePrefix = `${home}:node:`;
    if (cluster !== undefined) {
      if (Array.isArray(cluster)) {
        if (cluster.length === 0 || cluster.some((url) => typeof url !== "string")) {
          throw new TypeError("cluster must be a non-empty array of URLs, or a node-redis cluster client");
        }
        this.#pub = new ClusterClient(createCluster({
          rootNodes: cluster.map((url) => ({ url })),
          defaults: {
            disableOfflineQueue: true,
            socket: { connectTimeout: 1000, reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 500) },
          },
          // after a primary died, ask the cluster who serves its slots half a second after the
          // first failed reconnect (node-redis waits 5 s by default): a failover is followed
          // within about a second of the replica taking over
          topologyRefreshOnReconnectionAttemptStrategy: 500,
        }) as unknown as RedisClusterLike);
        this.#ownsPub = true;
      } else {
        const given = cluster as RedisClusterLike;
        if (typeof given.sSubscribe !== "function") {
          throw new TypeError("cluster must be an array of URLs, or a node-redis cluster client");
        }
        this.#pub = new ClusterClient(given);
        this.#ownsPub = false;
      }
    } else if (options.client) {
      if (typeof options.client.duplicate !== "function") throw new TypeError("client must be a node-redis client");
      this.#pub = options.client;
      this.#ownsPub = false;
    } else {
      this.#pub = createClient({
        url: options.url ?? "redis://127.0.0.1:6379",
        // Broadcasts while Redis is away are dropped (and reported), not piled up in memory.
        disableOfflineQueue: true,
        socket: { reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000) },
      });
      this.#ownsPub = true;
    }
    this.#scripts = new Scripts(() => this.#pub, this.#sharded);
    this.streams = new RedisStreams({
      prefix: home,
      scripts: this.#scripts,
      base: (key) => cluster && key.startsWith("r:") ? this.#roomSlot(key.slice(2)) : home,
      channel: this.#channel,
      channelOf: (room) => this.#channelOf(room),
      subscribed: (room) => {
        const pending = this.#roomChannels.get(room);
        return pending === true ? undefined : pending;
      },
      max: this.#max,
      streamTtl: this.#streamTtl,
      metaTtl: this.#metaTtl,
      node: () => {
        if (!this.#link || this.#stopped) throw new Error("The Redis broker is not running");
        return this.#link.node;
      },
      within: (promise, what) => within(promise, this.#timeout, what),
      measured: (ms) => this.#measured(ms),
      reserve: (bytes) => this.#reserve(bytes),
      release: (bytes) => this.#settle(bytes),
    });
    this.presence = new RedisPresence({
      prefix: home,
      // on a cluster, a room's members live on the room's slot
      ...(cluster ? { roomKey: (room: string) => `${this.#roomSlot(room)}:pr` } : {}),
      scripts: this.#scripts,
      channel: this.#channel,
      max: this.#max,
      ttl: this.#ttl,
      link: () => {
        if (!this.#link || this.#stopped) throw new Error("The Redis broker is not running");
        return this.#link;
      },
      client: () => this.#pub,
      within: (promise, what) => within(promise, this.#timeout, what),
    });
  }

  async start(link: BrokerLink): Promise<void> {
    if (this.#link) throw new Error("A broker serves one hub: this one is already started");
    this.#link = link;
    this.#nodeBytes = new TextEncoder().encode(link.node);
    const pub = this.#pub;
    pub.on("error", this.#onPubError);
    pub.on("ready", this.#onPubReady);
    const sub = this.#sub = pub.duplicate();
    sub.on("error", this.#onSubError);
    try {
      if (!pub.isOpen) await pub.connect();
      await sub.connect();
      await sub.subscribe(this.#channel, this.#onMessage, true);
      await Promise.all([...link.rooms()].map((room) => this.#route(room)));
    } catch (err) {
      if (this.#stopped) return; // closed while connecting: not a failure
      throw err;
    }
    if (this.#stopped) return;
    this.#heartbeat = setInterval(() => this.#beat(), this.#heartbeatInterval);
    await Promise.all([this.#writePresence(true), this.#refreshSessions(), this.#beatPresence()]);
  }

  publish(msg: BrokerMessage): void {
    const bytes = encodeMessage(msg, this.#max);
    if (this.#stopped) return;
    const size = bytes.byteLength;
    if (this.#pending > 0 && this.#pending + size > this.#maxPending) {
      this.#publishFailed(
        `Broadcasts to other nodes are dropped: ${this.#pending} bytes already wait for Redis ` +
          `(maxPendingBytes ${this.#maxPending})`,
      );
      return;
    }
    this.#pending += size;
    this.#published++;
    this.#watch();
    const sent = performance.now();
    this.#pub.publish(this.#channelOf(msg.room), Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).then(
      () => {
        this.#measured(performance.now() - sent);
        this.#settle(size);
        // an outage ends once the backlog is mostly gone, so its tail is not a second outage
        if (this.#pending <= this.#maxPending / 2) this.#publishFailing = false;
      },
      (err) => {
        this.#settle(size);
        this.#publishFailed(`Broadcasts to other nodes are dropped: ${errorMessage(err)}`, err);
      },
    );
  }

  /** Counts an append's bytes as pending, or throws past `maxPendingBytes` (the hub delivers locally). */
  #reserve(size: number): void {
    if (this.#pending > 0 && this.#pending + size > this.#maxPending) {
      throw new Error(
        `Not appended: ${this.#pending} bytes already wait for Redis (maxPendingBytes ${this.#maxPending})`,
      );
    }
    this.#pending += size;
    this.#published++;
    this.#watch();
  }

  latency(): number | undefined {
    return this.#latency;
  }

  /** A publish's or an append's round trip: a moving average over the last few dozen. */
  #measured(took: number): void {
    this.#latency = this.#latency === undefined ? took : this.#latency + (took - this.#latency) / 32;
  }

  #settle(size: number): void {
    this.#pending -= size;
    this.#settled++;
  }

  /** Reports a failed or dropped broadcast: once per outage, not once per broadcast. */
  #publishFailed(message: string, cause?: unknown): void {
    if (this.#publishFailing || this.#stopped) return;
    this.#publishFailing = true;
    this.#link?.report(new Error(message, cause === undefined ? undefined : { cause }));
  }

  /**
   * While broadcasts wait for Redis, checks every `commandTimeout` that some were acknowledged;
   * if none were, Redis stalls: report it (broadcasts are held, then dropped past the bound).
   */
  #watch(): void {
    if (this.#watchdog || this.#stopped) return;
    const settled = this.#settled;
    this.#watchdog = setTimeout(() => {
      this.#watchdog = undefined;
      if (this.#stopped || this.#settled === this.#published) return;
      if (this.#settled === settled) {
        this.#publishFailed(
          `Redis has not acknowledged a broadcast for ${this.#timeout} ms: ${this.#pending} bytes wait, ` +
            `and broadcasts to other nodes past maxPendingBytes (${this.#maxPending}) are dropped`,
        );
      }
      this.#watch();
    }, this.#timeout);
  }

  /** The channel a broadcast goes on: its room's (with `"rooms"` routing), or the hub's. */
  #channelOf(room: string | undefined): string {
    if (room === undefined || this.#routing === "single") return this.#channel;
    // on a cluster, on the slot of the room's stream
    return this.#sharded ? `${this.#roomSlot(room)}:ch` : `${this.#prefix}:room:${room}`;
  }

  /**
   * With `"rooms"` routing, subscribes to a room's channel when this node has members in it and
   * is not subscribed, or unsubscribes when it has none. Never blocks a join: the SUBSCRIBE goes
   * out in the background; a failed one is reported and tried again at the next heartbeat (or
   * the next join). Redis's confirmation resolves the returned promise.
   */
  #route(room: string): Promise<void> | undefined {
    const sub = this.#sub;
    const link = this.#link;
    if (this.#routing === "single" || !sub || !link || this.#stopped) return;
    const want = link.localCount(room) > 0;
    const had = this.#roomChannels.get(room);
    if (want === (had !== undefined)) return had === true ? undefined : had;
    const channel = this.#channelOf(room);
    if (!want) {
      this.#roomChannels.delete(room);
      // after a SUBSCRIBE still in flight (node-redis adds the listener when Redis confirms), and
      // only if no member joined again meanwhile
      Promise.resolve(had).then(() => {
        if (this.#roomChannels.has(room) || this.#stopped) return;
        return sub.unsubscribe(channel, this.#onMessage, true);
      }).catch(() => {
        // the connection is gone: node-redis does not resubscribe a channel without listeners
      });
      return;
    }
    const subscribed: Promise<void> = sub.subscribe(channel, this.#onMessage, true).then(
      () => {
        if (this.#roomChannels.get(room) === subscribed) this.#roomChannels.set(room, true);
      },
      (err) => {
        if (this.#roomChannels.get(room) === subscribed) this.#roomChannels.delete(room);
        this.#reportConnection("subscribe", err);
      },
    );
    this.#roomChannels.set(room, subscribed);
    return subscribed;
  }

  changed(room: string | undefined): void {
    if (room !== undefined) this.#route(room);
    if (this.#stopped || !this.#heartbeat) return;
    this.#dirty.add(room ?? "");
    this.#flush ??= setTimeout(() => {
      this.#flush = undefined;
      this.#writePresence(false);
    }, 0);
  }

  async count(room?: string): Promise<number> {
    const link = this.#link;
    if (!link || this.#stopped) throw new Error("The Redis broker is not running");
    const count = room !== undefined && this.#sharded
      ? this.#scripts.run(ROOM_SUM, [this.#roomCounts(room)], [link.node])
      : this.#scripts.run(COUNT, [this.#nodesKey], [this.#nodePrefix, room ?? "", link.node]);
    const others = await within(count, this.#timeout, "the count");
    return link.localCount(room) + Number(others);
  }

  /** Stops; this node's session states stay in Redis (another node may claim them) until they expire. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#flush);
    clearTimeout(this.#watchdog);
    this.#heartbeat = this.#flush = this.#watchdog = undefined;
    const pub = this.#pub;
    const sub = this.#sub;
    const link = this.#link;
    // All of it within one commandTimeout: a stalled Redis never holds up hub.close().
    const end = Date.now() + this.#timeout;
    const left = () => Math.max(0, end - Date.now());
    // Commands on one connection run in order: the DEL comes after any count write in flight,
    // and close() below waits for the broadcasts still queued.
    if (link && pub.isReady) {
      try {
        await within(pub.sendCommand(["DEL", this.#nodePrefix + link.node]), left(), "the DEL at close");
        await within(pub.sendCommand(["SREM", this.#nodesKey, link.node]), left(), "the SREM at close");
        const rooms = [...this.#countedRooms].map((room) =>
          pub.sendCommand(["HDEL", this.#roomCounts(room), link.node])
        );
        await within(Promise.all(rooms), left(), "the HDELs at close");
      } catch {
        // Redis is away or stalled: the counts expire by themselves within presenceTtl.
      }
    }
    if (sub) {
      if (sub.isReady) {
        const channels = [this.#channel, ...[...this.#roomChannels.keys()].map((room) => this.#channelOf(room))];
        this.#roomChannels.clear();
        await within(sub.unsubscribe(channels, this.#onMessage, true), left(), "the UNSUBSCRIBE").catch(() => {});
      }
      await quit(sub, left());
      sub.off("error", this.#onSubError);
    }
    if (this.#ownsPub) await quit(pub, left());
    pub.off("error", this.#onPubError);
    pub.off("ready", this.#onPubReady);
  }

  #onMessage = (message: Buffer): void => {
    const link = this.#link;
    if (!link || this.#stopped) return;
    receive(link, message, { max: this.#max, echo: this.#nodeBytes });
  };

  #onPubError = (err: Error): void => this.#reportConnection("publish", err);
  #onSubError = (err: Error): void => this.#reportConnection("subscribe", err);
  #onPubReady = (): void => {
    this.#publishFailing = false;
    this.#scripts.reset(); // a restarted server, or a promoted replica, has no scripts
    // After a reconnect (Redis may have restarted empty), write the counts again at once.
    if (this.#heartbeat) this.#beat();
  };

  #beat(): void {
    // rooms whose SUBSCRIBE failed (Redis was away) are tried again
    if (this.#routing === "rooms") { for (const room of this.#link!.rooms()) this.#route(room); }
    this.#writePresence(true);
    this.#refreshSessions();
    this.#beatPresence();
  }

  /** This node's presence deadline, and the sweep of dead nodes' members. */
  #beatPresence(): Promise<void> {
    if (!this.#link || this.#stopped) return Promise.resolve();
    return (this.presence as RedisPresence).beat();
  }

  /**
   * Refreshes the TTLs of this node's session states, in one script: a node that dies leaves
   * them to expire `ttl` (as saved) after its last heartbeat.
   */
  #refreshSessions(): Promise<void> {
    const link = this.#link;
    if (!link || this.#stopped) return Promise.resolve();
    return (this.streams as RedisStreams).refresh().then(
      () => {
        this.#sessionsFailing = false;
      },
      (err) => {
        if (this.#sessionsFailing || this.#stopped) return;
        this.#sessionsFailing = true;
        link.report(new Error(`Session states not refreshed in Redis: ${errorMessage(err)}`, { cause: err }));
      },
    );
  }

  #reportConnection(which: string, err: Error): void {
    if (this.#stopped) return;
    this.#link?.report(new Error(`Redis ${which} connection: ${errorMessage(err)}`, { cause: err }));
  }

  /** Writes this node's counts: all of them (`full`) or those that changed since the last write. */
  #writePresence(full: boolean): Promise<void> {
    const link = this.#link;
    if (!link || this.#stopped) return Promise.resolve();
    let fields: Iterable<string>;
    if (full) {
      this.#dirty.clear();
      fields = ["", ...link.rooms()];
    } else {
      fields = this.#dirty;
      this.#dirty = new Set();
    }
    const args = [String(this.#ttl), link.node, full ? "1" : "0"];
    const writes: Promise<unknown>[] = [];
    for (const field of fields) {
      const count = link.localCount(field === "" ? undefined : field);
      if (field === "" || !this.#sharded) args.push(field, String(count));
      else writes.push(this.#writeRoomCount(field, count));
    }
    writes.push(this.#scripts.run(PRESENCE, [this.#nodePrefix + link.node, this.#nodesKey], args));
    // A failure is reported once until a write succeeds again; the next heartbeat (or the
    // reconnect) writes everything again.
    return within(Promise.all(writes), this.#timeout, "a count write").then(
      () => {
        this.#presenceFailing = false;
      },
      (err) => {
        if (this.#presenceFailing || this.#stopped) return;
        this.#presenceFailing = true;
        link.report(new Error(`Session counts not written to Redis: ${errorMessage(err)}`, { cause: err }));
      },
    );
  }

  /** On a Redis Cluster: this node's count of a room, in the room's hash on the room's slot. */
  #writeRoomCount(room: string, count: number): Promise<unknown> {
    if (count > 0) this.#countedRooms.add(room);
    else this.#countedRooms.delete(room);
    return this.#scripts.run(ROOM_COUNT, [this.#roomCounts(room)], [
      this.#link!.node,
      String(count),
      String(this.#ttl),
    ]);
  }

  /** A room's count hash on a Redis Cluster (the room's slot). */
  #roomCounts(room: string): string {
    return `${this.#roomSlot(room)}:cn`;
  }

  /**
   * On a Redis Cluster, the hash-tagged prefix of a room's keys and channel (its stream, members,
   * counts): `{<prefix>:r:<safe room>}`, one slot per room.
   */
  #roomSlot(room: string): string {
    return `{${this.#prefix}:${safeKey("r:" + room)}}`;
  }
}

/** Closes a connection after its pending commands, or drops it if that takes longer than `ms`. */
async function quit(client: RedisClientLike, ms: number): Promise<void> {
  if (!client.isOpen) return;
  if (client.isReady) {
    try {
      await within(client.close(), ms, "the close");
      return;
    } catch {
      // stalled, or failed: drop the connection
    }
  }
  try {
    client.destroy();
  } catch {
    // already closed
  }
}

/**
 * `promise`, or a rejection once `ms` pass without its answer. node-redis's own command timeout
 * covers only commands not yet written to the socket: one written to a stalled Redis waits forever.
 */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer ${what} within ${ms} ms`)), ms);
  });
  promise.catch(() => {}); // a late failure, after the timeout, is not an unhandled rejection
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value)) throw new TypeError(`${name} must be a number`);
  if (!(value > 0) || !Number.isFinite(value)) throw new RangeError(`${name} must be a positive number, not ${value}`);
  return value;
}
