/**
 * The Redis side of the token bucket: the same GCRA lines as
 * src/limiter/algorithms/token-bucket.ts, for every limit of one request, in one atomic
 * script call. The store-contract table runs against both so they cannot drift.
 *
 * KEYS[i]      the bucket of policy i (all in one hash slot: they share a {tag})
 * ARGV[1]      now in ms, or '' to take Redis TIME (production always sends ''; tests
 *              send their manual clock's time)
 * ARGV[2]      cost: tokens the request takes from every bucket
 * ARGV[1+2i]   policy i's interval: ms to earn one token
 * ARGV[2+2i]   policy i's burst: bucket capacity
 *
 * Returns, per policy: allowed (1/0), remaining, resetMs, retryAfterMs; the two
 * durations as strings (Lua numbers would be truncated to integers in the reply).
 * Nothing is written unless every bucket admits the request (but for repairing a state
 * left by a stricter limit since changed, see token-bucket.ts); every write has a TTL
 * (the time until that bucket is full again, when the key means nothing any more).
 */
export const CONSUME_LUA = `
local EPSILON_MS = 0.001
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local cost = tonumber(ARGV[2])
local n = #KEYS
local all = true
local out = {}
local states = {}
local ttls = {}
local repairs = {}
for i = 1, n do
  local interval = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  local capacity = burst * interval
  local tat = tonumber(redis.call('GET', KEYS[i]))
  local base = now
  repairs[i] = false
  if tat ~= nil and tat >= now then
    base = tat
    -- Left by a stricter limit since changed: an empty bucket under this one (written
    -- even if the request is refused, or the bucket would never refill).
    if base > now + capacity then
      base = now + capacity
      repairs[i] = true
    end
  end
  local nxt = base + cost * interval
  local allowAt = nxt - capacity
  local ok, remaining, reset, retry
  if allowAt > now + EPSILON_MS then
    all = false
    ok = 0
    remaining = math.floor((now + capacity - base + EPSILON_MS) / interval)
    reset = base - now
    retry = allowAt - now
  else
    ok = 1
    remaining = math.floor((now + capacity - nxt + EPSILON_MS) / interval)
    reset = nxt - now
    retry = 0
  end
  if remaining < 0 then remaining = 0 end
  states[i] = nxt
  ttls[i] = math.max(1, math.ceil(nxt - now))
  out[#out + 1] = ok
  out[#out + 1] = remaining
  out[#out + 1] = string.format('%.3f', reset)
  out[#out + 1] = string.format('%.3f', retry)
end
if all then
  for i = 1, n do
    redis.call('SET', KEYS[i], string.format('%.17g', states[i]), 'PX', ttls[i])
  end
else
  for i = 1, n do
    if repairs[i] then
      local base = states[i] - cost * tonumber(ARGV[1 + 2 * i])
      redis.call('SET', KEYS[i], string.format('%.17g', base), 'PX', math.max(1, math.ceil(base - now)))
    end
  end
end
return out
`
