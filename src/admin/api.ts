/**
 * The admin API behind ADMIN_TOKEN: Prometheus metrics, the config API (read and change
 * the limits at run time, fleet-wide with Redis: control/changes.ts), per-client inspect,
 * reset and ban, top offenders, and the stats the dashboard page draws.
 */
import { isIP } from 'node:net'
import { hostname } from 'node:os'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { FromSchema } from 'json-schema-to-ts'
import { parseDuration } from '../config/parse.js'
import { AdminWriteFailedError, InvalidChangeError, NotFoundError, StoreUnavailableError } from '../errors.js'
import { apiKeyId, ipIdentity, sourceOfKey, type Identity } from '../identity/identify.js'
import { changeSettings, describeSettings, type SettingsControl } from '../control/changes.js'
import { SETTINGS_SCHEMA, type RuntimeSettings } from '../control/settings.js'
import { countsByLabel, settlementsOf } from '../observe/metrics.js'
import { MINUTES } from '../observe/offenders.js'
import { dayOf, daysBefore, daysBetween } from '../algorithms/calendar.js'
import type { ClientAdmin } from '../store/types.js'
import { requireToken } from './auth.js'
import type { AdminOptions } from './options.js'
import { rlsAdminRoutes } from './rls.js'
import { keysRoutes } from './keys.js'

/** Default ban of the admin API when the request names no duration. */
export const DEFAULT_ADMIN_BAN_MS = 15 * 60_000
const ACTOR_RE = /^[\w.@:-]{1,64}$/

const CLIENT_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: { client: { type: 'string', minLength: 1, maxLength: 600 }, ip: { type: 'string', maxLength: 64 }, apiKey: { type: 'string', maxLength: 512 } }
} as const
/** The client an admin request names (one of them), as CLIENT_QUERY takes it. */
type ClientQuery = FromSchema<typeof CLIENT_QUERY>

/** PUT /admin/clients/ban's body, and the per-key quota routes' query and body: the schemas, and the types derived from them. */
const BAN_BODY = { type: 'object', additionalProperties: false, properties: { duration: { type: 'string' } } } as const
const KEY_QUERY = { type: 'object', additionalProperties: false, required: ['apiKey'], properties: { apiKey: { type: 'string', maxLength: 512 } } } as const
const KEY_QUOTA_BODY = { type: 'object', additionalProperties: false, required: ['quota'], properties: { quota: { type: 'string', maxLength: 64 } } } as const
type KeyQuery = FromSchema<typeof KEY_QUERY>

const DAY_PATTERN = '^\\d{4}-\\d{2}-\\d{2}$'

/**
 * RFC 4180 CSV: a header line, then the rows, CRLF after each. No field needs quoting: days,
 * numbers and client keys (an API key's digest, an address) hold no comma, quote or line break.
 */
function toCsv (header: string[], rows: Array<Array<string | number>>): string {
  return [header, ...rows].map(r => r.join(',')).join('\r\n') + '\r\n'
}

/** A ban's length: the body's `duration`, else DEFAULT_ADMIN_BAN_MS. */
function banMsOf (duration: string | undefined): number {
  if (duration === undefined) return DEFAULT_ADMIN_BAN_MS
  try {
    return parseDuration(duration)
  } catch (err) {
    throw new InvalidChangeError(`duration: ${(err as Error).message}`)
  }
}

