-- Indexes one dead letter, replacing an earlier entry with the same id, and forgets entries
-- older than the cutoff (at most 100 per call, so the call stays short).
-- KEYS[1] entries hash (id -> JSON), KEYS[2] index of every entry
-- ARGV[1] id, ARGV[2] entry JSON, ARGV[3] index member "<dead_ms:013>|<id>",
-- ARGV[4] tenant index key ('' for none), ARGV[5] cutoff member, ARGV[6] tenant index prefix
local function forget(raw)
  local e = cjson.decode(raw)
  local member = string.format('%013d|%s', e.dead_ms, e.id)
  redis.call('ZREM', KEYS[2], member)
  if type(e.tenant) == 'string' then redis.call('ZREM', ARGV[6] .. e.tenant, member) end
end
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then forget(old) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[3])
if ARGV[4] ~= '' then redis.call('ZADD', ARGV[4], 0, ARGV[3]) end
local stale = redis.call('ZRANGEBYLEX', KEYS[2], '-', '(' .. ARGV[5], 'LIMIT', 0, 100)
for _, member in ipairs(stale) do
  local id = string.sub(member, 15)
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then forget(raw) end
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], member)
end
return 1
