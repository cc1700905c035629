/**
 * Route rules (RATE_LIMIT_RULES_FILE): JSON, validated at start-up like the environment
 * (a bad file stops the gateway, naming the rule and the field) and at every reload (a
 * bad file is logged and the rules in force stay). The shape is checked by JSON Schema
 * (ajv); what a schema cannot say (rates, names, costs a limit could never admit) by the
 * code below.
 */
import type { FromSchema } from 'json-schema-to-ts'
import { readFileSync } from 'node:fs'
import { Ajv, type ErrorObject } from 'ajv'
import { normalizePath } from '../core/path.js'
import { ALGORITHMS, isWindow, type AlgorithmName, type LimitSpec } from '../core/policy.js'
import { parseRate, type RateSpec } from '../core/rate.js'
import { RATE_LIMIT_HEADER_NAMES } from '../core/headers.js'
import { CLAIM_RE, parseKeyBy, quotaName, RESERVED_POLICY_NAMES, type KeySource } from './parse.js'

export const MAX_RULES = 1000
export const MAX_LIMITS_PER_RULE = 8
export const MAX_COST = 1_000_000
/** Most requests an in-flight limit may allow at once. */
export const MAX_CONCURRENCY = 1_000_000

export interface RuleLimit {
  /** Shown in the headers and part of the store key; unique among all limits. */
  readonly name: string
  readonly algorithm: AlgorithmName
  readonly rate: RateSpec
  readonly burst: number
  readonly maxDelayMs: number
}

export interface Rule {
  readonly name: string
  /** Upper-case methods the rule matches (GET brings HEAD); undefined: every method. */
  readonly methods: readonly string[] | undefined
  /** Path prefix, in the normalised form requests are matched in (see limiter/path.ts). */
  readonly path: string
  /** The Host (lower case, no port): a name, or `*.example.com` for any name below it; undefined: any host. */
  readonly host: string | undefined
  /** Request headers (lower-case names) that must hold exactly these values; undefined: none. */
  readonly headers: ReadonlyArray<readonly [name: string, value: string]> | undefined
  /** Claims of the request's verified token that must hold exactly these values (numbers as text); undefined: none. */
  readonly claims: ReadonlyArray<readonly [name: string, value: string]> | undefined
  /** Whose the rule's own limits are; undefined: the client's (RATE_LIMIT_KEY_BY). */
  readonly keyBy: readonly KeySource[] | undefined
  /** What a matching request takes from every limit that applies to it. */
  readonly cost: number
  /** Only the global limit and the rule's own apply, not the client's default or tier limit. */
  readonly exclusive: boolean
  /** Matching requests are not limited at all. */
  readonly skip: boolean
  /** The rule's own limits are counted and reported but never refuse. */
  readonly dryRun: boolean
  readonly limits: readonly RuleLimit[]
  /** In-flight limit: at most this many matching requests of one subject (keyBy) in progress upstream. */
  readonly concurrency: number | undefined
  /**
   * Which responses keep their charge on the rule's own limits (`count`), or which give it
   * back (`refund`): both become the statuses that give it back. Undefined: all keep it.
   */
  readonly refundStatuses: ReadonlySet<number> | undefined
  /** `count.status` and `refund.status` as written (descriptions). */
  readonly count: ReadonlyArray<number | string> | undefined
  readonly refund: ReadonlyArray<number | string> | undefined
  /** The response header (lower case) the upstream reports the request's real cost in. */
  readonly costHeader: string | undefined
}

/** What rules are checked against: the limits the environment defines. */
export interface RulesContext {
  readonly algorithm: AlgorithmName
  readonly maxDelayMs: number
  /** The client limits (default and tiers) by name, and the global limit if any. */
  readonly clientLimits: ReadonlyMap<string, LimitSpec>
  readonly globalLimit: LimitSpec | undefined
  /**
   * MODE=decision: only the decision listener runs, which never sees a response, so a rule
   * may not ask for what happens after it (in-flight limits, counting by the response).
   */
  readonly decisionOnly: boolean
  /** Whether tokens are verified (JWT_*): a rule may key or match by a claim only then. */
  readonly jwt: boolean
}

