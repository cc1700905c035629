/**
 * The admin listener: a separate Fastify instance on ADMIN_HOST:ADMIN_PORT, never the
 * client port. Health and readiness for orchestrators, open to all; with ADMIN_TOKEN,
 * behind `Authorization: Bearer`: Prometheus metrics, the config API (read and change the
 * limits at run time, fleet-wide with Redis), per-client inspect / reset / ban, top
 * offenders, and the stats the dashboard page draws.
 */
import { isIP } from 'node:net'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify'
import type { Config } from '../config/index.js'
import { parseDuration } from '../config/parse.js'
import { InvalidChangeError, NotFoundError, PROBLEM_CONTENT_TYPE, problem, StoreUnavailableError } from '../errors.js'
import { apiKeyId, type Identity, type IdentitySource } from '../identity/identify.js'
import { ipKey } from '../identity/ip.js'
import type { LimitsManager } from '../control/manager.js'
import { SETTINGS_SCHEMA, type RuntimeSettings } from '../control/settings.js'
import type { SettingsSync } from '../control/sync.js'
import { countsByLabel, type Metrics } from '../observe/metrics.js'
import type { TopOffenders } from '../observe/offenders.js'
import type { ClientAdmin, StoreStatus } from '../store/types.js'
import type { UpstreamProbe } from '../proxy/probe.js'
import { requireToken } from './auth.js'
import { DASHBOARD_HTML } from './dashboard.js'

export interface AdminState {
  /** Set at shutdown: readiness fails so load balancers stop sending traffic. */
  draining: boolean
}

export interface AdminOptions {
  logger: FastifyBaseLogger
  config: Config
  store: (ClientAdmin & StoreStatus) | undefined
  state: AdminState
  manager: LimitsManager
  sync: SettingsSync | undefined
  metrics: Metrics
  offenders: TopOffenders
  upstream: UpstreamProbe
}

/** Default ban of the admin API when the request names no duration. */
export const DEFAULT_ADMIN_BAN_MS = 15 * 60_000
const ACTOR_RE = /^[\w.@:-]{1,64}$/

interface ClientQuery { client?: string, ip?: string, apiKey?: string }
const CLIENT_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: { client: { type: 'string', minLength: 1, maxLength: 600 }, ip: { type: 'string', maxLength: 64 }, apiKey: { type: 'string', maxLength: 512 } }
} as const

/** The identity source an identity key comes from (`ip:`, `key:`, `h:<header>:`, `global`). */
export function sourceOfKey (key: string): IdentitySource {
  if (key.startsWith('key:')) return 'api-key'
  if (key.startsWith('h:')) return 'header'
  if (key === 'global') return 'global'
  return 'ip'
}

