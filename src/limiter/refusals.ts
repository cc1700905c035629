/**
 * The limiter's refusals as written: 429 over a rate limit or an in-flight limit, 403 for a
 * banned client. Each goes straight to the client's response (never through fastify's
 * reply: on a flood they are most of the traffic), its body a problem+json rendered from
 * parts fixed once, with the refusal's own fields after it (policy, retryAfter).
 */
import type { FastifyReply } from 'fastify'
import type { HeadersMode } from '../config/index.js'
import type { ConcurrencyLimit } from '../core/policy.js'
import type { Decision } from '../core/decision.js'
import { BannedError, ConcurrencyLimitedError, PROBLEM_CONTENT_TYPE_UTF8, problem, RateLimitedError } from '../errors.js'
import { ceilSeconds, rateLimitHeaders, retryAfterSeconds } from './headers.js'

const RATE_LIMITED_CODE = new RateLimitedError().code
const CONCURRENCY_LIMITED_CODE = new ConcurrencyLimitedError().code
const BANNED = new BannedError()
/** `{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"Rate limit "` and its 403 twin, rendered once. */
const LIMITED_START = JSON.stringify(problem(429, 'Rate limit ')).slice(0, -2)
const BANNED_START = JSON.stringify(problem(403, BANNED.message)).slice(0, -2)
const CONCURRENCY_START = JSON.stringify(problem(429, 'In-flight limit ')).slice(0, -2)

/** `headers`, then Retry-After and the body's type and length. */
function complete (headers: string[], retryAfter: number, body: string): string[] {
  headers.push('retry-after', String(retryAfter), 'content-type', PROBLEM_CONTENT_TYPE_UTF8, 'content-length', String(Buffer.byteLength(body)))
  return headers
}

function write (reply: FastifyReply, status: number, headers: string[], body: string): void {
  reply.hijack()
  reply.raw.writeHead(status, headers)
  reply.raw.end(body)
}

function limitedBody (policy: string, retryAfter: number): string {
  return `${LIMITED_START}${JSON.stringify(`"${policy}" exceeded; retry in ${retryAfter} s.`).slice(1)},"code":"${RATE_LIMITED_CODE}","policy":${JSON.stringify(policy)},"retryAfter":${retryAfter}}`
}

/** A 429 by one limit as written, and what it was rendered from. */
interface Rendered {
  readonly policy: Decision['policy']
  readonly remaining: number
  readonly resetS: number
  readonly retryAfter: number
  readonly headers: string[]
  readonly body: string
}

export class Refusals {
  /**
   * The last 429 by a single limit, rendered whole: a client over its limit gets the same
   * answer until a second passes, so a flood is answered from it. Measured: 24.0 → 20.2 and
   * 23.5 → 20.4 µs CPU per refusal (rendering the headers and body, and Node flattening
   * them on write; wrk A/B, 8 rounds each, this VM, Node 24, 2026-12-06).
   */
  private last: Rendered | undefined

  /** Whether a 429 of an in-flight limit carries RateLimit-Policy (RATE_LIMIT_HEADERS draft or both). */
  private readonly draft: boolean

  /**
   * @param mode RATE_LIMIT_HEADERS
   * @param status a 429's status (the decision listener's DECISION_DENY_STATUS)
   */
  constructor (private readonly mode: HeadersMode, private readonly status: number) {
    this.draft = mode === 'both' || mode === 'draft'
  }

  /**
   * Over `d`, the enforced limit of `decisions` that waits longest; the rate-limit headers
   * speak for all of them, their legacy trio for `tightest`. A single limit's 429 is the
   * last one when it reads the same.
   */
  limited (reply: FastifyReply, d: Decision, decisions: readonly Decision[], tightest: Decision): void {
    const retryAfter = retryAfterSeconds(d.retryAfterMs)
    if (decisions.length > 1) {
      const body = limitedBody(d.policy.name, retryAfter)
      write(reply, this.status, complete(rateLimitHeaders(this.mode, decisions, tightest) ?? [], retryAfter, body), body)
      return
    }
    const resetS = ceilSeconds(d.resetMs)
    let last = this.last
    if (last === undefined || last.policy !== d.policy || last.retryAfter !== retryAfter || last.resetS !== resetS || last.remaining !== d.remaining) {
      const body = limitedBody(d.policy.name, retryAfter)
      const headers = complete(rateLimitHeaders(this.mode, decisions, d) ?? [], retryAfter, body)
      last = this.last = { policy: d.policy, remaining: d.remaining, resetS, retryAfter, headers, body }
    }
    write(reply, this.status, last.headers, last.body)
  }

  /** A 403 for a banned client, until the ban ends. */
  banned (reply: FastifyReply, d: Decision): void {
    const retryAfter = retryAfterSeconds(d.retryAfterMs)
    const body = `${BANNED_START}; retry in ${retryAfter} s.","code":"${BANNED.code}","retryAfter":${retryAfter}}`
    write(reply, 403, complete([], retryAfter, body), body)
  }

  /** An in-flight limit full: the draft's RateLimit-Policy with `qu="concurrent-requests"`; nothing was charged. */
  concurrency (reply: FastifyReply, limit: ConcurrencyLimit, retryAfter: number): void {
    const body = `${CONCURRENCY_START}${JSON.stringify(`"${limit.name}" reached: at most ${limit.max} requests in progress; retry in ${retryAfter} s.`).slice(1)},"code":"${CONCURRENCY_LIMITED_CODE}","policy":${JSON.stringify(limit.name)},"retryAfter":${retryAfter}}`
    write(reply, this.status, complete(this.draft ? ['ratelimit-policy', limit.policyItem] : [], retryAfter, body), body)
  }
}
