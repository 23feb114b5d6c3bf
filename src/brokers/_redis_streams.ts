/**
 * The Redis broker's streams and session states ({@linkcode BrokerStreams}): Lua scripts that
 * each do one step atomically, and the code that calls them. Internal to `chorus-ws/redis`.
 *
 * Keys, under the broker's prefix (`<key>` is a stream key or session id made safe by
 * {@linkcode safeKey}):
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
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import type { BrokerMessage, BrokerStreams, SessionState, StreamEntry, StreamPosition } from "../broker.ts";
import type { RedisClientLike } from "./redis.ts";
import { ClusterClient } from "./_redis_cluster.ts";
import { encodeHead, encodeReleasedHead } from "./wire.ts";

// An unsigned LEB128 varint, as the wire format writes it (numbers below 2^53).
const VARINT = `
local function varint(n)
  local out = {}
  while n >= 128 do
    out[#out + 1] = string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  out[#out + 1] = string.char(n)
  return table.concat(out)
end
`;

// Appends a message to a stream, and publishes it with its position unless ARGV[10] is "".
// KEYS: meta, stream, seq. ARGV: 1 epoch for a new stream, 2 limit, 3 stream ttl (ms),
// 4 meta ttl (ms), 5 kind, 6 except, 7 "1" if except is set, 8 "1" if binary, 9 payload,
// 10 channel, 11 the wire header up to the epoch (see encodeHead).
// Returns {epoch, offset, seq, time}.
const APPEND = VARINT + `
local offset = redis.call('HINCRBY', KEYS[1], 's', 1)
local epoch = redis.call('HGET', KEYS[1], 'e')
if offset == 1 or not epoch then
  -- a new stream (or one whose meta was lost): a new epoch, and no entries of the old one
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', epoch)
  redis.call('DEL', KEYS[2])
end
-- (a cluster's writer check)
local now = redis.call('TIME')
local seq = redis.call('INCR', KEYS[3])
local time = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local fields = {'k', ARGV[5], 'q', string.format('%d', seq), 't', string.format('%d', time), 'd', ARGV[9]}
if ARGV[7] == '1' then fields[#fields + 1] = 'x'; fields[#fields + 1] = ARGV[6] end
if ARGV[8] == '1' then fields[#fields + 1] = 'b'; fields[#fields + 1] = '1' end
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], string.format('%d-0', offset), unpack(fields))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if ARGV[10] ~= '' then
  redis.call('PUBLISH', ARGV[10],
    ARGV[11] .. string.char(#epoch) .. epoch .. varint(offset) .. varint(seq) .. varint(time) .. ARGV[9])
end
return {epoch, offset, seq, time}`;

// Reads a stream. KEYS: meta, stream. ARGV: 1 first id, 2 count.
// Returns {epoch, top, entries} ({'', 0, {}} without meta).
const READ = `
local meta = redis.call('HMGET', KEYS[1], 'e', 's')
if not meta[1] then return {'', 0, {}} end
local entries = {}
if tonumber(ARGV[2]) > 0 then entries = redis.call('XRANGE', KEYS[2], ARGV[1], '+', 'COUNT', ARGV[2]) end
return {meta[1], tonumber(meta[2]), entries}`;

// Saves a session's state, unless another node has it now (it was claimed). KEYS: state,
// token index, node set. ARGV: 1 ttl (ms), 2 safe id (the member of node sets, the value of
// token indexes), 3 node, 4 id, 5 keys, 6 from, 7 rooms, 8 received, 9 token, 10 own stream key.
// Returns 1, or 0 when another node has the session.
const SAVE = `
local old = redis.call('HMGET', KEYS[1], 'tk', 'node')
if old[2] and old[2] ~= ARGV[3] then return 0 end
if old[1] and old[1] ~= KEYS[2] and redis.call('GET', old[1]) == ARGV[2] then redis.call('DEL', old[1]) end
redis.call('HSET', KEYS[1], 'id', ARGV[4], 'node', ARGV[3], 'ns', KEYS[3], 'keys', ARGV[5], 'from', ARGV[6],
  'rooms', ARGV[7], 'received', ARGV[8], 'token', ARGV[9], 'tk', KEYS[2], 'ttl', ARGV[1], 'st', ARGV[10])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[3], ARGV[1]) end
return 1`;

// Claims the session a credential names for this node, once. KEYS: token index, this node's
// set. ARGV: 1 state key prefix, 2 this node, 3 channel, 4 the released notice's header.
// Returns {id, keys, from, rooms, received, token}, or nil.
const CLAIM = VARINT + `
local sid = redis.call('GET', KEYS[1])
if not sid then return false end
redis.call('DEL', KEYS[1])
local key = ARGV[1] .. sid
local flat = redis.call('HGETALL', key)
local s = {}
for i = 1, #flat, 2 do s[flat[i]] = flat[i + 1] end
if not s.node or s.tk ~= KEYS[1] then return false end
local ttl = tonumber(s.ttl)
redis.call('SREM', s.ns, sid)
redis.call('SADD', KEYS[2], sid)
redis.call('HSET', key, 'node', ARGV[2], 'ns', KEYS[2])
redis.call('PEXPIRE', key, ttl)
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
if s.node ~= ARGV[2] then
  redis.call('PUBLISH', ARGV[3], ARGV[4] .. varint(#s.node) .. s.node .. s.id)
end
return {s.id, s.keys, s.from, s.rooms, s.received, s.token}`;

// Forgets a session of this node (a session another node has now is left alone). KEYS: state,
// own stream, own stream's meta, this node's set. ARGV: 1 this node, 2 safe id.
const DROP = `
redis.call('SREM', KEYS[4], ARGV[2])
local s = redis.call('HMGET', KEYS[1], 'node', 'tk')
if s[1] and s[1] ~= ARGV[1] then return 0 end
if s[2] and redis.call('GET', s[2]) == ARGV[2] then redis.call('DEL', s[2]) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1`;

// Refreshes the TTLs of a node's sessions (state, credential, own stream), forgetting those
// that expired. KEYS: node set. ARGV: 1 state key prefix, 2 stream ttl (ms).
// Returns how many sessions the node has.
const REFRESH = `
local most, n = 0, 0
local streamTtl = tonumber(ARGV[2])
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. sid
  local s = redis.call('HMGET', key, 'ttl', 'tk', 'st')
  if not s[1] then
    redis.call('SREM', KEYS[1], sid)
  else
    local ttl = tonumber(s[1])
    n = n + 1
    redis.call('PEXPIRE', key, ttl)
    if s[2] then redis.call('PEXPIRE', s[2], ttl) end
    if s[3] then
      local left = redis.call('PTTL', s[3])
      if left >= 0 and left < streamTtl then redis.call('PEXPIRE', s[3], streamTtl) end
    end
    if ttl > most then most = ttl end
  end
end
if most > 0 then redis.call('PEXPIRE', KEYS[1], most) end
return n`;

/** Replies with bulk strings as bytes (for binary payloads). */
const AS_BYTES = { typeMapping: { 36: Buffer } };

