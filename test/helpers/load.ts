/**
 * Background load for fault tests: `concurrency` loops send requests until stopped (or a
 * hard time limit), recording every status, transport error and the worst latency.
 */
import { Agent, request } from 'undici'

export interface LoadStats {
  sent: number
  byStatus: Map<number, number>
  errors: number
  maxLatencyMs: number
}

export interface Load {
  stats: LoadStats
  /** Statuses seen from `since` (a value of stats.sent) on. */
  stop (): Promise<LoadStats>
}

export const LOAD_HARD_LIMIT_MS = 60_000

export function startLoad (url: string, concurrency: number, headers: Record<string, string> = {}): Load {
  const agent = new Agent({ connections: concurrency })
  const stats: LoadStats = { sent: 0, byStatus: new Map(), errors: 0, maxLatencyMs: 0 }
  let running = true
  const hardStop = setTimeout(() => { running = false }, LOAD_HARD_LIMIT_MS)
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      const started = performance.now()
      stats.sent++
      try {
        const res = await request(url, { dispatcher: agent, headers })
        await res.body.dump()
        stats.byStatus.set(res.statusCode, (stats.byStatus.get(res.statusCode) ?? 0) + 1)
      } catch {
        stats.errors++
      }
      stats.maxLatencyMs = Math.max(stats.maxLatencyMs, performance.now() - started)
    }
  })
  let stopped: Promise<LoadStats> | undefined
  return {
    stats,
    // Idempotent: a test may stop the load itself and also register it for teardown.
    stop () {
      stopped ??= (async () => {
        running = false
        clearTimeout(hardStop)
        await Promise.all(loops)
        await agent.close()
        return stats
      })()
      return stopped
    }
  }
}

export const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

/** Polls `check` every 20 ms until it is true or `ms` pass; returns whether it became true. */
export async function eventually (check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (await check()) return true
    await sleep(20)
  }
  return check()
}
