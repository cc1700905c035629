/**
 * The environment's schema (env-schema, JSON Schema): every variable with its type,
 * default and what it accepts, and the named defaults with their units. index.ts
 * validates against it and turns the result into the typed Config.
 */
import type { FromSchema } from 'json-schema-to-ts'
import { ALGORITHMS } from '../core/policy.js'
import { TRACING_SCHEMA_PROPERTIES } from './tracing.js'

export const DEFAULT_PORT = 8000
export const DEFAULT_ADMIN_PORT = 9000
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 30_000

export const DEFAULT_UPSTREAM_CONNECTIONS = 128
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 30_000
/** How long a Redis in-flight slot outlives its instance's last renewal. */
export const DEFAULT_CONCURRENCY_LEASE_MS = 60_000
export const DEFAULT_MEMORY_STORE_MAX_KEYS = 500_000
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379'
export const DEFAULT_REDIS_KEY_PREFIX = 'rl:'
export const DEFAULT_REDIS_TIMEOUT_MS = 50
export const DEFAULT_REDIS_CONNECT_TIMEOUT_MS = 5_000
export const DEFAULT_REDIS_PROBE_INTERVAL_MS = 1_000
export const DEFAULT_MAX_DELAY_MS = 1_000
export const DEFAULT_RULES_POLL_MS = 1_000
export const DEFAULT_VIOLATION_LOG_INTERVAL_MS = 10_000
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000
export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000
export const DEFAULT_CLIENT_IDLE_TIMEOUT_MS = 60_000

