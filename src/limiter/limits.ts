/**
 * Which limits apply to a request: the global limit (if any), the client's own (its
 * tier's, else the default), and those of the first route rule matching the request's
 * method, path, host, headers and token claims. Everything that can be is built once per rules load: a request that
 * matches no rule, or a rule keyed like the client, allocates nothing here.
 */
import type { FastifyRequest } from 'fastify'
import type { Config, LimitsConfig, LimitSpec, Rule } from '../config/index.js'
import { createIdentify, NO_MANAGED_KEYS, type Identify, type Identity, type ManagedKeys } from '../identity/identify.js'
import { makeConcurrencyLimit, makePolicy, type ConcurrencyLimit, type Policy, type PolicySpec } from '../core/policy.js'
import { normalizePath } from '../core/path.js'
import type { CalendarUnit, RateSpec } from '../core/rate.js'
import { Calendar } from '../algorithms/calendar.js'
import { quotaName } from '../config/parse.js'

/** The limits of one request, what it costs, and whose each limit is. */
export interface Selection {
  readonly policies: readonly Policy[]
  readonly cost: number
  /** Per policy, the subject when it is not the client (see Store.consume). */
  readonly subjects: readonly string[] | undefined
  /** The rule that matched, if any (logs and metrics). */
  readonly rule: string | undefined
  /** The in-flight limits the request takes a slot in; undefined: none. */
  readonly slots: readonly ConcurrencyLimit[] | undefined
  /** Per slot, the subject when it is not the client (a rule keyed by another identity). */
  readonly slotSubjects: readonly string[] | undefined
  /** Index of the matched rule's first own policy (the client's own come before it); the length without a rule. */
  readonly ownFrom: number
  /** How the charge is settled once the response is known; undefined: it stands. */
  readonly settle: SettlePlan | undefined
}

/** A rule's settling of charges by the response (`count`, `refund`, `costHeader`). */
export interface SettlePlan {
  /** The rule's name (metrics). */
  readonly rule: string
  /** Index of the rule's first own policy in the selection: those `count`/`refund` settle. */
  readonly ownFrom: number
  /** Per status (0 to 599), 1 when that response gives the own limits' charge back. */
  readonly refunds: Uint8Array | undefined
  /** The response header (lower case) with the request's real cost, for every limit it paid. */
  readonly costHeader: string | undefined
}

/** A request matching a `skip` rule: not limited at all. */
export const SKIP: Selection = Object.freeze({ policies: Object.freeze([]), cost: 0, subjects: undefined, rule: undefined, slots: undefined, slotSubjects: undefined, ownFrom: 0, settle: undefined })

export interface SelectLimits {
  (request: FastifyRequest, identity: Identity): Selection
  /**
   * Every limit keyed by this client: the global one, its own, and the own limits of the
   * rules keyed like the client (admin inspection and reset).
   */
  policiesOf (identity: Identity): readonly Policy[]
  /** The in-flight limits keyed by this client: its own and the rules' (admin inspection). */
  slotsOf (identity: Identity): readonly ConcurrencyLimit[]
  /** Whether requests go in the usage ledger: USAGE_LEDGER, or any quota in force. */
  readonly ledger: boolean
}


interface CompiledRule {
  readonly methods: ReadonlySet<string> | undefined
  readonly path: string
  /** Host: the exact name, or `.example.com` (what a `*.example.com` name ends with); undefined: any. */
  readonly host: string | undefined
  readonly wildcardHost: boolean
  readonly headers: ReadonlyArray<readonly [string, string]> | undefined
  readonly claims: ReadonlyArray<readonly [string, string]> | undefined
  readonly skip: boolean
  /** Selection by tier ('' for clients without one). */
  readonly byTier: ReadonlyMap<string, Selection>
  /** When the rule's own limits belong to another identity than the client. */
  readonly identify: Identify | undefined
  /** The rule's keyBy, when `identify` is set. */
  readonly keyBy: Config['keyBy'] | undefined
  /** Whether the selection's last slot is the rule's own in-flight limit. */
  readonly ownSlot: boolean
  readonly slot: ConcurrencyLimit | undefined
}

