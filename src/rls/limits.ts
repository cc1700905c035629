/**
 * The rate limit service's limits: which configured limit a descriptor meets (as
 * envoyproxy/ratelimit looks it up), and each limit as a Policy the stores decide with.
 */
import { Calendar } from '../algorithms/calendar.js'
import { makePolicy, policyWindow, type Policy } from '../core/policy.js'
import type { RateSpec } from '../core/rate.js'
import { RLS_UNITS, type RlsAlgorithm, type RlsLimitSpec, type RlsNode, type RlsUnit } from '../config/rls.js'

export interface RlsEntry { key?: string, value?: string }

const UNIT_LETTER: Record<RlsUnit, string> = { second: 's', minute: 'm', hour: 'h', day: 'd', month: 'mo' }

/**
 * The limit a descriptor's entries meet in a domain, envoyproxy/ratelimit's lookup: at each
 * level `key_value` first, then a `key_prefix*` wildcard, then `key` alone (any value);
 * the limit is the one found at the descriptor's last entry; a level without a match, or
 * without levels below while entries remain, ends the search.
 */
export function matchLimit (root: RlsNode | undefined, entries: readonly RlsEntry[]): RlsLimitSpec | undefined {
  let level = root
  let found: RlsLimitSpec | undefined
  for (let i = 0; level !== undefined && i < entries.length; i++) {
    const key = entries[i]!.key!
    const full = `${key}_${entries[i]!.value ?? ''}`
    let next = level.children.get(full)
    if (next === undefined) {
      for (const w of level.wildcards) {
        if (full.startsWith(w.slice(0, -1))) {
          next = level.children.get(w)
          break
        }
      }
    }
    next ??= level.children.get(key)
    if (next?.limit !== undefined && i === entries.length - 1) found = next.limit
    level = next !== undefined && next.children.size > 0 ? next : undefined
  }
  return found
}

/** A name fit for a structured-field string (the RateLimit-Policy header): printable ASCII without quotes or backslashes. */
export function headerName (name: string): string {
  return name.replace(/[^\x20-\x7e]|["\\]/g, '_')
}

/**
 * The Policy of a limit: `requests_per_unit` per `unit_multiplier` units, by the limit's
 * algorithm; a month is a calendar month in `timeZone`. `requests_per_unit: 0` refuses
 * every request (envoyproxy/ratelimit's way to block a value): a fixed window of capacity 0.
 */
export function rlsPolicy (name: string, unit: RlsUnit, requestsPerUnit: number, multiplier: number, algorithm: RlsAlgorithm, burst: number, dryRun: boolean, timeZone: string): Policy {
  const periodMs = RLS_UNITS[unit] * multiplier
  const zero = requestsPerUnit === 0
  const rate: RateSpec = { count: zero ? 1 : requestsPerUnit, periodMs, text: `${requestsPerUnit}/${multiplier === 1 ? '' : multiplier}${UNIT_LETTER[unit]}` }
  const policy = makePolicy(headerName(name), {
    rate,
    burst: algorithm === 'token-bucket' ? burst : rate.count,
    algorithm: zero ? 'fixed-window' : algorithm,
    maxDelayMs: 0,
    dryRun,
    calendar: unit === 'month' ? new Calendar('month', timeZone) : undefined
  })
  if (!zero) return policy
  return Object.freeze({ ...policy, capacity: 0, policyItem: `"${policy.name}";q=0;w=${policyWindow(1, periodMs, periodMs).w}` })
}

/** The Policy of a configured limit (not an unlimited one), made once per limit. */
export class RlsPolicies {
  private readonly made = new WeakMap<RlsLimitSpec, Policy>()
  /** Limits a request supplies itself (a descriptor's `limit`), by rate: bounded. */
  private readonly overrides = new Map<string, Policy>()

  /** @param dryRun RATE_LIMIT_DRY_RUN: every limit a dry run, as `shadow_mode` makes one */
  constructor (private readonly timeZone: string, private readonly dryRun = false) {}

  of (spec: RlsLimitSpec): Policy {
    let p = this.made.get(spec)
    if (p === undefined) {
      p = rlsPolicy(spec.name ?? spec.path, spec.unit!, spec.requestsPerUnit, spec.unitMultiplier, spec.algorithm, spec.burst, spec.shadowMode || this.dryRun, this.timeZone)
      this.made.set(spec, p)
    }
    return p
  }

  /** A descriptor's own limit (Envoy's `limit` override): a fixed window, as envoyproxy/ratelimit counts it. */
  override (domain: string, requestsPerUnit: number, unit: RlsUnit): Policy {
    const key = `${domain}\0${requestsPerUnit}/${unit}`
    let p = this.overrides.get(key)
    if (p === undefined) {
      if (this.overrides.size >= MAX_OVERRIDES) this.overrides.clear()
      p = rlsPolicy(`${domain}.override.${requestsPerUnit}/${unit}`, unit, requestsPerUnit, 1, 'fixed-window', 1, this.dryRun, this.timeZone)
      this.overrides.set(key, p)
    }
    return p
  }
}

/** Distinct override rates remembered (Envoy takes them from route config: a handful). */
const MAX_OVERRIDES = 1024