/** What a rule may ask only of the inline gateway, and what to write instead for a decision service. */
const INLINE_ONLY: ReadonlyArray<[keyof RawRule, string]> = [
  ['concurrency', 'an in-flight limit needs the response\'s end (nginx: limit_conn)'],
  ['count', 'counting by the response needs the response (drop it: every request then counts)'],
  ['refund', 'counting by the response needs the response (drop it: every request then counts)'],
  ['costHeader', 'the upstream\'s cost header is in the response (use a fixed "cost")']
]

const NAME = { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' } as const
/** Up to 8 names (matching `names`) with the exact value each must hold: `{"x-plan": "free"}`. */
function exactValues<P extends string> (names: P) {
  return { type: 'object', minProperties: 1, maxProperties: 8, propertyNames: { pattern: names }, additionalProperties: { type: 'string', maxLength: 1024 } } as const
}
/** A host name (`api.example.com`), or `*.` and one (`*.example.com`: any name below it). */
const HOST_PATTERN = '^(\\*\\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$'
/** `{"status": [401, "5xx"]}`: statuses, and classes of them. */
const STATUSES = {
  type: 'object',
  additionalProperties: false,
  required: ['status'],
  properties: {
    status: {
      type: 'array',
      minItems: 1,
      maxItems: 100,
      items: { anyOf: [{ type: 'integer', minimum: 100, maximum: 599 }, { type: 'string', pattern: '^[1-5]xx$' }] }
    }
  }
} as const
const LIMIT_FIELDS = {
  rate: { type: 'string' },
  burst: { type: 'integer', minimum: 1, maximum: 1_000_000_000 },
  algorithm: { enum: ALGORITHMS },
  maxDelayMs: { type: 'integer', minimum: 0, maximum: 60_000 }
} as const
/** The rules file's JSON Schema (documented in the README's Policies section). */
export const RULES_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['rules'],
  properties: {
    rules: {
      type: 'array',
      maxItems: MAX_RULES,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'path'],
        properties: {
          name: NAME,
          methods: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', pattern: '^[A-Za-z]{1,20}$' } },
          path: { type: 'string', pattern: '^/', maxLength: 1024 },
          host: { type: 'string', pattern: HOST_PATTERN, maxLength: 253 },
          headers: exactValues('^[A-Za-z0-9!#$%&\'*+.^_`|~-]{1,64}$'),
          claims: exactValues(CLAIM_RE.source),
          keyBy: { type: 'string' },
          cost: { type: 'integer', minimum: 1, maximum: MAX_COST },
          exclusive: { type: 'boolean' },
          skip: { type: 'boolean' },
          dryRun: { type: 'boolean' },
          concurrency: { type: 'integer', minimum: 1, maximum: MAX_CONCURRENCY },
          count: STATUSES,
          refund: STATUSES,
          costHeader: { type: 'string', pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]{1,64}$' },
          ...LIMIT_FIELDS,
          limits: {
            type: 'array',
            minItems: 1,
            maxItems: MAX_LIMITS_PER_RULE,
            items: { type: 'object', additionalProperties: false, required: ['rate'], properties: { name: NAME, ...LIMIT_FIELDS } }
          }
        }
      }
    }
  }
} as const

const validate = new Ajv({ allErrors: false, strict: true }).compile(RULES_SCHEMA)

/** A rule and a limit as the file holds them: derived from RULES_SCHEMA, so they cannot drift from it. */
type RawRule = FromSchema<typeof RULES_SCHEMA>['rules'][number]
type RawLimit = NonNullable<RawRule['limits']>[number]

