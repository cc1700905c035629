/**
 * The Redis side of the algorithms: the same lines as src/algorithms/*.ts, for
 * every limit of one request plus the client's ban, in one atomic script call. The
 * store-contract table runs against both so they cannot drift.
 *
 * KEYS[i], i ≤ n    the state of policy i (all keys in one hash slot: they share a {tag})
 * KEYS[n+1], [n+2]  the client's ban and its refusal count
 * ARGV[1]           now in ms, or '' to take Redis TIME (production always sends ''; tests
 *                   send their manual clock's time, and keys then live at least 60 s)
 * ARGV[2]           cost: what the request takes from every limit
 * ARGV[3..5]        bans: refusals that ban (0: none counted), their window ms, the ban's ms
 * ARGV[6]           m, the in-flight limits the request takes a slot in (KEYS[n+3..n+2+m])
 * ARGV[7]           the usage ledger: how long the day's line (the last KEY, a hash) is
 *                   kept in ms; 0: not recorded
 * ARGV[8+6(i-1)..]  policy i: algorithm (t, l, f, s; c: a fixed window over a calendar
 *                   period, the boundaries around the gateway's now in intervalMs' place,
 *                   of which the period holding Redis TIME is counted), intervalMs, capacity,
 *                   windowMs, maxDelayMs, dry run (1/0)
 * then, with m > 0: the request's lease id, the lease's ms, and each in-flight limit's max
 *
 * An in-flight limit is a sorted set of leases scored by when they expire: a slot is taken
 * only when the request is admitted, in every limit or none, after dropping the expired
 * leases (an instance that died holding slots gives them back within the lease).
 *
 * Returns {2, j} when in-flight limit j is full (nothing written, nothing charged),
 * {1, µs} for a banned client, else {0} followed by, per policy: allowed (1/0),
 * remaining, then resetMs, retryAfterMs and delayMs in whole microseconds: integers,
 * which Redis replies as they are (a Lua number with a fraction would be truncated) and
 * the client reads without parsing a string.
 *
 * Admitted when every policy that is not a dry run allows it; then each policy that
 * allowed writes its state. Refused, nothing is written (but for repairing a state left
 * by a stricter limit since changed, see token-bucket.ts) and the refusal counts towards
 * a ban. Every state carries its own time, so a key outliving its meaning reads as
 * nothing; the TTLs (until the limit is full again) only collect garbage.
 */
import { createHash } from 'node:crypto'
import type { AlgorithmName } from '../../core/policy.js'

export const ARGS_PER_POLICY = 6
/** Each algorithm's code in the scripts: every name must have one (a fifth is a compile error). */
export const ALGORITHM_CODE = { 'token-bucket': 't', 'leaky-bucket': 'l', 'fixed-window': 'f', 'sliding-window': 's' } as const satisfies Record<AlgorithmName, string>

/**
 * The scripts' start: how states are written (%.17g: a double read back exactly), and
 * `now` from ARGV[1] (a test's clock) or Redis TIME, with the TTL floor.
 */
export const CLOCK_LUA = `local function fmt(x) return string.format('%.17g', x) end
local now
-- Keys expire once their state means nothing (every state carries its own time, so the
-- TTL only collects garbage). On an injected clock (tests) Redis still expires keys in
-- real time, so they are kept at least a minute there.
local ttlFloor = 1
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
  ttlFloor = 60000
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
-- A calendar period ('c'): the gateway sends the boundaries around its own now, "b0 b1 b2
-- b3" (Calendar.boundaries); the period is the one among them holding at, Redis's time,
-- so gateways whose clocks disagree across a midnight still count one day. Its start and length.
local function calendarPeriod(spec, at)
  local prev
  for b in string.gmatch(spec, '%S+') do
    b = tonumber(b)
    if prev ~= nil and at >= prev and at < b then return prev, b - prev end
    prev = b
  end
  error('GW_CLOCK_SKEW the gateway clock is more than a calendar period away from Redis TIME')
end`

/**
 * The algorithms in Lua, one function each, named and shaped after src/algorithms/ so that
 * a reader can hold each beside its TypeScript twin (the store contract holds them to it).
 * Every function returns multiple values, never a table: no allocation per policy.
 *
 * A decision: ok (1/0), remaining, resetMs, retryAfterMs, delayMs, then the state to write
 * (nil: none) and its TTL, and whether it is written even on a refusal (a repair).
 * A settlement: the state to write (nil: nothing changes) and when it means nothing.
 */
