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
 *
 * An exhaustive switch with no default: a fifth algorithm name that is not handled here is
 * a compile error ("lacks ending return statement"), never a silent sliding window.
 */
export function decide (policy: Policy, state: State | undefined, now: number, cost: number): Verdict {
  switch (policy.algorithm) {
    case 'token-bucket':
    case 'leaky-bucket':
      return tokenBucket(typeof state === 'number' ? state : undefined, policy, now, cost)
    case 'fixed-window':
      return fixedWindow(typeof state === 'object' && state.length === 2 ? state : undefined, policy, now, cost)
    case 'sliding-window':
      return slidingWindow(typeof state === 'object' && state.length === 3 ? state : undefined, policy, now, cost)
  }
}
