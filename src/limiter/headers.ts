/**
 * Rate-limit response headers: the IETF draft-10 structured fields (RateLimit-Policy,
 * RateLimit) and the legacy X-RateLimit-* trio most clients read. With several policies
 * the draft fields list each one; the legacy fields and Retry-After speak for the most
 * restrictive.
 */
import type { FastifyReply } from 'fastify'
import type { HeadersMode } from '../config/index.js'
import type { Decision } from './decision.js'

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

export function setRateLimitHeaders (reply: FastifyReply, mode: HeadersMode, decisions: readonly Decision[], top: Decision): void {
  if (mode === 'none') return
  if (mode !== 'draft') {
    reply.header('x-ratelimit-limit', top.policy.burst)
    reply.header('x-ratelimit-remaining', top.remaining)
    reply.header('x-ratelimit-reset', ceilSeconds(top.resetMs))
  }
  if (mode !== 'legacy') {
    if (decisions.length === 1) {
      reply.header('ratelimit-policy', top.policy.policyItem)
      reply.header('ratelimit', limitItem(top))
    } else {
      let policies = ''
      let limits = ''
      for (let i = 0; i < decisions.length; i++) {
        const d = decisions[i]!
        const sep = i === 0 ? '' : ', '
        policies += sep + d.policy.policyItem
        limits += sep + limitItem(d)
      }
      reply.header('ratelimit-policy', policies)
      reply.header('ratelimit', limits)
    }
  }
}
