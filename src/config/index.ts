/**
 * Configuration: read once from the environment, validated with env-schema, parsed into a
 * typed, deeply frozen Config. No other module reads process.env.
 */
import { readFileSync } from 'node:fs'
import envSchema from 'env-schema'
import { ConfigError } from '../errors.js'
import { isTimeZone } from '../algorithms/calendar.js'
import type { AlgorithmName, BanSettings, LimitSpec } from '../core/policy.js'
import { parseRate, type RateSpec } from '../core/rate.js'
import { checkWindowRate, loadRulesFile, type Rule, type RulesContext } from './rules.js'
import { parseTracing, type TracingSettings } from './tracing.js'
import { parseRlsSettings, type RlsSettings } from './rls.js'
import { parseJwtSettings, type JwtSettings } from './jwt.js'
import { parseRedisSettings, type RedisSettings } from './redis.js'
import { field } from './field.js'
import { describeSchemaErrors, ENV_SCHEMA, type AjvError, type RawEnv } from './schema.js'
import {
  checkListenHost, isLoopback, parseAllowlist, parseApiKeys, parseDuration, parseHeaderName, parseQuota, parseTiers, parseWebhookUrl, parseKeyBy, parseTrustProxy, parseUpstreamUrl,
  type Allowlist, type KeySource
} from './parse.js'

export type { Allowlist, HostPort, KeySource } from './parse.js'
export type { RateSpec } from '../core/rate.js'
export type { Rule, RuleLimit, RulesContext } from './rules.js'
export type { TracingSettings } from './tracing.js'
export type { RedisSettings } from './redis.js'
export type { AlgorithmName, BanSettings, LimitSpec } from '../core/policy.js'
export * from './schema.js'

/**
 * Admin tokens this repository itself prints or once shipped (README, deploy/, examples):
 * refused at start, as is any placeholder of that shape. A unit test keeps every literal
 * token in the repository in this list.
 */
export const PUBLISHED_TOKENS: readonly string[] = ['change-me-to-a-long-secret', 'change-me-0123456789', 'replace-me-with-a-long-random-secret']
const PLACEHOLDER_TOKEN_RE = /^(change|replace)[-_]?me/i

function isPublishedToken (token: string): boolean {
  return PUBLISHED_TOKENS.includes(token) || PLACEHOLDER_TOKEN_RE.test(token)
}
export type HeadersMode = 'both' | 'draft' | 'legacy' | 'none'
export type StoreKind = 'memory' | 'redis'
export type StoreFailureMode = 'local' | 'open' | 'closed'

/** ALERT_*: a JSON POST when a client is limited more than `threshold` times in `windowMs`. */
export interface AlertSettings {
  readonly url: string
  readonly threshold: number
  readonly windowMs: number
  /** At most one alert per client per cooldown. */
  readonly cooldownMs: number
}

/** ADAPTIVE_*: scale every limit down while the upstream or the event loop struggles. */
export interface AdaptiveSettings {
  /** Upstream p95 latency above this is unhealthy. */
  readonly latencyMs: number
  /** Share of upstream 5xx (and failures) above this is unhealthy. */
  readonly errorRate: number
  /** The event loop late by more than this (worst in the interval) is unhealthy. */
  readonly eventLoopDelayMs: number
  /** The factor never goes below this. */
  readonly minFactor: number
  /** How often health is judged and the factor moved one step. */
  readonly intervalMs: number
}