/** A Host header's name: lower case, without its port (`[::1]:8000` → `[::1]`); '' when absent. */
export function hostOf (header: string | undefined): string {
  if (header === undefined) return ''
  const name = header.startsWith('[') ? header.slice(0, header.indexOf(']') + 1) : header.split(':', 1)[0]!
  return name.toLowerCase()
}

/** Every one of these headers holds exactly its value (a repeated header holds none). */
function headersMatch (request: FastifyRequest, headers: ReadonlyArray<readonly [string, string]>): boolean {
  for (let i = 0; i < headers.length; i++) if (request.headers[headers[i]![0]] !== headers[i]![1]) return false
  return true
}

/** The request's verified token holds every one of these claims with exactly its value (a number as its text). */
function claimsMatch (request: FastifyRequest, claims: ReadonlyArray<readonly [string, string]>): boolean {
  const token = request.gwToken
  if (token === null) return false
  for (let i = 0; i < claims.length; i++) {
    const value = token.claims[claims[i]![0]]
    if ((typeof value === 'number' ? String(value) : value) !== claims[i]![1]) return false
  }
  return true
}

const NO_ALLOWLIST = Object.freeze({ networks: Object.freeze([]), keys: new Set<string>() })

function sameSources (a: Config['keyBy'], b: Config['keyBy']): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

/**
 * Whether identify() with these sources can name this identity: a source it reaches (the
 * list is tried in order; `global` ends it, and when nothing else names the client, its IP
 * does), of the identity's kind (for a header, the same header).
 */
export function mayKey (sources: Config['keyBy'], identity: Identity): boolean {
  for (const source of sources) {
    if (source.kind === 'global') return identity.source === 'global'
    if (source.kind === 'ip') break
    if (names(source, identity)) return true
  }
  return identity.source === 'ip'
}

/** Whether identities like this one come from `source`: its kind, and for a header or a claim, the same one. */
function names (source: Config['keyBy'][number], identity: Identity): boolean {
  if (source.kind !== identity.source) return false
  if (source.kind === 'header') return identity.key.startsWith(`h:${source.name}:`)
  if (source.kind === 'jwt') return identity.key.startsWith(`jwt:${source.claim}:`)
  return true
}

/** What a rule settles by the response, if anything. */
function settlePlan (rule: Rule, ownFrom: number): SettlePlan | undefined {
  if (rule.refundStatuses === undefined && rule.costHeader === undefined) return undefined
  let refunds: Uint8Array | undefined
  if (rule.refundStatuses !== undefined) {
    refunds = new Uint8Array(600)
    for (const status of rule.refundStatuses) refunds[status] = 1
  }
  return Object.freeze({ rule: rule.name, ownFrom, refunds, costHeader: rule.costHeader })
}

/**
 * A selection with a key's own quota in place of its tier's (under the tier quota's name,
 * so the period's count carries over), or added after the client's rate when its tier has
 * none. A selection without the client's limits (an `exclusive` rule) stays as it is.
 */
function overrideQuota (chosen: Selection, tier: string | undefined, quota: RateSpec, calendarOf: (rate: RateSpec) => Calendar | undefined, dryRun: boolean): Selection {
  const name = quotaName(tier)
  const rateName = tier ?? 'default'
  const own = makePolicy(name, { rate: quota, burst: quota.count, algorithm: 'fixed-window', maxDelayMs: 0, dryRun, calendar: calendarOf(quota) })
  const policies = [...chosen.policies]
  const at = policies.findIndex((p, i) => i < chosen.ownFrom && p.name === name)
  let ownFrom = chosen.ownFrom
  if (at !== -1) {
    policies[at] = own
  } else {
    const rate = policies.findIndex((p, i) => i < chosen.ownFrom && p.name === rateName)
    if (rate === -1) return chosen
    policies.splice(rate + 1, 0, own)
    ownFrom++
  }
  return Object.freeze({ ...chosen, policies: Object.freeze(policies), ownFrom, settle: chosen.settle && Object.freeze({ ...chosen.settle, ownFrom }) })
}