/** Response headers a rule may not take its cost from: the hop's own, and the limiter's. */
const NOT_A_COST_HEADER = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'content-type', 'upgrade', 'trailer', 'retry-after', ...RATE_LIMIT_HEADER_NAMES])

/** The statuses a list names (`"5xx"`: 500 to 599). */
function statusesOf (list: Array<number | string>): Set<number> {
  const out = new Set<number>()
  for (const item of list) {
    if (typeof item === 'number') out.add(item)
    else for (let s = Number(item[0]) * 100; s < Number(item[0]) * 100 + 100; s++) out.add(s)
  }
  return out
}

/** `rules[2]` → `rule 3 ("search")`: where in the file, in an operator's words. */
function where (data: { rules?: RawRule[] } | undefined, path: string): string {
  const m = /^\/rules\/(\d+)(.*)$/.exec(path)
  if (m === null) return path === '' ? 'the file' : path.slice(1)
  const rule = data?.rules?.[Number(m[1])]
  const name = typeof rule?.name === 'string' ? ` ("${rule.name}")` : ''
  return `rule ${Number(m[1]) + 1}${name}${m[2] ? ` ${m[2].slice(1).replace(/\//g, '.')}` : ''}`
}

function describe (data: unknown, e: ErrorObject): string {
  const at = where(data as { rules?: RawRule[] }, e.instancePath)
  if (e.keyword === 'additionalProperties') return `${at}: unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`
  if (e.keyword === 'enum') return `${at} must be one of ${(e.params as { allowedValues: string[] }).allowedValues.join(', ')}`
  return `${at} ${e.message}`
}

/** A limit's capacity: a bucket's burst, or a window's requests per period. */
export function capacityOf (algorithm: AlgorithmName, limit: LimitSpec): number {
  return isWindow(algorithm) ? limit.rate.count : limit.burst
}

/**
 * A window counts whole requests; throws if the rate does not give a whole number. Weeks
 * and months are calendar periods only a fixed window counts.
 */
export function checkWindowRate (algorithm: AlgorithmName, rate: RateSpec): void {
  if ((rate.calendar === 'week' || rate.calendar === 'month') && algorithm !== 'fixed-window') {
    throw new Error(`"${rate.text}" counts calendar ${rate.calendar}s, which only the fixed-window algorithm does (a rule's "algorithm": "fixed-window", or a quota)`)
  }
  if (isWindow(algorithm) && !Number.isInteger(rate.count)) {
    throw new Error(`${algorithm} counts whole requests per period; "${rate.text}" is not a whole number (write e.g. 0.5/s as 1/2s)`)
  }
}

/**
 * A request costing more than the whole capacity of a limit it is checked against could
 * never pass: such a rule is refused (naming the limit).
 */
export function checkCost (rule: Pick<Rule, 'cost' | 'exclusive' | 'limits'>, ctx: RulesContext): void {
  const applies: Array<[string, AlgorithmName, LimitSpec]> = rule.limits.map(l => [l.name, l.algorithm, l])
  if (ctx.globalLimit !== undefined) applies.push(['global', ctx.algorithm, ctx.globalLimit])
  if (!rule.exclusive) {
    for (const [name, limit] of ctx.clientLimits) {
      applies.push([name, ctx.algorithm, limit])
      if (limit.quota !== undefined) applies.push([quotaName(name === 'default' ? undefined : name), 'fixed-window', { rate: limit.quota, burst: limit.quota.count }])
    }
  }
  for (const [name, algorithm, limit] of applies) {
    const capacity = capacityOf(algorithm, limit)
    if (rule.cost > capacity) throw new Error(`cost ${rule.cost} is more than the capacity of limit "${name}" (${capacity}): such a request could never pass`)
  }
}

/** Whether `name` is a tier's quota (`<tier>-quota`). */
function isTierQuota (name: string, ctx: RulesContext): boolean {
  return name.endsWith('-quota') && ctx.clientLimits.get(name.slice(0, -'-quota'.length))?.quota !== undefined
}

/** A rate as `algorithm` counts it (a window's must be whole requests per period). */
export function parseRateFor (algorithm: AlgorithmName, text: string): RateSpec {
  const rate = parseRate(text)
  checkWindowRate(algorithm, rate)
  return rate
}

function parseLimit (raw: RawLimit, name: string, ctx: RulesContext): RuleLimit {
  const algorithm = raw.algorithm ?? ctx.algorithm
  const rate = parseRateFor(algorithm, raw.rate)
  return {
    name,
    algorithm,
    rate,
    // A bucket without a burst holds one period's worth of requests.
    burst: raw.burst ?? Math.max(1, Math.ceil(rate.count)),
    maxDelayMs: raw.maxDelayMs ?? ctx.maxDelayMs
  }
}

function parseRule (raw: RawRule, ctx: RulesContext, names: Set<string>): Rule {
  const hasOwn = raw.rate !== undefined || raw.limits !== undefined
  if (raw.rate !== undefined && raw.limits !== undefined) throw new Error('give either rate (one limit) or limits (several), not both')
  if (raw.rate === undefined && (raw.burst !== undefined || raw.algorithm !== undefined || raw.maxDelayMs !== undefined)) {
    throw new Error('burst, algorithm and maxDelayMs belong to a limit: add rate, or put them in limits')
  }
  if (raw.skip === true && (hasOwn || raw.cost !== undefined || raw.keyBy !== undefined || raw.exclusive !== undefined || raw.dryRun !== undefined || raw.concurrency !== undefined)) {
    throw new Error('a skip rule limits nothing: it takes no rate, limits, cost, keyBy, exclusive, dryRun or concurrency')
  }
  if (raw.skip === true && (raw.count !== undefined || raw.refund !== undefined || raw.costHeader !== undefined)) {
    throw new Error('a skip rule charges nothing: it takes no count, refund or costHeader')
  }
  if (!hasOwn && raw.dryRun !== undefined) throw new Error('dryRun applies to the rule\'s own limits: add rate or limits')
  if (raw.count !== undefined && raw.refund !== undefined) throw new Error('give either count (the statuses charged) or refund (the statuses given back), not both')
  if (!hasOwn && (raw.count !== undefined || raw.refund !== undefined)) throw new Error(`${raw.count !== undefined ? 'count' : 'refund'} applies to the rule's own limits: add rate or limits`)
  if (raw.costHeader !== undefined && NOT_A_COST_HEADER.has(raw.costHeader.toLowerCase())) throw new Error(`costHeader "${raw.costHeader}" is a header the gateway or HTTP itself sets; name a header of the upstream's own (e.g. x-request-cost)`)
  if (!hasOwn && raw.concurrency === undefined && raw.keyBy !== undefined) throw new Error('keyBy applies to the rule\'s own limits: add rate, limits or concurrency')
  if (!ctx.jwt && (raw.claims !== undefined || /(^|,)\s*jwt:/i.test(raw.keyBy ?? ''))) throw new Error(`${raw.claims !== undefined ? 'claims' : 'keyBy jwt:'} needs verified tokens: set JWT_JWKS_URL, JWT_PUBLIC_KEY or JWT_SECRET`)
  const concurrencyName = `${raw.name}-concurrency`
  if (raw.concurrency !== undefined) {
    if (names.has(concurrencyName) || ctx.clientLimits.has(concurrencyName)) throw new Error(`limit name "${concurrencyName}" (the rule's in-flight limit) is taken`)
    names.add(concurrencyName)
  }

  const rawLimits: RawLimit[] = raw.limits ?? (raw.rate !== undefined ? [{ ...raw, rate: raw.rate, name: raw.name }] : [])
  const limits = rawLimits.map((l, i) => {
    const name = l.name ?? (rawLimits.length === 1 ? raw.name : `${raw.name}-${i + 1}`)
    if (RESERVED_POLICY_NAMES.has(name) || ctx.clientLimits.has(name) || isTierQuota(name, ctx)) throw new Error(`limit name "${name}" is taken by a built-in limit, a tier or a tier's quota; name the limit`)
    if (names.has(name)) throw new Error(`limit name "${name}" is used by another rule; limits need unique names (they name the counters)`)
    names.add(name)
    try {
      return parseLimit(l, name, ctx)
    } catch (err) {
      throw new Error(`limit "${name}": ${(err as Error).message}`)
    }
  })

  const cost = raw.cost ?? 1
  checkCost({ cost, exclusive: raw.exclusive ?? false, limits }, ctx)

  return {
    name: raw.name,
    methods: raw.methods === undefined ? undefined : withHead(raw.methods.map(m => m.toUpperCase())),
    path: normalizePath(raw.path),
    host: raw.host?.toLowerCase(),
    headers: raw.headers === undefined ? undefined : Object.entries(raw.headers).map(([name, value]) => [name.toLowerCase(), value] as const),
    claims: raw.claims === undefined ? undefined : Object.entries(raw.claims),
    keyBy: raw.keyBy === undefined ? undefined : (() => {
      try {
        return parseKeyBy(raw.keyBy!)
      } catch (err) {
        throw new Error(`keyBy: ${(err as Error).message}`)
      }
    })(),
    cost,
    exclusive: raw.exclusive ?? false,
    skip: raw.skip ?? false,
    dryRun: raw.dryRun ?? false,
    limits,
    concurrency: raw.concurrency,
    refundStatuses: raw.refund !== undefined
      ? statusesOf(raw.refund.status)
      : raw.count !== undefined ? complementOf(statusesOf(raw.count.status)) : undefined,
    count: raw.count?.status,
    refund: raw.refund?.status,
    costHeader: raw.costHeader?.toLowerCase()
  }
}

/** Every status (100 to 599) not in `charged`. */
function complementOf (charged: Set<number>): Set<number> {
  const out = new Set<number>()
  for (let s = 100; s < 600; s++) if (!charged.has(s)) out.add(s)
  return out
}

/** GET implies HEAD: most servers answer HEAD with their GET handler, so it costs the same. */
function withHead (methods: string[]): string[] {
  return methods.includes('GET') && !methods.includes('HEAD') ? [...methods, 'HEAD'] : methods
}

/** Parses and validates the text of a rules file. Throws an Error saying where and what. */
export function parseRules (text: string, ctx: RulesContext): Rule[] {
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (err) {
    throw new Error(`not valid JSON: ${(err as Error).message}`)
  }
  if (!validate(data)) throw new Error(describe(data, validate.errors![0]!))
  const raw = (data as { rules: RawRule[] }).rules
  const names = new Set<string>()
  const ruleNames = new Set<string>()
  return raw.map((r, i) => {
    const at = `rule ${i + 1} ("${r.name}")`
    if (ruleNames.has(r.name)) throw new Error(`${at}: the name is used by another rule`)
    if (ctx.decisionOnly) {
      const inline = INLINE_ONLY.filter(([key]) => r[key] !== undefined)
      if (inline.length > 0) throw new Error(`${at}: MODE=decision never sees the response, so ${inline.map(([key, instead]) => `"${key}" cannot apply: ${instead}`).join('; ')}; or run the gateway inline (MODE=proxy)`)
    }
    ruleNames.add(r.name)
    try {
      return parseRule(r, ctx, names)
    } catch (err) {
      throw new Error(`${at}: ${(err as Error).message}`)
    }
  })
}

/**
 * Reads and parses a rules file; returns the text too, so a change is told from the very
 * text the rules came from (a second read could see a newer file and hide that change).
 */
export function loadRulesFile (path: string, ctx: RulesContext): { rules: Rule[], text: string } {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new Error(`cannot read "${path}": ${(err as Error).message}`)
  }
  return { rules: parseRules(text, ctx), text }
}
