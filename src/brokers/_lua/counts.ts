/**
 * The Lua scripts of the Redis broker's session counts, each written out in full (the texts
 * Redis runs). Only text. May import: nothing. `_redis_scripts.ts` says where each runs.
 *
 * On one server, each node's counts are one hash, `<prefix>:node:<id>` (field `""` the hub's
 * total, a field per room), listed in the set `<prefix>:nodes`. On a Redis Cluster, the hub's
 * total stays there (on the slot of `{<prefix>}`) and a room's counts live on the room's slot:
 * one hash per room, node → `"<count>:<deadline ms>"`.
 *
 * @module
 */

/**
 * Writes this node's counts (one server, and the hub's total on a Redis Cluster).
 * KEYS: node hash, node set. ARGV: 1 ttl (ms), 2 node id, 3 "1" to replace the hash, then
 * field/value pairs (field "" is the hub's total; a room at 0 is removed). Returns 1.
 */
export const WRITE_COUNTS: string = `
if ARGV[3] == '1' then redis.call('DEL', KEYS[1]) end
for i = 4, #ARGV, 2 do
  if ARGV[i + 1] == '0' and ARGV[i] ~= '' then redis.call('HDEL', KEYS[1], ARGV[i])
  else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1`;

/**
 * Sums a field over the live nodes but this one, forgetting nodes whose hash expired.
 * KEYS: node set. ARGV: 1 node hash prefix, 2 field ("" for the hub's total), 3 this node's id.
 * Returns the sum.
 */
export const SUM_COUNTS: string = `
local total = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[3] then
    local key = ARGV[1] .. id
    local n = redis.call('HGET', key, ARGV[2])
    if n then total = total + tonumber(n)
    elseif redis.call('EXISTS', key) == 0 then redis.call('SREM', KEYS[1], id) end
  end
end
return total`;

/**
 * On a Redis Cluster: writes one node's count of a room, in the room's hash on the room's slot,
 * with a deadline presenceTtl after the write (every heartbeat writes again).
 * KEYS: the room's count hash. ARGV: 1 node, 2 count, 3 ttl (ms). Returns 1.
 */
export const WRITE_ROOM_COUNT: string = `
if ARGV[2] == '0' then redis.call('HDEL', KEYS[1], ARGV[1]) return 1 end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. string.format('%d', now + tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[3]))
return 1`;

/**
 * On a Redis Cluster: sums a room's counts of the nodes but this one whose deadline has not
 * passed, forgetting the others. KEYS: the room's count hash. ARGV: 1 this node. Returns the sum.
 */
export const SUM_ROOM_COUNTS: string = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local total = 0
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local n, deadline = string.match(flat[i + 1], '^(%d+):(%d+)$')
  if not deadline or tonumber(deadline) <= now then redis.call('HDEL', KEYS[1], flat[i])
  elseif flat[i] ~= ARGV[1] then total = total + tonumber(n) end
end
return total`;