export function createLimits (config: LimitsConfig, rules: readonly Rule[], keys: ManagedKeys = NO_MANAGED_KEYS): SelectLimits {
  // One calendar per unit: every limit counting months shares the current month.
  const calendars = new Map<CalendarUnit, Calendar>()
  const calendarOf = (rate: RateSpec): Calendar | undefined => {
    if (rate.calendar === undefined) return undefined
    let calendar = calendars.get(rate.calendar)
    if (calendar === undefined) calendars.set(rate.calendar, calendar = new Calendar(rate.calendar, config.timeZone))
    return calendar
  }
  const spec = (limit: LimitSpec): PolicySpec => ({ rate: limit.rate, burst: limit.burst, algorithm: config.algorithm, maxDelayMs: config.maxDelayMs, dryRun: config.dryRun, calendar: calendarOf(limit.rate) })
  const global = config.globalLimit ? makePolicy('global', spec(config.globalLimit), true) : undefined
  // A client's limits: its rate, and its quota if it has one (a fixed window, whatever the algorithm).
  const ofClient = (name: string, tier: string | undefined, limit: LimitSpec): Policy[] => {
    const rate = makePolicy(name, spec(limit))
    const quota = limit.quota
    if (quota === undefined) return [rate]
    return [rate, makePolicy(quotaName(tier), { rate: quota, burst: quota.count, algorithm: 'fixed-window', maxDelayMs: 0, dryRun: config.dryRun, calendar: calendarOf(quota) })]
  }
  const clientPolicies = new Map<string, Policy[]>([['', ofClient('default', undefined, config.limit)]])
  for (const [name, limit] of config.tiers) clientPolicies.set(name, ofClient(name, name, limit))
  // In-flight limits: everyone's, then the client's, then a rule's own.
  const globalSlot = config.concurrency.global === undefined ? undefined : makeConcurrencyLimit('global-concurrency', config.concurrency.global, true)
  const clientSlot = config.concurrency.perClient === undefined ? undefined : makeConcurrencyLimit('concurrency', config.concurrency.perClient)
  const slotSet = (withClient: boolean, own: ConcurrencyLimit | undefined): readonly ConcurrencyLimit[] | undefined => {
    const slots = [globalSlot, withClient ? clientSlot : undefined, own].filter((s): s is ConcurrencyLimit => s !== undefined)
    return slots.length === 0 ? undefined : Object.freeze(slots)
  }
  const selection = (policies: Policy[], cost: number, slots: readonly ConcurrencyLimit[] | undefined, rule?: Rule, ownCount = 0): Selection => {
    const all = Object.freeze(global ? [global, ...policies] : policies)
    const ownFrom = all.length - ownCount
    return Object.freeze({ policies: all, cost, subjects: undefined, rule: rule?.name, slots, slotSubjects: undefined, ownFrom, settle: rule === undefined ? undefined : settlePlan(rule, ownFrom) })
  }

  const baseSlots = slotSet(true, undefined)
  const base = new Map<string, Selection>()
  for (const [tier, ps] of clientPolicies) base.set(tier, selection(ps, 1, baseSlots))

  const compiled: CompiledRule[] = rules.map(rule => {
    const refundable = rule.refundStatuses !== undefined || rule.costHeader !== undefined
    const own = rule.limits.map(l => makePolicy(l.name, {
      algorithm: l.algorithm, rate: l.rate, burst: l.burst, maxDelayMs: l.maxDelayMs, dryRun: config.dryRun || rule.dryRun, refundable, calendar: calendarOf(l.rate)
    }))
    const ownSlot = rule.concurrency === undefined ? undefined : makeConcurrencyLimit(`${rule.name}-concurrency`, rule.concurrency)
    const slots = slotSet(!rule.exclusive, ownSlot)
    const byTier = new Map<string, Selection>()
    for (const [tier, ps] of clientPolicies) byTier.set(tier, selection(rule.exclusive ? own : [...ps, ...own], rule.cost, slots, rule, own.length))
    const foreign = rule.keyBy !== undefined && (own.length > 0 || ownSlot !== undefined) && !sameSources(rule.keyBy, config.keyBy)
    return {
      methods: rule.methods && new Set(rule.methods),
      path: rule.path,
      host: rule.host?.startsWith('*.') === true ? rule.host.slice(1) : rule.host,
      wildcardHost: rule.host?.startsWith('*.') === true,
      headers: rule.headers,
      claims: rule.claims,
      skip: rule.skip,
      byTier,
      identify: foreign ? createIdentify({ ...config, keyBy: rule.keyBy!, allowlist: NO_ALLOWLIST }, keys) : undefined,
      keyBy: foreign ? rule.keyBy : undefined,
      ownSlot: ownSlot !== undefined,
      slot: ownSlot
    }
  })

  // Per-key quotas (PUT /admin/keys/quota): each key's selections, built when first needed.
  const overrides = config.keyQuotas
  const overridden = new Map<string, Map<ReadonlyMap<string, Selection>, Selection>>()
  const withOverride = (identity: Identity, byTier: ReadonlyMap<string, Selection>, chosen: Selection): Selection => {
    let perKey = overridden.get(identity.key)
    if (perKey === undefined) overridden.set(identity.key, perKey = new Map())
    let selection = perKey.get(byTier)
    if (selection === undefined) perKey.set(byTier, selection = overrideQuota(chosen, identity.tier, overrides.get(identity.key)!, calendarOf, config.dryRun))
    return selection
  }

  const forClient = (identity: Identity, byTier: ReadonlyMap<string, Selection>): Selection => {
    // Every key's tier is defined (config refuses others), so the lookup always finds one.
    const chosen = identity.tier === undefined ? byTier.get('')! : byTier.get(identity.tier)!
    return overrides.size === 0 || !overrides.has(identity.key) ? chosen : withOverride(identity, byTier, chosen)
  }

  const ownOf = (r: CompiledRule): readonly Policy[] => {
    const chosen = r.byTier.get('')!
    return chosen.policies.slice(chosen.ownFrom)
  }
  const ruleOwn = compiled.filter(r => r.identify === undefined && !r.skip).flatMap(ownOf)
  const foreign = compiled.filter(r => r.identify !== undefined && !r.skip)
  const policiesOf = (identity: Identity): readonly Policy[] => [
    ...forClient(identity, base).policies,
    ...ruleOwn,
    ...foreign.filter(r => mayKey(r.keyBy!, identity)).flatMap(ownOf)
  ]

  const slotsOf = (identity: Identity): readonly ConcurrencyLimit[] => [
    ...(clientSlot === undefined ? [] : [clientSlot]),
    ...compiled.filter(r => r.slot !== undefined && (r.identify === undefined || mayKey(r.keyBy!, identity))).map(r => r.slot!)
  ]

  const ledger = config.usage.forced || config.limit.quota !== undefined || config.keyQuotas.size > 0 || [...config.tiers.values()].some(t => t.quota !== undefined)
  if (compiled.length === 0) return Object.assign((_request: FastifyRequest, identity: Identity) => forClient(identity, base), { policiesOf, slotsOf, ledger })

  return Object.assign(function select (request: FastifyRequest, identity: Identity): Selection {
    const path = normalizePath(request.url)
    const method = request.method
    // The request's host, read once and only when a rule asks for one.
    let host: string | undefined
    for (let i = 0; i < compiled.length; i++) {
      const rule = compiled[i]!
      if (rule.methods !== undefined && !rule.methods.has(method)) continue
      if (!path.startsWith(rule.path)) continue
      if (rule.host !== undefined) {
        host ??= hostOf(request.headers.host)
        if (rule.wildcardHost ? !(host.endsWith(rule.host) && host.length > rule.host.length) : host !== rule.host) continue
      }
      if (rule.headers !== undefined && !headersMatch(request, rule.headers)) continue
      if (rule.claims !== undefined && !claimsMatch(request, rule.claims)) continue
      if (rule.skip) return SKIP
      const chosen = forClient(identity, rule.byTier)
      if (rule.identify === undefined) return chosen
      const other = rule.identify(request).key
      const subjects: string[] = new Array(chosen.policies.length)
      for (let k = 0; k < subjects.length; k++) subjects[k] = k < chosen.ownFrom ? identity.key : other
      let slotSubjects: string[] | undefined
      if (rule.ownSlot) {
        const slots = chosen.slots!
        slotSubjects = new Array(slots.length)
        for (let k = 0; k < slots.length; k++) slotSubjects[k] = k === slots.length - 1 ? other : identity.key
      }
      return { policies: chosen.policies, cost: chosen.cost, subjects, rule: chosen.rule, slots: chosen.slots, slotSubjects, ownFrom: chosen.ownFrom, settle: chosen.settle }
    }
    return forClient(identity, base)
  }, { policiesOf, slotsOf, ledger })
}
