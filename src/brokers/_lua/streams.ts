/**
 * The Lua scripts of the Redis broker's streams and session states, each written out in full
 * (the texts Redis runs); where a script differs on a Redis Cluster, its cluster text is written
 * out beside it as `<NAME>_CLUSTER`. Only text. May import: nothing. `_redis_scripts.ts`
 * says where each runs; `tests/redis_scripts.test.ts` checks that the two texts of a script
 * differ exactly where they should.
 *
 * Keys (see `_redis_streams.ts`): `<prefix>:seq`, `:st:<key>` (a stream), `:sm:<key>` (its
 * epoch and top offset), `:ss:<id>` (a session's state), `:tk:<token>` (a credential's
 * session), `:ns:<node>` (a node's sessions).
 *
 * @module
 */

/**
 * Appends a message to a stream, and publishes it with its position unless ARGV[10] is "".
 * KEYS: meta, stream, seq. ARGV: 1 epoch for a new stream, 2 limit, 3 stream ttl (ms),
 * 4 meta ttl (ms), 5 kind, 6 except, 7 "1" if except is set, 8 "1" if binary, 9 payload,
 * 10 channel, 11 the wire header up to the epoch (see `encodeHead`).
 * Returns {epoch, offset, seq, time}.
 *
 * The varint function writes an unsigned LEB128 varint, as the wire format does (numbers
 * below 2^53).
 */