// On a Redis Cluster, a stream's seq counts on its own shard, so it cannot be one INCR shared by
// every stream: it is the shard's clock in µs, or one more than the stream shard's last seq if
// that is higher. Seqs of one shard still increase; across shards they follow the clocks.
const INCR_SEQ = "local seq = redis.call('INCR', KEYS[3])";
// On a Redis Cluster, a stream last written by another primary (its shard failed over: Redis
// replicates asynchronously, so what the old primary took last may be missing here, and its
// offsets would be given again to other messages) continues in a new epoch, its entries kept:
// a client that had the lost messages never takes new ones for copies, and one that resumes from
// the old epoch is told it cannot (resumed: false), never given a gap.
const NO_WRITER_CHECK = "-- (a cluster's writer check)";
const WRITER_CHECK = `local me = redis.call('CLUSTER', 'MYID')
if redis.call('HGET', KEYS[1], 'w') ~= me then
  if offset > 1 and epoch ~= ARGV[1] then
    epoch = ARGV[1]
    redis.call('HSET', KEYS[1], 'e', epoch)
  end
  redis.call('HSET', KEYS[1], 'w', me)
end`;
const CLOCKED_SEQ = `local seq = math.max(tonumber(redis.call('GET', KEYS[3]) or '0') + 1,
  tonumber(now[1]) * 1000000 + tonumber(now[2]))
redis.call('SET', KEYS[3], string.format('%d', seq))`;

/**
 * A Lua script and its SHA-1 (the broker's streams and presence), with its variant for a Redis
 * Cluster ({@linkcode Script.sharded}). {@linkcode Scripts} runs them.
 */
export class Script {
  readonly src: string;
  readonly sha: string;
  #sharded: Script | undefined;
  /** @param src The script. */
  constructor(src: string) {
    this.src = src;
    this.sha = createHash("sha1").update(src).digest("hex");
  }

