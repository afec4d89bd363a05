-- Extends what a ticket holds on every budget over its request, or says
-- why not, in one step: a stream that outran its reservation asks for
-- more as it goes.
--
-- KEYS: per budget, its counters (hash).
-- ARGV: ticket, cost, tokens, budgets; then per budget: hard (1/0), USD
--       limit, token limit ('' for none).
-- Returns {'ok' | 'refused', index, then per budget spent, tokens,
-- reserved, reserved tokens}, as they were before this extension. A budget
-- no longer holding the ticket (its counters were lost, or its lease
-- lapsed) is left alone: settling counts the request there anyway.

local ticket, cost, tokens = ARGV[1], ARGV[2], ARGV[3]
local nb = tonumber(ARGV[4])
local out = {'ok', '0'}
local want = big(cost)
local holding = {}
local a = 5
for i = 1, nb do
  local bk = KEYS[i]
  local v = redis.call('HMGET', bk, 'spent', 'tokens', 'reserved', 'reserved_tokens')
  for k = 1, 4 do
    v[k] = v[k] or '0'
    out[#out + 1] = v[k]
  end
  holding[i] = redis.call('HGET', bk, 'h:' .. ticket)
  local hard, lc, lt = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  a = a + 3
  if hard == '1' and holding[i] and out[1] == 'ok' and no_room(v, lc, lt, want, tokens) then
    out[1], out[2] = 'refused', fmt(i)
  end
end
if out[1] ~= 'ok' then
  return out
end

-- Room everywhere: take it.
for i = 1, nb do
  local h = holding[i]
  if h then
    local bk = KEYS[i]
    local c, n = string.match(h, '^(%d+) (%d+)$')
    if c then
      redis.call('HINCRBY', bk, 'reserved', cost)
      redis.call('HINCRBY', bk, 'reserved_tokens', tokens)
      redis.call('HSET', bk, 'h:' .. ticket,
        text(add(big(c), want)) .. ' ' .. fmt(tonumber(n) + tonumber(tokens)))
    end
  end
end
return out
