-- Removes one dead letter from the index (it was requeued).
-- KEYS[1] entries hash, KEYS[2] index of every entry; ARGV[1] id, ARGV[2] tenant index prefix
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local e = cjson.decode(raw)
local member = string.format('%013d|%s', e.dead_ms, e.id)
redis.call('ZREM', KEYS[2], member)
if type(e.tenant) == 'string' then redis.call('ZREM', ARGV[2] .. e.tenant, member) end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