export function buildAdmin (opts: AdminOptions): FastifyInstance {
  const { config, manager, metrics, offenders, sync } = opts
  const log = opts.logger.child({ listener: 'admin' })
  const admin = Fastify({
    loggerInstance: log,
    logController: new LogController({ disableRequestLogging: true }),
    // An unknown field is an error, not silently dropped (query strings are still coerced).
    ajv: { customOptions: { removeAdditional: false } }
  })

  admin.setErrorHandler((err: Error & { statusCode?: number, code?: string, validation?: unknown }, _request, reply) => {
    // Every error raised here carries its status (the registry's, fastify's validation and
    // parsing); one without is a bug: logged, answered without internals.
    /* c8 ignore start -- only a bug reaches this: no test can provoke one */
    if (err.statusCode === undefined) {
      log.error({ err }, 'admin request failed')
      reply.code(500).header('content-type', PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem(500, 'Internal error', 'GW_INTERNAL')))
      return
    }
    /* c8 ignore stop */
    reply.code(err.statusCode).header('content-type', PROBLEM_CONTENT_TYPE)
      .send(JSON.stringify(problem(err.statusCode, err.message, err.validation !== undefined ? 'GW_ADMIN_INVALID' : err.code)))
  })

  // An unknown path (or, without ADMIN_TOKEN, the API that is off) answers like any error.
  admin.setNotFoundHandler((request, reply) => {
    const detail = config.adminToken === undefined && request.url !== '/healthz' && request.url !== '/readyz'
      ? `no such admin endpoint: ${request.method} ${request.url.split('?', 1)[0]!.slice(0, 200)} (the admin API, /metrics and /dashboard need ADMIN_TOKEN)`
      : `no such admin endpoint: ${request.method} ${request.url.split('?', 1)[0]!.slice(0, 200)}`
    reply.code(404).header('content-type', PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem(404, detail, 'GW_ADMIN_NOT_FOUND')))
  })

  admin.get('/healthz', async () => ({ status: 'ok' }))

  admin.get('/readyz', async (_request, reply) => {
    const storeReady = opts.store?.ready() ?? true
    const ready = storeReady && !opts.state.draining
    reply.code(ready ? 200 : 503)
    return {
      status: ready ? 'ready' : (opts.state.draining ? 'draining' : 'not-ready'),
      rateLimiting: config.rateLimitEnabled,
      store: opts.store ? { kind: opts.store.kind, mode: opts.store.mode(), ready: storeReady } : null,
      // Shown, not judged: requests get 502 while it is down, and the gateway itself (its
      // limits, its answers) is ready; an orchestrator restarting it would not help.
      upstream: await opts.upstream.check()
    }
  })

  const token = config.adminToken
  if (token === undefined) {
    log.warn('ADMIN_TOKEN is not set: the admin API, /metrics and /dashboard are off')
    return admin
  }

  // The page is static and holds no data: it asks for the token and calls the API below.
  admin.get('/dashboard', async (_request, reply) => {
    reply.header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
      .header('cache-control', 'no-store')
    return DASHBOARD_HTML
  })

  const keyTiers = new Map<string, string | undefined>()
  for (const [apiKey, tier] of config.apiKeys) keyTiers.set(apiKeyId(apiKey), tier)

  /** The client a request names: `client` (an identity key), `ip` or `apiKey`. */
  function clientOf (query: ClientQuery): Identity {
    if (query.client !== undefined) return { key: query.client, source: sourceOfKey(query.client), tier: keyTiers.get(query.client) }
    if (query.ip !== undefined) {
      if (isIP(query.ip) === 0) throw new InvalidChangeError(`ip: "${query.ip}" is not an IP address`)
      return { key: 'ip:' + ipKey(query.ip, config.ipv6Subnet), source: 'ip', tier: undefined }
    }
    if (query.apiKey !== undefined) {
      if (!config.apiKeys.has(query.apiKey)) throw new NotFoundError('apiKey: not a registered API key')
      return { key: apiKeyId(query.apiKey), source: 'api-key', tier: config.apiKeys.get(query.apiKey) }
    }
    throw new InvalidChangeError('name the client: ?client=<identity key>, ?ip=<address> or ?apiKey=<key>')
  }

  /** Runs a store operation for the admin API; a store failure is a 503, as for clients. */
  async function withStore<T> (op: (store: ClientAdmin) => T | Promise<T>): Promise<T> {
    if (opts.store === undefined) throw new NotFoundError('rate limiting is off (RATE_LIMIT_ENABLED=false): there are no clients')
    try {
      return await op(opts.store)
    } catch (err) {
      log.warn({ err }, 'admin: the store failed')
      throw new StoreUnavailableError()
    }
  }

  /** Who made a change, for the log: the caller's address and its X-Admin-Actor, if any. */
  function actorOf (request: FastifyRequest): string {
    const named = request.headers['x-admin-actor']
    return typeof named === 'string' && ACTOR_RE.test(named) ? `${named}@${request.ip}` : request.ip
  }

  function describe () {
    const eff = manager.effective
    const limit = (l: { rate: { text: string }, burst: number }) => ({ rate: l.rate.text, burst: l.burst })
    const settings = manager.runtimeSettings
    return {
      version: manager.version,
      // With Redis: the fleet's stored version at the last check, and whether this
      // instance runs exactly those settings.
      fleet: sync?.status ?? null,
      algorithm: config.algorithm,
      dryRun: eff.config.dryRun,
      factor: { emergency: settings.factor ?? 1, adaptive: manager.adaptive, effective: eff.factor },
      limits: {
        default: limit(eff.config.limit),
        tiers: Object.fromEntries([...eff.config.tiers].map(([name, t]) => [name, limit(t)])),
        global: eff.config.globalLimit ? limit(eff.config.globalLimit) : null
      },
      rulesSource: settings.rules !== undefined ? 'admin' : (config.rulesFile !== undefined ? 'file' : 'none'),
      rules: eff.rules.map(r => ({
        name: r.name,
        methods: r.methods ?? null,
        path: r.path,
        cost: r.cost,
        exclusive: r.exclusive,
        skip: r.skip,
        dryRun: r.dryRun,
        limits: r.limits.map(l => ({ name: l.name, algorithm: l.algorithm, ...limit(l), maxDelayMs: l.maxDelayMs }))
      })),
      settings
    }
  }

  /** Validates, then applies: with Redis through the fleet, else here. */
  async function change (settings: RuntimeSettings, request: FastifyRequest) {
    try {
      manager.check(settings)
    } catch (err) {
      throw new InvalidChangeError((err as Error).message)
    }
    const actor = actorOf(request)
    let version: number
    if (sync !== undefined) {
      try {
        version = await sync.publish(settings, actor)
      } catch {
        // Not applied anywhere rather than here only: instances must not drift apart.
        throw new StoreUnavailableError()
      }
    } else {
      version = manager.version + 1
    }
    manager.apply(settings, version)
    metrics.settingsChanges.inc()
    log.info({ actor, version, settings }, 'runtime settings changed')
    return describe()
  }

  admin.register(async api => {
    api.addHook('onRequest', requireToken(token))

    api.get('/metrics', async (_request, reply) => {
      reply.header('content-type', metrics.registry.contentType)
      return await metrics.registry.metrics()
    })

    api.get('/admin/config', async () => describe())

    const settingsBody = { type: 'object', additionalProperties: false, properties: SETTINGS_SCHEMA }
    api.put<{ Body: RuntimeSettings }>('/admin/config', { schema: { body: settingsBody } }, async request => await change(request.body, request))

    // A merge: the fields given replace those in force; a field set to null is dropped.
    // (null as a second type, not an anyOf branch: ajv would coerce a refused 0 to null.)
    const patchProps = Object.fromEntries(Object.entries(SETTINGS_SCHEMA).map(([k, v]) => [k, { ...v, type: [v.type, 'null'] }]))
    api.patch<{ Body: Record<string, unknown> }>('/admin/config', { schema: { body: { type: 'object', additionalProperties: false, minProperties: 1, properties: patchProps } } }, async request => {
      const merged: Record<string, unknown> = { ...manager.runtimeSettings }
      for (const [k, v] of Object.entries(request.body)) {
        if (v === null) delete merged[k]
        else merged[k] = v
      }
      return await change(merged as RuntimeSettings, request)
    })

    api.delete('/admin/config', async request => await change({}, request))

    api.get<{ Querystring: ClientQuery }>('/admin/clients', { schema: { querystring: CLIENT_QUERY } }, async request => {
      const client = clientOf(request.query)
      const state = await withStore(store => store.inspect(client.key, manager.holder.current.policiesOf(client)))
      return { client: client.key, tier: client.tier ?? null, ...state }
    })

    api.delete<{ Querystring: ClientQuery }>('/admin/clients/quota', { schema: { querystring: CLIENT_QUERY } }, async (request, reply) => {
      const client = clientOf(request.query)
      await withStore(async store => {
        // Not the global limit: it is everyone's, not this client's to get back.
        await store.reset(client.key, manager.holder.current.policiesOf(client).filter(p => !p.shared))
        await sync?.forget()
      })
      log.info({ actor: actorOf(request), client: client.key }, 'client quota reset')
      reply.code(204)
    })

    api.put<{ Querystring: ClientQuery, Body: { duration?: string } }>('/admin/clients/ban', {
      schema: { querystring: CLIENT_QUERY, body: { type: 'object', additionalProperties: false, properties: { duration: { type: 'string' } } } }
    }, async (request, reply) => {
      const client = clientOf(request.query)
      let ms = DEFAULT_ADMIN_BAN_MS
      if (request.body?.duration !== undefined) {
        try {
          ms = parseDuration(request.body.duration)
        } catch (err) {
          throw new InvalidChangeError(`duration: ${(err as Error).message}`)
        }
      }
      await withStore(store => store.ban(client.key, ms))
      log.info({ actor: actorOf(request), client: client.key, durationMs: ms }, 'client banned')
      reply.code(204)
    })

    api.delete<{ Querystring: ClientQuery }>('/admin/clients/ban', { schema: { querystring: CLIENT_QUERY } }, async (request, reply) => {
      const client = clientOf(request.query)
      await withStore(async store => {
        await store.unban(client.key)
        await sync?.forget()
      })
      log.info({ actor: actorOf(request), client: client.key }, 'client unbanned')
      reply.code(204)
    })

    const offendersQuery = { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 500, default: 20 }, minutes: { type: 'integer', minimum: 1, maximum: 5, default: 5 } } }
    api.get<{ Querystring: { limit: number, minutes: number } }>('/admin/offenders', { schema: { querystring: offendersQuery } }, async request => ({
      minutes: request.query.minutes,
      offenders: offenders.top(request.query.limit, request.query.minutes)
    }))

    api.get('/admin/stats', async () => ({
      at: new Date().toISOString(),
      requests: await countsByLabel(metrics.requestsTotal, 'outcome'),
      upstream: await countsByLabel(metrics.upstreamResponses, 'class'),
      store: opts.store ? { kind: opts.store.kind, mode: opts.store.mode(), ready: opts.store.ready(), trackedKeys: opts.store.size() } : null,
      offenders: offenders.top(10),
      config: describe()
    }))
  })

  return admin
}
