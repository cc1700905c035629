/**
 * Who is this request? The identity sources of RATE_LIMIT_KEY_BY are tried in order; the
 * first present names the client. An API key counts only when the registry knows it, so
 * made-up keys cannot mint fresh buckets; when nothing else names the client, its IP does.
 */
import { createHash } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import proxyAddr from 'proxy-addr'
import type { Config, KeySource } from '../config/index.js'
import { ipKey } from './ip.js'
import type { VerifiedToken } from '../core/request.js'

/** Longest header value accepted as a user id; longer ones are ignored (IP is used). */
export const MAX_HEADER_ID_LENGTH = 256

export type IdentitySource = 'ip' | 'api-key' | 'header' | 'jwt' | 'global' | 'allowlist'

export interface Identity {
  /** The store key of the client, e.g. `ip:203.0.113.7`, `key:<digest>`, `h:x-user-id:42`, `jwt:sub:<digest>`. */
  readonly key: string
  readonly source: IdentitySource
  /** The API key's tier, when identified by a registered key that has one. */
  readonly tier: string | undefined
}

export type Identify = (request: FastifyRequest) => Identity

/** An API key made through the admin API (POST /admin/keys): its identity, until when it buys anything. */
export interface ManagedKey {
  readonly identity: Identity
  /** Epoch ms after which the key names no one (its expiry, or a rotated key's grace); Infinity: never. */
  readonly validUntil: number
}

/** The managed keys in force by client key (`key:<digest>`), swapped whole when they change. */
export interface ManagedKeys {
  current: ReadonlyMap<string, ManagedKey>
  /** When each key last named a client here (this instance's, by client key). */
  readonly seen: Map<string, number>
}

/** The `global` source: every request the same client, so they share one limit. */
export const GLOBAL_IDENTITY: Identity = Object.freeze({ key: 'global', source: 'global', tier: undefined })

/** What identify() returns for an ALLOWLIST client: never limited, never counted. */
export const ALLOWLISTED: Identity = Object.freeze({ key: '', source: 'allowlist', tier: undefined })

/**
 * The identity key of an API key: a digest, so that the key itself never appears in a
 * store (Redis keys are visible to anyone who can SCAN) nor in logs.
 */
export function apiKeyId (apiKey: string): string {
  return 'key:' + digestOf(apiKey)
}

/** What an identity key holds of a secret or personal value: 22 characters of its SHA-256 (132 bits). */
function digestOf (value: string): string {
  return createHash('sha256').update(value).digest('base64url').slice(0, 22)
}

/** A client identified by its address (IPv6 by its RATE_LIMIT_IPV6_SUBNET prefix). */
export function ipIdentity (address: string, ipv6Subnet: number): Identity {
  return { key: 'ip:' + ipKey(address, ipv6Subnet), source: 'ip', tier: undefined }
}

/**
 * The source an identity key comes from, by its prefix (`ip:`, `key:`, `h:<header>:`,
 * `jwt:<claim>:`, `global`); undefined for a string that is no identity key.
 */
export function sourceOfKey (key: string): IdentitySource | undefined {
  if (key.startsWith('ip:')) return 'ip'
  if (key.startsWith('key:')) return 'api-key'
  if (key.startsWith('h:')) return 'header'
  if (key.startsWith('jwt:')) return 'jwt'
  if (key === 'global') return 'global'
  return undefined
}

function headerValue (request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name]
  // A repeated header is ambiguous: ignore it rather than pick one.
  return typeof v === 'string' ? v : undefined
}

/**
 * The identity key of a token's claim value: a digest, like an API key's, so that no
 * claim value (a user's id, an e-mail) appears in a store, a log or a metric.
 */
export function jwtIdentityKey (claim: string, value: string): string {
  return `jwt:${claim}:` + digestOf(value)
}

/**
 * A managed key's identity, while it is valid: looked up by the key's digest (a SHA-256,
 * ~1 µs; only when managed keys exist and the key is not one of API_KEYS), and marked seen.
 */
function managedIdentity (managed: ManagedKeys, value: string, now: () => number): Identity | undefined {
  if (managed.current.size === 0 || value.length > MAX_API_KEY_LENGTH) return undefined
  const id = apiKeyId(value)
  const key = managed.current.get(id)
  if (key === undefined) return undefined
  const at = now()
  if (at >= key.validUntil) return undefined
  managed.seen.set(id, at)
  return key.identity
}

/** Longest API key looked up (API_KEYS' keys are at most 512 characters, managed ones 35). */
const MAX_API_KEY_LENGTH = 512

/** What a claim that names no one is remembered as (a token's identities memo). */
const NO_ONE = Object.freeze({})

