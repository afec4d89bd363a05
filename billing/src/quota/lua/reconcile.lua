-- Adds spend counted while Redis could not be reached. A budget whose
-- counters are gone is seeded again from the ledger, which has the spend.
--
-- KEYS: budget counters, then the key that marks this reconciliation
-- done. ARGV: per budget: cost, tokens; then how long the mark is kept
-- (ms). One sent again after it ran (its reply was lost) does nothing.

if not redis.call('SET', KEYS[#KEYS], '1', 'NX', 'PX', ARGV[#ARGV]) then
  return 0
end
local n = 0
for i = 1, #KEYS - 1 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('HINCRBY', KEYS[i], 'spent', ARGV[2 * i - 1])
    redis.call('HINCRBY', KEYS[i], 'tokens', ARGV[2 * i])
    n = n + 1
  end
end
return n
