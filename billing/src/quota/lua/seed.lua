-- Starts the counters of budgets not counted yet, from the ledger's sums.
-- A budget another replica seeded meanwhile is left as it is.
--
-- KEYS: budget counters. ARGV: per budget: spent, tokens, time to live ('' none).

for i = 1, #KEYS do
  local k = KEYS[i]
  if redis.call('EXISTS', k) == 0 then
    redis.call('HSET', k, 'spent', ARGV[3 * i - 2], 'tokens', ARGV[3 * i - 1],
      'reserved', '0', 'reserved_tokens', '0')
    if ARGV[3 * i] ~= '' then
      redis.call('PEXPIRE', k, ARGV[3 * i])
    end
  end
end
return #KEYS
