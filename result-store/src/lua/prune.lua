-- Drops the index entries of finished jobs whose record has expired, so that the indexes and
-- the counts taken from them do not grow forever.
-- ARGV[1] key prefix, ARGV[2] now (ms), ARGV[3] most entries to look at
-- ARGV[4..] every state name (the state indexes to clean)
-- Returns how many jobs were pruned.
local expiring = ARGV[1] .. 'jobs:expiring'
local due = redis.call('ZRANGEBYSCORE', expiring, '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
local pruned = 0
for _, member in ipairs(due) do
  local entry = cjson.decode(member)
  local id, tenant, queue = entry[1], entry[2], entry[3]
  local ttl = redis.call('PTTL', ARGV[1] .. 'job:' .. id)
  if ttl == -2 then
    redis.call('ZREM', ARGV[1] .. 'jobs:all', id)
    for i = 4, #ARGV do redis.call('ZREM', ARGV[1] .. 'jobs:state:' .. ARGV[i], id) end
    if tenant ~= '' then redis.call('ZREM', ARGV[1] .. 'jobs:tenant:' .. tenant, id) end
    if queue ~= '' then redis.call('ZREM', ARGV[1] .. 'jobs:queue:' .. queue, id) end
    -- The task, tag and label indexes, for jobs that have them.
    if type(entry[4]) == 'table' then
      for _, suffix in ipairs(entry[4]) do redis.call('ZREM', ARGV[1] .. suffix, id) end
    end
    redis.call('ZREM', expiring, member)
    pruned = pruned + 1
  elseif ttl == -1 then
    -- No longer expiring: nothing to prune.
    redis.call('ZREM', expiring, member)
  else
    -- Still there (clocks differ): look again when Redis says it expires, so that entries
    -- that are not due yet never block the ones behind them.
    redis.call('ZADD', expiring, tonumber(ARGV[2]) + ttl, member)
  end
end
return pruned
