/**
 * The Redis broker's streams and session states ({@linkcode BrokerStreams}): the calls of the
 * scripts that each do one step atomically (their texts are in `_lua/streams.ts`). Internal to
 * `chorus-ws/redis`.
 *
 * Keys, under the broker's prefix (`<key>` is a stream key or session id made safe by `safeKey`):
 *
 * ```
 * <prefix>:seq             integer: the sequence shared by every stream (INCR)
 * <prefix>:st:<key>        stream: entry id `<offset>-0`, fields k (kind), q (seq), t (time, ms),
 *                          x (except, when set), b ("1" for a binary payload), d (payload bytes);
 *                          expires streamTtl after its last append
 * <prefix>:sm:<key>        hash: e (epoch), s (top offset), w (on a cluster: the primary that
 *                          wrote last); expires metaTtl after the last append
 * <prefix>:ss:<id>         hash: id, node, ns (its node's set), keys, from (JSON), rooms (JSON),
 *                          received, token, tk (its credential's index), ttl, st (its own stream);
 *                          expires ttl after its node's last heartbeat
 * <prefix>:tk:<token>      string: the (safe) session id a resume credential names; single use
 * <prefix>:ns:<node>       set: the (safe) ids of a node's sessions
 * ```
 *
 * On a Redis Cluster, `<prefix>` is `{<prefix>}`, but a room's stream (`r:<room>`) and its seq
 * are on the room's slot (see `RedisKeys.streamBase`).
 *
 * Session states are `_redis_sessions.ts`'s. May import: `_redis_sessions.ts`, `_redis_scripts.ts`,
 * `_redis_keys.ts`, `_redis_client.ts` (types), `wire.ts`, `../broker.ts` (types), `../core/_util.ts` (ids), `node:*`.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { BrokerMessage, BrokerStreams, SessionState, StreamEntry, StreamPosition } from "../broker.ts";
import type { RedisClientLike } from "./_redis_client.ts";
import { type RedisKeys, safeKey } from "./_redis_keys.ts";
import { RedisSessions } from "./_redis_sessions.ts";
import { type Script, SCRIPTS, type Scripts } from "./_redis_scripts.ts";
import { encodeHead } from "./wire.ts";
import { randomString } from "../core/_util.ts";

/** What the Redis broker gives its streams. */
export interface StreamsHost {
  /** The broker's key and channel names (the hub's channel carries hand-over notices). */
  readonly keys: RedisKeys;
  /**
   * The channel a broadcast goes on.
   * @param room Its room, or `undefined` for a hub-wide one.
   */
  channelOf(room: string | undefined): string;
  /**
   * While this node's SUBSCRIBE to a room's channel is in flight, the promise of its
   * confirmation: an append to that room waits for it, so that its echo reaches this node, and a
   * read of its stream, so that what is appended after the read arrives live.
   * @param room The room.
   */
  subscribed(room: string): Promise<void> | undefined;
  /**
   * `undefined` while the connection for commands is ready; while it reconnects, a promise that
   * resolves once it is ready again, or rejects after `commandTimeout` (appends wait for it, in
   * order, rather than fail: a blip of the connection delays them, it does not lose them).
   */
  reconnected(): Promise<void> | undefined;
  /** The connection for commands. */
  client(): RedisClientLike;
  /** Largest channel message in bytes. */
  readonly max: number;
  /** How long streams outlive their last append, in ms. */
  readonly streamTtl: number;
  /** How long a stream's epoch and top offset outlive its last append, in ms. */
  readonly metaTtl: number;
  /** This node's id; throws when the broker is not running. */
  node(): string;
  /** The broker's scripts, on its connection. */
  readonly scripts: Scripts;
  /**
   * Runs a command within the command timeout.
   * @param promise The command.
   * @param what What it is, for the error.
   */
  within<T>(promise: Promise<T>, what: string): Promise<T>;
  /**
   * An append's round trip, for the broker's latency gauge.
   * @param ms How long it took.
   */
  measured(ms: number): void;
  /**
   * Counts bytes about to be handed to Redis toward `maxPendingBytes`; throws when past it.
   * @param bytes How many.
   */
  reserve(bytes: number): void;
  /**
   * Bytes handed to Redis were acknowledged (or failed).
   * @param bytes How many.
   */
  release(bytes: number): void;
}

