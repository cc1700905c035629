/**
 * API keys managed live (POST/GET/PATCH/DELETE /admin/keys, POST /admin/keys/<id>/rotate):
 * made, retiered, expired, rotated and deleted while the gateway runs, beside API_KEYS and
 * API_KEYS_FILE (which stay, read-only). A key is shown once, when made; what is kept is
 * its SHA-256 digest (its client key, `key:<digest>`) in the runtime settings, so a change
 * reaches every instance through Redis as any setting does (within a second), and with
 * one instance is written to API_KEYS_STATE_FILE (atomically: a temporary file renamed).
 */
import { randomBytes } from 'node:crypto'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { FromSchema } from 'json-schema-to-ts'
import type { Config } from '../config/index.js'
import type { Clock } from '../core/clock.js'
import { changeSettings, type SettingsControl } from '../control/changes.js'
import type { KeyRecord, RuntimeSettings } from '../control/settings.js'
import { ConfigError, InvalidChangeError, NotFoundError } from '../errors.js'
import type { LimitsManager } from '../control/manager.js'
import { apiKeyId } from '../identity/identify.js'

/** What every made key starts with: a scanner (or a person) can tell it is this gateway's. */
export const KEY_PREFIX = 'gw_'
/** Characters of a key shown in listings: the prefix and four more. */
const SHOWN = 7
const DEFAULT_GRACE_MS = 24 * 3_600_000
const MAX_GRACE_MS = 30 * 24 * 3_600_000

const TIME = { type: ['string', 'null'], maxLength: 64 } as const
const CREATE_BODY = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1, maxLength: 128 }, tier: { type: ['string', 'null'], maxLength: 64 }, expiresAt: TIME }
} as const
const PATCH_BODY = { ...CREATE_BODY, required: [], minProperties: 1 } as const
const ID_PARAMS = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^k_[A-Za-z0-9_-]{8,32}$' } } } as const

export interface KeysDeps {
  control: SettingsControl
  config: Config
  clock: Clock
  actorOf: (request: FastifyRequest) => string
  /** When each key last named a client on this instance. */
  seen: ReadonlyMap<string, number>
}

/**
 * Puts API_KEYS_STATE_FILE's keys in force (start-up): none while there is no file yet;
 * a file that cannot be read or does not validate stops the start, naming it.
 */
export function loadKeysState (file: string, manager: LimitsManager): void {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw new ConfigError(`API_KEYS_STATE_FILE: ${(err as Error).message}`)
  }
  try {
    const keys = (JSON.parse(text) as { keys?: Record<string, KeyRecord> }).keys
    if (typeof keys !== 'object' || keys === null) throw new Error('expected {"version": 1, "keys": {...}}')
    manager.apply({ apiKeys: keys }, manager.version)
  } catch (err) {
    throw new ConfigError(`API_KEYS_STATE_FILE: ${file}: ${(err as Error).message}`)
  }
}

function writeKeysState (file: string, keys: Readonly<Record<string, KeyRecord>>): void {
  const temporary = `${file}.${process.pid}.tmp`
  writeFileSync(temporary, JSON.stringify({ version: 1, keys }, null, 2) + '\n', { mode: 0o600 })
  renameSync(temporary, file)
}

function iso (ms: number): string {
  return new Date(ms).toISOString()
}