/** The API's routes, to register on the admin listener. */
export function adminApi (opts: AdminOptions, log: FastifyBaseLogger, token: string): (api: FastifyInstance) => Promise<void> {
  const { config, manager, metrics, offenders, sync, workers } = opts
  return async function adminRoutes (api) {
    const control: SettingsControl = { config, manager, sync, counted: () => metrics.settingsChanges.inc(), log }
    const keyTiers = new Map<string, string | undefined>()
    for (const [apiKey, tier] of config.apiKeys) keyTiers.set(apiKeyId(apiKey), tier)

    /** The client a request names: `client` (an identity key), `ip` or `apiKey`. */
    function clientOf (query: ClientQuery): Identity {
      if (query.client !== undefined) {
        const source = sourceOfKey(query.client)
        if (source === undefined) throw new InvalidChangeError(`client: "${query.client.slice(0, 100)}" is not an identity key (ip:…, key:…, h:<header>:… or global)`)
        return { key: query.client, source, tier: keyTiers.get(query.client) }
      }
      if (query.ip !== undefined) {
        if (isIP(query.ip) === 0) throw new InvalidChangeError(`ip: "${query.ip}" is not an IP address`)
        return ipIdentity(query.ip, config.ipv6Subnet)
      }
      if (query.apiKey !== undefined) {
        if (config.apiKeys.has(query.apiKey)) return { key: apiKeyId(query.apiKey), source: 'api-key', tier: config.apiKeys.get(query.apiKey) }
        const managed = manager.keys.current.get(apiKeyId(query.apiKey))
        if (managed === undefined) throw new NotFoundError('apiKey: not a registered API key')
        return managed.identity
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
        // A write Redis did not confirm says which, and that it was not applied.
        throw err instanceof AdminWriteFailedError ? err : new StoreUnavailableError()
      }
    }

    /** Who made a change, for the log: the caller's address and its X-Admin-Actor, if any. */
    function actorOf (request: FastifyRequest): string {
      const named = request.headers['x-admin-actor']
      return typeof named === 'string' && ACTOR_RE.test(named) ? `${named}@${request.ip}` : request.ip
    }

    api.addHook('onRequest', requireToken(token))

    api.get('/metrics', async (_request, reply) => {
      // WORKERS > 1: every worker's summed with this thread's (no worker label).
      const registry = workers === undefined ? metrics.registry : (await workers.report(MINUTES, 1)).registry
      reply.header('content-type', registry.contentType)
      return await registry.metrics()
    })

    api.get('/admin/config', async () => describeSettings(control))

    const settingsBody = { type: 'object', additionalProperties: false, properties: SETTINGS_SCHEMA }
    api.put<{ Body: RuntimeSettings }>('/admin/config', { schema: { body: settingsBody } }, async request => await changeSettings(control, request.body, actorOf(request)))

    // A merge: the fields given replace those in force; a field set to null is dropped.
    // (null as a second type, not an anyOf branch: ajv would coerce a refused 0 to null.)
    const patchProps = Object.fromEntries(Object.entries(SETTINGS_SCHEMA).map(([k, v]) => [k, { ...v, type: [v.type, 'null'] }]))
    api.patch<{ Body: Record<string, unknown> }>('/admin/config', { schema: { body: { type: 'object', additionalProperties: false, minProperties: 1, properties: patchProps } } }, async request => {
      const merged: Record<string, unknown> = { ...manager.runtimeSettings }
      for (const [k, v] of Object.entries(request.body)) {
        if (v === null) delete merged[k]
        else merged[k] = v
      }
      return await changeSettings(control, merged as RuntimeSettings, actorOf(request))
    })

    api.delete('/admin/config', async request => await changeSettings(control, {}, actorOf(request)))

    // The rules file read again now, as SIGHUP does, for operators without a shell on the
    // gateway's process (or with `npm start`, which does not pass SIGHUP on).
    api.post('/admin/rules/reload', async request => {
      const done = opts.reloadRules()
      // Every worker reads it too (each logs and counts its own result).
      opts.workers?.reloadRules()
      if (done.result === 'none') throw new NotFoundError('there is no rules file to reload (RATE_LIMIT_RULES_FILE is not set)')
      if (done.result === 'rejected') throw new InvalidChangeError(`the rules file does not validate; the rules in force stay: ${done.reason}`)
      log.info({ actor: actorOf(request), result: done.result }, 'rules file reload asked')
      return { ...done, file: config.rulesFile }
    })

    // Per-key quotas: a key's own quota in place of its tier's, for the current period at
    // once (the period's count carries over: the quota keeps its tier quota's name).
    const keyOf = (apiKey: string): string => clientOf({ apiKey }).key
    api.get<{ Querystring: KeyQuery }>('/admin/keys/quota', { schema: { querystring: KEY_QUERY } }, async request => {
      const key = keyOf(request.query.apiKey)
      const tier = config.apiKeys.get(request.query.apiKey)
      const own = manager.runtimeSettings.keyQuotas?.[key]
      const tierLimit = tier === undefined ? manager.effective.limits.limit : manager.effective.limits.tiers.get(tier)!
      return { client: key, tier: tier ?? null, quota: own ?? tierLimit.quota?.text ?? null, source: own !== undefined ? 'key' : (tierLimit.quota !== undefined ? 'tier' : 'none') }
    })
    api.put<{ Querystring: KeyQuery, Body: FromSchema<typeof KEY_QUOTA_BODY> }>('/admin/keys/quota', { schema: { querystring: KEY_QUERY, body: KEY_QUOTA_BODY } }, async request => {
      const key = keyOf(request.query.apiKey)
      const settings = manager.runtimeSettings
      await changeSettings(control, { ...settings, keyQuotas: { ...settings.keyQuotas, [key]: request.body.quota } }, actorOf(request))
      return { client: key, quota: request.body.quota, source: 'key' }
    })
    api.delete<{ Querystring: KeyQuery }>('/admin/keys/quota', { schema: { querystring: KEY_QUERY } }, async (request, reply) => {
      const key = keyOf(request.query.apiKey)
      const settings = manager.runtimeSettings
      const { [key]: _dropped, ...rest } = settings.keyQuotas ?? {}
      await changeSettings(control, { ...settings, keyQuotas: rest }, actorOf(request))
      reply.code(204)
    })

    // The usage ledger: a client's days (JSON, or CSV with Accept: text/csv), and the heaviest clients.
    const RANGE = { from: { type: 'string', pattern: DAY_PATTERN }, to: { type: 'string', pattern: DAY_PATTERN } }
    const USAGE_QUERY = { ...CLIENT_QUERY, properties: { ...CLIENT_QUERY.properties, ...RANGE } }
    const TOP_QUERY = { type: 'object', additionalProperties: false, properties: { ...RANGE, limit: { type: 'integer', minimum: 1, maximum: 1000, default: 20 } } }
    /** The days asked for: `from` to `to` (default: the 30 days to today in QUOTA_TIMEZONE), within the retention. */
    function rangeOf (query: { from?: string, to?: string }): string[] {
      const to = query.to ?? dayOf(opts.clock.now(), config.timeZone)
      const from = query.from ?? daysBefore(to, 29)
      const days = daysBetween(from, to, config.usage.retentionDays)
      if (days === undefined) throw new InvalidChangeError(`from ${from} to ${to}: from must be a day no later than to, and at most USAGE_RETENTION_DAYS (${config.usage.retentionDays}) days before it`)
      return days
    }
    const wantsCsv = (request: FastifyRequest): boolean => request.headers.accept?.includes('text/csv') === true
    api.get<{ Querystring: ClientQuery & { from?: string, to?: string } }>('/admin/usage', { schema: { querystring: USAGE_QUERY } }, async (request, reply) => {
      const client = clientOf(request.query)
      const days = rangeOf(request.query)
      const rows = await withStore(async store => await store.usage(client.key, days))
      if (wantsCsv(request)) {
        reply.type('text/csv; charset=utf-8')
        return toCsv(['day', 'admitted', 'refused', 'cost'], rows.map(r => [r.day, r.admitted, r.refused, r.cost]))
      }
      const total = rows.reduce((t, r) => ({ admitted: t.admitted + r.admitted, refused: t.refused + r.refused, cost: t.cost + r.cost }), { admitted: 0, refused: 0, cost: 0 })
      return { client: client.key, timeZone: config.timeZone, from: days[0], to: days.at(-1), days: rows, total }
    })
    api.get<{ Querystring: { from?: string, to?: string, limit: number } }>('/admin/usage/top', { schema: { querystring: TOP_QUERY } }, async (request, reply) => {
      const days = rangeOf(request.query)
      // WORKERS > 1 on the memory store: the names are the workers' (the counts are shared).
      const top = workers !== undefined && config.store === 'memory' ? await workers.topUsage(days, request.query.limit) : await withStore(async store => await store.topUsage(days, request.query.limit))
      if (wantsCsv(request)) {
        reply.type('text/csv; charset=utf-8')
        return toCsv(['client', 'admitted', 'refused', 'cost'], top.map(r => [r.client, r.admitted, r.refused, r.cost]))
      }
      // A key's tier beside its digest, so a person can tell the keys apart (never the key).
      // A key made through the admin API: its name and tier from the settings.
      const made = manager.runtimeSettings.apiKeys ?? {}
      return { timeZone: config.timeZone, retentionDays: config.usage.retentionDays, from: days[0], to: days.at(-1), clients: top.map(r => ({ ...r, tier: keyTiers.get(r.client) ?? made[r.client]?.tier ?? null, name: made[r.client]?.name ?? null })) }
    })

    api.get<{ Querystring: ClientQuery }>('/admin/clients', { schema: { querystring: CLIENT_QUERY } }, async request => {
      const client = clientOf(request.query)
      const limits = manager.holder.current
      const state = await withStore(store => store.inspect(client.key, limits.policiesOf(client), limits.slotsOf(client)))
      return { client: client.key, tier: client.tier ?? null, ...state }
    })

    // A client's limits back in full: `limits` names it; `quota`, its first name (when
    // "quota" also meant a limit's size), keeps answering for the scripts that use it.
    const resetLimits = async (request: FastifyRequest<{ Querystring: ClientQuery }>, reply: FastifyReply): Promise<void> => {
      const client = clientOf(request.query)
      // Not the global limit: it is everyone's, not this client's to get back. With Redis
      // the reset tells every instance to forget its local denials (one script).
      await withStore(store => store.reset(client.key, manager.holder.current.policiesOf(client).filter(p => !p.shared)))
      log.info({ actor: actorOf(request), client: client.key }, 'client limits reset')
      reply.code(204)
    }
    api.delete<{ Querystring: ClientQuery }>('/admin/clients/limits', { schema: { querystring: CLIENT_QUERY } }, resetLimits)
    api.delete<{ Querystring: ClientQuery }>('/admin/clients/quota', { schema: { querystring: CLIENT_QUERY } }, resetLimits)

    api.put<{ Querystring: ClientQuery, Body: FromSchema<typeof BAN_BODY> }>('/admin/clients/ban', { schema: { querystring: CLIENT_QUERY, body: BAN_BODY } }, async (request, reply) => {
      const client = clientOf(request.query)
      const ms = banMsOf(request.body?.duration)
      await withStore(store => store.ban(client.key, ms))
      log.info({ actor: actorOf(request), client: client.key, durationMs: ms }, 'client banned')
      reply.code(204)
    })

    api.delete<{ Querystring: ClientQuery }>('/admin/clients/ban', { schema: { querystring: CLIENT_QUERY } }, async (request, reply) => {
      const client = clientOf(request.query)
      await withStore(store => store.unban(client.key))
      log.info({ actor: actorOf(request), client: client.key }, 'client unbanned')
      reply.code(204)
    })

    const offendersQuery = { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 500, default: 20 }, minutes: { type: 'integer', minimum: 1, maximum: 5, default: 5 } } }
    api.get<{ Querystring: { limit: number, minutes: number } }>('/admin/offenders', { schema: { querystring: offendersQuery } }, async request => ({
      minutes: request.query.minutes,
      offenders: workers === undefined ? offenders.top(request.query.limit, request.query.minutes) : (await workers.report(request.query.minutes, request.query.limit)).offenders
    }))

    // Counters, offenders and in-flight are this process's own; with Redis the limits and the
    // usage ledger are the fleet's. `instance` names this gateway (host and admin port) and whether it is one of a fleet.
    const instance = { id: `${hostname()}:${config.adminPort}`, fleet: config.store === 'redis' }
    api.get('/admin/stats', async () => {
      // WORKERS > 1: the workers' counts summed (the store is theirs too: shared memory).
      const all = workers === undefined ? undefined : await workers.report(MINUTES, 10)
      const counter = <T>(m: T, name: string): T => all === undefined ? m : all.registry.getSingleMetric(name) as T
      return {
        at: new Date().toISOString(),
        instance: all === undefined ? instance : { ...instance, workers: all.workers },
        requests: await countsByLabel(counter(metrics.requestsTotal, 'gateway_requests_total'), 'outcome'),
        upstream: await countsByLabel(counter(metrics.upstreamResponses, 'gateway_upstream_responses_total'), 'class'),
        store: opts.store ? { kind: opts.store.kind, mode: opts.store.mode(), ready: opts.store.ready(), trackedKeys: opts.store.size() } : null,
        inFlight: all === undefined ? metrics.inFlight() : all.inFlight,
        settlements: await settlementsOf(all === undefined ? metrics : { settlements: counter(metrics.settlements, 'gateway_charge_settlements_total'), costIgnored: counter(metrics.costIgnored, 'gateway_cost_header_ignored_total') }),
        offenders: all === undefined ? offenders.top(10) : all.offenders,
        config: describeSettings(control)
      }
    })

    keysRoutes(api, { control, config, clock: opts.clock, actorOf, seen: manager.keys.seen })
    if (opts.rls !== undefined) rlsAdminRoutes(api, { service: opts.rls, withStore, actorOf, log, banMsOf })
  }
}
