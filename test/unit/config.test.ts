import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../../src/config/index.js'

const BASE = { UPSTREAM_URL: 'http://127.0.0.1:8080' }
const dir = mkdtempSync(join(tmpdir(), 'gw-config-'))
const keysFile = join(dir, 'keys.txt')
const RULES_5M = join(dir, 'rules-5m.json')
writeFileSync(RULES_5M, JSON.stringify({ rules: [{ name: 'login', path: '/login', algorithm: 'fixed-window', rate: '3/5m' }] }))
writeFileSync(keysFile, '# partner keys\nfile-key-1:pro\nfile-key-2\n')

// [name, env, variable the error must name (or null: valid), pattern of what it accepts]
const BAD: Array<[string, Record<string, string | undefined>, string, RegExp]> = [
  ['missing UPSTREAM_URL', {}, 'UPSTREAM_URL', /required/],
  ['UPSTREAM_URL with ftp', { UPSTREAM_URL: 'ftp://x' }, 'UPSTREAM_URL', /http:\/\/ or https:\/\//],
  ['UPSTREAM_URL not a URL', { UPSTREAM_URL: 'not a url' }, 'UPSTREAM_URL', /http:\/\/ or https:\/\//],
  ['UPSTREAM_URL with credentials', { UPSTREAM_URL: 'http://u:p@x' }, 'UPSTREAM_URL', /credentials/],
  ['PORT=abc', { PORT: 'abc' }, 'PORT', /integer.*0-65535/],
  ['PORT too large', { PORT: '70000' }, 'PORT', /0-65535/],
  ['WORKERS=0', { WORKERS: '0' }, 'WORKERS', /1 \(one thread\), a number of worker threads up to 999, or auto/],
  ['WORKERS=many', { WORKERS: 'many' }, 'WORKERS', /or auto/],
  ['negative rate', { RATE_LIMIT_RATE: '-1/s' }, 'RATE_LIMIT_RATE', /N\/s, N\/m, N\/h, N\/d, N\/w or N\/mo/],
  ['zero rate', { RATE_LIMIT_RATE: '0/s' }, 'RATE_LIMIT_RATE', /positive/],
  ['unknown rate unit', { RATE_LIMIT_RATE: '10/fortnight' }, 'RATE_LIMIT_RATE', /N\/s/],
  ['rate above the maximum', { RATE_LIMIT_RATE: '100001/s' }, 'RATE_LIMIT_RATE', /maximum of 100000\/s/],
  ['rate without unit', { RATE_LIMIT_RATE: '10' }, 'RATE_LIMIT_RATE', /N\/s/],
  ['RATE_LIMIT_BURST=0', { RATE_LIMIT_BURST: '0' }, 'RATE_LIMIT_BURST', />= 1/],
  ['RATE_LIMIT_BURST fractional', { RATE_LIMIT_BURST: '2.5' }, 'RATE_LIMIT_BURST', /integer/],
  ['malformed TRUST_PROXY CIDR', { TRUST_PROXY: '10.0.0.0/33' }, 'TRUST_PROXY', /IP addresses or CIDRs/],
  ['TRUST_PROXY not an address', { TRUST_PROXY: 'proxy.local' }, 'TRUST_PROXY', /IP addresses or CIDRs/],
  ['TRUST_PROXY=true refused', { TRUST_PROXY: 'true' }, 'TRUST_PROXY', /trust every peer/],
  ['RATE_LIMIT_ENABLED=maybe', { RATE_LIMIT_ENABLED: 'maybe' }, 'RATE_LIMIT_ENABLED', /true or false/],
  ['unknown algorithm', { RATE_LIMIT_ALGORITHM: 'magic' }, 'RATE_LIMIT_ALGORITHM', /token-bucket/],
  ['unknown headers mode', { RATE_LIMIT_HEADERS: 'all' }, 'RATE_LIMIT_HEADERS', /both, draft, legacy or none/],
  ['unknown store', { STORE: 'mongo' }, 'STORE', /memory/],
  ['unknown key source', { RATE_LIMIT_KEY_BY: 'cookie' }, 'RATE_LIMIT_KEY_BY', /ip, api-key, header:<name>/],
  ['bad header source', { RATE_LIMIT_KEY_BY: 'header:bad name' }, 'RATE_LIMIT_KEY_BY', /not a valid header name/],
  ['empty key source list', { RATE_LIMIT_KEY_BY: ' , ' }, 'RATE_LIMIT_KEY_BY', /empty list/],
  ['UPSTREAM_URL with a query', { UPSTREAM_URL: 'http://web/?a=1' }, 'UPSTREAM_URL', /query string/],
  ['duplicate key source', { RATE_LIMIT_KEY_BY: 'ip,ip' }, 'RATE_LIMIT_KEY_BY', /twice/],
  ['IPV6_SUBNET out of range', { IPV6_SUBNET: '129' }, 'IPV6_SUBNET', /1-128/],
  ['API key with a space', { API_KEYS: 'a b:pro' }, 'API_KEYS', /printable ASCII/],
  ['API key with a bad tier', { API_KEYS: 'k1:p r o' }, 'API_KEYS', /printable|tier/],
  ['API key listed twice', { API_KEYS: 'k1,k1' }, 'API_KEYS', /twice/],
  ['missing API_KEYS_FILE', { API_KEYS_FILE: join(dir, 'nope.txt') }, 'API_KEYS_FILE', /ENOENT/],
  ['global burst without rate', { GLOBAL_RATE_LIMIT_BURST: '10' }, 'GLOBAL_RATE_LIMIT_BURST', /GLOBAL_RATE_LIMIT_RATE/],
  ['bad global rate', { GLOBAL_RATE_LIMIT_RATE: 'fast' }, 'GLOBAL_RATE_LIMIT_RATE', /N\/s/],
  ['bad API_KEY_HEADER', { API_KEY_HEADER: 'x key' }, 'API_KEY_HEADER', /header name/],
  ['bad REDIS_URL scheme', { REDIS_URL: 'http://x:6379' }, 'REDIS_URL', /starting with redis:\/\/ or rediss:\/\//],
  ['REDIS_URL not a URL', { REDIS_URL: 'nope' }, 'REDIS_URL', /redis:\/\//],
  ['REDIS_URL bad database', { REDIS_URL: 'redis://x:6379/abc' }, 'REDIS_URL', /database/],
  ['bad cluster node', { REDIS_CLUSTER_NODES: 'a:1,b' }, 'REDIS_CLUSTER_NODES', /host:port/],
  ['cluster node port 0', { REDIS_CLUSTER_NODES: 'a:0' }, 'REDIS_CLUSTER_NODES', /host:port/],
  ['cluster and sentinel', { REDIS_CLUSTER_NODES: 'a:1', REDIS_SENTINELS: 'b:2', REDIS_SENTINEL_NAME: 'm' }, 'REDIS_SENTINELS', /choose/],
  ['sentinels without a name', { REDIS_SENTINELS: 'b:26379' }, 'REDIS_SENTINEL_NAME', /required/],
  ['key prefix with a brace', { REDIS_KEY_PREFIX: 'a{b' }, 'REDIS_KEY_PREFIX', /without braces/],
  ['unknown failure mode', { STORE_FAILURE_MODE: 'maybe' }, 'STORE_FAILURE_MODE', /local, open or closed/],
  ['REDIS_TIMEOUT_MS=0', { REDIS_TIMEOUT_MS: '0' }, 'REDIS_TIMEOUT_MS', /1-60000/],
  ['tier without burst', { RATE_LIMIT_TIERS: 'free=10/s' }, 'RATE_LIMIT_TIERS', /name=RATE:BURST/],
  ['tier with a bad rate', { RATE_LIMIT_TIERS: 'free=fast:10' }, 'RATE_LIMIT_TIERS', /N\/s/],
  ['tier with burst 0', { RATE_LIMIT_TIERS: 'free=10/s:0' }, 'RATE_LIMIT_TIERS', /burst/],
  ['tier defined twice', { RATE_LIMIT_TIERS: 'a=1/s:1,a=2/s:2' }, 'RATE_LIMIT_TIERS', /twice/],
  ['tier named like a built-in limit', { RATE_LIMIT_TIERS: 'default=1/s:1' }, 'RATE_LIMIT_TIERS', /built-in/],
  ['API key with an undefined tier', { API_KEYS: 'k1:gold', RATE_LIMIT_TIERS: 'pro=1/s:1' }, 'API_KEYS', /"gold" is not defined in RATE_LIMIT_TIERS \(defined: pro\)/],
  ['API key with a tier but no tiers at all', { API_KEYS: 'k1:gold' }, 'API_KEYS', /"gold" is not defined in RATE_LIMIT_TIERS \(none defined\)/],
  ['allowlist item neither address nor key', { ALLOWLIST: '10.0.0.0/8,internal' }, 'ALLOWLIST', /key:<api-key>/],
  ['allowlist bad CIDR', { ALLOWLIST: '10.0.0.0/40' }, 'ALLOWLIST', /neither/],
  ['allowlist empty key', { ALLOWLIST: 'key:' }, 'ALLOWLIST', /printable ASCII/],
  ['dry run not a boolean', { RATE_LIMIT_DRY_RUN: 'perhaps' }, 'RATE_LIMIT_DRY_RUN', /true or false/],
  ['LOG_LEVEL unknown', { LOG_LEVEL: 'loud' }, 'LOG_LEVEL', /info/],
  ['a window algorithm with a fractional rate', { RATE_LIMIT_ALGORITHM: 'fixed-window', RATE_LIMIT_RATE: '0.5/s' }, 'RATE_LIMIT_RATE', /whole number/],
  ['a window algorithm with a fractional global rate', { RATE_LIMIT_ALGORITHM: 'sliding-window', GLOBAL_RATE_LIMIT_RATE: '2.5/s' }, 'GLOBAL_RATE_LIMIT_RATE', /whole number/],
  ['a window algorithm with a fractional tier rate', { RATE_LIMIT_ALGORITHM: 'sliding-window', RATE_LIMIT_TIERS: 'free=1.5/m:1' }, 'RATE_LIMIT_TIERS', /"free": sliding-window counts whole requests/],
  ['negative max delay', { RATE_LIMIT_MAX_DELAY_MS: '-1' }, 'RATE_LIMIT_MAX_DELAY_MS', /0-60000/],
  ['ban after not a number', { RATE_LIMIT_BAN_AFTER: 'often' }, 'RATE_LIMIT_BAN_AFTER', /0-1000000/],
  ['ban window without a unit', { RATE_LIMIT_BAN_AFTER: '5', RATE_LIMIT_BAN_WINDOW: '60' }, 'RATE_LIMIT_BAN_WINDOW', /with a unit: ms, s, m, h or d/],
  ['ban duration too long', { RATE_LIMIT_BAN_AFTER: '5', RATE_LIMIT_BAN_DURATION: '400d' }, 'RATE_LIMIT_BAN_DURATION', /between 1ms and 365d/],
  ['headers timeout above the request timeout', { REQUEST_HEADERS_TIMEOUT_MS: '5000', REQUEST_TIMEOUT_MS: '1000' }, 'REQUEST_HEADERS_TIMEOUT_MS', /must not exceed REQUEST_TIMEOUT_MS/],
  ['rules poll negative', { RATE_LIMIT_RULES_POLL_MS: '-5' }, 'RATE_LIMIT_RULES_POLL_MS', /0-3600000/],
  ['unknown sampler', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_SAMPLER: 'sometimes' }, 'OTEL_TRACES_SAMPLER', /parentbased_traceidratio/],
  ['sampler ratio above 1', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_SAMPLER_ARG: '1.5' }, 'OTEL_TRACES_SAMPLER_ARG', /from 0 to 1/],
  ['OTLP over gRPC', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, 'OTEL_EXPORTER_OTLP_PROTOCOL', /http\/protobuf/],
  ['unknown traces exporter', { OTEL_TRACES_EXPORTER: 'zipkin' }, 'OTEL_TRACES_EXPORTER', /otlp or none/],
  ['OTLP endpoint not a URL', { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, 'OTEL_EXPORTER_OTLP_ENDPOINT', /http:\/\/ or https:\/\//],
  ['OTLP endpoint without a scheme', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http//collector' }, 'OTEL_EXPORTER_OTLP_ENDPOINT', /is not a URL/],
  ['OTLP traces endpoint not http', { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'ftp://c/v1/traces' }, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', /http:\/\/ or https:\/\//],
  ['OTLP header without a value', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_HEADERS: 'api-key=1,broken' }, 'OTEL_EXPORTER_OTLP_HEADERS', /"broken" is not a key=value item/],
  ['OTLP header badly encoded', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'token=50%zz' }, 'OTEL_EXPORTER_OTLP_TRACES_HEADERS', /"token": the value is not valid URL encoding/],
  ['resource attribute without a key', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_RESOURCE_ATTRIBUTES: '=x' }, 'OTEL_RESOURCE_ATTRIBUTES', /key=value/],
  ['resource attribute with a blank key', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_RESOURCE_ATTRIBUTES: 'a=1, =x' }, 'OTEL_RESOURCE_ATTRIBUTES', /"=x" is not a key=value item/],
  // Validated whether or not the feature is on (issue 25.7): a typo must not wait for the day it is switched on.
  ['ban window bad while bans are off', { RATE_LIMIT_BAN_WINDOW: '1week' }, 'RATE_LIMIT_BAN_WINDOW', /with a unit: ms, s, m, h or d/],
  ['ban duration bad while bans are off', { RATE_LIMIT_BAN_DURATION: 'forever' }, 'RATE_LIMIT_BAN_DURATION', /with a unit/],
  ['alert window bad while alerts are off', { ALERT_WINDOW: 'xyz' }, 'ALERT_WINDOW', /with a unit/],
  ['alert cooldown bad while alerts are off', { ALERT_COOLDOWN: '5 minutes' }, 'ALERT_COOLDOWN', /with a unit/],
  ['a quota per hour', { RATE_LIMIT_QUOTA: '3/h' }, 'RATE_LIMIT_QUOTA', /N\/d, N\/w or N\/mo, not "3\/h"/],
  ['a quota per second', { RATE_LIMIT_QUOTA: '10/s' }, 'RATE_LIMIT_QUOTA', /calendar period/],
  ['a tier quota per second', { RATE_LIMIT_TIERS: 'free=10/s:20+10/s' }, 'RATE_LIMIT_TIERS', /"free": quota: .*N\/d, N\/w or N\/mo/],
  ['HOST not an address', { HOST: '999.1.1.1' }, 'HOST', /"999\.1\.1\.1": expected an IP address .* or a host name/],
  ['ADMIN_HOST with a space', { ADMIN_HOST: 'my host' }, 'ADMIN_HOST', /expected an IP address/],
  ['DECISION_DENY_STATUS not 4xx', { DECISION_PORT: '9100', DECISION_DENY_STATUS: '200' }, 'DECISION_DENY_STATUS', /401 for nginx auth_request/],
  // MODE=decision never sees a response (issue 25.12): what needs one is refused, by name, with what to do instead.
  ['an in-flight limit in decision mode', { MODE: 'decision', DECISION_PORT: '9100', CONCURRENCY_LIMIT: '2' }, 'CONCURRENCY_LIMIT', /MODE=decision never sees a response end.*limit_conn.*MODE=proxy/],
  ['a global in-flight limit in decision mode', { MODE: 'decision', DECISION_PORT: '9100', GLOBAL_CONCURRENCY_LIMIT: '100' }, 'GLOBAL_CONCURRENCY_LIMIT', /in-flight limit cannot apply/],
  ['examples/rules.json in decision mode', { MODE: 'decision', DECISION_PORT: '9100', RATE_LIMIT_RULES_FILE: fileURLToPath(new URL('../../../examples/rules.json', import.meta.url)) }, 'RATE_LIMIT_RULES_FILE', /rule \d \("login"\): MODE=decision never sees the response, so "count" cannot apply: .*every request then counts.*MODE=proxy/],
  ['export batch above the queue', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_BSP_MAX_QUEUE_SIZE: '100', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '200' }, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', /must not exceed OTEL_BSP_MAX_QUEUE_SIZE/]
]

t.test('bad configuration is refused, naming the variable and what it accepts', async t => {
  for (const [name, env, variable, accepts] of BAD) {
    const merged = { ...(name === 'missing UPSTREAM_URL' ? {} : BASE), ...env }
    t.throws(() => loadConfig(merged), { code: 'GW_CONFIG_INVALID', message: new RegExp(variable) }, `${name}: names ${variable}`)
    t.throws(() => loadConfig(merged), { message: accepts }, `${name}: says what it accepts`)
  }
})

t.test('tracing: off by default; on with an OTLP endpoint or OTEL_TRACES_EXPORTER=otlp; off again with OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none', async t => {
  t.equal(loadConfig(BASE).tracing, undefined, 'off by default')
  const on = loadConfig({ ...BASE, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_EXPORTER_OTLP_HEADERS: 'api-key=a%20b,x=1', OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x=2' })
  t.match(on.tracing, {
    url: 'http://collector:4318/v1/traces',
    headers: { 'api-key': 'a b', x: '2' },
    timeoutMs: 10_000,
    compression: 'none',
    sampler: 'parentbased_always_on',
    samplerArg: 1,
    serviceName: 'ratelimit-gateway',
    batch: { scheduledDelayMillis: 5000, exportTimeoutMillis: 30_000, maxQueueSize: 2048, maxExportBatchSize: 512 }
  })
  t.equal(loadConfig({ ...BASE, OTEL_EXPORTER_OTLP_ENDPOINT: 'https://collector:4318/otlp/' }).tracing?.url, 'https://collector:4318/otlp/v1/traces', 'the base endpoint gets /v1/traces')
  t.equal(loadConfig({ ...BASE, OTEL_EXPORTER_OTLP_ENDPOINT: 'https://collector/otlp' }).tracing?.url, 'https://collector/otlp/v1/traces', 'a base path without a slash')
  t.same(loadConfig({ ...BASE, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_RESOURCE_ATTRIBUTES: 'team=edge,,region=eu,' }).tracing?.resourceAttributes, { team: 'edge', region: 'eu' }, 'empty items are skipped')
  t.equal(loadConfig({ ...BASE, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/custom' }).tracing?.url, 'http://c:4318/custom', 'the traces endpoint is used as is')
  t.equal(loadConfig({ ...BASE, OTEL_TRACES_EXPORTER: 'otlp' }).tracing?.url, 'http://localhost:4318/v1/traces', 'otlp with no endpoint: the specification\'s default')
  t.equal(loadConfig({ ...BASE, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }).tracing, undefined)
  t.equal(loadConfig({ ...BASE, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }).tracing, undefined)
  t.throws(() => loadConfig({ ...BASE, OTEL_TRACES_SAMPLER: 'sometimes' }), { message: /OTEL_TRACES_SAMPLER/ }, 'tracing off: a bad variable is still refused')
})

t.test('several bad variables are all reported at once', async t => {
  t.throws(() => loadConfig({ ...BASE, PORT: 'abc', ADMIN_PORT: 'xyz' }), { message: /PORT.*ADMIN_PORT|ADMIN_PORT.*PORT/ })
})

t.test('defaults', async t => {
  const c = loadConfig(BASE)
  t.match(c, {
    port: 8000, host: '0.0.0.0', upstreamUrl: 'http://127.0.0.1:8080', upstreamTimeoutMs: 30_000,
    rateLimitEnabled: true, algorithm: 'token-bucket', limit: { rate: { count: 10, periodMs: 1000, text: '10/s' }, burst: 20 },
    keyBy: [{ kind: 'api-key' }, { kind: 'ip' }], apiKeyHeader: 'x-api-key', globalLimit: undefined,
    trustProxy: [], ipv6Subnet: 64, headers: 'both', store: 'memory', adminPort: 9000, adminHost: '127.0.0.1', logLevel: 'info'
  })
  t.equal(c.apiKeys.size, 0)
})

// [name, env, what the Config must contain]
const GOOD: Array<[string, Record<string, string>, Record<string, unknown>]> = [
  ['per-minute rate', { RATE_LIMIT_RATE: '600/m' }, { limit: { rate: { count: 600, periodMs: 60_000 } } }],
  ['per-hour rate with spaces', { RATE_LIMIT_RATE: ' 100 / h ' }, { limit: { rate: { count: 100, periodMs: 3_600_000, text: '100/h' } } }],
  ['per-day rate', { RATE_LIMIT_RATE: '5000/d' }, { limit: { rate: { periodMs: 86_400_000 } } }],
  ['fractional rate', { RATE_LIMIT_RATE: '0.5/s' }, { limit: { rate: { count: 0.5 } } }],
  ['a window of several units', { RATE_LIMIT_RATE: '100/5m', RATE_LIMIT_ALGORITHM: 'sliding-window' }, { limit: { rate: { count: 100, periodMs: 300_000, text: '100/5m' } } }],
  ['a tier and the global limit per several units', { RATE_LIMIT_TIERS: 'pro=1000/30s:1000', GLOBAL_RATE_LIMIT_RATE: '5000/12h' }, { tiers: new Map([['pro', { rate: { count: 1000, periodMs: 30_000 }, burst: 1000 }]]), globalLimit: { rate: { periodMs: 43_200_000 }, burst: 5000 } }],
  ['a rule per several units', { RATE_LIMIT_RULES_FILE: RULES_5M }, { rules: [{ limits: [{ rate: { count: 3, periodMs: 300_000, text: '3/5m' } }] }] }],
  ['trailing slash dropped from upstream', { UPSTREAM_URL: 'https://web:8443/' }, { upstreamUrl: 'https://web:8443' }],
  ['upstream with a base path', { UPSTREAM_URL: 'http://web/api' }, { upstreamUrl: 'http://web/api' }],
  ['trust proxy list', { TRUST_PROXY: '10.0.0.0/8, 192.168.1.1,::1,loopback' }, { trustProxy: ['10.0.0.0/8', '192.168.1.1', '::1', 'loopback'] }],
  ['header identity', { RATE_LIMIT_KEY_BY: 'header:X-User-Id,ip' }, { keyBy: [{ kind: 'header', name: 'x-user-id' }, { kind: 'ip' }] }],
  ['global limit with default burst', { GLOBAL_RATE_LIMIT_RATE: '1000/s' }, { globalLimit: { rate: { count: 1000 }, burst: 1000 } }],
  ['global limit with burst', { GLOBAL_RATE_LIMIT_RATE: '100/s', GLOBAL_RATE_LIMIT_BURST: '50' }, { globalLimit: { burst: 50 } }],
  ['limiting off', { RATE_LIMIT_ENABLED: 'false' }, { rateLimitEnabled: false }],
  ['empty variables mean unset', { PORT: '', RATE_LIMIT_RATE: '' }, { port: 8000, limit: { rate: { text: '10/s' } } }],
  ['redis store', { STORE: 'redis', REDIS_URL: 'rediss://u:p@cache:6380/2' }, { store: 'redis', storeFailureMode: 'local', redis: { url: 'rediss://u:p@cache:6380/2', timeoutMs: 50, keyPrefix: 'rl:' } }],
  ['redis cluster nodes', { REDIS_CLUSTER_NODES: 'r1:7000, [::1]:7001' }, { redis: { clusterNodes: [{ host: 'r1', port: 7000 }, { host: '::1', port: 7001 }] } }],
  ['redis sentinels', { REDIS_SENTINELS: 's1:26379,s2:26379', REDIS_SENTINEL_NAME: 'mymaster' }, { redis: { sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26379 }], sentinelName: 'mymaster' } }],
  ['tiers', { RATE_LIMIT_TIERS: 'free=10/s:20, pro=100/m:200' }, { tiers: new Map([['free', { rate: { count: 10, periodMs: 1000 }, burst: 20 }], ['pro', { rate: { count: 100, periodMs: 60_000 }, burst: 200 }]]) }],
  ['allowlist', { ALLOWLIST: '10.0.0.0/8, 2001:db8::/32,192.0.2.7,key:internal-1' }, { allowlist: { networks: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7'], keys: new Set(['internal-1']) } }],
  ['dry run', { RATE_LIMIT_DRY_RUN: 'true' }, { dryRun: true }],
  ['API key header lower-cased', { API_KEY_HEADER: 'X-Api-Token' }, { apiKeyHeader: 'x-api-token' }],
  ['sliding window', { RATE_LIMIT_ALGORITHM: 'sliding-window', RATE_LIMIT_RATE: '100/m' }, { algorithm: 'sliding-window', limit: { rate: { count: 100 } } }],
  ['leaky bucket with its delay', { RATE_LIMIT_ALGORITHM: 'leaky-bucket', RATE_LIMIT_MAX_DELAY_MS: '250' }, { algorithm: 'leaky-bucket', maxDelayMs: 250 }],
  ['global identity', { RATE_LIMIT_KEY_BY: 'api-key,global' }, { keyBy: [{ kind: 'api-key' }, { kind: 'global' }] }],
  ['bans', { RATE_LIMIT_BAN_AFTER: '10', RATE_LIMIT_BAN_WINDOW: '30s', RATE_LIMIT_BAN_DURATION: '2h' }, { bans: { after: 10, windowMs: 30_000, durationMs: 7_200_000 } }],
  ['bans off by default, rules none', {}, { bans: undefined, rulesFile: undefined, rules: [], rulesPollMs: 1000, maxDelayMs: 1000 }]
]

t.test('good configuration', async t => {
  for (const [name, env, expected] of GOOD) t.match(loadConfig({ ...BASE, ...env }), expected, name)
})

t.test('API keys from the variable and the file, with tiers', async t => {
  const c = loadConfig({ ...BASE, API_KEYS: 'k1:pro, k2', API_KEYS_FILE: keysFile, RATE_LIMIT_TIERS: 'pro=100/s:200' })
  t.same([...c.apiKeys.entries()], [['k1', 'pro'], ['k2', undefined], ['file-key-1', 'pro'], ['file-key-2', undefined]])
})

t.test('the Config is frozen, its key registry too', async t => {
  const c = loadConfig({ ...BASE, API_KEYS: 'k1' })
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.limit) && Object.isFrozen(c.limit.rate) && Object.isFrozen(c.keyBy))
  t.throws(() => (c.apiKeys as Map<string, string>).set('k2', 'x'))
  t.throws(() => (c.allowlist.keys as Set<string>).add('k2'))
})

t.test('WORKERS: 1 by default, a number, or auto (resolved at start by the server)', async t => {
  t.equal(loadConfig(BASE).workers, 1)
  t.equal(loadConfig({ ...BASE, WORKERS: '4' }).workers, 4)
  t.equal(loadConfig({ ...BASE, WORKERS: 'auto' }).workers, 'auto')
})
