-- Extends the leases of this replica's requests still in flight.
--
-- KEYS: lease sets. ARGV: lease ms, then the ticket for each key.

local lease = tonumber(ARGV[1])
local now = server_ms()
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', now + lease, ARGV[i + 1])
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl >= 0 and ttl < 2 * lease then
    redis.call('PEXPIRE', KEYS[i], 2 * lease)
  end
end
return #KEYS
