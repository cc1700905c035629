/**
 * Verified JWT identity: the request's token (`Authorization: Bearer`, or JWT_HEADER)
 * checked by jose against the key (a JWKS fetched from JWT_JWKS_URL, cached and fetched
 * again on an unknown `kid` at most every JWT_JWKS_COOLDOWN_MS; a static public key; an HMAC secret), its
 * `exp`/`nbf` with JWT_CLOCK_SKEW_S, JWT_ISSUER, JWT_AUDIENCE and the allowed algorithms.
 *
 * Verifying costs tens of microseconds, so a verdict is cached by the token's SHA-256 in a
 * bounded LRU: a valid token until its `exp` (at most an hour), a bad one for a minute
 * (a flood of one forged token is verified once), a token whose key is not in the JWKS
 * (yet), or that the JWKS could not be fetched for, five seconds. A request with a cached verdict is identified synchronously; only a
 * token seen for the first time waits for jose.
 *
 * A token that does not verify names no one: the next identity source names the client
 * (JWT_REQUIRED refuses it instead: the limiter's 401). Neither the token nor a claim's
 * value is ever logged; failures are counted by reason.
 */
import { createHash } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from 'jose'
import { LRUCache } from 'lru-cache'
import { Counter, type Registry } from 'prom-client'
import type { JwtSettings } from '../config/jwt.js'
import type { VerifiedToken } from '../core/request.js'

export const VERIFY_RESULTS = ['valid', 'expired', 'not_yet_valid', 'bad_signature', 'wrong_issuer', 'wrong_audience', 'algorithm_not_allowed', 'unknown_key', 'jwks_unavailable', 'malformed'] as const
export type VerifyResult = typeof VERIFY_RESULTS[number]

/** Verdicts remembered (tokens of as many clients). */
export const MAX_CACHED_TOKENS = 10_000
/** Longest token read; a longer one is malformed (no real JWT is 8 KiB). */
export const MAX_TOKEN_LENGTH = 8192
const VALID_FOR_AT_MOST_MS = 3_600_000
const INVALID_FOR_MS = 60_000
const UNAVAILABLE_FOR_MS = 5_000
/** jose's JWKS fetch, given up after this long. */
const JWKS_TIMEOUT_MS = 2_000

interface Verdict {
  readonly token: VerifiedToken | null
  /** Epoch ms (the injected clock) after which it is verified again. */
  readonly until: number
}

/** Why jose refused a token, in the metrics' words. */
export function reasonOf (err: unknown): VerifyResult {
  if (err instanceof errors.JWTExpired) return 'expired'
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return 'not_yet_valid'
    if (err.claim === 'iss') return 'wrong_issuer'
    if (err.claim === 'aud') return 'wrong_audience'
    return 'malformed'
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad_signature'
  if (err instanceof errors.JOSEAlgNotAllowed) return 'algorithm_not_allowed'
  if (err instanceof errors.JWKSNoMatchingKey) return 'unknown_key'
  if (err instanceof errors.JOSEError) return err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid ? 'jwks_unavailable' : 'malformed'
  // Not jose's own: the JWKS fetch itself failed (refused, reset, DNS).
  return 'jwks_unavailable'
}

/** gateway_jwt_verifications_total: tokens verified (not the cached verdicts) by result. */
export function verificationCounter (registry: Registry): (result: VerifyResult) => void {
  const counter = new Counter({ name: 'gateway_jwt_verifications_total', help: 'Bearer tokens verified (a verdict is then cached), by result', labelNames: ['result'], registers: [registry] })
  for (const r of VERIFY_RESULTS) counter.labels(r).inc(0)
  return result => { counter.labels(result).inc() }
}

export class TokenVerifier {
  private readonly key: Uint8Array | JWTVerifyGetKey | NonNullable<JwtSettings['publicKey']>
  private readonly cache = new LRUCache<string, Verdict>({ max: MAX_CACHED_TOKENS })
  /** Tokens being verified now: a burst of one new token verifies it once. */
  private readonly pending = new Map<string, Promise<Verdict>>()
  private readonly bearer: boolean
  /** JWT_REQUIRED: the limiter refuses a request without a valid token (401). */
  readonly required: boolean

  constructor (private readonly settings: JwtSettings, private readonly counted: (result: VerifyResult) => void, private readonly now: () => number) {
    this.key = settings.jwksUrl !== undefined
      ? createRemoteJWKSet(settings.jwksUrl, { cooldownDuration: settings.jwksCooldownMs, timeoutDuration: JWKS_TIMEOUT_MS })
      : settings.publicKey ?? settings.secret!
    this.bearer = settings.header === 'authorization'
    this.required = settings.required
  }

  /** The token the request carries, if any. */
  tokenOf (request: FastifyRequest): string | undefined {
    const value = request.headers[this.settings.header]
    if (typeof value !== 'string') return undefined
    if (!this.bearer) return value === '' ? undefined : value
    return value.length > 7 && value.slice(0, 7).toLowerCase() === 'bearer ' ? value.slice(7).trim() : undefined
  }

  /**
   * Sets `request.gwToken`: the verified token, or null. Synchronous when the token was
   * seen before (or there is none); a promise (never rejected) when it is verified now.
   */
  verify (request: FastifyRequest): void | Promise<void> {
    const token = this.tokenOf(request)
    if (token === undefined) {
      request.gwToken = null
      return
    }
    const id = createHash('sha256').update(token).digest('base64')
    const hit = this.cache.get(id)
    if (hit !== undefined && hit.until > this.now()) {
      request.gwToken = hit.token
      return
    }
    let pending = this.pending.get(id)
    if (pending === undefined) {
      pending = this.check(token)
      this.pending.set(id, pending)
      void pending.then(verdict => {
        this.pending.delete(id)
        this.cache.set(id, verdict)
      })
    }
    return pending.then(verdict => { request.gwToken = verdict.token })
  }

  private async check (token: string): Promise<Verdict> {
    const now = this.now()
    if (token.length > MAX_TOKEN_LENGTH) {
      this.counted('malformed')
      return { token: null, until: now + INVALID_FOR_MS }
    }
    const { issuer, audience, algorithms, clockSkewS } = this.settings
    try {
      const { payload } = await jwtVerify(token, this.key as Uint8Array, {
        algorithms: [...algorithms],
        clockTolerance: clockSkewS,
        currentDate: new Date(now),
        ...(issuer === undefined ? {} : { issuer }),
        ...(audience === undefined ? {} : { audience })
      })
      this.counted('valid')
      const expires = payload.exp === undefined ? Infinity : payload.exp * 1000 + clockSkewS * 1000
      return { token: { claims: payload, identities: new Map() }, until: Math.min(expires, now + VALID_FOR_AT_MOST_MS) }
    } catch (err) {
      const reason = reasonOf(err)
      this.counted(reason)
      // A key the JWKS may publish any moment (rotation), or a JWKS that may come back: soon again.
      return { token: null, until: now + (reason === 'jwks_unavailable' || reason === 'unknown_key' ? UNAVAILABLE_FOR_MS : INVALID_FOR_MS) }
    }
  }
}

/** The verifier for JWT_*, its results counted in `registry`, its verdicts timed by `clock`. */
export function createTokenVerifier (settings: JwtSettings, registry: Registry, clock: { now: () => number }): TokenVerifier {
  return new TokenVerifier(settings, verificationCounter(registry), () => clock.now())
}
