/**
 * Which limits apply to a request: the global limit (if any), the client's own (its
 * tier's, else the default), and those of the first route rule matching the request's
 * method and path. Everything that can be is built once per rules load: a request that
 * matches no rule, or a rule keyed like the client, allocates nothing here.
 */
import type { FastifyRequest } from 'fastify'
import type { Config, LimitsConfig, LimitSpec, Rule } from '../config/index.js'
import { createIdentify, type Identify, type Identity } from '../identity/identify.js'
import { makePolicy, type Policy, type PolicySpec } from '../core/policy.js'
import { normalizePath } from '../core/path.js'

/** The limits of one request, what it costs, and whose each limit is. */
export interface Selection {
  readonly policies: readonly Policy[]
  readonly cost: number
  /** Per policy, the subject when it is not the client (see Store.consume). */
  readonly subjects: readonly string[] | undefined
  /** The rule that matched, if any (logs and metrics). */
  readonly rule: string | undefined
}

/** A request matching a `skip` rule: not limited at all. */
export const SKIP: Selection = Object.freeze({ policies: Object.freeze([]), cost: 0, subjects: undefined, rule: undefined })

export interface SelectLimits {
  (request: FastifyRequest, identity: Identity): Selection
  /**
   * Every limit keyed by this client: the global one, its own, and the own limits of the
   * rules keyed like the client (admin inspection and reset).
   */
  policiesOf (identity: Identity): readonly Policy[]
}


interface CompiledRule {
  readonly methods: ReadonlySet<string> | undefined
  readonly path: string
  readonly skip: boolean
  /** Selection by tier ('' for clients without one). */
  readonly byTier: ReadonlyMap<string, Selection>
  /** When the rule's own limits belong to another identity than the client. */
  readonly identify: Identify | undefined
  /** The rule's keyBy, when `identify` is set. */
  readonly keyBy: Config['keyBy'] | undefined
  /** Index of the rule's first own policy in the selection. */
  readonly ownFrom: number
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
    if (source.kind === identity.source && (source.kind !== 'header' || identity.key.startsWith(`h:${source.name}:`))) return true
  }
  return identity.source === 'ip'
}

export function createLimits (config: LimitsConfig, rules: readonly Rule[]): SelectLimits {
  const spec = (limit: LimitSpec): PolicySpec => ({ ...limit, algorithm: config.algorithm, maxDelayMs: config.maxDelayMs, dryRun: config.dryRun })
  const global = config.globalLimit ? makePolicy('global', spec(config.globalLimit), true) : undefined
  const clientPolicies = new Map<string, Policy>([['', makePolicy('default', spec(config.limit))]])
  for (const [name, limit] of config.tiers) clientPolicies.set(name, makePolicy(name, spec(limit)))
  const selection = (policies: Policy[], cost: number, rule?: string): Selection =>
    Object.freeze({ policies: Object.freeze(global ? [global, ...policies] : policies), cost, subjects: undefined, rule })

  const base = new Map<string, Selection>()
  for (const [tier, p] of clientPolicies) base.set(tier, selection([p], 1))
  const byDefault = base.get('')!

  const compiled: CompiledRule[] = rules.map(rule => {
    const own = rule.limits.map(l => makePolicy(l.name, {
      algorithm: l.algorithm, rate: l.rate, burst: l.burst, maxDelayMs: l.maxDelayMs, dryRun: config.dryRun || rule.dryRun
    }))
    const byTier = new Map<string, Selection>()
    for (const [tier, p] of clientPolicies) byTier.set(tier, selection(rule.exclusive ? own : [p, ...own], rule.cost, rule.name))
    const foreign = rule.keyBy !== undefined && own.length > 0 && !sameSources(rule.keyBy, config.keyBy)
    return {
      methods: rule.methods && new Set(rule.methods),
      path: rule.path,
      skip: rule.skip,
      byTier,
      identify: foreign ? createIdentify({ ...config, keyBy: rule.keyBy!, allowlist: NO_ALLOWLIST }) : undefined,
      keyBy: foreign ? rule.keyBy : undefined,
      ownFrom: byDefault.policies.length - (rule.exclusive ? 1 : 0)
    }
  })

  const forClient = (identity: Identity, byTier: ReadonlyMap<string, Selection>): Selection =>
    // Every key's tier is defined (config refuses others), so the lookup always finds one.
    identity.tier === undefined ? byTier.get('')! : byTier.get(identity.tier)!

  const ownOf = (r: CompiledRule): readonly Policy[] => r.byTier.get('')!.policies.slice(r.ownFrom)
  const ruleOwn = compiled.filter(r => r.identify === undefined && !r.skip).flatMap(ownOf)
  const foreign = compiled.filter(r => r.identify !== undefined && !r.skip)
  const policiesOf = (identity: Identity): readonly Policy[] => [
    ...forClient(identity, base).policies,
    ...ruleOwn,
    ...foreign.filter(r => mayKey(r.keyBy!, identity)).flatMap(ownOf)
  ]

  if (compiled.length === 0) return Object.assign((_request: FastifyRequest, identity: Identity) => forClient(identity, base), { policiesOf })

  return Object.assign(function select (request: FastifyRequest, identity: Identity): Selection {
    const path = normalizePath(request.url)
    const method = request.method
    for (let i = 0; i < compiled.length; i++) {
      const rule = compiled[i]!
      if (rule.methods !== undefined && !rule.methods.has(method)) continue
      if (!path.startsWith(rule.path)) continue
      if (rule.skip) return SKIP
      const chosen = forClient(identity, rule.byTier)
      if (rule.identify === undefined) return chosen
      const other = rule.identify(request).key
      const subjects: string[] = new Array(chosen.policies.length)
      for (let k = 0; k < subjects.length; k++) subjects[k] = k < rule.ownFrom ? identity.key : other
      return { policies: chosen.policies, cost: chosen.cost, subjects, rule: chosen.rule }
    }
    return forClient(identity, base)
  }, { policiesOf })
}
