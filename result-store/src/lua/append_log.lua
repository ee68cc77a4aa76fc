-- Appends lines to a job's log (a capped stream) and makes sure the log of a finished or
-- vanished job expires: the terminal move sets the log's TTL, but a log whose first line
-- arrives after that move (a worker's last note) would otherwise be kept forever.
-- KEYS[1] log stream, KEYS[2] job hash
-- ARGV[1] most lines kept, ARGV[2] result TTL (s), ARGV[3] stream kind, ARGV[4..] lines
for i = 4, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 's', ARGV[3], 'l', ARGV[i])
end
if redis.call('PTTL', KEYS[1]) ~= -1 then return 0 end
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
return 1
