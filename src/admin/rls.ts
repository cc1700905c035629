/**
 * The admin API for the rate limit service (RLS_PORT): a descriptor's counter inspected
 * and reset, a descriptor banned and unbanned. A descriptor is named by its domain and its
 * entries, in order: `?domain=edge&entry=remote_address=10.0.0.1` (an entry is `key=value`,
 * split at the first `=`; `key` alone for one without a value).
 */
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify'
import type { FromSchema } from 'json-schema-to-ts'
import { NotFoundError } from '../errors.js'
import type { RateLimitService } from '../rls/service.js'
import type { RlsEntry } from '../rls/limits.js'
import type { ClientAdmin } from '../store/types.js'

const DESCRIPTOR_QUERY = {
  type: 'object',
  additionalProperties: false,
  required: ['domain', 'entry'],
  properties: {
    domain: { type: 'string', minLength: 1, maxLength: 256 },
    entry: { type: 'array', minItems: 1, maxItems: 32, items: { type: 'string', minLength: 1, maxLength: 1024 } }
  }
} as const
type DescriptorQuery = FromSchema<typeof DESCRIPTOR_QUERY>
const BAN_BODY = { type: 'object', additionalProperties: false, properties: { duration: { type: 'string' } } } as const

export interface RlsAdminDeps {
  service: RateLimitService
  withStore: <T>(op: (store: ClientAdmin) => T | Promise<T>) => Promise<T>
  actorOf: (request: FastifyRequest) => string
  log: FastifyBaseLogger
  /** A ban's length from the body's `duration` (the client bans' rule). */
  banMsOf: (duration: string | undefined) => number
}

function entriesOf (query: DescriptorQuery): RlsEntry[] {
  return query.entry.map(e => {
    const at = e.indexOf('=')
    return at === -1 ? { key: e, value: '' } : { key: e.slice(0, at), value: e.slice(at + 1) }
  })
}

export function rlsAdminRoutes (api: FastifyInstance, deps: RlsAdminDeps): void {
  const { service, withStore, actorOf, log } = deps
  const schema = { querystring: DESCRIPTOR_QUERY }

  api.get<{ Querystring: DescriptorQuery }>('/admin/rls/descriptor', { schema }, async request => {
    const { domain } = request.query
    const { subject, limit, policy } = service.locate(domain, entriesOf(request.query))
    const state = await withStore(store => store.inspect(subject, policy === undefined ? [] : [policy]))
    return {
      domain,
      subject,
      limit: limit === undefined
        ? null
        : { path: limit.path, name: limit.name ?? null, unlimited: limit.unlimited, unit: limit.unit ?? null, requestsPerUnit: limit.requestsPerUnit, unitMultiplier: limit.unitMultiplier, algorithm: limit.algorithm, shadowMode: limit.shadowMode },
      ...state
    }
  })

  api.delete<{ Querystring: DescriptorQuery }>('/admin/rls/descriptor/limits', { schema }, async (request, reply) => {
    const { subject, policy } = service.locate(request.query.domain, entriesOf(request.query))
    if (policy === undefined) throw new NotFoundError(`${subject}: no limit to reset (it meets none, or an unlimited one)`)
    await withStore(store => store.reset(subject, [policy]))
    log.info({ actor: actorOf(request), descriptor: subject }, 'rate limit service descriptor reset')
    reply.code(204)
  })

  api.put<{ Querystring: DescriptorQuery, Body: FromSchema<typeof BAN_BODY> }>('/admin/rls/descriptor/ban', { schema: { ...schema, body: BAN_BODY } }, async (request, reply) => {
    const { subject } = service.locate(request.query.domain, entriesOf(request.query))
    const ms = deps.banMsOf(request.body?.duration)
    await withStore(store => store.ban(subject, ms))
    log.info({ actor: actorOf(request), descriptor: subject, durationMs: ms }, 'rate limit service descriptor banned')
    reply.code(204)
  })

  api.delete<{ Querystring: DescriptorQuery }>('/admin/rls/descriptor/ban', { schema }, async (request, reply) => {
    const { subject } = service.locate(request.query.domain, entriesOf(request.query))
    await withStore(store => store.unban(subject))
    log.info({ actor: actorOf(request), descriptor: subject }, 'rate limit service descriptor unbanned')
    reply.code(204)
  })
}
