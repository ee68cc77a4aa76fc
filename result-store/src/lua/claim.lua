-- A worker claims a job before running it (invariant I3).
-- KEYS[1] job hash, KEYS[2] lease key
-- ARGV[1] key prefix, ARGV[2] job id, ARGV[3] worker id, ARGV[4] now (ms), ARGV[5] lease (ms)
-- ARGV[6] attempt carried by the message, ARGV[7] pool
-- Returns {outcome, detail}:
--   claimed <previous state> | terminal <state> | held <holder> | stale <state> | missing ''
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', ''} end
if state == 'succeeded' or state == 'failed' or state == 'timed_out' or state == 'cancelled' then
  return {'terminal', state}
end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[6] then return {'stale', state} end
-- A live lease means the job runs somewhere right now, and that includes the caller itself:
-- a duplicate of the message (the scheduler re-published after a crash, a redelivery after a
-- lost channel) reaching the worker that already runs the job must not start a second run.
local holder = redis.call('GET', KEYS[2])
if holder then return {'held', holder} end
-- A job waiting out its backoff is owned by the delay ladder; a copy of the failed attempt
-- showing up here is old news.
if state == 'retrying' then return {'stale', state} end
local previous_worker = redis.call('HGET', KEYS[1], 'worker')
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[5])
redis.call('HSET', KEYS[1], 'state', 'running', 'running_ms', ARGV[4], 'updated_ms', ARGV[4],
  'worker', ARGV[3], 'pool', ARGV[7])
redis.call('HDEL', KEYS[1], 'pending_reason')
redis.call('PERSIST', KEYS[1])
-- Only another worker taking over a dead one's job is a takeover; the same worker picking
-- its own job up again after its lease lapsed is not.
if state == 'running' and previous_worker ~= ARGV[3] then
  redis.call('HINCRBY', KEYS[1], 'takeovers', 1)
end
redis.call('ZREM', ARGV[1] .. 'jobs:state:' .. state, ARGV[2])
redis.call('ZADD', ARGV[1] .. 'jobs:state:running', 0, ARGV[2])
local fields = redis.call('HMGET', KEYS[1], 'attempt', 'tenant')
redis.call('PUBLISH', ARGV[1] .. 'events', cjson.encode({
  id = ARGV[2], state = 'running', from = state, at = tonumber(ARGV[4]),
  pool = ARGV[7], worker = ARGV[3], attempt = tonumber(fields[1] or '0'), tenant = fields[2] or ''
}))
return {'claimed', state}