/** Streams and session states on Redis. */
export class RedisStreams implements BrokerStreams {
  /** Settles when the last append settled. */
  #tail: Promise<void> = Promise.resolve();
  /** The reconnect the held appends wait for, and what they wait on until they went (see `#afterReconnect`). */
  #heldFor: Promise<void> | undefined;
  #held: Promise<unknown> | undefined;
  #host: StreamsHost;
  /** The session states. */
  #sessions: RedisSessions;

  /**
   * The streams of one broker.
   * @param host The broker's side.
   */
  constructor(host: StreamsHost) {
    this.#host = host;
    this.#sessions = new RedisSessions(host);
  }

  /**
   * Appends a broadcast to its stream and publishes it with its position.
   * @param msg The broadcast.
   * @param limit How many messages the stream keeps.
   */
  append(msg: BrokerMessage, limit: number): Promise<void> {
    const key = msg.kind === "room" || msg.kind === "room-others" ? "r:" + msg.room : "h";
    return this.#append(key, msg, limit, true).then(() => {});
  }

  /**
   * Appends a message to a session's own stream.
   * @param session The session's id.
   * @param payload The message.
   * @param limit How many messages the stream keeps.
   * @returns Its position.
   */
  appendOwn(session: string, payload: string | Uint8Array, limit: number): Promise<StreamPosition> {
    return this.#append("s:" + session, undefined, limit, false, payload);
  }