const ALGORITHMS_LUA = `local EPSILON_MS = 0.001
local COUNT_EPSILON = 1e-9
-- algorithms/fixed-window.ts windowStart(): the aligned window holding at.
local function windowStart(at, size) return math.floor(at / size) * size end
-- States as the stores write them: "tat", "start count", "start previous current".
local function fixedState(raw)
  if not raw then return nil, nil end
  local s, c = string.match(raw, '^(%S+) (%S+)$')
  return tonumber(s), tonumber(c)
end
local function slidingState(raw)
  if not raw then return nil, nil, nil end
  local s, p, c = string.match(raw, '^(%S+) (%S+) (%S+)$')
  return tonumber(s), tonumber(p), tonumber(c)
end
-- A fixed window's period holding at: aligned ('f'), or a calendar one ('c', spec in intervalMs' place).
local function fixedPeriod(algo, spec, size, at)
  if algo == 'f' then return windowStart(at, size), size end
  return calendarPeriod(spec, at)
end

-- algorithms/token-bucket.ts tokenBucket() (and the leaky bucket: maxDelay > 0).
local function tokenBucket(tat, interval, capacity, maxDelay, now, cost)
  local capacityMs = capacity * interval
  local limit = capacityMs + maxDelay
  local base, repair = now, false
  if tat ~= nil and tat >= now then
    -- Left by a stricter limit since changed: an empty bucket under this one (written even
    -- if the request is refused, or the bucket would never refill).
    if tat > now + limit then base, repair = now + limit, true else base = tat end
  end
  local nxt = base + cost * interval
  local wait = nxt - capacityMs - now
  if wait > maxDelay + EPSILON_MS then
    local remaining = math.max(0, math.floor((now + capacityMs - base + EPSILON_MS) / interval))
    if repair then return 0, remaining, base - now, wait - maxDelay, 0, fmt(base), math.max(ttlFloor, math.ceil(base - now)), true end
    return 0, remaining, base - now, wait - maxDelay, 0, nil, 0, false
  end
  local delay = 0
  if wait > EPSILON_MS then delay = wait end
  return 1, math.max(0, math.floor((now + capacityMs - nxt + EPSILON_MS) / interval)), nxt - now, 0, delay, fmt(nxt), math.max(ttlFloor, math.ceil(nxt - now)), false
end

-- algorithms/fixed-window.ts fixedWindow(): the period [start, start + size).
local function fixedWindow(raw, start, size, capacity, now, cost)
  local s, c = fixedState(raw)
  local count = 0
  if s == start then count = c end
  local reset = start + size - now
  if count + cost > capacity then return 0, math.max(0, capacity - count), reset, reset, 0, nil, 0, false end
  return 1, capacity - count - cost, reset, 0, 0, fmt(start) .. ' ' .. fmt(count + cost), math.max(ttlFloor, math.ceil(reset)), false
end

-- algorithms/sliding-window.ts countsAt(): the previous and current window's counts at start.
local function countsAt(s, p, c, start, size)
  if s == start then return p, c end
  if s == start - size then return c, 0 end
  return 0, 0
end

-- algorithms/sliding-window.ts slidingWindow().
local function slidingWindow(raw, size, capacity, now, cost)
  local start = windowStart(now, size)
  local s, p, c = slidingState(raw)
  local prev, curr = countsAt(s, p, c, start, size)
  local used = prev * (1 - (now - start) / size) + curr
  if used + cost > capacity + COUNT_EPSILON then
    local retryAt
    if curr + cost <= capacity then
      retryAt = start + size * (1 - (capacity - curr - cost) / prev)
    else
      retryAt = start + size + size * math.max(0, 1 - (capacity - cost) / curr)
    end
    local reset = start + size - now
    if curr > 0 then reset = start + 2 * size - now end
    return 0, math.max(0, math.floor(capacity - used + COUNT_EPSILON)), reset, retryAt - now, 0, nil, 0, false
  end
  local reset = start + 2 * size - now
  return 1, math.max(0, math.floor(capacity - used - cost + COUNT_EPSILON)), reset, 0, 0, fmt(start) .. ' ' .. fmt(prev) .. ' ' .. fmt(curr + cost), math.max(ttlFloor, math.ceil(reset)), false
end

-- algorithms/settle.ts settleBucket().
local function settleBucket(tat, interval, capacity, maxDelay, now, delta)
  if delta < 0 then
    if tat == nil or tat <= now then return nil end
    local back = math.max(now, tat + delta * interval)
    return fmt(back), back
  end
  local limit = now + capacity * interval + maxDelay
  local base = now
  if tat ~= nil and tat >= now then base = tat end
  local nxt = math.min(limit, base + delta * interval)
  if nxt <= base then return nil end
  return fmt(nxt), nxt
end

-- algorithms/settle.ts settleFixed(): the period [start, start + size) is the charge's for
-- a refund, now's for a post-charge.
local function settleFixed(raw, start, size, capacity, delta)
  local s, c = fixedState(raw)
  if delta < 0 then
    if s == nil or s ~= start or c <= 0 then return nil end
    return fmt(start) .. ' ' .. fmt(math.max(0, c + delta)), start + size
  end
  local count = 0
  if s == start then count = c end
  local nxt = math.min(math.max(count, capacity), count + delta)
  if nxt <= count then return nil end
  return fmt(start) .. ' ' .. fmt(nxt), start + size
end

-- algorithms/settle.ts settleSliding().
local function settleSliding(raw, size, capacity, now, chargedAt, delta)
  local s, p, c = slidingState(raw)
  if delta < 0 then
    if s == nil then return nil end
    local charged = windowStart(chargedAt, size)
    if s == charged and c > 0 then return fmt(s) .. ' ' .. fmt(p) .. ' ' .. fmt(math.max(0, c + delta)), s + 2 * size end
    if s == charged + size and p > 0 then return fmt(s) .. ' ' .. fmt(math.max(0, p + delta)) .. ' ' .. fmt(c), s + 2 * size end
    return nil
  end
  local start = windowStart(now, size)
  local prev, curr = countsAt(s, p, c, start, size)
  local used = prev * (1 - (now - start) / size) + curr
  local add = math.min(delta, capacity - used)
  if add <= 0 then return nil end
  return fmt(start) .. ' ' .. fmt(prev) .. ' ' .. fmt(curr + add), start + 2 * size
end

local UNKNOWN = 'GW_UNKNOWN_ALGORITHM no algorithm has the code '`