/** Every setting of the gateway, typed and frozen. */
export interface Config {
  /** Client listener. */
  readonly port: number
  readonly host: string
  /** Where allowed requests go (no trailing slash); undefined with MODE=decision and no UPSTREAM_URL. */
  readonly upstreamUrl: string | undefined
  /** `proxy`: limit and forward (and answer DECISION_PORT if set); `decision`: only answer DECISION_PORT. */
  readonly mode: 'proxy' | 'decision'
  /** The decision listener (DECISION_PORT, DECISION_HOST); undefined: off. */
  readonly decision: { readonly port: number, readonly host: string, readonly denyStatus: number } | undefined
  /** Envoy's rate limit service over gRPC (RLS_PORT, RLS_HOST, RLS_CONFIG); undefined: off. */
  readonly rls: RlsSettings | undefined
  /** No upstream response headers by then → 504; also the body idle timeout. */
  readonly upstreamTimeoutMs: number
  /** Keep-alive connections the gateway holds open to the upstream. */
  readonly upstreamConnections: number
  /** A client must send its request headers within this (slowloris). */
  readonly headersTimeoutMs: number
  /** A client must send its whole request (headers and body) within this (slow bodies). */
  readonly requestTimeoutMs: number
  /** A client connection silent this long is closed. */
  readonly clientIdleTimeoutMs: number
  /** false: proxy everything, no limiting at all. */
  readonly rateLimitEnabled: boolean
  readonly algorithm: AlgorithmName
  /** Leaky bucket: the longest a request is held back before it is refused instead. */
  readonly maxDelayMs: number
  /** The per-client default limit (and its quota, RATE_LIMIT_QUOTA). */
  readonly limit: LimitSpec
  /** QUOTA_TIMEZONE: the IANA zone calendar days, weeks and months are counted in. */
  readonly timeZone: string
  /** Per API key (client key `key:<digest>`), a quota replacing its tier's: set at run time (PUT /admin/keys/quota). */
  readonly keyQuotas: ReadonlyMap<string, RateSpec>
  /**
   * The usage ledger: on with USAGE_LEDGER (`forced`) or any quota; IP clients too with
   * USAGE_LEDGER_IPS; each day kept USAGE_RETENTION_DAYS.
   */
  readonly usage: { readonly forced: boolean, readonly ips: boolean, readonly retentionDays: number }
  /** QUOTA_PATH: where key holders read their own quota on the client port; undefined: off. */
  readonly quotaPath: string | undefined
  /** Identity sources in order; the first present names the client (IP is the last resort). */
  readonly keyBy: readonly KeySource[]
  /** API_KEYS_STATE_FILE: where the keys made through the admin API are kept (one instance); undefined: in memory. */
  readonly apiKeysStateFile: string | undefined
  /** Verified JWT identity (JWT_*); undefined: no key set, no source may ask for a token. */
  readonly jwt: JwtSettings | undefined
  /** Lower-cased header carrying the API key. */
  readonly apiKeyHeader: string
  /** Known API keys → tier name (or undefined). */
  readonly apiKeys: ReadonlyMap<string, string | undefined>
  /** One limit for all clients together, or undefined. */
  readonly globalLimit: LimitSpec | undefined
  /**
   * In-flight limits (CONCURRENCY_LIMIT per client, GLOBAL_CONCURRENCY_LIMIT for everyone;
   * undefined: none) and how long a Redis slot lives without its instance renewing it.
   */
  readonly concurrency: { readonly perClient: number | undefined, readonly global: number | undefined, readonly leaseMs: number }
  /** Named tiers with their own limit; an API key's tier picks one. */
  readonly tiers: ReadonlyMap<string, LimitSpec>
  /** Clients never limited nor counted. */
  readonly allowlist: Allowlist
  /** Decide, count and send headers, but never refuse (would-be refusals are logged). */
  readonly dryRun: boolean
  /** Route rules file, reloaded on change and SIGHUP; undefined: no rules. */
  readonly rulesFile: string | undefined
  /** The rules as loaded at start-up (validated: a bad file stops the start). */
  readonly rules: readonly Rule[]
  /** The rules file's text those rules came from ('' without a file): reloads compare with it. */
  readonly rulesText: string
  /** How often the rules file is checked for changes; 0: only on SIGHUP. */
  readonly rulesPollMs: number
  /** Refuse clients with 403 after repeated refusals; undefined: off. */
  readonly bans: BanSettings | undefined
  /** Trusted proxy addresses/CIDRs for X-Forwarded-For; empty: trust nobody. */
  readonly trustProxy: readonly string[]
  /** IPv6 clients are keyed by this prefix length. */
  readonly ipv6Subnet: number
  readonly headers: HeadersMode
  readonly store: StoreKind
  /** Redis unreachable: limit locally, let everything through, or refuse with 503. */
  readonly storeFailureMode: StoreFailureMode
  readonly redis: RedisSettings
  /** Most clients (keys) the memory store tracks; least recently used are evicted. */
  readonly memoryStoreMaxKeys: number
  /**
   * Worker threads running the client path (WORKERS): 1, a number, or `auto` (the CPUs
   * the process may use, resolved at start by the server, which also checks the runtime).
   */
  readonly workers: number | 'auto'
  readonly adminPort: number
  readonly adminHost: string
  /** Bearer token for the admin API, metrics and dashboard; undefined: those are off. */
  readonly adminToken: string | undefined
  /** Rejections are logged aggregated, one line per client per interval. */
  readonly violationLogIntervalMs: number
  /** Where alerts are POSTed; undefined: no alerts. */
  readonly alerts: AlertSettings | undefined
  /** Load-adaptive limits; undefined: off. */
  readonly adaptive: AdaptiveSettings | undefined
  readonly logLevel: string
  /** Upper bound on draining in-flight requests at shutdown. */
  readonly shutdownTimeoutMs: number
  /** OpenTelemetry tracing (OTEL_* variables); undefined: off. */
  readonly tracing: TracingSettings | undefined
}

