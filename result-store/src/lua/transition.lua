-- Moves one job from a legal source state to a new state, atomically.
-- KEYS[1] job hash, KEYS[2] lease key, KEYS[3] log stream
-- ARGV[1] key prefix ("{ns}:"), ARGV[2] job id, ARGV[3] target state, ARGV[4] now (ms)
-- ARGV[5] legal sources as ",a,b," (from warren-protocol's JobState::legal_sources)
-- ARGV[6] required worker ("" = any), ARGV[7] required attempt ("" = any)
-- ARGV[8] "1" if the target is terminal, ARGV[9] result TTL (s), ARGV[10] "1" to release the lease
-- ARGV[11..] field/value pairs to set
-- Returns {outcome, previous state}: outcome is ok | missing | illegal | not_owner | stale.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', ''} end
if not string.find(ARGV[5], ',' .. state .. ',', 1, true) then return {'illegal', state} end
if ARGV[6] ~= '' and redis.call('HGET', KEYS[1], 'worker') ~= ARGV[6] then
  return {'not_owner', state}
end
if ARGV[7] ~= '' and redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[7] then
  return {'stale', state}
end
local to = ARGV[3]
redis.call('HSET', KEYS[1], 'state', to, to .. '_ms', ARGV[4], 'updated_ms', ARGV[4])
for i = 11, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if to ~= 'queued' then redis.call('HDEL', KEYS[1], 'pending_reason') end
redis.call('ZREM', ARGV[1] .. 'jobs:state:' .. state, ARGV[2])
redis.call('ZADD', ARGV[1] .. 'jobs:state:' .. to, 0, ARGV[2])
if ARGV[8] == '1' then
  redis.call('EXPIRE', KEYS[1], ARGV[9])
  redis.call('EXPIRE', KEYS[3], ARGV[9])
  redis.call('DEL', KEYS[2])
  redis.call('INCR', ARGV[1] .. 'stats:' .. to)
  -- The record expires by itself but its index entries do not: remember when, and which
  -- indexes hold it, so that prune.lua can drop them once it has gone.
  local where = redis.call('HMGET', KEYS[1], 'tenant', 'queue', 'indexes')
  local member = {ARGV[2], where[1] or '', where[2] or ''}
  if where[3] then member[4] = cjson.decode(where[3]) end
  redis.call('ZADD', ARGV[1] .. 'jobs:expiring', tonumber(ARGV[4]) + tonumber(ARGV[9]) * 1000,
    cjson.encode(member))
else
  -- A job the scheduler or a worker has touched is real: drop the provisional TTL that
  -- guards against records whose publish never happened.
  redis.call('PERSIST', KEYS[1])
  if ARGV[10] == '1' then redis.call('DEL', KEYS[2]) end
end
local fields = redis.call('HMGET', KEYS[1], 'pool', 'worker', 'attempt', 'tenant')
redis.call('PUBLISH', ARGV[1] .. 'events', cjson.encode({
  id = ARGV[2], state = to, from = state, at = tonumber(ARGV[4]),
  pool = fields[1] or '', worker = fields[2] or '', attempt = tonumber(fields[3] or '0'),
  tenant = fields[4] or ''
}))
return {'ok', state}