export function keysRoutes (api: FastifyInstance, deps: KeysDeps): void {
  const { control, config, clock, actorOf } = deps
  const { manager, log } = control

  const records = (): Readonly<Record<string, KeyRecord>> => manager.runtimeSettings.apiKeys ?? {}

  function checkTier (tier: string | null | undefined): void {
    if (tier !== undefined && tier !== null && !config.tiers.has(tier)) throw new InvalidChangeError(`tier: "${tier}" is not defined in RATE_LIMIT_TIERS (defined: ${[...config.tiers.keys()].join(', ') || 'none'})`)
  }
  function checkTime (field: string, text: string | null | undefined): void {
    if (text !== undefined && text !== null && Number.isNaN(Date.parse(text))) throw new InvalidChangeError(`${field}: "${text}" is not an ISO 8601 time (e.g. 2027-01-31T00:00:00Z)`)
  }
  /** Puts these keys in force everywhere (and in the state file), as one settings change. */
  async function put (keys: Record<string, KeyRecord>, request: FastifyRequest): Promise<void> {
    const settings: RuntimeSettings = { ...manager.runtimeSettings, apiKeys: keys }
    await changeSettings(control, settings, actorOf(request))
    if (config.apiKeysStateFile !== undefined) writeKeysState(config.apiKeysStateFile, keys)
  }
  /** A new key: shown once; its digest names it from now on. */
  function mint (): { key: string, client: string, prefix: string } {
    const key = KEY_PREFIX + randomBytes(24).toString('base64url')
    return { key, client: apiKeyId(key), prefix: key.slice(0, SHOWN) }
  }
  /** The client keys of one id (the current key, and a rotated one in its grace). */
  function ofId (id: string): Array<[string, KeyRecord]> {
    const found = Object.entries(records()).filter(([, r]) => r.id === id)
    if (found.length === 0) throw new NotFoundError(`no API key with id ${id}`)
    return found
  }
  /** A key as listings show it: never the key, only its first characters. */
  function shown (client: string, r: KeyRecord, previous?: KeyRecord): Record<string, unknown> {
    const seen = deps.seen.get(client)
    return { id: r.id, name: r.name, tier: r.tier, prefix: r.prefix, client, createdAt: r.createdAt, expiresAt: r.expiresAt, lastSeenAt: seen === undefined ? null : iso(seen), previousKeyValidUntil: previous?.retiresAt ?? null }
  }

  api.post<{ Body: FromSchema<typeof CREATE_BODY> }>('/admin/keys', { schema: { body: CREATE_BODY } }, async (request, reply) => {
    const { name, tier = null, expiresAt = null } = request.body
    checkTier(tier)
    checkTime('expiresAt', expiresAt)
    const { key, client, prefix } = mint()
    const record: KeyRecord = { id: 'k_' + randomBytes(9).toString('base64url'), name, tier, prefix, createdAt: iso(clock.now()), expiresAt, retiresAt: null }
    await put({ ...records(), [client]: record }, request)
    log.info({ actor: actorOf(request), id: record.id, name, tier }, 'API key made')
    reply.code(201)
    return { id: record.id, key, name, tier, prefix: record.prefix, client, createdAt: record.createdAt, expiresAt }
  })

  api.get('/admin/keys', async () => {
    const all = Object.entries(records())
    const current = all.filter(([, r]) => r.retiresAt === null)
    const keys = current.map(([client, r]) => shown(client, r, all.find(([c, o]) => o.id === r.id && c !== client)?.[1]))
    return { keys: keys.sort((a, b) => String(a.createdAt).localeCompare(String(b.createdAt))) }
  })

  api.patch<{ Params: { id: string }, Body: FromSchema<typeof PATCH_BODY> }>('/admin/keys/:id', { schema: { params: ID_PARAMS, body: PATCH_BODY } }, async (request) => {
    const { name, tier, expiresAt } = request.body
    checkTier(tier)
    checkTime('expiresAt', expiresAt)
    const keys = { ...records() }
    for (const [client, r] of ofId(request.params.id)) {
      keys[client] = { ...r, ...(name === undefined ? {} : { name }), ...(tier === undefined ? {} : { tier }), ...(expiresAt === undefined ? {} : { expiresAt }) }
    }
    await put(keys, request)
    log.info({ actor: actorOf(request), id: request.params.id }, 'API key changed')
    const [client, r] = Object.entries(keys).find(([, r]) => r.id === request.params.id && r.retiresAt === null)!
    return shown(client, r)
  })

  api.delete<{ Params: { id: string } }>('/admin/keys/:id', { schema: { params: ID_PARAMS } }, async (request, reply) => {
    const keys = { ...records() }
    for (const [client] of ofId(request.params.id)) delete keys[client]
    await put(keys, request)
    log.info({ actor: actorOf(request), id: request.params.id }, 'API key deleted')
    reply.code(204)
  })

  // The body is optional (`curl -X POST …/rotate`), so it is checked here rather than by a schema.
  api.post<{ Params: { id: string }, Body: { graceSeconds?: unknown } | undefined }>('/admin/keys/:id/rotate', { schema: { params: ID_PARAMS } }, async (request, reply) => {
    const now = clock.now()
    const grace = request.body?.graceSeconds ?? DEFAULT_GRACE_MS / 1000
    if (typeof grace !== 'number' || !Number.isInteger(grace) || grace < 0 || grace > MAX_GRACE_MS / 1000) throw new InvalidChangeError(`graceSeconds: a whole number of seconds from 0 to ${MAX_GRACE_MS / 1000}`)
    const graceMs = grace * 1000
    const keys = { ...records() }
    const found = ofId(request.params.id)
    const [, current] = found.find(([, r]) => r.retiresAt === null)!
    // The old key (and any older one still in its grace) stays valid until the grace ends.
    for (const [client, r] of found) {
      const ends = r.retiresAt === null ? now + graceMs : Math.min(Date.parse(r.retiresAt), now + graceMs)
      keys[client] = { ...r, retiresAt: iso(ends) }
    }
    const { key, client, prefix } = mint()
    keys[client] = { ...current, prefix, createdAt: iso(now), retiresAt: null }
    await put(keys, request)
    log.info({ actor: actorOf(request), id: current.id, graceSeconds: graceMs / 1000 }, 'API key rotated')
    reply.code(201)
    return { id: current.id, key, name: current.name, tier: current.tier, prefix, client, createdAt: iso(now), expiresAt: current.expiresAt, previousKeyValidUntil: iso(now + graceMs) }
  })
}
