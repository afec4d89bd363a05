-- Adds spend counted while Redis could not be reached. A budget whose
-- counters are gone is seeded again from the ledger, which has the spend.
--
-- KEYS: budget counters. ARGV: per budget: cost, tokens.

local n = 0
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('HINCRBY', KEYS[i], 'spent', ARGV[2 * i - 1])
    redis.call('HINCRBY', KEYS[i], 'tokens', ARGV[2 * i])
    n = n + 1
  end
end
return n
