-- Shared by Tollgate's quota scripts. Amounts of money are picodollars,
-- which can pass 2^53, where Lua's numbers stop being exact: they are kept
-- as strings, changed only by HINCRBY, and compared as (billions, units)
-- pairs, which are exact.

local function fmt(n)
  return string.format('%d', n)
end

-- Redis's clock, in milliseconds: leases are timed by it, so replicas whose
-- clocks disagree still agree on when a lease lapses.
local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function big(s)
  if s == nil or s == false or string.sub(s, 1, 1) == '-' then
    return {0, 0}
  end
  local n = #s
  if n <= 9 then
    return {0, tonumber(s)}
  end
  return {tonumber(string.sub(s, 1, n - 9)), tonumber(string.sub(s, n - 8))}
end

local function add(a, b)
  local hi, lo = a[1] + b[1], a[2] + b[2]
  if lo >= 1000000000 then
    return {hi + 1, lo - 1000000000}
  end
  return {hi, lo}
end

-- The decimal text of a (billions, units) pair.
local function text(a)
  if a[1] == 0 then
    return fmt(a[2])
  end
  return fmt(a[1]) .. string.format('%09d', a[2])
end

local function gt(a, b)
  return a[1] > b[1] or (a[1] == b[1] and a[2] > b[2])
end

local function neg(s)
  if s == '0' then
    return '0'
  end
  return '-' .. s
end

-- Whether a hard budget whose counters are `v` (spent, tokens, reserved,
-- reserved tokens) has no room for `want` more (a big pair) and `tokens`
-- more, under its USD limit `lc` and token limit `lt` ('' for none).
local function no_room(v, lc, lt, want, tokens)
  if lc ~= '' then
    local spent, limit = big(v[1]), big(lc)
    if not gt(limit, spent) or gt(add(add(spent, big(v[3])), want), limit) then
      return true
    end
  end
  if lt ~= '' then
    local used, limit = tonumber(v[2]), tonumber(lt)
    if used >= limit or used + tonumber(v[4]) + tonumber(tokens) > limit then
      return true
    end
  end
  return false
end

-- Gives back what ticket `id` holds on budget `bk`, if it still holds it.
local function release(bk, id)
  local h = redis.call('HGET', bk, 'h:' .. id)
  if h then
    local c, n = string.match(h, '^(%d+) (%d+)$')
    if c then
      redis.call('HINCRBY', bk, 'reserved', neg(c))
      redis.call('HINCRBY', bk, 'reserved_tokens', neg(n))
    end
    redis.call('HDEL', bk, 'h:' .. id)
  end
end
