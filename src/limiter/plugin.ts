/**
 * The limiter: an onRequest hook, so the decision is taken before any body is read and a
 * rejected request never reaches the upstream. It must reach the proxy's routes, so it is
 * registered with fastify-plugin (no encapsulation).
 */
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import fp from 'fastify-plugin'
import type { HeadersMode } from '../config/index.js'
import { PROBLEM_CONTENT_TYPE, problem, RateLimitedError, StoreUnavailableError } from '../errors.js'
import { ALLOWLISTED, type Identify, type Identity } from '../identity/identify.js'
import { isPromise, type Store } from '../store/types.js'
import { mostRestrictive, type Decision } from './decision.js'
import { retryAfterSeconds, setRateLimitHeaders } from './headers.js'
import type { Policy } from './policy.js'
import { createThrottledLog } from '../log.js'

export interface LimiterOptions {
  store: Store
  identify: Identify
  /** The limits that apply to a client (the same array for the same client kind). */
  policiesFor: (identity: Identity) => readonly Policy[]
  headers: HeadersMode
  /** Decide and send headers, but never refuse; would-be refusals are logged. */
  dryRun: boolean
}

const RATE_LIMITED_CODE = new RateLimitedError().code
const STORE_ERROR = new StoreUnavailableError()
const STORE_ERROR_BODY = JSON.stringify(problem(STORE_ERROR.statusCode!, STORE_ERROR.message, STORE_ERROR.code))

export const limiterPlugin = fp<LimiterOptions>(async function limiter (app, opts) {
  const { store, identify, policiesFor, headers, dryRun } = opts
  const storeErrorLog = createThrottledLog(app.log, 'warn', 'rate-limit store failed; answering 503')
  const dryRunLog = createThrottledLog(app.log, 'warn', 'dry run: a request over its limit was let through')

  function decide (reply: FastifyReply, identity: Identity, decisions: Decision[], done: HookHandlerDoneFunction): void {
    const top = mostRestrictive(decisions)
    setRateLimitHeaders(reply, headers, decisions, top)
    if (top.allowed) {
      done()
      return
    }
    if (dryRun) {
      // The client is a digest for API keys (Identity.key), never the key itself.
      dryRunLog(undefined, { client: identity.key, policy: top.policy.name })
      done()
      return
    }
    const retryAfter = retryAfterSeconds(top.retryAfterMs)
    reply
      .code(429)
      .header('retry-after', retryAfter)
      .header('content-type', PROBLEM_CONTENT_TYPE)
      .send(JSON.stringify(problem(429,
        `Rate limit "${top.policy.name}" exceeded; retry in ${retryAfter} s.`,
        RATE_LIMITED_CODE, { policy: top.policy.name, retryAfter })))
  }

  function storeFailed (reply: FastifyReply, err: unknown): void {
    storeErrorLog(err)
    reply.code(503).header('content-type', PROBLEM_CONTENT_TYPE).send(STORE_ERROR_BODY)
  }

  app.addHook('onRequest', function rateLimit (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    const identity = identify(request)
    if (identity === ALLOWLISTED) {
      done()
      return
    }
    let result: Decision[] | Promise<Decision[]>
    try {
      result = store.consume(identity.key, policiesFor(identity), 1)
    } catch (err) {
      storeFailed(reply, err)
      return
    }
    if (isPromise(result)) {
      result.then(d => decide(reply, identity, d, done), err => storeFailed(reply, err))
    } else {
      decide(reply, identity, result, done)
    }
  })
}, { name: 'gateway-limiter', fastify: '5.x' })
