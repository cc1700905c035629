/**
 * Rate-limit response headers: the IETF draft-10 structured fields (RateLimit-Policy,
 * RateLimit) and the legacy X-RateLimit-* trio most clients read. With several policies
 * the draft fields list each one; the legacy fields and Retry-After speak for the most
 * restrictive. Built as a flat [name, value, ...] array, the form Node's writeHead takes
 * and the proxy appends to the upstream's headers; the parts that never change per
 * request (RateLimit-Policy, the item prefixes) are rendered once per policy.
 */
import type { HeadersMode } from '../config/index.js'
import type { Decision } from '../core/decision.js'

/** Whole seconds, rounded up, so a client waiting that long is never early. */
export function ceilSeconds (ms: number): number {
  return Math.ceil(ms / 1000)
}

/** Retry-After: whole seconds ≥ 1, never earlier than the retry that would succeed. */
export function retryAfterSeconds (ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000))
}

function limitItem (d: Decision): string {
  return `${d.policy.limitItemPrefix}${d.remaining};t=${ceilSeconds(d.resetMs)}`
}

/** The headers for these decisions, or undefined with RATE_LIMIT_HEADERS=none. */
export function rateLimitHeaders (mode: HeadersMode, decisions: readonly Decision[], top: Decision): string[] | undefined {
  if (mode === 'none') return undefined
  const out: string[] = []
  if (mode !== 'draft') {
    out.push('x-ratelimit-limit', String(top.policy.capacity), 'x-ratelimit-remaining', String(top.remaining), 'x-ratelimit-reset', String(ceilSeconds(top.resetMs)))
  }
  if (mode !== 'legacy') {
    if (decisions.length === 1) {
      out.push('ratelimit-policy', top.policy.policyItem, 'ratelimit', limitItem(top))
    } else {
      let policies = ''
      let limits = ''
      for (let i = 0; i < decisions.length; i++) {
        const d = decisions[i]!
        const sep = i === 0 ? '' : ', '
        policies += sep + d.policy.policyItem
        limits += sep + limitItem(d)
      }
      out.push('ratelimit-policy', policies, 'ratelimit', limits)
    }
  }
  return out
}