/**
 * The part of the Config that says which limits apply: what the runtime settings and the
 * adaptive factor change (control/settings.ts) and what the limiter is built from.
 */
export type LimitsConfig = Pick<Config, 'mode' | 'algorithm' | 'maxDelayMs' | 'dryRun' | 'limit' | 'timeZone' | 'keyQuotas' | 'usage' | 'globalLimit' | 'concurrency' | 'tiers' | 'keyBy' | 'apiKeyHeader' | 'apiKeys' | 'ipv6Subnet' | 'jwt'>

export function rulesContext (config: Pick<Config, 'algorithm' | 'maxDelayMs' | 'limit' | 'tiers' | 'globalLimit' | 'mode' | 'jwt'>): RulesContext {
  const clientLimits = new Map<string, LimitSpec>([['default', config.limit]])
  for (const [name, tier] of config.tiers) clientLimits.set(name, tier)
  return { algorithm: config.algorithm, maxDelayMs: config.maxDelayMs, clientLimits, globalLimit: config.globalLimit, decisionOnly: config.mode === 'decision', jwt: config.jwt !== undefined }
}

function deepFreeze<T> (value: T): T {
  if (value instanceof Set) return readOnly(value) as T
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value) && !(value instanceof Map) && !ArrayBuffer.isView(value)) {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}

/** A Map or Set that cannot be changed through its own methods (Object.freeze does not stop them). */
function readOnly<C extends Map<unknown, unknown> | Set<unknown>> (collection: C): C {
  const refuse = () => { throw new TypeError('Config is read-only') }
  for (const method of ['set', 'add', 'delete', 'clear'] as const) {
    if (method in collection) (collection as unknown as Record<string, unknown>)[method] = refuse
  }
  return Object.freeze(collection)
}

/**
 * Validates an environment (a plain record, normally process.env) and returns the Config.
 * Throws a ConfigError (code GW_CONFIG_INVALID) naming every bad variable.
 */