  /**
   * The script for a Redis Cluster: it publishes on shard channels (SPUBLISH, on the slot of
   * its keys), a stream's seq follows its shard's clock, and a stream another primary wrote last
   * continues in a new epoch.
   */
  get sharded(): Script {
    return this.#sharded ??= new Script(
      this.src.replaceAll("redis.call('PUBLISH'", "redis.call('SPUBLISH'").replace(INCR_SEQ, CLOCKED_SEQ)
        .replace(NO_WRITER_CHECK, WRITER_CHECK),
    );
  }
}

/**
 * Runs the broker's scripts on its connection: by EVAL the first time on each server, and by
 * EVALSHA after it. Redis runs a connection's commands in order, so the EVALSHAs sent behind the
 * EVAL find the script loaded. Falling back to EVAL on NOSCRIPT instead would reorder a burst
 * (the calls sent before the reload fail and are sent again after later ones), and a stream's
 * offsets would no longer follow the order of its broadcasts. A reconnect or a failover may bring
 * a server without the script: `reset()` makes the next call on each server an EVAL again.
 */
export class Scripts {
  #client: () => RedisClientLike;
  #sharded: boolean;
  /** `<sha>@<server>` for each script sent (by EVAL) on the connection to that server. */
  #sent = new Set<string>();

  /**
   * @param client The connection.
   * @param sharded On a Redis Cluster: the sharded variants, each server apart.
   */
  constructor(client: () => RedisClientLike, sharded: boolean) {
    this.#client = client;
    this.#sharded = sharded;
  }

  /** The servers may have lost their scripts (a reconnect, a failover). */
  reset(): void {
    this.#sent.clear();
  }

  /**
   * Runs a script.
   * @param script The script.
   * @param keys Its KEYS.
   * @param args Its ARGV.
   * @param bytes Bulk strings in the reply as bytes.
   * @returns The script's reply.
   */
  async run(script: Script, keys: string[], args: (string | Buffer)[], bytes = false): Promise<unknown> {
    const client = this.#client();
    const s = this.#sharded ? script.sharded : script;
    const server = client instanceof ClusterClient ? client.serverOf(keys[0]) : "";
    const id = `${s.sha}@${server}`;
    const rest = [String(keys.length), ...keys, ...args];
    const options = bytes ? AS_BYTES : undefined;
    if (!this.#sent.has(id)) {
      this.#sent.add(id);
      try {
        return await client.sendCommand(["EVAL", s.src, ...rest], options);
      } catch (err) {
        this.#sent.delete(id);
        throw err;
      }
    }
    try {
      return await client.sendCommand(["EVALSHA", s.sha, ...rest], options);
    } catch (err) {
      // the server lost its scripts without a reconnect (SCRIPT FLUSH): this call is not
      // reordered behind later ones only if none was in flight
      if (!(err instanceof Error) || !err.message.includes("NOSCRIPT")) throw err;
      this.#sent.delete(id);
      return await this.run(script, keys, args, bytes);
    }
  }
}

const SCRIPTS = {
  append: new Script(APPEND),
  read: new Script(READ),
  save: new Script(SAVE),
  claim: new Script(CLAIM),
  drop: new Script(DROP),
  refresh: new Script(REFRESH),
};

/** What the Redis broker gives its streams. */
export interface StreamsHost {
  /** The prefix of the keys that are not a room's: `<prefix>`, or `{<prefix>}` on a Redis Cluster. */
  readonly prefix: string;
  /**
   * The prefix of a stream's keys (`:st:`, `:sm:`) and of its seq (`:seq`): `prefix`, but on a
   * Redis Cluster a room's stream has its room's slot.
   * @param key The stream's key.
   */
  base(key: string): string;
  /** The hub's channel (hand-over notices). */
  readonly channel: string;
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

/**
 * A stream key or session id as a Redis key part: the same text, but for the characters that
 * glob patterns, hash tags or tools treat specially (`*?[]\{}%`, spaces, control characters)
 * and lone surrogates (which UTF-8 cannot hold), written `%XX` or `%uXXXX`. Different names
 * give different keys.
 *
 * @param name The name.
 * @returns The key part.
 */
export function safeKey(name: string): string {
  let out = "";
  let from = 0;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    let escape: string | undefined;
    if (c <= 0x20 || c === 0x7f || c === 0x25 || c === 0x2a || c === 0x3f || c === 0x5b || c === 0x5c || c === 0x5d) {
      escape = "%" + c.toString(16).padStart(2, "0");
    } else if (c === 0x7b || c === 0x7d) {
      escape = "%" + c.toString(16);
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const next = name.charCodeAt(i + 1);
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        i++; // a valid pair
        continue;
      }
      escape = "%u" + c.toString(16).padStart(4, "0");
    }
    if (escape === undefined) continue;
    out += name.slice(from, i) + escape;
    from = i + 1;
  }
  return from === 0 ? name : out + name.slice(from);
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** 12 random letters and digits (71 bits), for a new stream's epoch. */
function newEpoch(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  let out = "";
  for (const b of bytes) out += ALPHABET[b % ALPHABET.length];
  return out;
}

