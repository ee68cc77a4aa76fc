-- Extends a lease, but only for its holder. KEYS[1] lease; ARGV[1] worker, ARGV[2] lease (ms)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