export const APPEND: string = `
local function varint(n)
  local out = {}
  while n >= 128 do
    out[#out + 1] = string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  out[#out + 1] = string.char(n)
  return table.concat(out)
end

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

/**
 * {@linkcode APPEND} on a Redis Cluster, where it differs in three places:
 *
 * - the writer check: a stream last written by another primary (its shard failed over: Redis
 *   replicates asynchronously, so what the old primary took last may be missing here, and its
 *   offsets would be given again to other messages) continues in a new epoch, its entries
 *   kept: a client that had the lost messages never takes new ones for copies, and one that
 *   resumes from the old epoch is told it cannot (resumed: false), never given a gap;
 * - the seq: it counts on the stream's own shard, so it cannot be one INCR shared by every
 *   stream: it is the shard's clock in µs, or one more than the shard's last seq if that is
 *   higher (seqs of one shard still increase; across shards they follow the clocks);
 * - it publishes on the room's shard channel (SPUBLISH).
 */
export const APPEND_CLUSTER: string = `
local function varint(n)
  local out = {}
  while n >= 128 do
    out[#out + 1] = string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  out[#out + 1] = string.char(n)
  return table.concat(out)
end

local offset = redis.call('HINCRBY', KEYS[1], 's', 1)
local epoch = redis.call('HGET', KEYS[1], 'e')
if offset == 1 or not epoch then
  -- a new stream (or one whose meta was lost): a new epoch, and no entries of the old one
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', epoch)
  redis.call('DEL', KEYS[2])
end
local me = redis.call('CLUSTER', 'MYID')
if redis.call('HGET', KEYS[1], 'w') ~= me then
  if offset > 1 and epoch ~= ARGV[1] then
    epoch = ARGV[1]
    redis.call('HSET', KEYS[1], 'e', epoch)
  end
  redis.call('HSET', KEYS[1], 'w', me)
end
local now = redis.call('TIME')
local seq = math.max(tonumber(redis.call('GET', KEYS[3]) or '0') + 1,
  tonumber(now[1]) * 1000000 + tonumber(now[2]))
redis.call('SET', KEYS[3], string.format('%d', seq))
local time = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local fields = {'k', ARGV[5], 'q', string.format('%d', seq), 't', string.format('%d', time), 'd', ARGV[9]}
if ARGV[7] == '1' then fields[#fields + 1] = 'x'; fields[#fields + 1] = ARGV[6] end
if ARGV[8] == '1' then fields[#fields + 1] = 'b'; fields[#fields + 1] = '1' end
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], string.format('%d-0', offset), unpack(fields))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if ARGV[10] ~= '' then
  redis.call('SPUBLISH', ARGV[10],
    ARGV[11] .. string.char(#epoch) .. epoch .. varint(offset) .. varint(seq) .. varint(time) .. ARGV[9])
end
return {epoch, offset, seq, time}`;

/**
 * Reads a stream. KEYS: meta, stream. ARGV: 1 first id, 2 count.
 * Returns {epoch, top, entries} ({'', 0, {}} without meta).
 */
export const READ: string = `
local meta = redis.call('HMGET', KEYS[1], 'e', 's')
if not meta[1] then return {'', 0, {}} end
local entries = {}
if tonumber(ARGV[2]) > 0 then entries = redis.call('XRANGE', KEYS[2], ARGV[1], '+', 'COUNT', ARGV[2]) end
return {meta[1], tonumber(meta[2]), entries}`;

/**
 * Saves a session's state, unless another node has it now (it was claimed). KEYS: state,
 * token index, node set. ARGV: 1 ttl (ms), 2 safe id (the member of node sets, the value of
 * token indexes), 3 node, 4 id, 5 keys, 6 from, 7 rooms, 8 received, 9 token, 10 own stream key.
 * Returns 1, or 0 when another node has the session.
 */
export const SAVE: string = `
local old = redis.call('HMGET', KEYS[1], 'tk', 'node')
if old[2] and old[2] ~= ARGV[3] then return 0 end
if old[1] and old[1] ~= KEYS[2] and redis.call('GET', old[1]) == ARGV[2] then redis.call('DEL', old[1]) end
redis.call('HSET', KEYS[1], 'id', ARGV[4], 'node', ARGV[3], 'ns', KEYS[3], 'keys', ARGV[5], 'from', ARGV[6],
  'rooms', ARGV[7], 'received', ARGV[8], 'token', ARGV[9], 'tk', KEYS[2], 'ttl', ARGV[1], 'st', ARGV[10])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if ARGV[9] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[1]) end
redis.call('SADD', KEYS[3], ARGV[2])
if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[3], ARGV[1]) end
return 1`;

/**
 * Claims the session a credential names for this node, once, and tells its old node (the
 * released notice on the hub's channel). KEYS: token index, this node's set. ARGV: 1 state key
 * prefix, 2 this node, 3 channel, 4 the released notice's header (see `encodeReleasedHead`).
 * Returns {id, keys, from, rooms, received, token, ttl}, or nil.
 */
export const CLAIM: string = `
local function varint(n)
  local out = {}
  while n >= 128 do
    out[#out + 1] = string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  out[#out + 1] = string.char(n)
  return table.concat(out)
end

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
return {s.id, s.keys, s.from, s.rooms, s.received, s.token, s.ttl}`;

/**
 * {@linkcode CLAIM} on a Redis Cluster: the notice goes on the hub's shard channel (SPUBLISH).
 */
export const CLAIM_CLUSTER: string = `
local function varint(n)
  local out = {}
  while n >= 128 do
    out[#out + 1] = string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  out[#out + 1] = string.char(n)
  return table.concat(out)
end

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
  redis.call('SPUBLISH', ARGV[3], ARGV[4] .. varint(#s.node) .. s.node .. s.id)
end
return {s.id, s.keys, s.from, s.rooms, s.received, s.token, s.ttl}`;

/**
 * Forgets a session of this node (a session another node has now is left alone). KEYS: state,
 * own stream, own stream's meta, this node's set. ARGV: 1 this node, 2 safe id. Returns 1, or 0.
 */
export const DROP: string = `
redis.call('SREM', KEYS[4], ARGV[2])
local s = redis.call('HMGET', KEYS[1], 'node', 'tk')
if s[1] and s[1] ~= ARGV[1] then return 0 end
if s[2] and redis.call('GET', s[2]) == ARGV[2] then redis.call('DEL', s[2]) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1`;

/**
 * Refreshes the TTLs of a node's sessions (state, credential, own stream), forgetting those
 * that expired. KEYS: node set. ARGV: 1 state key prefix, 2 stream ttl (ms).
 * Returns how many sessions the node has.
 */
export const REFRESH: string = `
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
