/**
 * The limiter: the gateway's one onRequest hook (request hygiene first, then the
 * decision), so a decision is taken before any body is read and a refused request never
 * reaches the upstream. It must reach the proxy's routes, so it is registered with
 * fastify-plugin (no encapsulation).
 *
 * Refusals (429, 403) are written straight to the client's response (refusals.ts). An
 * admitted request's rate-limit headers go to the proxy as a flat array
 * (request.gwHeaders), which it appends to the upstream's.
 */
import { randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { ConcurrencyLimit, SlotRequest } from '../core/policy.js'
import fp from 'fastify-plugin'
import type { HeadersMode } from '../config/index.js'
import { renderProblem, sendProblem, StoreUnavailableError, TokenInvalidError } from '../errors.js'
import { ALLOWLISTED, type Identify, type Identity } from '../identity/identify.js'
import { isPromise, type DecidingStore } from '../store/types.js'
import { mostRestrictive, type Decision } from '../core/decision.js'
import { rateLimitHeaders } from './headers.js'
import { Refusals } from './refusals.js'
import { refusedAsMalformed } from '../proxy/hygiene.js'
import { SKIP, type Selection, type SelectLimits, type SettlePlan } from './limits.js'
import { MAX_COST } from '../config/rules.js'
import type { Clock } from '../core/clock.js'
import { LedgerDays } from '../algorithms/calendar.js'
import type { UsageMark } from '../store/usage.js'
import type { QuotaEndpoint } from './quota-endpoint.js'
import type { ResponseSettlement } from '../core/request.js'
import { createThrottledLog } from '../log.js'
import type { TokenVerifier } from '../identity/jwt.js'
import type { CostIgnored, RequestOutcome, SettleKind } from '../observe/metrics.js'

/** What the limiter reports, for metrics, logs, top offenders and alerts. */
export interface LimiterObserver {
  /**
   * One report per request, when it is decided: its outcome, its client (the identity key,
   * never an API key; undefined when none was identified), and the deciding policy with
   * what it left (undefined when no policy decided). Metrics, the violation log, top
   * offenders, alerts and the request's trace span all listen behind this one call.
   */
  report (request: FastifyRequest, outcome: RequestOutcome, client: string | undefined, policy: string | undefined, remaining: number | undefined): void
  /** Seconds the decision took (identify, match, store). */
  decided (seconds: number): void
  /** Requests holding in-flight slots: one more (1) or one fewer (-1). */
  inFlight (delta: 1 | -1): void
  /** A charge settled by the response under `rule`: given back by status, or changed by the reported cost. */
  settled (rule: string, kind: SettleKind): void
  /** The upstream's cost header was missing or unusable: the up-front cost stands. */
  costIgnored (rule: string, reason: CostIgnored): void
}

/** parseCost()'s answers that are not a cost (and the header's absence). */
const INVALID = -1
const TOO_LARGE = -2
const ABSENT = -3

/** A reported cost: a whole number from 0 to MAX_COST; else INVALID or TOO_LARGE. */
export function parseCost (value: string): number {
  const text = value.trim()
  if (!/^\d{1,16}$/.test(text)) return INVALID
  const n = Number(text)
  return n > MAX_COST ? TOO_LARGE : n
}

/** What the limiter's settlements share: the store and the observer. */
interface Settler {
  readonly store: DecidingStore
  readonly observer: LimiterObserver
}

/**
 * One admitted request's settlement by its response (a rule with `count`, `refund` or
 * `costHeader`): the deltas per limit, sent to the store once. Built only for such rules.
 */
class Settlement implements ResponseSettlement {
  readonly costHeader: string | undefined
  constructor (
    private readonly settler: Settler,
    private readonly plan: SettlePlan,
    private readonly client: string,
    private readonly selection: Selection,
    private readonly decisions: readonly Decision[],
    private readonly chargedAt: number
  ) {
    this.costHeader = plan.costHeader
  }

  answered (status: number, reported: string | undefined): void {
    let cost = ABSENT
    if (this.plan.costHeader !== undefined) {
      if (reported !== undefined) cost = parseCost(reported)
      if (cost < 0) this.settler.observer.costIgnored(this.plan.rule, cost === ABSENT ? 'absent' : cost === TOO_LARGE ? 'too_large' : 'invalid')
    }
    this.apply(status, cost)
  }

  failed (status: number): void {
    this.apply(status, ABSENT)
  }

  /** The deltas: the own limits' charge back when the status says so; else the reported cost's difference (cost ≥ 0). */
  private apply (status: number, reported: number): void {
    const { plan, selection, decisions } = this
    const refund = plan.refunds !== undefined && plan.refunds[status] === 1
    const paid = selection.cost
    const extra = reported < 0 ? 0 : reported - paid
    if (!refund && extra === 0) return
    const n = selection.policies.length
    const deltas: number[] = new Array(n)
    let given = false
    let charged = false
    let costGiven = false
    for (let i = 0; i < n; i++) {
      // A limit that refused in dry run was not charged: nothing to settle.
      if (!decisions[i]!.allowed) {
        deltas[i] = 0
      } else if (refund && i >= plan.ownFrom) {
        deltas[i] = -paid
        given = true
      } else {
        deltas[i] = extra
        if (extra > 0) charged = true
        else if (extra < 0) costGiven = true
      }
    }
    if (!given && !charged && !costGiven) return
    const { observer, store } = this.settler
    if (given) observer.settled(plan.rule, 'refund')
    if (charged) observer.settled(plan.rule, 'post_charge')
    if (costGiven) observer.settled(plan.rule, 'cost_refund')
    store.settle(this.client, selection.policies, deltas, selection.subjects, this.chargedAt)
  }
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
  /** The decisions' clock: when a request was charged, for settling it. */
  clock: Clock
  /** The usage ledger: IP clients too, how long a day is kept, the zone days are counted in. */
  usage: { readonly ips: boolean, readonly retentionDays: number, readonly timeZone: string }
  /** QUOTA_PATH's endpoint, answered here instead of going upstream; undefined: off. */
  quota?: QuotaEndpoint
  /** The status of a request over a limit (default 429; the decision listener's DECISION_DENY_STATUS). */
  denyStatus?: number
  /**
   * Whether the limiter sees the response (default true): in-flight slots are released and
   * charges settled when it ends. The decision listener does not: there, in-flight limits
   * are not taken and `count`/`refund`/`costHeader` charges stand.
   */
  afterResponse?: boolean
  /** JWT_*: verifies the request's token before it is identified; undefined: tokens are off. */
  tokens?: TokenVerifier
}

const STORE_ERROR = new StoreUnavailableError()
const STORE_ERROR_BODY = renderProblem(STORE_ERROR.statusCode!, STORE_ERROR.message, STORE_ERROR.code)
const TOKEN_INVALID = new TokenInvalidError()
const TOKEN_INVALID_BODY = renderProblem(401, TOKEN_INVALID.message, TOKEN_INVALID.code)

/** The request holding in-flight slots, on its response: given back when it closes. */
const kSlots = Symbol('gateway.slots')
type Holding = ServerResponse & { [kSlots]?: { client: string, slots: SlotRequest, at: number } }

/** How much a finished request moves an in-flight limit's average hold (an EWMA's weight). */
const HOLD_WEIGHT = 0.2
/** Retry-After of an in-flight refusal: at least a second, at most this many. */
const MAX_CONCURRENCY_RETRY_S = 60

export const limiterPlugin = fp<LimiterOptions>(async function limiter (app, opts) {
  const { store, identify, limits, headers, observer } = opts
  const clock = opts.clock
  // The ledger's day, one mark per day; a line is kept the retention past its last write.
  const ledgerTtlMs = opts.usage.retentionDays * 86_400_000
  const days = new LedgerDays<UsageMark>(opts.usage.timeZone, day => Object.freeze({ day, ttlMs: ledgerTtlMs }))
  const ledgerIps = opts.usage.ips
  const quota = opts.quota
  const denyStatus = opts.denyStatus ?? 429
  const afterResponse = opts.afterResponse ?? true
  const settler: Settler = { store, observer }
  // Lease ids name a request's slots in a store shared by instances: unique per instance.
  const instance = randomBytes(6).toString('base64url')
  let leases = 0
  const refusals = new Refusals(headers, denyStatus)

  /**
   * How long requests hold each in-flight limit's slots, on average (ms; an EWMA over this
   * instance's finished requests), by limit name: bounded by the limits configured.
   */
  const holds = new Map<string, number>()

  /** The response ended, the client went away, the upstream failed: the slots come back. */
  function giveBack (this: Holding): void {
    const held = this[kSlots]!
    this[kSlots] = undefined
    observer.inFlight(-1)
    store.release(held.client, held.slots)
    const ms = performance.now() - held.at
    for (const limit of held.slots.limits) {
      const avg = holds.get(limit.name)
      holds.set(limit.name, avg === undefined ? ms : avg + HOLD_WEIGHT * (ms - avg))
    }
  }

  /**
   * A 429 for an in-flight limit, with the draft's RateLimit-Policy and
   * `qu="concurrent-requests"`; nothing was charged. Retry-After is the best estimate of
   * when a slot frees: the average hold over the slots (with `max` requests started at
   * random, one ends every hold/max on average), 1 s before any request has finished.
   */
  function refuseConcurrency (reply: FastifyReply, identity: Identity, limit: ConcurrencyLimit): void {
    observer.report(reply.request, 'concurrency_limited', identity.key, limit.name, 0)
    const hold = holds.get(limit.name)
    refusals.concurrency(reply, limit, hold === undefined ? 1 : Math.min(MAX_CONCURRENCY_RETRY_S, Math.max(1, Math.ceil(hold / limit.max / 1000))))
  }
  const storeErrorLog = createThrottledLog(app.log, 'warn', 'rate-limit store failed; answering 503')
  app.decorateRequest('gwHeaders', null)
  app.decorateRequest('gwSettle', null)
  app.decorateRequest('gwToken', null)
  const tokens = opts.tokens
  const tokensRequired = tokens?.required === true

  /** Acts on the store's decisions: refuses (429/403), holds (leaky bucket) or lets through. */
  function answer (reply: FastifyReply, identity: Identity, decisions: Decision[], started: number, done: HookHandlerDoneFunction, slots: SlotRequest | undefined, selection: Selection, chargedAt: number): void {
    observer.decided((performance.now() - started) / 1000)
    const first = decisions[0]!
    if (first.banned === true) {
      observer.report(reply.request, 'banned', identity.key, first.policy.name, first.remaining)
      refusals.banned(reply, first)
      return
    }
    if (first.concurrency !== undefined) {
      refuseConcurrency(reply, identity, first.concurrency)
      return
    }
    const tightest = mostRestrictive(decisions)
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
      observer.report(reply.request, 'limited', identity.key, refusal.policy.name, refusal.remaining)
      refusals.limited(reply, refusal, decisions, tightest)
      return
    }
    const limitHeaders = rateLimitHeaders(headers, decisions, tightest)
    if (limitHeaders !== undefined) reply.request.gwHeaders = limitHeaders
    // Charged up front; the response settles it (count, refund, costHeader).
    if (afterResponse && selection.settle !== undefined) reply.request.gwSettle = new Settlement(settler, selection.settle, identity.key, selection, decisions, chargedAt)
    // Admitted: the store took the request's in-flight slots; they come back when its
    // response closes, however it ends (done, the client gone, the upstream failed, a held
    // request dropped).
    if (slots !== undefined) {
      const res = reply.raw as Holding
      res[kSlots] = { client: identity.key, slots, at: performance.now() }
      res.once('close', giveBack)
      observer.inFlight(1)
    }
    // The client is a digest for API keys (Identity.key), never the key itself.
    if (wouldRefuse !== undefined) {
      observer.report(reply.request, 'dry_run_would_limit', identity.key, wouldRefuse.policy.name, wouldRefuse.remaining)
      done()
      return
    }
    // Reported as decided, delayed or not: counted and traced at once, never at release.
    observer.report(reply.request, delayMs > 0 ? 'delayed' : 'allowed', identity.key, tightest.policy.name, tightest.remaining)
    // Leaky bucket: held until its turn, so the upstream sees the leak rate.
    if (delayMs > 0) setTimeout(releaseHeld, delayMs, reply, done)
    else done()
  }

  /** A held request's turn: it goes upstream, unless its client has gone meanwhile. */
  function releaseHeld (reply: FastifyReply, done: HookHandlerDoneFunction): void {
    if (reply.raw.destroyed || reply.request.raw.socket.destroyed) reply.hijack()
    done()
  }

  function storeFailed (reply: FastifyReply, err: unknown): void {
    observer.report(reply.request, 'store_error', undefined, undefined, undefined)
    storeErrorLog(err)
    sendProblem(reply, 503, STORE_ERROR_BODY)
  }

  app.addHook('onRequest', function rateLimit (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    if (refusedAsMalformed(request, reply)) return
    if (quota !== undefined && quota.matches(request.url)) {
      quota.answer(request, reply)
      return
    }
    const started = performance.now()
    // The token first (JWT_*): identify() reads its claims. At once when seen before.
    if (tokens !== undefined) {
      const verifying = tokens.verify(request)
      if (verifying !== undefined) {
        verifying.then(() => { limit(request, reply, done, started) }, /* c8 ignore next -- verify() never rejects */ () => {})
        return
      }
    }
    limit(request, reply, done, started)
  })

  function limit (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction, started: number): void {
    const identity = identify(request)
    if (identity === ALLOWLISTED) {
      observer.report(request, 'allowlisted', undefined, undefined, undefined)
      done()
      return
    }
    // JWT_REQUIRED: a client the gateway does not allow in unlimited needs a valid token.
    if (tokensRequired && request.gwToken === null) {
      observer.report(request, 'token_invalid', undefined, undefined, undefined)
      reply.header('www-authenticate', 'Bearer error="invalid_token"')
      sendProblem(reply, 401, TOKEN_INVALID_BODY)
      return
    }
    const select = limits.current
    const selection = select(request, identity)
    if (selection === SKIP) {
      observer.report(request, 'skipped', identity.key, undefined, undefined)
      done()
      return
    }
    const slots: SlotRequest | undefined = !afterResponse || selection.slots === undefined
      ? undefined
      : { limits: selection.slots, subjects: selection.slotSubjects, lease: `${instance}:${++leases}` }
    let result: Decision[] | Promise<Decision[]>
    // Which window holds the charge, for a refund (settle.ts). On Redis the script decides on
    // TIME: a gateway clock off by d misplaces only charges within d of a window boundary,
    // and then gives back nothing, or from the next window's count.
    const recorded = select.ledger && (identity.source === 'api-key' || (ledgerIps && identity.source === 'ip'))
    // One clock read, only when a settlement or the ledger needs it.
    const now = recorded || selection.settle !== undefined ? clock.now() : 0
    const usage = recorded ? days.at(now) : undefined
    try {
      result = store.consume(identity.key, selection.policies, selection.cost, selection.subjects, slots, usage)
    } catch (err) {
      storeFailed(reply, err)
      return
    }
    if (isPromise(result)) {
      result.then(d => answer(reply, identity, d, started, done, slots, selection, now), err => storeFailed(reply, err))
    } else {
      answer(reply, identity, result, started, done, slots, selection, now)
    }
  }
}, { name: 'gateway-limiter', fastify: '5.x' })
