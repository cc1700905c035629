/** Runs the store-contract table against a store factory. */
import type { Store, BanSettings } from '../../src/store/types.js'
import { CONTRACT, START } from './store-contract.js'

export interface ContractStore {
  store: Store
  /** Move the store's clock to this absolute time (ms since the epoch). */
  setNow (ms: number): void | Promise<void>
  close (): Promise<void>
}

/** The tap assertions used here (tap's own Test type is overloaded beyond inference). */
interface Asserts {
  test (...args: any[]): Promise<unknown>
  equal (...args: any[]): unknown
  ok (...args: any[]): unknown
}

/** Tolerance for comparing milliseconds computed by different stores (float rounding). */
const MS_TOLERANCE = 0.01

export async function runContract (t: Asserts, make: (bans: BanSettings | undefined) => ContractStore | Promise<ContractStore>): Promise<void> {
  let n = 0
  for (const c of CONTRACT) {
    await t.test(c.name, async (t: Asserts) => {
      const s = await make(c.bans)
      const prefix = `case${n++}:`
      try {
        for (const [i, step] of c.steps.entries()) {
          await s.setNow((c.origin ?? START) + step.at)
          const idx = step.keys ?? c.policies.map((_, k) => k)
          const decisions = await s.store.consume(prefix + (step.client ?? 'client'), idx.map(k => c.policies[k]!), step.cost ?? 1, step.subjects?.map(x => prefix + x))
          const banned = step.expect[0]!.banned === true
          t.equal(decisions.length, banned ? 1 : idx.length, `step ${i}: one decision per policy (one for a ban)`)
          step.expect.forEach((e, j) => {
            const d = decisions[j]!
            const where = `step ${i} (t=${step.at}) policy ${d.policy.name}`
            t.equal(d.allowed, e.allowed, `${where}: allowed`)
            t.equal(d.banned === true, banned, `${where}: banned`)
            if (e.remaining !== undefined) t.equal(d.remaining, e.remaining, `${where}: remaining`)
            if (e.retryAfterMs !== undefined) t.ok(Math.abs(d.retryAfterMs - e.retryAfterMs) < MS_TOLERANCE, `${where}: retryAfterMs ${d.retryAfterMs} ≈ ${e.retryAfterMs}`)
            if (e.resetMs !== undefined) t.ok(Math.abs(d.resetMs - e.resetMs) < MS_TOLERANCE, `${where}: resetMs ${d.resetMs} ≈ ${e.resetMs}`)
            if (e.delayMs !== undefined) t.ok(Math.abs(d.delayMs - e.delayMs) < MS_TOLERANCE, `${where}: delayMs ${d.delayMs} ≈ ${e.delayMs}`)
          })
        }
      } finally {
        await s.close()
      }
    })
  }
}
