/**
 * What the admin API changes at run time, layered over the environment: the default
 * limit, tiers' limits, the route rules, dry run, and an emergency factor scaling every
 * limit. Settings are plain JSON (they travel through Redis to every instance) and are
 * validated like the environment before anything changes.
 */
import type { FromSchema } from 'json-schema-to-ts'
import type { AlgorithmName, Config, LimitsConfig, LimitSpec, Rule } from '../config/index.js'
import { rulesContext } from '../config/index.js'
import { checkCost, parseRateFor, parseRules } from '../config/rules.js'
import { parseQuota } from '../config/parse.js'
import { periodText, type RateSpec } from '../core/rate.js'
import { isWindow } from '../core/policy.js'
import type { ManagedKey } from '../identity/identify.js'

/** The JSON Schema of RuntimeSettings (the admin API validates bodies with it). */
const LIMIT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['rate', 'burst'],
  properties: { rate: { type: 'string' }, burst: { type: 'integer', minimum: 1, maximum: 1_000_000_000 }, quota: { type: ['string', 'null'] } }
} as const
/**
 * An API key made through the admin API, as the settings keep it (by its client key,
 * `key:<digest>`): never the key itself. A rotated key keeps its id; the old digest stays
 * until `retiresAt`. Times are ISO 8601.
 */
const KEY_RECORD_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'name', 'tier', 'prefix', 'createdAt', 'expiresAt', 'retiresAt'],
  properties: {
    id: { type: 'string', pattern: '^k_[A-Za-z0-9_-]{8,32}$' },
    name: { type: 'string', minLength: 1, maxLength: 128 },
    tier: { type: ['string', 'null'] },
    prefix: { type: 'string', maxLength: 16 },
    createdAt: { type: 'string' },
    expiresAt: { type: ['string', 'null'] },
    retiresAt: { type: ['string', 'null'] }
  }
} as const
export type KeyRecord = FromSchema<typeof KEY_RECORD_SCHEMA>

/**
 * The settings' fields: `limit` replaces RATE_LIMIT_RATE / RATE_LIMIT_BURST (and the quota:
 * null none, absent the environment's); `tiers` the limits of tiers RATE_LIMIT_TIERS
 * defines; `rules` a rules document replacing the file's; `dryRun` RATE_LIMIT_DRY_RUN;
 * `factor` the emergency scale of every limit, above 0 and at most 1; `keyQuotas` per API
 * key (its client key, `key:<digest>`) a quota replacing its tier's (PUT /admin/keys/quota);
 * `apiKeys` the keys made through the admin API (POST /admin/keys), by client key.
 */
export const SETTINGS_SCHEMA = {
  limit: LIMIT_SCHEMA,
  tiers: { type: 'object', additionalProperties: LIMIT_SCHEMA },
  rules: { type: 'object', required: ['rules'], properties: { rules: { type: 'array' } } },
  dryRun: { type: 'boolean' },
  factor: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
  keyQuotas: { type: 'object', maxProperties: 100_000, additionalProperties: { type: 'string' } },
  apiKeys: { type: 'object', maxProperties: 100_000, additionalProperties: KEY_RECORD_SCHEMA }
} as const

/** The runtime settings, as the schema above takes them: derived from it, so they cannot drift. */
export type RuntimeSettings = FromSchema<{ type: 'object', additionalProperties: false, properties: typeof SETTINGS_SCHEMA }>

/** A limit as the admin API takes it. */
export type LimitInput = FromSchema<typeof LIMIT_SCHEMA>

/** The limits in force: what createLimits() builds from. */
export interface Effective {
  /** The limits in force: the environment's, changed by the settings and scaled by the factor. */
  readonly limits: LimitsConfig
  readonly rules: readonly Rule[]
  /** Emergency factor × adaptive factor. */
  readonly factor: number
  /** The API keys made through the admin API, by client key. */
  readonly keys: ReadonlyMap<string, ManagedKey>
}

/** An ISO 8601 time as epoch ms; null: never. Throws on anything else. */
function timeOf (where: string, text: string | null): number {
  if (text === null) return Infinity
  const ms = Date.parse(text)
  if (Number.isNaN(ms)) throw new Error(`${where}: "${text}" is not an ISO 8601 time`)
  return ms
}

/** The managed keys of the settings, checked against the tiers the environment defines. */
function managedKeys (records: Readonly<Record<string, KeyRecord>>, tiers: ReadonlyMap<string, unknown>): Map<string, ManagedKey> {
  const keys = new Map<string, ManagedKey>()
  for (const [client, r] of Object.entries(records)) {
    if (!client.startsWith('key:')) throw new Error(`apiKeys: "${client}" is not an API key's client key (key:<digest>)`)
    if (r.tier !== null && !tiers.has(r.tier)) throw new Error(`apiKeys.${client}: tier "${r.tier}" is not defined in RATE_LIMIT_TIERS`)
    timeOf(`apiKeys.${client}.createdAt`, r.createdAt)
    const validUntil = Math.min(timeOf(`apiKeys.${client}.expiresAt`, r.expiresAt), timeOf(`apiKeys.${client}.retiresAt`, r.retiresAt))
    keys.set(client, Object.freeze({ identity: Object.freeze({ key: client, source: 'api-key' as const, tier: r.tier ?? undefined }), validUntil }))
  }
  return keys
}


/** `value` × factor rounded down, never below `floor` unless it was already (no limit rises). */
function scaleDown (value: number, factor: number, floor: number): number {
  return Math.max(Math.min(floor, value), Math.floor(value * factor))
}