  /** Not async: a bad limit or an oversized broadcast throws here, before anything is sent. */
  #append(
    key: string,
    msg: BrokerMessage | undefined,
    limit: number,
    publish: boolean,
    own?: string | Uint8Array,
  ): Promise<StreamPosition> {
    const host = this.#host;
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new RangeError(`A stream limit must be a positive integer, not ${limit}`);
    }
    let node: string;
    try {
      node = host.node();
    } catch (err) {
      return Promise.reject(err); // not running: rejected, as any failure to send is
    }
    const payload = msg ? msg.payload : own!;
    const binary = typeof payload !== "string";
    const head = publish ? encodeHead({ ...msg!, node }, key) : undefined;
    const payloadBytes = binary ? Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength) : payload;
    const payloadSize = binary ? payload.byteLength : Buffer.byteLength(payload);
    // the header, the payload and the position (an epoch of 12 bytes and three varints)
    const size = (head?.length ?? 0) + payloadSize + 40;
    if (publish && size > host.max) {
      throw new RangeError(`A broadcast of about ${size} bytes exceeds the broker's limit of ${host.max} bytes`);
    }
    const epoch = randomString(12, true);
    const name = safeKey(key);
    const base = host.keys.streamBase(key);
    const args = [
      String(limit),
      String(Math.ceil(host.streamTtl)),
      String(Math.ceil(host.metaTtl)),
      msg ? msg.kind : "own",
      msg?.except ?? "",
      msg?.except === undefined ? "0" : "1",
      binary ? "1" : "0",
      payloadBytes,
      publish ? host.channelOf(msg!.room) : "",
      head ? Buffer.from(head.buffer, head.byteOffset, head.byteLength) : "",
    ];
    try {
      host.reserve(size);
    } catch (err) {
      return Promise.reject(err); // past maxPendingBytes: dropped, as a publish would be
    }
    const sent = performance.now();
    const script = () =>
      this.#run(SCRIPTS.append, [
        `${base}:sm:${name}`,
        `${base}:st:${name}`,
        `${base}:seq`,
      ], [
        epoch,
        ...args,
      ]);
    // A room's first member on this node: its channel's SUBSCRIBE goes first (appends to the
    // room chain on it in order), or this node's resumable members would miss the echo.
    const subscribing = publish && msg!.room !== undefined ? host.subscribed(msg!.room) : undefined;
    const reconnected = this.#afterReconnect();
    const waiting = reconnected && subscribing ? Promise.all([reconnected, subscribing]) : reconnected ?? subscribing;
    const run = waiting ? waiting.then(script) : script();
    this.#tail = run.then(() => {}, () => {});
    run.then(() => host.release(size), () => host.release(size));
    // No timeout here: an append that is only slow (a busy node, a backlog) may still be taken,
    // and then published; failing it early would make the hub deliver it a second time, in an
    // epoch of its own. A stalled Redis is bounded by maxPendingBytes instead: past it, appends
    // fail at once and the hub delivers locally.
    return run.then((answer) => {
      host.measured(performance.now() - sent);
      const reply = answer as [string, number, number, number];
      return { key, epoch: String(reply[0]), offset: Number(reply[1]), seq: Number(reply[2]), time: Number(reply[3]) };
    });
  }

  /**
   * While the connection reconnects: when appends may go again — once it is ready and the appends
   * sent before it went down have settled (taken or failed), so the ones held go after them, in order.
   */
  #afterReconnect(): Promise<unknown> | undefined {
    const reconnected = this.#host.reconnected();
    if (reconnected && this.#heldFor !== reconnected) {
      this.#heldFor = reconnected;
      const held = this.#held = Promise.all([reconnected, this.#tail]);
      // Until the held appends go (their callbacks run right after this one), later ones wait
      // too, even once the connection is ready: none overtakes them.
      const done = () => {
        if (this.#held === held) this.#held = undefined;
      };
      held.then(done, done);
    }
    return this.#held;
  }

  /**
   * Reads a stream's messages after an offset, oldest first.
   * @param key The stream's key.
   * @param after The offset after which to read.
   * @param limit The most messages to return.
   * @returns The epoch, the top offset and the messages.
   */
  async read(
    key: string,
    after: number,
    limit: number,
  ): Promise<{ epoch: string; top: number; entries: StreamEntry[] }> {
    const host = this.#host;
    if (!Number.isSafeInteger(after) || after < 0) {
      throw new RangeError(`An offset must be an integer ≥ 0, not ${after}`);
    }
    if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError(`A limit must be an integer ≥ 0, not ${limit}`);
    host.node();
    // A room this node just entered (a recovered session's): read once its channel's SUBSCRIBE
    // is confirmed, so what is appended after the read arrives live (each once, by offset).
    const waiting = key.startsWith("r:") ? host.subscribed(key.slice(2)) : undefined;
    if (waiting) await waiting;
    const name = safeKey(key);
    const base = host.keys.streamBase(key);
    const run = this.#run(
      SCRIPTS.read,
      [`${base}:sm:${name}`, `${base}:st:${name}`],
      [`${after + 1}-0`, String(limit)],
      true,
    );
    const [epoch, top, raw] = await host.within(run, "a read") as [Buffer, number, [Buffer, Buffer[]][]];
    const entries: StreamEntry[] = [];
    for (const [id, flat] of raw) {
      const fields = new Map<string, Buffer>();
      for (let i = 0; i + 1 < flat.length; i += 2) fields.set(flat[i].toString(), flat[i + 1]);
      const data = fields.get("d") ?? Buffer.alloc(0);
      const except = fields.get("x");
      const entry: { -readonly [K in keyof StreamEntry]: StreamEntry[K] } = {
        key,
        epoch: epoch.toString(),
        offset: Number(id.toString().split("-")[0]),
        seq: Number(fields.get("q")?.toString()),
        time: Number(fields.get("t")?.toString()),
        kind: String(fields.get("k")) as StreamEntry["kind"],
        payload: fields.has("b") ? new Uint8Array(data) : data.toString(),
      };
      if (except !== undefined) entry.except = except.toString();
      entries.push(entry);
    }
    return { epoch: epoch.toString(), top: Number(top), entries };
  }

  saveSession(state: SessionState, ttl: number): Promise<boolean> {
    return this.#sessions.saveSession(state, ttl);
  }

  claimSession(token: string): Promise<SessionState | undefined> {
    return this.#sessions.claimSession(token);
  }

  hasSession(id: string): Promise<boolean> {
    return this.#sessions.hasSession(id);
  }

  dropSession(id: string): Promise<void> {
    return this.#sessions.dropSession(id);
  }

  /**
   * Refreshes the TTLs of this node's sessions (see `RedisSessions.refresh`).
   * @returns How many sessions this node has in Redis.
   */
  refresh(): Promise<number> {
    return this.#sessions.refresh();
  }

  #run(script: Script, keys: string[], args: (string | Buffer)[], bytes = false): Promise<unknown> {
    return this.#host.scripts.run(script, keys, args, bytes);
  }
}
