/**
 * Verified JWT identity (JWT_*): which key verifies a token (a JWKS fetched from
 * JWT_JWKS_URL, a static JWT_PUBLIC_KEY, or an HMAC JWT_SECRET: exactly one), what a token
 * must say (JWT_ISSUER, JWT_AUDIENCE, JWT_ALGORITHMS, never `none`), where it comes from
 * (JWT_HEADER), which claim names the tier (JWT_TIER_CLAIM), and whether a request without
 * a valid one is refused (JWT_REQUIRED).
 */
import { createPublicKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { ConfigError } from '../errors.js'
import { field } from './field.js'
import { CLAIM_RE, parseHeaderName, type KeySource } from './parse.js'

const HMAC = ['HS256', 'HS384', 'HS512']
const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']
/** Shortest HMAC secret accepted: 256 bits, what HS256 needs to be as strong as its hash. */
const MIN_SECRET_BYTES = 32

export interface JwtSettings {
  /** Exactly one of these verifies a token. */
  readonly jwksUrl: URL | undefined
  /** An unknown `kid` fetches the JWKS again at most this often (ms). */
  readonly jwksCooldownMs: number
  readonly publicKey: KeyObject | undefined
  readonly secret: Uint8Array | undefined
  readonly issuer: string | undefined
  readonly audience: string | undefined
  readonly algorithms: readonly string[]
  readonly clockSkewS: number
  /** Lower case. `authorization`: `Bearer <token>`; any other header: the token alone. */
  readonly header: string
  readonly tierClaim: string | undefined
  readonly required: boolean
}

export interface JwtEnv {
  JWT_JWKS_URL: string
  JWT_JWKS_COOLDOWN_MS: number
  JWT_PUBLIC_KEY: string
  JWT_SECRET: string
  JWT_ISSUER: string
  JWT_AUDIENCE: string
  JWT_ALGORITHMS: string
  JWT_CLOCK_SKEW_S: number
  JWT_HEADER: string
  JWT_TIER_CLAIM: string
  JWT_REQUIRED: boolean
}

function publicKeyOf (text: string): KeyObject {
  const pem = text.includes('-----BEGIN') ? text : readFileSync(text, 'utf8')
  return createPublicKey(pem)
}

function jwksUrlOf (text: string): URL {
  const url = new URL(text)
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('expected an http:// or https:// URL')
  return url
}

/** The JWT settings, or undefined when no key is set (then nothing may ask for a token). */
export function parseJwtSettings (raw: JwtEnv, keyBy: readonly KeySource[]): JwtSettings | undefined {
  const keys = [['JWT_JWKS_URL', raw.JWT_JWKS_URL], ['JWT_PUBLIC_KEY', raw.JWT_PUBLIC_KEY], ['JWT_SECRET', raw.JWT_SECRET]].filter(([, v]) => v !== '')
  const asks = keyBy.find((s): s is Extract<KeySource, { kind: 'jwt' }> => s.kind === 'jwt')
  if (keys.length === 0) {
    if (asks !== undefined) throw new ConfigError(`RATE_LIMIT_KEY_BY: jwt:${asks.claim} needs a key to verify tokens with: JWT_JWKS_URL, JWT_PUBLIC_KEY or JWT_SECRET`)
    for (const name of ['JWT_TIER_CLAIM', 'JWT_ISSUER', 'JWT_AUDIENCE', 'JWT_ALGORITHMS'] as const) {
      if (raw[name] !== '') throw new ConfigError(`${name} is set but no key verifies tokens: set JWT_JWKS_URL, JWT_PUBLIC_KEY or JWT_SECRET`)
    }
    if (raw.JWT_REQUIRED) throw new ConfigError('JWT_REQUIRED=true but no key verifies tokens: set JWT_JWKS_URL, JWT_PUBLIC_KEY or JWT_SECRET')
    return undefined
  }
  if (keys.length > 1) throw new ConfigError(`${keys.map(([n]) => n).join(' and ')} are both set: one key verifies tokens`)
  const secret = raw.JWT_SECRET === '' ? undefined : new TextEncoder().encode(raw.JWT_SECRET)
  if (secret !== undefined && secret.length < MIN_SECRET_BYTES) throw new ConfigError(`JWT_SECRET: at least ${MIN_SECRET_BYTES} bytes (e.g. openssl rand -hex 32); a short secret can be guessed`)
  const allowed = secret === undefined ? ASYMMETRIC : HMAC
  const algorithms = raw.JWT_ALGORITHMS === '' ? allowed : raw.JWT_ALGORITHMS.split(',').map(a => a.trim()).filter(a => a !== '')
  for (const a of algorithms) {
    if (!allowed.includes(a)) {
      throw new ConfigError(`JWT_ALGORITHMS: "${a}" is not one the ${secret === undefined ? 'public key' : 'secret'} verifies (${allowed.join(', ')}); "none" never is`)
    }
  }
  const tierClaim = raw.JWT_TIER_CLAIM === '' ? undefined : raw.JWT_TIER_CLAIM
  if (tierClaim !== undefined && !CLAIM_RE.test(tierClaim)) throw new ConfigError(`JWT_TIER_CLAIM: "${tierClaim}" is not a claim name (letters, digits and _ . : / -)`)
  return {
    jwksUrl: raw.JWT_JWKS_URL === '' ? undefined : field('JWT_JWKS_URL', () => jwksUrlOf(raw.JWT_JWKS_URL)),
    jwksCooldownMs: raw.JWT_JWKS_COOLDOWN_MS,
    publicKey: raw.JWT_PUBLIC_KEY === '' ? undefined : field('JWT_PUBLIC_KEY', () => publicKeyOf(raw.JWT_PUBLIC_KEY)),
    secret,
    issuer: raw.JWT_ISSUER === '' ? undefined : raw.JWT_ISSUER,
    audience: raw.JWT_AUDIENCE === '' ? undefined : raw.JWT_AUDIENCE,
    algorithms,
    clockSkewS: raw.JWT_CLOCK_SKEW_S,
    header: field('JWT_HEADER', () => parseHeaderName(raw.JWT_HEADER)),
    tierClaim,
    required: raw.JWT_REQUIRED
  }
}