function scaleRate (rate: RateSpec, factor: number, floor: number, whole: boolean): RateSpec {
  // A window counts whole requests; a bucket's rate may be any positive number.
  const count = whole ? scaleDown(rate.count, factor, floor) : rate.count * factor
  return { ...rate, count, text: `${+count.toFixed(6)}/${periodText(rate.periodMs)}` }
}

/**
 * A limit scaled by `factor` (≤ 1), its capacity never below `floor`, the largest cost a
 * request charged to this limit asks (such requests would otherwise become impossible
 * instead of merely rarer), and never above what it was.
 */
function scale (limit: LimitSpec, algorithm: AlgorithmName, factor: number, floor: number): LimitSpec {
  if (factor === 1) return limit
  // A quota (sold by the month) is not scaled: only the rate is the upstream's protection.
  return {
    ...limit,
    rate: scaleRate(limit.rate, factor, floor, isWindow(algorithm)),
    burst: scaleDown(limit.burst, factor, floor)
  }
}

function parseLimit (input: LimitInput, algorithm: AlgorithmName, what: string, before: LimitSpec | undefined): LimitSpec {
  try {
    const limit = { rate: parseRateFor(algorithm, input.rate), burst: input.burst }
    const quota = input.quota === undefined ? before?.quota : input.quota === null ? undefined : parseQuotaIn(input.quota)
    return quota === undefined ? limit : { ...limit, quota }
  } catch (err) {
    throw new Error(`${what}: ${(err as Error).message}`)
  }
}

function parseQuotaIn (text: string): RateSpec {
  try {
    return parseQuota(text)
  } catch (err) {
    throw new Error(`quota: ${(err as Error).message}`)
  }
}

/**
 * The limits in force for these settings over the environment (`base`) and the rules
 * file's rules, scaled by the emergency and adaptive factors. Throws an Error saying
 * what is wrong when the settings do not validate.
 */
export function resolve (base: Config, fileRules: readonly Rule[], settings: RuntimeSettings, adaptiveFactor: number): Effective {
  const limit = settings.limit ? parseLimit(settings.limit, base.algorithm, 'limit', base.limit) : base.limit
  const tiers = new Map(base.tiers)
  for (const [name, input] of Object.entries(settings.tiers ?? {})) {
    if (!tiers.has(name)) throw new Error(`tiers: "${name}" is not a tier (defined: ${[...base.tiers.keys()].join(', ') || 'none'})`)
    tiers.set(name, parseLimit(input, base.algorithm, `tiers.${name}`, base.tiers.get(name)))
  }
  const keyQuotas = new Map<string, RateSpec>()
  for (const [key, text] of Object.entries(settings.keyQuotas ?? {})) {
    if (!key.startsWith('key:')) throw new Error(`keyQuotas: "${key}" is not an API key's client key (key:<digest>)`)
    try {
      keyQuotas.set(key, parseQuota(text))
    } catch (err) {
      throw new Error(`keyQuotas.${key}: ${(err as Error).message}`)
    }
  }
  const unscaled = { ...base, limit, tiers }
  let rules = fileRules
  try {
    if (settings.rules !== undefined) rules = parseRules(JSON.stringify(settings.rules), rulesContext(unscaled))
    else if (settings.limit !== undefined || settings.tiers !== undefined) {
      for (const r of rules) {
        try {
          checkCost(r, rulesContext(unscaled))
        } catch (err) {
          throw new Error(`rule "${r.name}" of the rules file: ${(err as Error).message}`)
        }
      }
    }
  } catch (err) {
    throw new Error(`rules: ${(err as Error).message}`)
  }
  const factor = (settings.factor ?? 1) * adaptiveFactor
  // Each limit's floor is the largest cost charged to it: a rule's own limits, its cost;
  // the client's limit (default or tier), the largest cost of a rule that does not replace
  // it (`exclusive`); the global limit, the largest cost of any rule.
  let clientFloor = 1
  let globalFloor = 1
  for (const r of rules) {
    if (r.skip) continue
    globalFloor = Math.max(globalFloor, r.cost)
    if (!r.exclusive) clientFloor = Math.max(clientFloor, r.cost)
  }
  const scaledTiers = new Map<string, LimitSpec>()
  for (const [name, t] of tiers) scaledTiers.set(name, scale(t, base.algorithm, factor, clientFloor))
  const limits: LimitsConfig = {
    mode: base.mode,
    algorithm: base.algorithm,
    maxDelayMs: base.maxDelayMs,
    keyBy: base.keyBy,
    jwt: base.jwt,
    apiKeyHeader: base.apiKeyHeader,
    apiKeys: base.apiKeys,
    ipv6Subnet: base.ipv6Subnet,
    concurrency: base.concurrency,
    timeZone: base.timeZone,
    keyQuotas,
    usage: base.usage,
    limit: scale(limit, base.algorithm, factor, clientFloor),
    tiers: scaledTiers,
    globalLimit: base.globalLimit && scale(base.globalLimit, base.algorithm, factor, globalFloor),
    dryRun: settings.dryRun ?? base.dryRun
  }
  const scaledRules = factor === 1
    ? rules
    : rules.map(r => ({ ...r, limits: r.limits.map(l => ({ ...l, ...scale(l, l.algorithm, factor, r.cost) })) }))
  return { limits, rules: scaledRules, factor, keys: managedKeys(settings.apiKeys ?? {}, base.tiers) }
}
