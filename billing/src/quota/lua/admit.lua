-- Admits a request, or says why not, in one step over all its budgets and
-- rate limits.
--
-- KEYS: per budget, its counters (hash) and its holds' leases (zset);
--       then per rate limit, this minute's counts (hash) and the leases of
--       the requests in flight (zset).
-- ARGV: ticket, cost, tokens, new request (1/0), budgets, rate limits,
--       lease ms; then per budget: hard (1/0), USD limit, token limit,
--       time to live in ms (each '' for none); then per rate limit: rpm,
--       tpm, max concurrent ('' for none), the minute's counts' time to live.
-- Returns {'seed', i...} for budgets not counted yet (seed them from the
-- ledger, then ask again), else {'ok' | 'refused', what, index, then per
-- budget spent, tokens, reserved, reserved tokens, then per rate limit
-- requests, tokens, in flight}, as they were before this request.

local ticket, cost, tokens = ARGV[1], ARGV[2], ARGV[3]
local new = ARGV[4] == '1'
local nb, nr = tonumber(ARGV[5]), tonumber(ARGV[6])
local lease = tonumber(ARGV[7])
local now = server_ms()

local missing = {'seed'}
for i = 1, nb do
  if redis.call('EXISTS', KEYS[2 * i - 1]) == 0 then
    missing[#missing + 1] = fmt(i)
  end
end
if #missing > 1 then
  return missing
end

local out = {'ok', '', '0'}
local held = {}
for i = 1, nb do
  local bk, lk = KEYS[2 * i - 1], KEYS[2 * i]
  -- Holds whose lease lapsed belong to requests of a replica that died.
  local gone = redis.call('ZRANGEBYSCORE', lk, '-inf', now)
  for _, id in ipairs(gone) do
    release(bk, id)
  end
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', lk, '-inf', now)
  end
  local v = redis.call('HMGET', bk, 'spent', 'tokens', 'reserved', 'reserved_tokens')
  for k = 1, 4 do
    v[k] = v[k] or '0'
    out[#out + 1] = v[k]
  end
  held[i] = v
end
local counts = {}
local base = 2 * nb
for j = 1, nr do
  local mk, fk = KEYS[base + 2 * j - 1], KEYS[base + 2 * j]
  redis.call('ZREMRANGEBYSCORE', fk, '-inf', now)
  local m = redis.call('HMGET', mk, 'requests', 'tokens')
  local c = {tonumber(m[1] or '0'), tonumber(m[2] or '0'), redis.call('ZCARD', fk)}
  counts[j] = c
  for k = 1, 3 do
    out[#out + 1] = fmt(c[k])
  end
end

local a = 8
local want = big(cost)
for i = 1, nb do
  local hard, lc, lt = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  a = a + 4
  if hard == '1' and no_room(held[i], lc, lt, want, tokens) then
    out[1], out[2], out[3] = 'refused', 'budget', fmt(i)
    return out
  end
end
for j = 1, nr do
  local rpm, tpm, max = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  a = a + 4
  local c = counts[j]
  if (rpm ~= '' and new and c[1] >= tonumber(rpm))
      or (tpm ~= '' and c[2] >= tonumber(tpm))
      or (max ~= '' and c[3] >= tonumber(max)) then
    out[1], out[2], out[3] = 'refused', 'rate', fmt(j)
    return out
  end
end

-- Room everywhere: take it.
a = 8
for i = 1, nb do
  local bk, lk = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('HINCRBY', bk, 'reserved', cost)
  redis.call('HINCRBY', bk, 'reserved_tokens', tokens)
  redis.call('HSET', bk, 'h:' .. ticket, cost .. ' ' .. tokens)
  redis.call('ZADD', lk, now + lease, ticket)
  local expiry = ARGV[a + 3]
  if expiry ~= '' then
    redis.call('PEXPIRE', bk, expiry)
    redis.call('PEXPIRE', lk, expiry)
  end
  a = a + 4
end
for j = 1, nr do
  local mk, fk = KEYS[base + 2 * j - 1], KEYS[base + 2 * j]
  if new then
    redis.call('HINCRBY', mk, 'requests', 1)
  end
  redis.call('PEXPIRE', mk, ARGV[a + 3])
  redis.call('ZADD', fk, now + lease, ticket)
  redis.call('PEXPIRE', fk, 2 * lease)
  a = a + 4
end
return out
