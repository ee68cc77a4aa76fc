-- Appends lines to a job's log (a stream capped in lines and in bytes) and makes sure the log
-- of a finished or vanished job expires: the terminal move sets the log's TTL, but a log whose
-- first line arrives after that move (a worker's last note) would otherwise be kept forever.
-- The byte cap keeps the head of the log: once a line would pass it, that line and every later
-- one are dropped, one note says so, and the job hash records `log_truncated` (the tail of a
-- command's output is in its result anyway). Bytes are counted in the job hash (`log_bytes`),
-- so the cap holds across calls and attempts; a log without a job hash is capped per call.
-- KEYS[1] log stream, KEYS[2] job hash
-- ARGV[1] most lines kept, ARGV[2] result TTL (s), ARGV[3] stream kind, ARGV[4] most bytes,
-- ARGV[5..] lines
-- Returns 1 when lines were dropped (now or before), else 0.
local cap = tonumber(ARGV[4])
local has_job = redis.call('EXISTS', KEYS[2]) == 1
local used = 0
local truncated = false
if has_job then
  used = tonumber(redis.call('HGET', KEYS[2], 'log_bytes') or '0')
  truncated = redis.call('HGET', KEYS[2], 'log_truncated') == '1'
end
local was_truncated = truncated
if not truncated then
  for i = 5, #ARGV do
    -- Each line counts its newline, so empty lines are not free.
    local size = string.len(ARGV[i]) + 1
    if used + size > cap then
      truncated = true
      break
    end
    used = used + size
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 's', ARGV[3], 'l', ARGV[i])
  end
end
if truncated and not was_truncated then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 's', 'worker', 'l',
    'log truncated: it reached its cap of ' .. ARGV[4] .. ' bytes; later output was dropped')
end
if has_job then
  redis.call('HSET', KEYS[2], 'log_bytes', used, 'log_cap_bytes', ARGV[4])
  if truncated then redis.call('HSET', KEYS[2], 'log_truncated', '1') end
end
local result = 0
if truncated then result = 1 end
if redis.call('PTTL', KEYS[1]) ~= -1 then return result end
local state = redis.call('HGET', KEYS[2], 'state')
if not state then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
elseif state == 'succeeded' or state == 'failed' or state == 'timed_out' or state == 'cancelled' then
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[1], ttl)
  else
    redis.call('EXPIRE', KEYS[1], ARGV[2])
  end
end
return result
