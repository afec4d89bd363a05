-- Settles a ticket: its holds become spend, its slots are freed, its
-- tokens count against this minute, and thresholds crossed are claimed
-- (once per period, whichever replica crosses them).
--
-- KEYS: per budget, its counters and its leases; then per rate limit, its
--       in-flight leases and the counts of the minute of settlement; last,
--       the key that marks this settlement done.
-- ARGV: ticket, cost, tokens, budgets, rate limits, alert thresholds in
--       thousandths (comma-separated); then per budget: USD limit, token
--       limit ('' for none); then per rate limit: the minute's time to live;
--       last, how long the mark is kept (ms).
-- Returns the alerts raised: {index, 'usd' | 'tokens', thousandths, used}...
-- A settlement sent again after it ran (its reply was lost) does nothing.

if not redis.call('SET', KEYS[#KEYS], '1', 'NX', 'PX', ARGV[#ARGV]) then
  return {}
end

local ticket, cost, tokens = ARGV[1], ARGV[2], ARGV[3]
local nb, nr = tonumber(ARGV[4]), tonumber(ARGV[5])
local thresholds = {}
for t in string.gmatch(ARGV[6], '%d+') do
  thresholds[#thresholds + 1] = tonumber(t)
end
local out = {}

-- Claims threshold `t` of `unit` if this settlement crossed it.
local function cross(bk, i, unit, t, limit, before, after, shown)
  local mark = math.floor(tonumber(limit) * t / 1000)
  if before < mark and after >= mark
      and redis.call('HSETNX', bk, 'a:' .. unit .. ':' .. t, '1') == 1 then
    out[#out + 1] = fmt(i)
    out[#out + 1] = unit
    out[#out + 1] = fmt(t)
    out[#out + 1] = shown
  end
end

local a = 7
for i = 1, nb do
  local bk, lk = KEYS[2 * i - 1], KEYS[2 * i]
  local lc, lt = ARGV[a], ARGV[a + 1]
  a = a + 2
  redis.call('ZREM', lk, ticket)
  -- A budget whose counters are gone (its period ended, or Redis lost
  -- them) is seeded again from the ledger, which has this request.
  if redis.call('EXISTS', bk) == 1 then
    release(bk, ticket)
    local before = tonumber(redis.call('HGET', bk, 'spent') or '0')
    local before_tokens = tonumber(redis.call('HGET', bk, 'tokens') or '0')
    redis.call('HINCRBY', bk, 'spent', cost)
    local after = redis.call('HGET', bk, 'spent')
    local after_tokens = redis.call('HINCRBY', bk, 'tokens', tokens)
    for _, t in ipairs(thresholds) do
      if lc ~= '' then
        cross(bk, i, 'usd', t, lc, before, tonumber(after), after)
      end
      if lt ~= '' then
        cross(bk, i, 'tokens', t, lt, before_tokens, after_tokens, fmt(after_tokens))
      end
    end
  end
end
local base = 2 * nb
for j = 1, nr do
  local fk, mk = KEYS[base + 2 * j - 1], KEYS[base + 2 * j]
  redis.call('ZREM', fk, ticket)
  if tokens ~= '0' then
    redis.call('HINCRBY', mk, 'tokens', tokens)
    redis.call('PEXPIRE', mk, ARGV[a])
  end
  a = a + 1
end
return out
