/**
 * The scripts beside the decision's (scripts.ts): what the admin API reads and writes (a
 * client's standing, a ban, a reset), the fleet's settings, and in-flight lease renewals.
 * The admin writes among them run through admin-write.ts, which appends their deadline.
 */
import { CLOCK_LUA } from './scripts.js'

/** Redis TIME and the raw values of KEYS (admin inspection; nothing is written). */
export const INSPECT_LUA = `
${CLOCK_LUA}
local out = {string.format('%.3f', now)}
local m = tonumber(ARGV[2] or '0')
for i = 1, #KEYS - m do
  out[#out + 1] = redis.call('GET', KEYS[i]) or ''
end
-- The last m keys are in-flight limits: the leases not expired.
for i = #KEYS - m + 1, #KEYS do
  out[#out + 1] = redis.call('ZCOUNT', KEYS[i], '(' .. now, '+inf')
end
return out
`

/**
 * Bans KEYS[1]'s client for ARGV[2] ms from now (ARGV[1]: a test's clock, or '' for Redis
 * TIME, as CONSUME_LUA), and clears its refusal count (KEYS[2]).
 */
export const BAN_LUA = `
${CLOCK_LUA}
local duration = tonumber(ARGV[2])
redis.call('SET', KEYS[1], fmt(now + duration), 'PX', duration)
redis.call('DEL', KEYS[2])
return 1
`

/**
 * Deletes KEYS (a client's state, or its ban) and tells every instance (channel ARGV[1]) to
 * drop its local denials and bans, in one script: an admin write, so with a deadline
 * (store/admin-write.ts).
 */
export const FORGET_LUA = `
redis.call('DEL', unpack(KEYS))
redis.call('PUBLISH', ARGV[1], '{"type":"forget"}')
return 1
`

/**
 * Stores the settings under a new version and announces it (one slot: `{control}`). The
 * version is above the publisher's own (ARGV[3]) even when Redis lost its keys (a restart
 * without persistence): versions never repeat, so no instance takes a new change for one
 * it already has.
 */
export const PUBLISH_SETTINGS_LUA = `
local v = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[3])
if v <= floor then
  v = floor + 1
  redis.call('SET', KEYS[1], v)
end
redis.call('SET', KEYS[2], '{"version":' .. v .. ',' .. ARGV[1] .. '}')
redis.call('PUBLISH', ARGV[2], '{"type":"settings","version":' .. v .. '}')
return v
`

/**
 * Stores settings under the version they already have, when Redis holds an older one or
 * none (it lost them): the instances that kept them put them back, and those that never
 * saw them catch up. Returns 1 when stored, 0 when Redis already had that version or newer.
 */
export const RESEED_SETTINGS_LUA = `
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local v = tonumber(ARGV[3])
if stored >= v then return 0 end
redis.call('SET', KEYS[1], v)
redis.call('SET', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], '{"type":"settings","version":' .. v .. '}')
return 1
`

/**
 * Renews ARGV[1]'s slots in KEYS for ARGV[2] more ms from Redis TIME, where the lease is
 * still held (a slot already expired is not taken back).
 */
export const RENEW_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local ms = tonumber(ARGV[2])
for i = 1, #KEYS do
  if redis.call('ZSCORE', KEYS[i], ARGV[1]) then
    redis.call('ZADD', KEYS[i], 'XX', now + ms, ARGV[1])
    redis.call('PEXPIRE', KEYS[i], ms)
  end
end
return 1
`