export const CONSUME_LUA = `
${CLOCK_LUA}
${ALGORITHMS_LUA}
local function us(x) return math.floor(x * 1000 + 0.5) end
local cost = tonumber(ARGV[2])
local banAfter = tonumber(ARGV[3])
local m = tonumber(ARGV[6])
local usage = tonumber(ARGV[7])
local n = #KEYS - 2 - m
if usage > 0 then n = n - 1 end
-- The usage ledger: the request admitted (with its cost) or refused, on the client's day.
local function ledger(admitted)
  if usage == 0 then return end
  local line = KEYS[#KEYS]
  if admitted then
    redis.call('HINCRBY', line, 'admitted', 1)
    redis.call('HINCRBY', line, 'cost', cost)
  else
    redis.call('HINCRBY', line, 'refused', 1)
  end
  redis.call('PEXPIRE', line, usage)
end
-- A ban (RATE_LIMIT_BAN_AFTER, or the admin API's) comes before any limit.
local untilv = tonumber(redis.call('GET', KEYS[n + 1]))
if untilv ~= nil and untilv > now then
  ledger(false)
  return {1, us(untilv - now)}
end
local admitted = true
local oks, states, ttls, repairs = {}, {}, {}, {}
local out = {0}
for i = 1, n do
  -- The policy's ARGV (ScriptProtocol.consumeArgs): algorithm, intervalMs, capacity, windowMs, maxDelayMs, dry run.
  local b = 7 + ${ARGS_PER_POLICY} * (i - 1)
  local algo, capacity = ARGV[b + 1], tonumber(ARGV[b + 3])
  local raw = redis.call('GET', KEYS[i])
  local ok, remaining, reset, retry, delay
  if algo == 't' or algo == 'l' then
    ok, remaining, reset, retry, delay, states[i], ttls[i], repairs[i] = tokenBucket(tonumber(raw), tonumber(ARGV[b + 2]), capacity, tonumber(ARGV[b + 5]), now, cost)
  elseif algo == 'f' or algo == 'c' then
    local start, size = fixedPeriod(algo, ARGV[b + 2], tonumber(ARGV[b + 4]), now)
    ok, remaining, reset, retry, delay, states[i], ttls[i], repairs[i] = fixedWindow(raw, start, size, capacity, now, cost)
  elseif algo == 's' then
    ok, remaining, reset, retry, delay, states[i], ttls[i], repairs[i] = slidingWindow(raw, tonumber(ARGV[b + 4]), capacity, now, cost)
  else
    -- Every algorithm has its branch above, as decide() has its case: no default math.
    return redis.error_reply(UNKNOWN .. tostring(algo))
  end
  oks[i] = ok
  if ok == 0 and ARGV[b + 6] ~= '1' then admitted = false end
  out[#out + 1] = ok
  out[#out + 1] = remaining
  out[#out + 1] = us(reset)
  out[#out + 1] = us(retry)
  out[#out + 1] = us(delay)
end
if admitted and m > 0 then
  local base = 8 + ${ARGS_PER_POLICY} * n
  local lease, leaseMs = ARGV[base], tonumber(ARGV[base + 1])
  for j = 1, m do
    local key = KEYS[n + 2 + j]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    if redis.call('ZCARD', key) >= tonumber(ARGV[base + 1 + j]) then
      ledger(false)
      return {2, j}
    end
  end
  for j = 1, m do
    local key = KEYS[n + 2 + j]
    redis.call('ZADD', key, now + leaseMs, lease)
    redis.call('PEXPIRE', key, leaseMs)
  end
end
for i = 1, n do
  if (admitted and oks[i] == 1) or repairs[i] then
    redis.call('SET', KEYS[i], states[i], 'PX', ttls[i])
  end
end
if not admitted and banAfter > 0 then
  local window = tonumber(ARGV[4])
  local duration = tonumber(ARGV[5])
  local start, count = now, 1
  local raw = redis.call('GET', KEYS[n + 2])
  if raw then
    local s, c = string.match(raw, '^(%S+) (%S+)$')
    s = tonumber(s)
    if s ~= nil and now < s + window then
      start = s
      count = tonumber(c) + 1
    end
  end
  if count >= banAfter then
    redis.call('SET', KEYS[n + 1], fmt(now + duration), 'PX', math.max(ttlFloor, duration))
    redis.call('DEL', KEYS[n + 2])
  else
    redis.call('SET', KEYS[n + 2], fmt(start) .. ' ' .. count, 'PX', math.max(ttlFloor, math.ceil(start + window - now)))
  end
end
ledger(admitted)
return out
`

