/** The four algorithms behind one call, chosen by the policy. */
import type { Policy } from '../core/policy.js'
import { fixedWindow } from './fixed-window.js'
import { slidingWindow } from './sliding-window.js'
import { tokenBucket } from './token-bucket.js'
import type { Verdict, State } from './types.js'

export type { Verdict, State } from './types.js'
export { settle, type Settled } from './settle.js'


/**
 * Decides one request against one policy. A state of another shape than the algorithm's
 * (left under the same policy name with another algorithm, before a rules reload) reads
 * as no state: the client starts afresh under the new algorithm.
 */
export function decide (policy: Policy, state: State | undefined, now: number, cost: number): Verdict {
  if (policy.algorithm === 'token-bucket' || policy.algorithm === 'leaky-bucket') {
    return tokenBucket(typeof state === 'number' ? state : undefined, policy, now, cost)
  }
  const tuple = typeof state === 'object' ? state : undefined
  if (policy.algorithm === 'fixed-window') return fixedWindow(tuple?.length === 2 ? tuple : undefined, policy, now, cost)
  return slidingWindow(tuple?.length === 3 ? tuple : undefined, policy, now, cost)
}