/** Streams and session states on Redis. */
export class RedisStreams implements BrokerStreams {
  #host: StreamsHost;

  /** @param host The broker's side. */
  constructor(host: StreamsHost) {
    this.#host = host;
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
    const epoch = newEpoch();
    const name = safeKey(key);
    const base = host.base(key);
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
    const waiting = publish && msg!.room !== undefined ? host.subscribed(msg!.room) : undefined;
    const run = waiting ? waiting.then(script) : script();
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
    const base = host.base(key);
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

  /**
   * Saves a session's state (ignored when another node claimed it meanwhile).
   * @param state The state.
   * @param ttl How long it outlives this node's last heartbeat.
   */
  async saveSession(state: SessionState, ttl: number): Promise<void> {
    const host = this.#host;
    if (!(ttl > 0) || !Number.isFinite(ttl)) {
      throw new RangeError(`A session ttl must be a positive number, not ${ttl}`);
    }
    const node = host.node();
    const p = host.prefix;
    const sid = safeKey(state.id);
    const keys = [`${p}:ss:${sid}`, `${p}:tk:${safeKey(state.token)}`, `${p}:ns:${safeKey(node)}`];
    const args = [
      String(Math.ceil(ttl)),
      sid,
      node,
      state.id,
      state.keys,
      JSON.stringify(state.from),
      JSON.stringify(state.rooms),
      String(state.received),
      state.token,
      `${p}:st:${safeKey("s:" + state.id)}`,
    ];
    await host.within(this.#run(SCRIPTS.save, keys, args), "a session save");
  }

  /**
   * Moves the session a credential names to this node.
   * @param token The credential.
   * @returns The state, or `undefined`.
   */
  async claimSession(token: string): Promise<SessionState | undefined> {
    const host = this.#host;
    const node = host.node();
    const p = host.prefix;
    const head = encodeReleasedHead(node);
    const run = this.#run(SCRIPTS.claim, [`${p}:tk:${safeKey(token)}`, `${p}:ns:${safeKey(node)}`], [
      `${p}:ss:`,
      node,
      host.channel,
      Buffer.from(head.buffer, head.byteOffset, head.byteLength),
    ]);
    const reply = await host.within(run, "a session claim") as string[] | null;
    if (!reply) return undefined;
    const [id, keys, from, rooms, received, saved] = reply.map(String);
    return { id, keys, from: JSON.parse(from), rooms: JSON.parse(rooms), received: Number(received), token: saved };
  }

  /**
   * Forgets a session of this node, with its credential and its own stream.
   * @param id The session's id.
   */
  async dropSession(id: string): Promise<void> {
    const host = this.#host;
    const node = host.node();
    const p = host.prefix;
    const own = safeKey("s:" + id);
    const keys = [`${p}:ss:${safeKey(id)}`, `${p}:st:${own}`, `${p}:sm:${own}`, `${p}:ns:${safeKey(node)}`];
    await host.within(this.#run(SCRIPTS.drop, keys, [node, safeKey(id)]), "a session drop");
  }

  /**
   * Refreshes the TTLs of this node's sessions (the heartbeat).
   * @returns How many sessions this node has in Redis.
   */
  async refresh(): Promise<number> {
    const host = this.#host;
    const p = host.prefix;
    const run = this.#run(SCRIPTS.refresh, [`${p}:ns:${safeKey(host.node())}`], [
      `${p}:ss:`,
      String(Math.ceil(host.streamTtl)),
    ]);
    return Number(await host.within(run, "a session refresh"));
  }

  #run(script: Script, keys: string[], args: (string | Buffer)[], bytes = false): Promise<unknown> {
    return this.#host.scripts.run(script, keys, args, bytes);
  }
}