/** The environment schema. `description` doubles as the "what it accepts" of an error. */
export const ENV_SCHEMA = {
  type: 'object',
  properties: {
    MODE: { type: 'string', enum: ['proxy', 'decision'], default: 'proxy', description: 'proxy (limit and forward) or decision (answer other proxies\' questions only)' },
    DECISION_PORT: { type: 'integer', minimum: 0, maximum: 65535, description: 'a TCP port 0-65535' },
    DECISION_HOST: { type: 'string', minLength: 1, default: '127.0.0.1', description: 'an address to listen on' },
    DECISION_DENY_STATUS: { type: 'integer', minimum: 400, maximum: 499, default: 429, description: 'a 4xx status, e.g. 429, or 401 for nginx auth_request' },
    RLS_PORT: { type: 'integer', minimum: 0, maximum: 65535, description: 'a TCP port 0-65535 (Envoy\'s rate limit service over gRPC)' },
    RLS_HOST: { type: 'string', minLength: 1, default: '127.0.0.1', description: 'an address to listen on' },
    RLS_CONFIG: { type: 'string', default: '', description: 'a YAML file or a directory of *.yaml files in envoyproxy/ratelimit\'s format' },
    PORT: { type: 'integer', minimum: 0, maximum: 65535, default: DEFAULT_PORT, description: 'a TCP port 0-65535' },
    HOST: { type: 'string', minLength: 1, default: '0.0.0.0', description: 'an address to listen on' },
    UPSTREAM_URL: { type: 'string', description: 'an http:// or https:// URL (required unless MODE=decision)' },
    UPSTREAM_TIMEOUT_MS: { type: 'integer', minimum: 1, maximum: 3_600_000, default: DEFAULT_UPSTREAM_TIMEOUT_MS, description: 'milliseconds, 1-3600000' },
    UPSTREAM_CONNECTIONS: { type: 'integer', minimum: 1, maximum: 65_536, default: DEFAULT_UPSTREAM_CONNECTIONS, description: 'a connection count, 1-65536' },
    REQUEST_HEADERS_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 600_000, default: DEFAULT_HEADERS_TIMEOUT_MS, description: 'milliseconds, 100-600000' },
    REQUEST_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 86_400_000, default: DEFAULT_REQUEST_TIMEOUT_MS, description: 'milliseconds, 100-86400000' },
    CLIENT_IDLE_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 3_600_000, default: DEFAULT_CLIENT_IDLE_TIMEOUT_MS, description: 'milliseconds, 100-3600000' },
    RATE_LIMIT_ENABLED: { type: 'boolean', default: true, description: 'true or false' },
    RATE_LIMIT_ALGORITHM: { type: 'string', enum: [...ALGORITHMS], default: 'token-bucket', description: ALGORITHMS.join(', ') },
    RATE_LIMIT_MAX_DELAY_MS: { type: 'integer', minimum: 0, maximum: 60_000, default: DEFAULT_MAX_DELAY_MS, description: 'milliseconds, 0-60000' },
    RATE_LIMIT_RULES_FILE: { type: 'string', default: '', description: 'a readable JSON rules file' },
    RATE_LIMIT_RULES_POLL_MS: { type: 'integer', minimum: 0, maximum: 3_600_000, default: DEFAULT_RULES_POLL_MS, description: 'milliseconds, 0-3600000 (0: reload on SIGHUP only)' },
    RATE_LIMIT_BAN_AFTER: { type: 'integer', minimum: 0, maximum: 1_000_000, default: 0, description: 'a number of refusals, 0-1000000 (0: no bans)' },
    RATE_LIMIT_BAN_WINDOW: { type: 'string', default: '1m', description: 'a duration such as 30s, 1m, 1h' },
    RATE_LIMIT_BAN_DURATION: { type: 'string', default: '15m', description: 'a duration such as 30s, 15m, 1h' },
    RATE_LIMIT_RATE: { type: 'string', default: '10/s', description: 'N/s, N/m, N/h or N/d, or per several units such as N/5m (N/w, N/mo: fixed-window only)' },
    RATE_LIMIT_BURST: { type: 'integer', minimum: 1, maximum: 1_000_000_000, default: 20, description: 'a whole number ≥ 1' },
    RATE_LIMIT_QUOTA: { type: 'string', default: '', description: 'N/d, N/w or N/mo (whole requests per calendar period), or empty for none' },
    QUOTA_TIMEZONE: { type: 'string', default: 'UTC', description: 'an IANA time zone such as Europe/Berlin' },
    USAGE_LEDGER: { type: 'boolean', default: false, description: 'true or false (on by itself when a quota is configured)' },
    USAGE_LEDGER_IPS: { type: 'boolean', default: false, description: 'true or false' },
    USAGE_RETENTION_DAYS: { type: 'integer', minimum: 1, maximum: 3660, default: 90, description: 'days, 1-3660' },
    QUOTA_PATH: { type: 'string', default: '', pattern: '^(/[A-Za-z0-9._~/-]*)?$', maxLength: 200, description: 'a path such as /_quota, or empty for off' },
    RATE_LIMIT_KEY_BY: { type: 'string', default: 'api-key,ip', description: 'ip, api-key, header:<name>, jwt:<claim>, global, comma-separated' },
    JWT_JWKS_URL: { type: 'string', default: '', description: 'an http(s) URL of a JSON Web Key Set' },
    JWT_JWKS_COOLDOWN_MS: { type: 'integer', minimum: 0, maximum: 3_600_000, default: 30_000, description: 'milliseconds, 0-3600000' },
    JWT_PUBLIC_KEY: { type: 'string', default: '', description: 'a PEM public key, or the path of a file holding one' },
    JWT_SECRET: { type: 'string', default: '', description: 'an HMAC secret of at least 32 bytes' },
    JWT_ISSUER: { type: 'string', default: '', description: 'the iss every token must carry' },
    JWT_AUDIENCE: { type: 'string', default: '', description: 'an aud every token must carry' },
    JWT_ALGORITHMS: { type: 'string', default: '', description: 'comma-separated JWS algorithms, e.g. RS256,ES256 (never none)' },
    JWT_CLOCK_SKEW_S: { type: 'integer', minimum: 0, maximum: 3600, default: 30, description: 'seconds, 0-3600' },
    JWT_HEADER: { type: 'string', default: 'authorization', description: 'a header name (authorization: Bearer <token>; another: the token alone)' },
    JWT_TIER_CLAIM: { type: 'string', default: '', description: 'a claim name' },
    JWT_REQUIRED: { type: 'boolean', default: false, description: 'true or false' },
    API_KEY_HEADER: { type: 'string', default: 'x-api-key', description: 'a header name' },
    API_KEYS: { type: 'string', default: '', description: 'key[:tier] items, comma-separated' },
    API_KEYS_FILE: { type: 'string', default: '', description: 'a readable file of key[:tier] lines' },
    API_KEYS_STATE_FILE: { type: 'string', default: '', description: 'a writable file path (the keys made through the admin API, one instance)' },
    GLOBAL_RATE_LIMIT_RATE: { type: 'string', default: '', description: 'N/s, N/m, N/h or N/d, or per several units such as N/5m, or empty for off' },
    GLOBAL_RATE_LIMIT_BURST: { type: 'integer', minimum: 1, maximum: 1_000_000_000, description: 'a whole number ≥ 1' },
    CONCURRENCY_LIMIT: { type: 'integer', minimum: 0, maximum: 1_000_000, default: 0, description: 'requests in progress per client, 0-1000000 (0: no limit)' },
    GLOBAL_CONCURRENCY_LIMIT: { type: 'integer', minimum: 0, maximum: 1_000_000_000, default: 0, description: 'requests in progress in all, 0-1000000000 (0: no limit)' },
    CONCURRENCY_LEASE_MS: { type: 'integer', minimum: 1000, maximum: 3_600_000, default: DEFAULT_CONCURRENCY_LEASE_MS, description: 'milliseconds, 1000-3600000' },
    TRUST_PROXY: { type: 'string', default: '', description: 'IP addresses or CIDRs, comma-separated' },
    RATE_LIMIT_TIERS: { type: 'string', default: '', description: 'name=RATE:BURST items, each with an optional +QUOTA, comma-separated' },
    ALLOWLIST: { type: 'string', default: '', description: 'IPs, CIDRs and key:<api-key> items, comma-separated' },
    RATE_LIMIT_DRY_RUN: { type: 'boolean', default: false, description: 'true or false' },
    IPV6_SUBNET: { type: 'integer', minimum: 1, maximum: 128, default: 64, description: 'a prefix length 1-128' },
    RATE_LIMIT_HEADERS: { type: 'string', enum: ['both', 'draft', 'legacy', 'none'], default: 'both', description: 'both, draft, legacy or none' },
    STORE: { type: 'string', enum: ['memory', 'redis'], default: 'memory', description: 'memory or redis' },
    STORE_FAILURE_MODE: { type: 'string', enum: ['local', 'open', 'closed'], default: 'local', description: 'local, open or closed' },
    REDIS_URL: { type: 'string', default: DEFAULT_REDIS_URL, description: 'a redis:// or rediss:// URL' },
    REDIS_CLUSTER_NODES: { type: 'string', default: '', description: 'host:port items, comma-separated' },
    REDIS_SENTINELS: { type: 'string', default: '', description: 'host:port items, comma-separated' },
    REDIS_SENTINEL_NAME: { type: 'string', default: '', description: 'the monitored primary\'s name' },
    REDIS_KEY_PREFIX: { type: 'string', default: DEFAULT_REDIS_KEY_PREFIX, pattern: '^[^{}\\s]*$', description: 'a key prefix without braces or spaces' },
    REDIS_TIMEOUT_MS: { type: 'integer', minimum: 1, maximum: 60_000, default: DEFAULT_REDIS_TIMEOUT_MS, description: 'milliseconds, 1-60000' },
    REDIS_CONNECT_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 600_000, default: DEFAULT_REDIS_CONNECT_TIMEOUT_MS, description: 'milliseconds, 100-600000' },
    REDIS_PROBE_INTERVAL_MS: { type: 'integer', minimum: 10, maximum: 600_000, default: DEFAULT_REDIS_PROBE_INTERVAL_MS, description: 'milliseconds, 10-600000' },
    MEMORY_STORE_MAX_KEYS: { type: 'integer', minimum: 1, maximum: 100_000_000, default: DEFAULT_MEMORY_STORE_MAX_KEYS, description: 'a whole number ≥ 1' },
    ADMIN_PORT: { type: 'integer', minimum: 0, maximum: 65535, default: DEFAULT_ADMIN_PORT, description: 'a TCP port 0-65535' },
    ADMIN_HOST: { type: 'string', minLength: 1, default: '127.0.0.1', description: 'an address to listen on' },
    ADMIN_TOKEN: { type: 'string', minLength: 16, maxLength: 512, pattern: '^[\\x21-\\x7e]+$', description: 'a secret of 16-512 printable characters without spaces' },
    VIOLATION_LOG_INTERVAL_MS: { type: 'integer', minimum: 100, maximum: 3_600_000, default: DEFAULT_VIOLATION_LOG_INTERVAL_MS, description: 'milliseconds, 100-3600000' },
    ALERT_WEBHOOK_URL: { type: 'string', default: '', description: 'an http:// or https:// URL, or empty for no alerts' },
    ALERT_THRESHOLD: { type: 'integer', minimum: 1, maximum: 100_000_000, default: 100, description: 'a number of refusals ≥ 1' },
    ALERT_WINDOW: { type: 'string', default: '1m', description: 'a duration such as 30s, 1m, 1h' },
    ALERT_COOLDOWN: { type: 'string', default: '15m', description: 'a duration such as 5m, 15m, 1h' },
    ADAPTIVE_LIMITS: { type: 'boolean', default: false, description: 'true or false' },
    ADAPTIVE_LATENCY_MS: { type: 'integer', minimum: 1, maximum: 600_000, default: 1000, description: 'milliseconds, 1-600000' },
    ADAPTIVE_ERROR_RATE: { type: 'number', minimum: 0, maximum: 1, default: 0.1, description: 'a share from 0 to 1' },
    ADAPTIVE_EVENT_LOOP_DELAY_MS: { type: 'integer', minimum: 1, maximum: 60_000, default: 200, description: 'milliseconds, 1-60000' },
    ADAPTIVE_MIN_FACTOR: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.25, description: 'a factor above 0, at most 1' },
    ADAPTIVE_INTERVAL_MS: { type: 'integer', minimum: 100, maximum: 600_000, default: 2000, description: 'milliseconds, 100-600000' },
    LOG_LEVEL: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info', description: 'fatal, error, warn, info, debug, trace or silent' },
    WORKERS: { type: 'string', default: '1', pattern: '^(auto|[1-9][0-9]{0,2})$', description: '1 (one thread), a number of worker threads up to 999, or auto (the CPUs this process may use)' },
    SHUTDOWN_TIMEOUT_MS: { type: 'integer', minimum: 0, maximum: 3_600_000, default: DEFAULT_SHUTDOWN_TIMEOUT_MS, description: 'milliseconds, 0-3600000' },
    ...TRACING_SCHEMA_PROPERTIES
  }
} as const

/** Every environment variable the gateway reads (documentation checks use it). */
export function variableNames (): string[] {
  return Object.keys(ENV_SCHEMA.properties)
}

/** The environment as validated (defaults applied, numbers and booleans coerced): the schema's own type. */
export type RawEnv = FromSchema<typeof ENV_SCHEMA>

export interface AjvError { instancePath: string, message: string }

/** Turns env-schema's ajv errors into one line per variable, each saying what it accepts. */
export function describeSchemaErrors (errors: AjvError[]): string {
  const props = ENV_SCHEMA.properties as Record<string, { description: string }>
  const lines = new Set<string>()
  for (const e of errors) {
    const name = e.instancePath.replace(/^\//, '')
    // Every property has a description; unknown variables are dropped, never reported.
    const accepts = props[name]!.description
    lines.add(`${name} ${e.message} (expected ${accepts})`)
  }
  return [...lines].join('; ')
}

