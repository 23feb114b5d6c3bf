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

// The broker: options, validation and wiring; its parts are one job each in _redis_*.ts (client
// types, connection, key names, scripts and their texts in _lua/, backlog, routing, counts,
// streams, presence, heartbeat) and wire.ts. May import: those, ../broker.ts (types), node:buffer.

import { Buffer } from "node:buffer";
import type { Broker, BrokerLink, BrokerMessage } from "../broker.ts";
import { Backlog } from "./_redis_backlog.ts";
import type { RedisClientLike, RedisClusterLike } from "./_redis_client.ts";
import { connect } from "./_redis_connect.ts";
import { RedisCounts } from "./_redis_counts.ts";
import { Heartbeat } from "./_redis_heartbeat.ts";
import { RedisKeys } from "./_redis_keys.ts";
import { RedisPresence } from "./_redis_presence.ts";
import { Routing } from "./_redis_routing.ts";
import { Scripts } from "./_redis_scripts.ts";
import { RedisStreams } from "./_redis_streams.ts";
import { errorText, positive, quit, within } from "./_redis_util.ts";
import { encodeMessage, receive } from "./wire.ts";

export type { RedisClientLike, RedisClusterLike } from "./_redis_client.ts";

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
  #keys: RedisKeys;
  #max: number;
  #timeout: number;
  #link: BrokerLink | undefined;
  #nodeBytes: Uint8Array | undefined;
  #stopped = false;
  /** The scripts of the counts, streams and presence, sent once per server (see `Scripts`). */
  #scripts: Scripts;
  /** Broadcasts and appends waiting for Redis. */
  #backlog: Backlog;
  /** The channels broadcasts go on, and the subscriptions to rooms' channels. */
  #routing: Routing;
  /** This node's session counts. */
  #counts: RedisCounts;
  /** The periodic work. */
  #heartbeat: Heartbeat;
  /** Streams and session states in Redis. */
  readonly streams: RedisStreams;
  /** Room members in Redis. */
  readonly presence: RedisPresence;

  constructor(options: RedisBrokerOptions) {
    const given = [options.url, options.client, options.cluster].filter((o) => o !== undefined).length;
    if (given > 1) throw new TypeError("redisBroker takes one of url, client and cluster");
    if (options.url !== undefined && typeof options.url !== "string") throw new TypeError("url must be a string");
    const prefix = options.prefix ?? "chorus";
    if (typeof prefix !== "string" || prefix === "") throw new TypeError("prefix must be a non-empty string");
    const cluster = options.cluster;
    const sharded = cluster !== undefined;
    if (cluster !== undefined && /[{}]/.test(prefix)) {
      throw new TypeError("On a Redis Cluster, the prefix may not contain { or }");
    }
    const max = this.#max = positive(options.maxMessageSize, 4 << 20, "maxMessageSize");
    const maxPending = positive(options.maxPendingBytes, 4 << 20, "maxPendingBytes");
    const timeout = this.#timeout = positive(options.commandTimeout, 2000, "commandTimeout");
    const interval = positive(options.heartbeatInterval, 5000, "heartbeatInterval");
    const ttl = positive(options.presenceTtl, 15_000, "presenceTtl");
    if (ttl <= interval) throw new RangeError(`presenceTtl (${ttl}) must exceed heartbeatInterval (${interval})`);
    const streamTtl = positive(options.streamTtl, 24 * 3600_000, "streamTtl");
    const metaTtl = positive(options.metaTtl, 30 * 24 * 3600_000, "metaTtl");
    if (metaTtl <= streamTtl) {
      throw new RangeError(`metaTtl (${metaTtl}) must exceed streamTtl (${streamTtl})`);
    }
    if (options.routing !== undefined && options.routing !== "single" && options.routing !== "rooms") {
      throw new TypeError(`routing must be "single" or "rooms", not ${JSON.stringify(options.routing)}`);
    }
    // on a cluster, everything but the rooms' channels and keys shares the slot of {prefix}
    const keys = this.#keys = new RedisKeys(prefix, sharded);
    const connection = connect(options);
    this.#pub = connection.client;
    this.#ownsPub = connection.owned;
    const scripts = this.#scripts = new Scripts(() => this.#pub, sharded);
    /** The hub's link while the broker runs. */
    const running = () => this.#stopped ? undefined : this.#link;
    const notRunning = () => new Error("The Redis broker is not running");
    const backlog = this.#backlog = new Backlog({
      maxPending,
      timeout,
      stopped: () => this.#stopped,
      report: (err) => this.#link?.report(err),
    });
    const routing = this.#routing = new Routing({
      mode: options.routing ?? (cluster ? "rooms" : "single"),
      keys,
      sub: () => this.#sub,
      link: running,
      listener: this.#onMessage,
      failed: (err) => this.#reportConnection("subscribe", err),
    });
    const counts = this.#counts = new RedisCounts({
      keys,
      scripts,
      ttl,
      timeout,
      client: () => this.#pub,
      link: running,
      running: () => !this.#stopped && this.#heartbeat.running,
    });
    const streams = this.streams = new RedisStreams({
      keys,
      scripts,
      channelOf: (room) => routing.channelOf(room),
      subscribed: (room) => routing.subscribed(room),
      reconnected: () => this.#reconnected(timeout),
      client: () => this.#pub,
      max,
      streamTtl,
      metaTtl,
      node: () => {
        const link = running();
        if (!link) throw notRunning();
        return link.node;
      },
      within: (promise, what) => within(promise, timeout, what),
      measured: (ms) => backlog.measured(ms),
      reserve: (bytes) => backlog.reserve(bytes),
      release: (bytes) => backlog.settle(bytes),
    });
    const presence = this.presence = new RedisPresence({
      keys,
      scripts,
      max,
      ttl,
      link: () => {
        const link = running();
        if (!link) throw notRunning();
        return link;
      },
      client: () => this.#pub,
      within: (promise, what) => within(promise, timeout, what),
    });
    this.#heartbeat = new Heartbeat({
      interval,
      link: running,
      routing,
      counts,
      streams,
      presence,
      within: (promise, what) => within(promise, timeout, what),
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
      await sub.subscribe(this.#keys.channel, this.#onMessage, true);
      await Promise.all([...link.rooms()].map((room) => this.#routing.route(room)));
    } catch (err) {
      if (this.#stopped) return; // closed while connecting: not a failure
      throw err;
    }
    if (this.#stopped) return;
    await this.#heartbeat.start();
  }

  publish(msg: BrokerMessage): void {
    const bytes = encodeMessage(msg, this.#max);
    if (this.#stopped) return;
    const size = bytes.byteLength;
    const backlog = this.#backlog;
    if (!backlog.admit(size)) return;
    const sent = performance.now();
    const channel = this.#routing.channelOf(msg.room);
    this.#pub.publish(channel, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).then(
      () => {
        backlog.measured(performance.now() - sent);
        backlog.settle(size);
        backlog.acknowledged();
      },
      (err) => {
        backlog.settle(size);
        backlog.failed(`Broadcasts to other nodes are dropped: ${errorText(err)}`, err);
      },
    );
  }

  latency(): number | undefined {
    return this.#backlog.latency();
  }

  changed(room: string | undefined): void {
    if (room !== undefined) this.#routing.route(room);
    this.#counts.changed(room);
  }

  count(room?: string): Promise<number> {
    return this.#counts.count(room);
  }

  /** Stops; this node's session states stay in Redis (another node may claim them) until they expire. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#heartbeat.stop();
    this.#counts.stop();
    this.#backlog.stop();
    const pub = this.#pub;
    const sub = this.#sub;
    const link = this.#link;
    // All of it within one commandTimeout: a stalled Redis never holds up hub.close().
    const end = Date.now() + this.#timeout;
    const left = () => Math.max(0, end - Date.now());
    // Commands on one connection run in order: the DEL comes after any count write in flight,
    // and close() below waits for the broadcasts still queued.
    if (link && pub.isReady) await this.#counts.remove(link.node, left);
    if (sub) {
      if (sub.isReady) {
        const channels = this.#routing.takeChannels();
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

  /** While the connection for commands reconnects: when it is ready again (see `StreamsHost.reconnected`). */
  #reconnecting: Promise<void> | undefined;
  #ready: (() => void) | undefined;

  #reconnected(timeout: number): Promise<void> | undefined {
    if (this.#pub.isReady || this.#stopped) return undefined;
    if (!this.#reconnecting) {
      const wait = new Promise<void>((resolve) => this.#ready = resolve);
      this.#reconnecting = within(wait, timeout, "Redis to reconnect").finally(() => {
        this.#reconnecting = undefined;
        this.#ready = undefined;
      });
      this.#reconnecting.catch(() => {});
    }
    return this.#reconnecting;
  }

  #onPubError = (err: Error): void => this.#reportConnection("publish", err);
  #onSubError = (err: Error): void => this.#reportConnection("subscribe", err);
  #onPubReady = (): void => {
    this.#ready?.();
    this.#backlog.ready();
    this.#scripts.reset(); // a restarted server, or a promoted replica, has no scripts
    // After a reconnect (Redis may have restarted empty), write the counts again at once, and
    // this node's room members.
    if (this.#heartbeat.running) this.#heartbeat.beat();
    if (this.#link && !this.#stopped) this.presence.rewrite();
  };

  #reportConnection(which: string, err: Error): void {
    if (this.#stopped) return;
    this.#link?.report(new Error(`Redis ${which} connection: ${errorText(err)}`, { cause: err }));
  }
}
