-- Sets fields on a job only while it is in one of the given states (the pending reason of a
-- queued job must not land on a job that has started meanwhile).
-- KEYS[1] job hash; ARGV[1] states as ",a,b,", ARGV[2..] field/value pairs
local state = redis.call('HGET', KEYS[1], 'state')
if not state or not string.find(ARGV[1], ',' .. state .. ',', 1, true) then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PERSIST', KEYS[1])
return 1
