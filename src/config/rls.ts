/**
 * RLS_CONFIG: the rate limit service's limits in envoyproxy/ratelimit's YAML format, one
 * domain per file (a file, or every `*.yaml`/`*.yml` of a directory), validated as that
 * service validates it: unknown keys, an empty domain or key, a domain twice, a
 * descriptor twice at one level, a unit that is not one, a unit beside `unlimited`,
 * `replaces` naming nothing or itself are errors naming the file.
 *
 * This gateway's own keys under `rate_limit` (documented in the README):
 * - `algorithm`: fixed-window (the default, as envoyproxy/ratelimit counts),
 *   sliding-window or token-bucket;
 * - `unit_multiplier`: windows of N units (`unit: minute`, `unit_multiplier: 5`);
 * - `burst`: a token bucket's capacity (default: requests_per_unit);
 * - `unit: month`: a calendar month in QUOTA_TIMEZONE (a quota).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { ConfigError } from '../errors.js'
import { MAX_RATE_PER_SECOND } from '../core/rate.js'

/** Units as Envoy's RateLimitResponse.RateLimit.Unit names them, with their length (a month: 30 days). */
export const RLS_UNITS = { second: 1_000, minute: 60_000, hour: 3_600_000, day: 86_400_000, month: 2_592_000_000 } as const
export type RlsUnit = keyof typeof RLS_UNITS
export const RLS_ALGORITHMS = ['fixed-window', 'sliding-window', 'token-bucket'] as const
export type RlsAlgorithm = typeof RLS_ALGORITHMS[number]

/** One `rate_limit` of the tree. */
export interface RlsLimitSpec {
  /** Where it is: the domain, then each level's `key` or `key_value`, dot-joined (metrics, logs). */
  readonly path: string
  /** The path without the domain: the metrics' `descriptor` label. */
  readonly descriptor: string
  readonly unlimited: boolean
  /** Undefined only when unlimited. */
  readonly unit: RlsUnit | undefined
  readonly requestsPerUnit: number
  readonly unitMultiplier: number
  readonly algorithm: RlsAlgorithm
  readonly burst: number
  readonly shadowMode: boolean
  /** `rate_limit.name`: what `replaces` refers to, and the name in the rate-limit headers. */
  readonly name: string | undefined
  readonly replaces: readonly string[]
  readonly detailedMetric: boolean
}

/** A level of descriptors: its entries by `key_value` or `key`, and the keys ending in `*` (a value prefix). */
export interface RlsNode {
  readonly children: ReadonlyMap<string, RlsNode>
  readonly wildcards: readonly string[]
  readonly limit: RlsLimitSpec | undefined
}

export interface RlsConfig {
  /** The file or directory. */
  readonly source: string
  readonly domains: ReadonlyMap<string, RlsNode>
  /** The files' names and contents, to tell a change (reload). */
  readonly signature: string
}

const VALID_KEYS = new Set(['domain', 'key', 'value', 'descriptors', 'rate_limit', 'unit', 'requests_per_unit', 'unlimited', 'shadow_mode', 'name', 'replaces', 'detailed_metric', 'algorithm', 'unit_multiplier', 'burst'])
const LIMIT_KEYS = new Set(['unit', 'requests_per_unit', 'unlimited', 'name', 'replaces', 'algorithm', 'unit_multiplier', 'burst'])
const DESCRIPTOR_KEYS = new Set(['key', 'value', 'descriptors', 'rate_limit', 'shadow_mode', 'detailed_metric'])

class RlsConfigError extends Error {
  constructor (file: string, message: string) {
    super(`${file}: ${message}`)
  }
}

type Yaml = Record<string, unknown>

