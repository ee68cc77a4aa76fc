-- Extends a lease, but only for its holder.
-- KEYS[1] lease, KEYS[2] job hash; ARGV[1] worker, ARGV[2] lease (ms), ARGV[3] attempt
-- Returns 1 renewed, 2 re-taken (the key had lapsed), 0 lost (another holder, or the job moved).
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
-- No lease at all: it lapsed while the worker could not reach Redis (an outage longer than
-- the lease). That is not a takeover: a claim by another worker would have set the key and
-- moved the record to it. If the record still says this worker runs this attempt, nobody
-- has taken the job, so the worker takes its lease again.
local fields = redis.call('HMGET', KEYS[2], 'state', 'worker', 'attempt')
if fields[1] == 'running' and fields[2] == ARGV[1] and fields[3] == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