/** What EVALSHA names CONSUME_LUA by. */
export const CONSUME_SHA = createHash('sha1').update(CONSUME_LUA).digest('hex')

/**
 * Settles admitted requests' charges once their responses are known: the lines of
 * src/algorithms/settle.ts for each key.
 *
 * ARGV[1]              now in ms, or '' to take Redis TIME (as CONSUME_LUA)
 * ARGV[2]              how long ago the request was charged (ms, by the gateway's clock: a
 *                      duration, so skew does not matter): which window holds the charge
 * ARGV[3+6(i-1)..]     key i's policy: algorithm, intervalMs, capacity, windowMs, maxDelayMs,
 *                      and the difference to charge (> 0) or give back (< 0)
 */
export const SETTLE_LUA = `
${CLOCK_LUA}
${ALGORITHMS_LUA}
local chargedAt = now - tonumber(ARGV[2])
for i = 1, #KEYS do
  -- The policy's ARGV (ScriptProtocol.pushSettle): as CONSUME_LUA's, the difference in the dry run's place.
  local b = 2 + ${ARGS_PER_POLICY} * (i - 1)
  local algo, capacity, size, delta = ARGV[b + 1], tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4]), tonumber(ARGV[b + 6])
  local raw = redis.call('GET', KEYS[i])
  local state, expires
  if algo == 't' or algo == 'l' then
    state, expires = settleBucket(tonumber(raw), tonumber(ARGV[b + 2]), capacity, tonumber(ARGV[b + 5]), now, delta)
  elseif algo == 'f' or algo == 'c' then
    local at = now
    if delta < 0 then at = chargedAt end
    local start, length = fixedPeriod(algo, ARGV[b + 2], size, at)
    state, expires = settleFixed(raw, start, length, capacity, delta)
  elseif algo == 's' then
    state, expires = settleSliding(raw, size, capacity, now, chargedAt, delta)
  else
    return redis.error_reply(UNKNOWN .. tostring(algo))
  end
  if state then redis.call('SET', KEYS[i], state, 'PX', math.max(ttlFloor, math.ceil(expires - now))) end
end
return 1
`
