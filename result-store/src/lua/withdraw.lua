-- Withdraws jobs whose submission did not end in a 202: the submitter died between writing
-- the records and the broker's confirm (the reaper finds them by their age), or it refused
-- the submission after some of its messages were confirmed (it names them). Nobody got a 202
-- for them, so they must neither run nor linger as `queued`. The scheduler holds a job back
-- while it is marked, so a withdrawn job was never sent to a worker; one that was (its mark
-- went, then the submission failed after all) is only dropped from the marker set.
-- KEYS[1] the submitting set (job id scored by write time, ms)
-- ARGV[1] key prefix, ARGV[2] result TTL (ms), ARGV[3] cutoff (ms): only jobs still marked
-- and written before it; '' withdraws the named jobs whether marked or not.
-- ARGV[4..] the job ids.
-- Returns the ids removed.
local cutoff = tonumber(ARGV[3])
local removed = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local mark = redis.call('ZSCORE', KEYS[1], id)
  if cutoff and (not mark or tonumber(mark) > cutoff) then
    -- Confirmed (or re-marked) since the reaper looked: not ours to touch.
  else
    local key = ARGV[1] .. 'job:' .. id
    local f = redis.call('HMGET', key, 'state', 'tenant', 'queue', 'idem_key', 'idem_batch_key',
      'scheduled_ms', 'running_ms', 'attempt')
    -- Never sent to a worker: at most admitted into the pending index (its message may have
    -- reached intake), where it is dropped too.
    if f[1] == 'queued' and not f[6] and not f[7] and f[8] == '1' then
      redis.call('DEL', key, key .. ':log')
      local where = redis.call('HGET', ARGV[1] .. 'pending:where', id)
      if where then
        local tab = string.find(where, '\t', 1, true)
        if tab then
          redis.call('ZREM', ARGV[1] .. 'pending:' .. string.sub(where, 1, tab - 1),
            string.sub(where, tab + 1))
        end
        redis.call('HDEL', ARGV[1] .. 'pending:where', id)
        redis.call('ZREM', ARGV[1] .. 'pending:deadlines', id)
      end
      redis.call('ZREM', ARGV[1] .. 'jobs:all', id)
      redis.call('ZREM', ARGV[1] .. 'jobs:state:queued', id)
      if f[2] then redis.call('ZREM', ARGV[1] .. 'jobs:tenant:' .. f[2], id) end
      if f[3] then redis.call('ZREM', ARGV[1] .. 'jobs:queue:' .. f[3], id) end
      -- Free the client's idempotency key, so that its retry makes a fresh job rather than
      -- finding one that will never exist.
      if f[4] and redis.call('GET', ARGV[1] .. 'idem:' .. f[4]) == id then
        redis.call('DEL', ARGV[1] .. 'idem:' .. f[4])
      end
      if f[5] then
        local held = redis.call('GET', ARGV[1] .. 'idem-batch:' .. f[5])
        if held and string.find(held, id, 1, true) then
          redis.call('DEL', ARGV[1] .. 'idem-batch:' .. f[5])
        end
      end
      table.insert(removed, id)
    elseif f[1] then
      -- It got out and runs although no 202 was sent, like a job whose answer was lost:
      -- keep its idempotency key as long as an accepted job's, so the client's retry finds
      -- this job instead of making a second one.
      if f[4] and redis.call('GET', ARGV[1] .. 'idem:' .. f[4]) == id then
        redis.call('PEXPIRE', ARGV[1] .. 'idem:' .. f[4], ARGV[2])
      end
      if f[5] then
        local held = redis.call('GET', ARGV[1] .. 'idem-batch:' .. f[5])
        if held and string.find(held, id, 1, true) then
          redis.call('PEXPIRE', ARGV[1] .. 'idem-batch:' .. f[5], ARGV[2])
        end
      end
    end
    redis.call('ZREM', KEYS[1], id)
  end
end
return removed
