/**
 * The Lua scripts of the Redis broker's presence (room members), each written out in full (the
 * texts Redis runs). On one server a change or a heartbeat is one script; on a Redis Cluster a
 * room's members live on the room's slot and the rest on the slot of `{<prefix>}`, so a change
 * is two scripts (the room's members, then this node's deadline and index of rooms) and a sweep
 * three steps (claim a dead node, clear its members room by room, forget it). Only text. May
 * import: nothing. `_redis_scripts.ts` says where each runs.
 *
 * Keys (see `_redis_presence.ts`): `<prefix>:pr:<room>` (a room's members), `:pn:<node>` (what
 * a node recorded), `:pl` (nodes' deadlines), `:ps` (sweeps under way, on a cluster).
 *
 * @module
 */

/**
 * One server: one room's changes on this node, and its notice. KEYS: room hash, this node's
 * set, deadlines. ARGV: 1 node, 2 ttl (ms), 3 channel, 4 notice ('' for none), 5 "<safe room>\n<room>",
 * 6 number of leaves, 7 number of joins (negative: written again, only where the room has no entry
 * or this node's), then the leaves' ids, the joins' id/value pairs, the moves' id/value pairs.
 * Returns the ids of moves the room no longer had (they are joins).
 */
export const UPDATE: string = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local node = ARGV[1]
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), node)
if redis.call('PTTL', KEYS[3]) < 2 * tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[3], 4 * tonumber(ARGV[2])) end
local mine = '{"node":"' .. node .. '"'
local tail = '\\n' .. ARGV[5]
local leaves, joins = tonumber(ARGV[6]), tonumber(ARGV[7])
-- joins written again (a negative count): only where the room has none, or this node's
local again = joins < 0
if again then joins = -joins end
local i = 8
for _ = 1, leaves do
  local id = ARGV[i]
  local v = redis.call('HGET', KEYS[1], id)
  if v and string.sub(v, 1, #mine) == mine then redis.call('HDEL', KEYS[1], id) end
  redis.call('SREM', KEYS[2], id .. tail)
  i = i + 1
end
for _ = 1, joins do
  local v = again and redis.call('HGET', KEYS[1], ARGV[i])
  if not v or string.sub(v, 1, #mine) == mine then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    redis.call('SADD', KEYS[2], ARGV[i] .. tail)
  end
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

/**
 * One server: a heartbeat, this node's deadline (ARGV[5] "1": it has recorded members), then the
 * sweep of up to 8 dead nodes. KEYS: deadlines. ARGV: 1 node, 2 ttl (ms), 3 room hash prefix,
 * 4 node set prefix, 5 active. Returns {dead node, room, id, value, …} of the members removed.
 */
export const BEAT: string = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

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

/** One server: a room's members on live nodes. KEYS: room hash, deadlines. Returns {id, value, …}. */
export const LIST: string = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

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

/**
 * Redis Cluster: one room's changes on this node, on the room's slot. KEYS: room hash. ARGV:
 * 1 node, 2 number of leaves, 3 number of joins (negative: written again, as in UPDATE), then the leaves' ids, the joins' id/value
 * pairs, the moves' id/value pairs. Returns the ids of moves the room no longer had (they are joins).
 */
export const ROOM_UPDATE: string = `
local mine = '{"node":"' .. ARGV[1] .. '"'
local leaves, joins = tonumber(ARGV[2]), tonumber(ARGV[3])
-- joins written again (a negative count): only where the room has none, or this node's
local again = joins < 0
if again then joins = -joins end
local i = 4
for _ = 1, leaves do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v and string.sub(v, 1, #mine) == mine then redis.call('HDEL', KEYS[1], ARGV[i]) end
  i = i + 1
end
for _ = 1, joins do
  local v = again and redis.call('HGET', KEYS[1], ARGV[i])
  if not v or string.sub(v, 1, #mine) == mine then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  i = i + 2
end
local rejoined = {}
while i < #ARGV do
  if redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then rejoined[#rejoined + 1] = ARGV[i] end
  i = i + 2
end
return rejoined`;

/**
 * Redis Cluster: this node's deadline, and its index of rooms with members (what to sweep when
 * it dies), on the slot of {prefix}. KEYS: deadlines, this node's index. ARGV: 1 node, 2 ttl
 * (ms), 3 "+" (it has members in the room), "-" (none any more) or "", 4 "<safe room>\n<room>".
 */
export const NODE_UPDATE: string = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if redis.call('PTTL', KEYS[1]) < 2 * tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], 4 * tonumber(ARGV[2])) end
if ARGV[3] == '+' then redis.call('SADD', KEYS[2], ARGV[4])
elseif ARGV[3] == '-' then redis.call('SREM', KEYS[2], ARGV[4]) end
return 1`;

/**
 * Redis Cluster: a heartbeat (ARGV[4] "1": this node's deadline), then claims up to 8 dead
 * nodes for a sweep that nobody else claimed within a ttl. KEYS: deadlines, claims. ARGV:
 * 1 node, 2 ttl (ms), 3 index prefix, 4 active. Returns {dead node, "<safe room>\n<room>", …}
 * of the claimed nodes.
 */
export const CLAIM_DEAD: string = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

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

/**
 * Redis Cluster: removes a dead node's members of one room, on the room's slot. KEYS: room
 * hash. ARGV: 1 the dead node. Returns {id, value, …} of the members removed.
 */
export const SWEEP_ROOM: string = `
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

/**
 * Redis Cluster: forgets a swept node, unless it came back meanwhile. KEYS: deadlines, claims,
 * its index. ARGV: 1 the node.
 */
export const FORGET_DEAD: string = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local until_ = redis.call('ZSCORE', KEYS[1], ARGV[1])
if until_ and tonumber(until_) > now then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
return 1`;

/** Redis Cluster: the nodes alive now, on the slot of {prefix}. KEYS: deadlines. Returns their ids. */
export const LIVE: string = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')`;