/**
 * The identity a verified token's claim names (`jwt:<claim>:<digest of the value>`: a string of 1 to
 * MAX_HEADER_ID_LENGTH characters, or a finite number), with the tier its JWT_TIER_CLAIM
 * names if that tier exists; made once per token and claim. Undefined: the claim names no one.
 */
export function tokenIdentity (token: VerifiedToken, claim: string, tierClaim: string | undefined, tiers: ReadonlyMap<string, unknown>): Identity | undefined {
  let id = token.identities.get(claim)
  if (id === undefined) {
    const value = token.claims[claim]
    const text = typeof value === 'string' ? value : typeof value === 'number' && Number.isFinite(value) ? String(value) : ''
    if (text.length === 0 || text.length > MAX_HEADER_ID_LENGTH) id = NO_ONE
    else {
      const tier = tierClaim === undefined ? undefined : token.claims[tierClaim]
      id = Object.freeze({ key: jwtIdentityKey(claim, text), source: 'jwt', tier: typeof tier === 'string' && tiers.has(tier) ? tier : undefined })
    }
    token.identities.set(claim, id)
  }
  return id === NO_ONE ? undefined : id as Identity
}

/** No managed keys (a test's, or before any setting): looked up in nothing. */
export const NO_MANAGED_KEYS: ManagedKeys = Object.freeze({ current: new Map(), seen: new Map() })

/**
 * Builds identify(). ALLOWLIST clients come first: an allowlisted key by exact match, or an
 * address in an allowlisted network (the same client address the limiter would use, so
 * behind a trusted proxy the X-Forwarded-For client). The address, an X-Forwarded-For
 * parse behind a trusted proxy, is computed at most once per request.
 */
export function createIdentify (config: Pick<Config, 'keyBy' | 'apiKeyHeader' | 'apiKeys' | 'ipv6Subnet' | 'allowlist' | 'jwt' | 'tiers'>, managed: ManagedKeys = NO_MANAGED_KEYS, now: () => number = Date.now): Identify {
  const tierClaim = config.jwt?.tierClaim
  const tiers = config.tiers
  const { apiKeyHeader, ipv6Subnet } = config
  // Identities of registered keys, built once: a keyed request allocates nothing.
  const keyed = new Map<string, Identity>()
  for (const [apiKey, tier] of config.apiKeys) keyed.set(apiKey, Object.freeze({ key: apiKeyId(apiKey), source: 'api-key', tier }))
  const sources: readonly KeySource[] = config.keyBy
  const allowedKeys = config.allowlist.keys
  const inAllowedNetwork = config.allowlist.networks.length > 0 ? proxyAddr.compile([...config.allowlist.networks]) : undefined
  const byIp = (ip: string): Identity => ipIdentity(ip, ipv6Subnet)

  // No allowlist and the IP first: sources listed after `ip` are never reached.
  if (allowedKeys.size === 0 && inAllowedNetwork === undefined) {
    if (sources[0]!.kind === 'ip') return request => byIp(request.ip)
    if (sources[0]!.kind === 'global') return () => GLOBAL_IDENTITY
  }

  return function identify (request) {
    if (allowedKeys.size > 0) {
      const value = headerValue(request, apiKeyHeader)
      if (value !== undefined && allowedKeys.has(value)) return ALLOWLISTED
    }
    let ip: string | undefined
    if (inAllowedNetwork !== undefined) {
      ip = request.ip
      if (inAllowedNetwork(ip, 0)) return ALLOWLISTED
    }
    for (let i = 0; i < sources.length; i++) {
      const source = sources[i]!
      if (source.kind === 'ip') {
        break
      } else if (source.kind === 'global') {
        return GLOBAL_IDENTITY
      } else if (source.kind === 'api-key') {
        const value = headerValue(request, apiKeyHeader)
        const identity = value === undefined ? undefined : keyed.get(value) ?? managedIdentity(managed, value, now)
        if (identity !== undefined) return identity
      } else if (source.kind === 'jwt') {
        // The token was verified before identify() (the limiter's hook): null, none valid.
        const token = request.gwToken
        const identity = token === null ? undefined : tokenIdentity(token, source.claim, tierClaim, tiers)
        if (identity !== undefined) return identity
      } else if (source.kind === 'header') {
        const value = headerValue(request, source.name)
        if (value !== undefined && value.length > 0 && value.length <= MAX_HEADER_ID_LENGTH) {
          return { key: 'h:' + source.name + ':' + value, source: 'header', tier: undefined }
        }
      }
    }
    return byIp(ip ?? request.ip)
  }
}
