import type { Decision } from '../core/decision.js'

/**
 * What a store keeps per key: the buckets' TAT (one number), a fixed window's
 * [start, count], a sliding window's [start, previous count, current count].
 */
export type State = number | readonly number[]

/** An algorithm's verdict on one request: the decision, and what the store does with its state. */
export interface Verdict extends Decision {
  /**
   * The state to store when the request is admitted. When refused it is the input state
   * (a refusal writes nothing), except when `repair` is set.
   */
  readonly state: State
  /**
   * Refused, but the stored state must be replaced by `state`: it was left by a stricter
   * limit since changed (see token-bucket.ts).
   */
  readonly repair: boolean
}