export function loadConfig (env: Record<string, string | undefined>): Config {
  // env-schema treats '' as a value; an empty variable means "unset" to an operator.
  const data: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') data[k] = v

  let raw: RawEnv
  try {
    raw = envSchema<RawEnv>({ schema: ENV_SCHEMA, data, env: false, dotenv: false })
  } catch (err) {
    // env-schema's validation errors carry ajv's list; that is the only way it fails here.
    throw new ConfigError(describeSchemaErrors((err as { errors: AjvError[] }).errors))
  }

  if (raw.UPSTREAM_URL === undefined && raw.MODE === 'proxy') throw new ConfigError('UPSTREAM_URL is required (an http:// or https:// URL; not with MODE=decision)')
  if (raw.MODE === 'decision' && raw.DECISION_PORT === undefined && raw.RLS_PORT === undefined) throw new ConfigError('DECISION_PORT or RLS_PORT is required with MODE=decision (the port other proxies ask on)')
  if (raw.MODE === 'decision' && !raw.RATE_LIMIT_ENABLED) throw new ConfigError('RATE_LIMIT_ENABLED=false leaves MODE=decision nothing to decide')
  if (raw.API_KEYS_STATE_FILE !== '' && raw.STORE === 'redis') throw new ConfigError('API_KEYS_STATE_FILE: with STORE=redis the keys made through the admin API live in Redis, shared by the fleet; unset it')
  if (raw.RLS_PORT !== undefined && !raw.RATE_LIMIT_ENABLED) throw new ConfigError('RATE_LIMIT_ENABLED=false leaves RLS_PORT nothing to decide')
  if (raw.RLS_PORT !== undefined && raw.WORKERS !== '1') throw new ConfigError(`WORKERS=${raw.WORKERS}: the rate limit service (RLS_PORT) runs in one thread; set WORKERS=1 with RLS_PORT`)
  const apiKeys = field('API_KEYS', () => parseApiKeys(raw.API_KEYS))
  if (raw.API_KEYS_FILE !== '') {
    field('API_KEYS_FILE', () => parseApiKeys(readFileSync(raw.API_KEYS_FILE, 'utf8'), apiKeys))
  }

  let globalLimit: LimitSpec | undefined
  if (raw.GLOBAL_RATE_LIMIT_RATE !== '') {
    const rate = field('GLOBAL_RATE_LIMIT_RATE', () => parseRate(raw.GLOBAL_RATE_LIMIT_RATE))
    // Without an explicit burst the global bucket holds one period's worth of requests.
    globalLimit = { rate, burst: raw.GLOBAL_RATE_LIMIT_BURST ?? Math.max(1, Math.ceil(rate.count)) }
  } else if (raw.GLOBAL_RATE_LIMIT_BURST !== undefined) {
    throw new ConfigError('GLOBAL_RATE_LIMIT_BURST is set but GLOBAL_RATE_LIMIT_RATE is not: set both, or neither to switch the global limit off')
  }

  const tiers = field('RATE_LIMIT_TIERS', () => parseTiers(raw.RATE_LIMIT_TIERS))
  for (const tier of new Set(apiKeys.values())) {
    if (tier !== undefined && !tiers.has(tier)) {
      throw new ConfigError(`API_KEYS/API_KEYS_FILE: tier "${tier}" is not defined in RATE_LIMIT_TIERS (${tiers.size > 0 ? `defined: ${[...tiers.keys()].join(', ')}` : 'none defined'})`)
    }
  }

  const algorithm = raw.RATE_LIMIT_ALGORITHM
  const limitRate = field('RATE_LIMIT_RATE', () => parseRate(raw.RATE_LIMIT_RATE))
  const quota = raw.RATE_LIMIT_QUOTA === '' ? undefined : field('RATE_LIMIT_QUOTA', () => parseQuota(raw.RATE_LIMIT_QUOTA))
  const limit: LimitSpec = quota === undefined ? { rate: limitRate, burst: raw.RATE_LIMIT_BURST } : { rate: limitRate, burst: raw.RATE_LIMIT_BURST, quota }
  if (!isTimeZone(raw.QUOTA_TIMEZONE)) throw new ConfigError(`QUOTA_TIMEZONE: "${raw.QUOTA_TIMEZONE}" is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)`)
  field('RATE_LIMIT_RATE', () => checkWindowRate(algorithm, limit.rate))
  if (globalLimit !== undefined) field('GLOBAL_RATE_LIMIT_RATE', () => checkWindowRate(algorithm, globalLimit.rate))
  for (const [name, tier] of tiers) field('RATE_LIMIT_TIERS', () => checkWindowRate(algorithm, tier.rate), name)

  const keyBy = field('RATE_LIMIT_KEY_BY', () => parseKeyBy(raw.RATE_LIMIT_KEY_BY))
  const jwt = parseJwtSettings(raw, keyBy)
  const maxDelayMs = raw.RATE_LIMIT_MAX_DELAY_MS
  const rulesFile = raw.RATE_LIMIT_RULES_FILE === '' ? undefined : raw.RATE_LIMIT_RULES_FILE
  const loaded = rulesFile === undefined ? { rules: [], text: '' } : field('RATE_LIMIT_RULES_FILE', () => loadRulesFile(rulesFile, rulesContext({ algorithm, maxDelayMs, limit, tiers, globalLimit, mode: raw.MODE, jwt })))

  // Every variable is validated, in use or not: a typo waiting for the day a feature is
  // switched on would surface then, far from the change that made it.
  const banWindowMs = field('RATE_LIMIT_BAN_WINDOW', () => parseDuration(raw.RATE_LIMIT_BAN_WINDOW))
  const banDurationMs = field('RATE_LIMIT_BAN_DURATION', () => parseDuration(raw.RATE_LIMIT_BAN_DURATION))
  const bans: BanSettings | undefined = raw.RATE_LIMIT_BAN_AFTER === 0 ? undefined : { after: raw.RATE_LIMIT_BAN_AFTER, windowMs: banWindowMs, durationMs: banDurationMs }

  if (raw.REQUEST_HEADERS_TIMEOUT_MS > raw.REQUEST_TIMEOUT_MS) {
    throw new ConfigError(`REQUEST_HEADERS_TIMEOUT_MS (${raw.REQUEST_HEADERS_TIMEOUT_MS}) must not exceed REQUEST_TIMEOUT_MS (${raw.REQUEST_TIMEOUT_MS}): the headers are part of the request`)
  }
  if (raw.MODE === 'decision') {
    for (const name of ['CONCURRENCY_LIMIT', 'GLOBAL_CONCURRENCY_LIMIT'] as const) {
      if (raw[name] > 0) throw new ConfigError(`${name}: MODE=decision never sees a response end, so an in-flight limit cannot apply; unset it (nginx: limit_conn) or run the gateway inline (MODE=proxy)`)
    }
  }
  for (const name of ['HOST', 'ADMIN_HOST', 'DECISION_HOST', 'RLS_HOST'] as const) field(name, () => checkListenHost(raw[name]), raw[name])
  // The admin API changes limits and shows client data: never reachable from beyond this
  // host without a token.
  if (raw.ADMIN_TOKEN !== undefined && isPublishedToken(raw.ADMIN_TOKEN)) {
    throw new ConfigError('ADMIN_TOKEN: this token is printed in the gateway\'s own README or manifests, so anyone can read it; make a secret of your own (e.g. openssl rand -hex 24)')
  }
  if (raw.ADMIN_TOKEN === undefined && !isLoopback(raw.ADMIN_HOST)) {
    throw new ConfigError(`ADMIN_HOST: "${raw.ADMIN_HOST}" is reachable from other hosts; set ADMIN_TOKEN (16+ characters) or bind 127.0.0.1`)
  }
  const alertWindowMs = field('ALERT_WINDOW', () => parseDuration(raw.ALERT_WINDOW))
  const alertCooldownMs = field('ALERT_COOLDOWN', () => parseDuration(raw.ALERT_COOLDOWN))
  const alerts: AlertSettings | undefined = raw.ALERT_WEBHOOK_URL === ''
    ? undefined
    : { url: field('ALERT_WEBHOOK_URL', () => parseWebhookUrl(raw.ALERT_WEBHOOK_URL)), threshold: raw.ALERT_THRESHOLD, windowMs: alertWindowMs, cooldownMs: alertCooldownMs }
  const adaptive: AdaptiveSettings | undefined = raw.ADAPTIVE_LIMITS
    ? {
        latencyMs: raw.ADAPTIVE_LATENCY_MS,
        errorRate: raw.ADAPTIVE_ERROR_RATE,
        eventLoopDelayMs: raw.ADAPTIVE_EVENT_LOOP_DELAY_MS,
        minFactor: raw.ADAPTIVE_MIN_FACTOR,
        intervalMs: raw.ADAPTIVE_INTERVAL_MS
      }
    : undefined

  const config: Config = {
    port: raw.PORT,
    host: raw.HOST,
    upstreamUrl: raw.UPSTREAM_URL === undefined ? undefined : field('UPSTREAM_URL', () => parseUpstreamUrl(raw.UPSTREAM_URL!)),
    mode: raw.MODE,
    decision: raw.DECISION_PORT === undefined ? undefined : { port: raw.DECISION_PORT, host: raw.DECISION_HOST, denyStatus: raw.DECISION_DENY_STATUS },
    rls: parseRlsSettings(raw),
    upstreamTimeoutMs: raw.UPSTREAM_TIMEOUT_MS,
    upstreamConnections: raw.UPSTREAM_CONNECTIONS,
    headersTimeoutMs: raw.REQUEST_HEADERS_TIMEOUT_MS,
    requestTimeoutMs: raw.REQUEST_TIMEOUT_MS,
    clientIdleTimeoutMs: raw.CLIENT_IDLE_TIMEOUT_MS,
    rateLimitEnabled: raw.RATE_LIMIT_ENABLED,
    algorithm,
    maxDelayMs,
    limit,
    timeZone: raw.QUOTA_TIMEZONE,
    keyQuotas: new Map(),
    usage: { forced: raw.USAGE_LEDGER, ips: raw.USAGE_LEDGER_IPS, retentionDays: raw.USAGE_RETENTION_DAYS },
    quotaPath: raw.QUOTA_PATH === '' || raw.QUOTA_PATH === '/' ? undefined : raw.QUOTA_PATH,
    keyBy,
    jwt,
    apiKeysStateFile: raw.API_KEYS_STATE_FILE === '' ? undefined : raw.API_KEYS_STATE_FILE,
    apiKeyHeader: field('API_KEY_HEADER', () => parseHeaderName(raw.API_KEY_HEADER)),
    apiKeys: readOnly(apiKeys),
    globalLimit,
    concurrency: {
      perClient: raw.CONCURRENCY_LIMIT > 0 ? raw.CONCURRENCY_LIMIT : undefined,
      global: raw.GLOBAL_CONCURRENCY_LIMIT > 0 ? raw.GLOBAL_CONCURRENCY_LIMIT : undefined,
      leaseMs: raw.CONCURRENCY_LEASE_MS
    },
    tiers: readOnly(tiers),
    allowlist: field('ALLOWLIST', () => parseAllowlist(raw.ALLOWLIST)),
    dryRun: raw.RATE_LIMIT_DRY_RUN,
    rulesFile,
    rules: loaded.rules,
    rulesText: loaded.text,
    rulesPollMs: raw.RATE_LIMIT_RULES_POLL_MS,
    bans,
    trustProxy: field('TRUST_PROXY', () => parseTrustProxy(raw.TRUST_PROXY)),
    ipv6Subnet: raw.IPV6_SUBNET,
    headers: raw.RATE_LIMIT_HEADERS,
    store: raw.STORE,
    storeFailureMode: raw.STORE_FAILURE_MODE,
    redis: parseRedisSettings(raw),
    memoryStoreMaxKeys: raw.MEMORY_STORE_MAX_KEYS,
    workers: raw.WORKERS === 'auto' ? 'auto' : Number(raw.WORKERS),
    adminPort: raw.ADMIN_PORT,
    adminHost: raw.ADMIN_HOST,
    adminToken: raw.ADMIN_TOKEN,
    violationLogIntervalMs: raw.VIOLATION_LOG_INTERVAL_MS,
    alerts,
    adaptive,
    logLevel: raw.LOG_LEVEL,
    shutdownTimeoutMs: raw.SHUTDOWN_TIMEOUT_MS,
    tracing: parseTracing(raw)
  }
  return deepFreeze(config)
}