function isMap (v: unknown): v is Yaml {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Every key of the document is one the format knows (envoyproxy/ratelimit's check), at every depth. */
function checkKeys (file: string, v: unknown): void {
  if (Array.isArray(v)) {
    for (const e of v) {
      if (!isMap(e)) throw new RlsConfigError(file, `a list holds something other than a map: ${JSON.stringify(e)}`)
      checkKeys(file, e)
    }
  } else if (isMap(v)) {
    for (const [k, e] of Object.entries(v)) {
      if (!VALID_KEYS.has(k)) throw new RlsConfigError(file, `unknown key '${k}'`)
      checkKeys(file, e)
    }
  }
}

function text (file: string, where: string, v: unknown): string {
  if (v === undefined || v === null) return ''
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  throw new RlsConfigError(file, `${where}: expected a string`)
}

function flag (file: string, where: string, v: unknown): boolean {
  if (v === undefined || v === null) return false
  if (typeof v !== 'boolean') throw new RlsConfigError(file, `${where}: expected true or false`)
  return v
}

function count (file: string, where: string, v: unknown, min: number, fallback: number): number {
  if (v === undefined || v === null) return fallback
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 4_294_967_295) throw new RlsConfigError(file, `${where}: expected a whole number from ${min} to 4294967295`)
  return v
}

function parseLimit (file: string, path: string, descriptor: string, d: Yaml): RlsLimitSpec {
  const r = d.rate_limit
  if (!isMap(r)) throw new RlsConfigError(file, `${path}: rate_limit must be a map`)
  for (const k of Object.keys(r)) if (!LIMIT_KEYS.has(k)) throw new RlsConfigError(file, `${path}: '${k}' does not belong in rate_limit`)
  const unlimited = flag(file, `${path}.unlimited`, r.unlimited)
  const unitText = text(file, `${path}.unit`, r.unit).toLowerCase()
  const unit = Object.hasOwn(RLS_UNITS, unitText) ? unitText as RlsUnit : undefined
  if (unlimited && unitText !== '') throw new RlsConfigError(file, `${path}: should not specify rate limit unit when unlimited`)
  if (!unlimited && unit === undefined) throw new RlsConfigError(file, `${path}: invalid rate limit unit '${unitText}' (second, minute, hour, day or month)`)
  const requestsPerUnit = count(file, `${path}.requests_per_unit`, r.requests_per_unit, 0, 0)
  const unitMultiplier = count(file, `${path}.unit_multiplier`, r.unit_multiplier, 1, 1)
  const algorithmText = text(file, `${path}.algorithm`, r.algorithm) || 'fixed-window'
  if (!(RLS_ALGORITHMS as readonly string[]).includes(algorithmText)) throw new RlsConfigError(file, `${path}: algorithm '${algorithmText}' is not one of ${RLS_ALGORITHMS.join(', ')}`)
  const algorithm = algorithmText as RlsAlgorithm
  const burst = count(file, `${path}.burst`, r.burst, 1, Math.max(1, requestsPerUnit))
  if (r.burst !== undefined && algorithm !== 'token-bucket') throw new RlsConfigError(file, `${path}: burst is a token bucket's (algorithm: token-bucket)`)
  if (unit === 'month' && (algorithm !== 'fixed-window' || unitMultiplier !== 1)) throw new RlsConfigError(file, `${path}: a month is a calendar month, counted by a fixed window of one month`)
  if (unit !== undefined && requestsPerUnit * 1000 / (RLS_UNITS[unit] * unitMultiplier) > MAX_RATE_PER_SECOND) throw new RlsConfigError(file, `${path}: faster than the maximum of ${MAX_RATE_PER_SECOND}/s per limit`)
  const name = text(file, `${path}.name`, r.name)
  const replaces: string[] = []
  if (r.replaces !== undefined && r.replaces !== null) {
    if (!Array.isArray(r.replaces)) throw new RlsConfigError(file, `${path}: replaces must be a list of {name}`)
    for (const e of r.replaces as Yaml[]) {
      const n = text(file, `${path}.replaces`, e.name)
      if (n === '') throw new RlsConfigError(file, `${path}: should not have an empty replaces entry`)
      if (n === name) throw new RlsConfigError(file, `${path}: replaces should not contain name of same descriptor`)
      replaces.push(n)
    }
  }
  return Object.freeze({
    path,
    descriptor,
    unlimited,
    unit: unlimited ? undefined : unit,
    requestsPerUnit,
    unitMultiplier,
    algorithm,
    burst,
    shadowMode: flag(file, `${path}.shadow_mode`, d.shadow_mode),
    name: name === '' ? undefined : name,
    replaces: Object.freeze(replaces),
    detailedMetric: flag(file, `${path}.detailed_metric`, d.detailed_metric)
  })
}

function parseLevel (file: string, domain: string, parent: string, list: unknown): Map<string, RlsNode> {
  const children = new Map<string, RlsNode>()
  if (list === undefined || list === null) return children
  if (!Array.isArray(list)) throw new RlsConfigError(file, `${parent || domain}: descriptors must be a list`)
  for (const d of list as Yaml[]) {
    for (const k of Object.keys(d)) if (!DESCRIPTOR_KEYS.has(k)) throw new RlsConfigError(file, `${parent || domain}: '${k}' does not belong in a descriptor`)
    const key = text(file, 'key', d.key)
    if (key === '') throw new RlsConfigError(file, 'descriptor has empty key')
    const value = text(file, 'value', d.value)
    const entry = value === '' ? key : `${key}_${value}`
    const descriptor = parent === '' ? entry : `${parent}.${entry}`
    const path = `${domain}.${descriptor}`
    if (children.has(entry)) throw new RlsConfigError(file, `duplicate descriptor composite key '${path}'`)
    const limit = d.rate_limit === undefined || d.rate_limit === null ? undefined : parseLimit(file, path, descriptor, d)
    const below = parseLevel(file, domain, descriptor, d.descriptors)
    children.set(entry, Object.freeze({ children: below, wildcards: Object.freeze([...below.keys()].filter(k => k.endsWith('*'))), limit }))
  }
  return children
}

/** The domains of these documents (one domain each). */
export function parseRlsDocuments (docs: ReadonlyArray<{ name: string, text: string }>, source = ''): RlsConfig {
  const domains = new Map<string, RlsNode>()
  for (const { name, text: body } of docs) {
    let root: unknown
    try {
      root = parseYaml(body)
    } catch (err) {
      throw new RlsConfigError(name, `error loading config file: ${(err as Error).message.split('\n')[0]}`)
    }
    if (!isMap(root)) throw new RlsConfigError(name, 'expected a map with domain and descriptors')
    checkKeys(name, root)
    const domain = text(name, 'domain', root.domain)
    if (domain === '') throw new RlsConfigError(name, 'config file cannot have empty domain')
    if (domains.has(domain)) throw new RlsConfigError(name, `duplicate domain '${domain}' in config file`)
    const children = parseLevel(name, domain, '', root.descriptors)
    domains.set(domain, Object.freeze({ children, wildcards: Object.freeze([...children.keys()].filter(k => k.endsWith('*'))), limit: undefined }))
  }
  return Object.freeze({ source, domains, signature: rlsSignature(docs) })
}

/** The documents' names and contents in one string: equal when nothing changed. */
export function rlsSignature (docs: ReadonlyArray<{ name: string, text: string }>): string {
  return docs.map(d => `${d.name}\0${d.text}`).join('\0\0')
}

/** The documents at `source`: the file, or a directory's `*.yaml` and `*.yml`, by name. */
export function readRlsDocuments (source: string): Array<{ name: string, text: string }> {
  if (!statSync(source).isDirectory()) return [{ name: source, text: readFileSync(source, 'utf8') }]
  return readdirSync(source).filter(f => /\.ya?ml$/.test(f)).sort().map(f => ({ name: join(source, f), text: readFileSync(join(source, f), 'utf8') }))
}

export function loadRlsConfig (source: string): RlsConfig {
  return parseRlsDocuments(readRlsDocuments(source), source)
}

/** The rate limit service's listener and its limits. */
export interface RlsSettings {
  readonly port: number
  readonly host: string
  /** The limits as loaded at start-up (reloaded on change: rls/limits.ts). */
  readonly config: RlsConfig
}

/** RLS_PORT, RLS_HOST and RLS_CONFIG: both or neither of port and config; the config must load. */
export function parseRlsSettings (raw: { RLS_PORT?: number, RLS_HOST: string, RLS_CONFIG: string }): RlsSettings | undefined {
  if (raw.RLS_PORT === undefined) {
    if (raw.RLS_CONFIG !== '') throw new ConfigError('RLS_CONFIG is set but RLS_PORT is not: set RLS_PORT to answer Envoy\'s rate limit questions, or unset RLS_CONFIG')
    return undefined
  }
  if (raw.RLS_CONFIG === '') throw new ConfigError('RLS_CONFIG is required with RLS_PORT (a YAML file or a directory of them, in envoyproxy/ratelimit\'s format)')
  let config: RlsConfig
  try {
    config = loadRlsConfig(raw.RLS_CONFIG)
  } catch (err) {
    throw new ConfigError(`RLS_CONFIG: ${(err as Error).message}`)
  }
  return { port: raw.RLS_PORT, host: raw.RLS_HOST, config }
}
