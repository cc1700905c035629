/**
 * Admin writes to Redis (a ban, an unban, a reset, the fleet's settings) are either applied
 * and answered, or refused and never applied. A command that timed out here would otherwise
 * still run once a stalled Redis wakes up: the operator reads 503 and the change is in force
 * on every instance anyway.
 *
 * So a write carries its deadline, in Redis's own time: one round trip reads Redis TIME on
 * the node that owns the write's keys, then the script runs only while Redis TIME is before
 * `TIME + half the time left`, and this side waits the whole time left for its answer. A
 * script that ran in time has the other half for its reply to arrive; one that ran late
 * did nothing. Admin writes are rare: the extra round trip costs nothing that matters.
 */
import { Command, type Cluster, type Redis } from 'ioredis'
import { AdminWriteFailedError } from '../../errors.js'

/**
 * How long an admin write may take, at the least (REDIS_TIMEOUT_MS when longer). Decisions
 * wait REDIS_TIMEOUT_MS (50 ms); an operator's write may wait a second on a busy Redis.
 */
export const ADMIN_WRITE_MIN_MS = 1_000

/** Prepended to every admin write's script: its last ARGV is the deadline (ms, Redis TIME). */
const DEADLINE_LUA = `
local now_ = redis.call('TIME')
if tonumber(now_[1]) * 1000 + tonumber(now_[2]) / 1000 > tonumber(ARGV[#ARGV]) then
  return redis.error_reply('GW_LATE the admin write reached Redis after its deadline')
end
`
const TIME_LUA = "return redis.call('TIME')"

/** Sends a command that this side waits for `ms` at most (not REDIS_TIMEOUT_MS). */
function sendWithin (client: Redis | Cluster, name: string, args: Array<string | number>, ms: number): Promise<unknown> {
  const command = new Command(name, args)
  // Set first: ioredis then keeps this timer instead of its commandTimeout.
  command.setTimeout(ms)
  client.sendCommand(command)
  return command.promise
}

/**
 * Runs `lua` on `keys` and `args` (the deadline appended as the last ARGV) if Redis gets it
 * in time; throws AdminWriteFailedError naming `what` otherwise, and then nothing was written.
 */
export async function adminWrite (client: Redis | Cluster, what: string, lua: string, keys: readonly string[], args: ReadonlyArray<string | number>, timeoutMs: number): Promise<unknown> {
  const budget = Math.max(ADMIN_WRITE_MIN_MS, timeoutMs)
  const started = performance.now()
  try {
    // TIME through a script on the write's keys: on a Cluster, the clock of the node that runs the write.
    const time = await sendWithin(client, 'eval', [TIME_LUA, keys.length, ...keys], budget) as [string, string]
    const left = Math.max(1, budget - (performance.now() - started))
    return await writeBefore(client, Number(time[0]) * 1000 + Number(time[1]) / 1000 + left / 2, lua, keys, args, left)
  } catch (err) {
    throw new AdminWriteFailedError(what, budget, (err as Error).message)
  }
}

/** Runs `lua` only while Redis TIME is before `deadline` (ms); waits `waitMs` for the answer. */
export function writeBefore (client: Redis | Cluster, deadline: number, lua: string, keys: readonly string[], args: ReadonlyArray<string | number>, waitMs: number): Promise<unknown> {
  return sendWithin(client, 'eval', [DEADLINE_LUA + lua, keys.length, ...keys, ...args, deadline.toFixed(3)], waitMs)
}
