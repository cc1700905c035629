/**
 * The limiter: the gateway's one onRequest hook (request hygiene first, then the
 * decision), so a decision is taken before any body is read and a refused request never
 * reaches the upstream. It must reach the proxy's routes, so it is registered with
 * fastify-plugin (no encapsulation).
 *
 * Refusals (429, 403) are written straight to the client's response from parts rendered
 * once (content type, the problem body's fixed pieces), not through fastify's reply: on
 * a flood they are most of the traffic. An admitted request's rate-limit headers go to the
 * proxy as a flat array (request.gwHeaders), which it appends to the upstream's.
 */
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import fp from 'fastify-plugin'
import type { HeadersMode } from '../config/index.js'
import { BannedError, PROBLEM_CONTENT_TYPE_UTF8, problem, RateLimitedError, renderProblem, sendProblem, StoreUnavailableError } from '../errors.js'
import { ALLOWLISTED, type Identify, type Identity } from '../identity/identify.js'
import { isPromise, type DecidingStore } from '../store/types.js'
import { mostRestrictive, type Decision } from '../core/decision.js'
import { rateLimitHeaders, retryAfterSeconds } from './headers.js'
import { refusedAsMalformed } from '../proxy/hygiene.js'
import { SKIP, type SelectLimits } from './limits.js'
import { createThrottledLog } from '../log.js'
import type { RequestOutcome } from '../observe/metrics.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The limiter's response headers for an admitted request, [name, value, ...]; or null. */
    gwHeaders: string[] | null
  }
}

/** What the limiter reports, for metrics, logs, top offenders and alerts. */
export interface LimiterObserver {
  outcome (outcome: RequestOutcome): void
  /** Seconds the decision took (identify, match, store). */
  decided (seconds: number): void
  /** A refusal (or, in dry run, a would-be refusal) of `client` by `policy`. */
  refused (client: string, policy: string, dryRun: boolean): void
}

/** The limits in force; `current` is replaced whole when the rules are reloaded. */
export interface LimitsHolder {
  current: SelectLimits
}

export interface LimiterOptions {
  store: DecidingStore
  identify: Identify
  limits: LimitsHolder
  headers: HeadersMode
  observer: LimiterObserver
}

const RATE_LIMITED_CODE = new RateLimitedError().code
const BANNED = new BannedError()
const STORE_ERROR = new StoreUnavailableError()
const STORE_ERROR_BODY = renderProblem(STORE_ERROR.statusCode!, STORE_ERROR.message, STORE_ERROR.code)
/** `{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"Rate limit "` and its 403 twin, rendered once. */
const LIMITED_START = JSON.stringify(problem(429, 'Rate limit ')).slice(0, -2)
const BANNED_START = JSON.stringify(problem(403, BANNED.message)).slice(0, -2)

export const limiterPlugin = fp<LimiterOptions>(async function limiter (app, opts) {
  const { store, identify, limits, headers, observer } = opts
  const storeErrorLog = createThrottledLog(app.log, 'warn', 'rate-limit store failed; answering 503')
  app.decorateRequest('gwHeaders', null)

  function release (outcome: RequestOutcome, done: HookHandlerDoneFunction): void {
    observer.outcome(outcome)
    done()
  }

  /**
   * Answers a refusal: 403 for a banned client, 429 over a limit (with the rate-limit
   * headers); never goes upstream. The body is problem(status, detail, code) with the
   * refusal's own fields after it (policy, retryAfter), rendered from fixed parts.
   */
  function refuse (reply: FastifyReply, identity: Identity, outcome: 'banned' | 'limited', d: Decision, limitHeaders: string[] | undefined): void {
    observer.outcome(outcome)
    observer.refused(identity.key, d.policy.name, false)
    const retryAfter = retryAfterSeconds(d.retryAfterMs)
    const body = outcome === 'banned'
      ? `${BANNED_START}; retry in ${retryAfter} s.","code":"${BANNED.code}","retryAfter":${retryAfter}}`
      : `${LIMITED_START}${JSON.stringify(`"${d.policy.name}" exceeded; retry in ${retryAfter} s.`).slice(1)},"code":"${RATE_LIMITED_CODE}","policy":${JSON.stringify(d.policy.name)},"retryAfter":${retryAfter}}`
    const headers = limitHeaders ?? []
    headers.push('retry-after', String(retryAfter), 'content-type', PROBLEM_CONTENT_TYPE_UTF8, 'content-length', String(Buffer.byteLength(body)))
    reply.hijack()
    const res = reply.raw
    res.writeHead(outcome === 'banned' ? 403 : 429, headers)
    res.end(body)
  }

  /** Acts on the store's decisions: refuses (429/403), holds (leaky bucket) or lets through. */
  function answer (reply: FastifyReply, identity: Identity, decisions: Decision[], started: number, done: HookHandlerDoneFunction): void {
    observer.decided((performance.now() - started) / 1000)
    if (decisions[0]!.banned === true) {
      refuse(reply, identity, 'banned', decisions[0]!, undefined)
      return
    }
    const limitHeaders = rateLimitHeaders(headers, decisions, mostRestrictive(decisions))
    // Refused by the enforced limit that waits longest; a dry-run limit only reports.
    let refusal: Decision | undefined
    let wouldRefuse: Decision | undefined
    let delayMs = 0
    for (let i = 0; i < decisions.length; i++) {
      const d = decisions[i]!
      if (d.allowed) {
        if (d.delayMs > delayMs && !d.policy.dryRun) delayMs = d.delayMs
      } else if (d.policy.dryRun) {
        wouldRefuse = d
      } else if (refusal === undefined || d.retryAfterMs > refusal.retryAfterMs) {
        refusal = d
      }
    }
    if (refusal !== undefined) {
      refuse(reply, identity, 'limited', refusal, limitHeaders)
      return
    }
    if (limitHeaders !== undefined) reply.request.gwHeaders = limitHeaders
    // The client is a digest for API keys (Identity.key), never the key itself.
    if (wouldRefuse !== undefined) {
      observer.refused(identity.key, wouldRefuse.policy.name, true)
      release('dry_run_would_limit', done)
      return
    }
    // Leaky bucket: held until its turn, so the upstream sees the leak rate.
    if (delayMs > 0) setTimeout(releaseHeld, delayMs, reply, done)
    else release('allowed', done)
  }

  /** A held request's turn: it goes upstream, unless its client has gone meanwhile. */
  function releaseHeld (reply: FastifyReply, done: HookHandlerDoneFunction): void {
    if (reply.raw.destroyed || reply.request.raw.socket.destroyed) reply.hijack()
    release('delayed', done)
  }

  function storeFailed (reply: FastifyReply, err: unknown): void {
    observer.outcome('store_error')
    storeErrorLog(err)
    sendProblem(reply, 503, STORE_ERROR_BODY)
  }

  app.addHook('onRequest', function rateLimit (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    if (refusedAsMalformed(request, reply)) return
    const started = performance.now()
    const identity = identify(request)
    if (identity === ALLOWLISTED) {
      release('allowlisted', done)
      return
    }
    const selection = limits.current(request, identity)
    if (selection === SKIP) {
      release('skipped', done)
      return
    }
    let result: Decision[] | Promise<Decision[]>
    try {
      result = store.consume(identity.key, selection.policies, selection.cost, selection.subjects)
    } catch (err) {
      storeFailed(reply, err)
      return
    }
    if (isPromise(result)) {
      result.then(d => answer(reply, identity, d, started, done), err => storeFailed(reply, err))
    } else {
      answer(reply, identity, result, started, done)
    }
  })
}, { name: 'gateway-limiter', fastify: '5.x' })
