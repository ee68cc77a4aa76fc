-- Appends one entry to a job's action history (field `actions`, a JSON array kept in the job
-- hash, so it expires with the record), keeping the newest ARGV[2] entries.
-- KEYS[1] job hash; ARGV[1] the entry (JSON object), ARGV[2] most entries kept
-- Returns 1, or 0 when the job does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local raw = redis.call('HGET', KEYS[1], 'actions')
local list = {}
if raw then list = cjson.decode(raw) end
table.insert(list, cjson.decode(ARGV[1]))
local keep = tonumber(ARGV[2])
while #list > keep do table.remove(list, 1) end
redis.call('HSET', KEYS[1], 'actions', cjson.encode(list))
return 1
