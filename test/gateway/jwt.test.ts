/**
 * Verified JWT identity through the gateway, with tokens minted here and a local JWKS
 * server (RS256 and ES256 keys, rotated while the gateway runs, and taken down): one user
 * one bucket across addresses; a claim picks the tier; forged, expired, not yet valid,
 * wrong issuer or audience, `alg: none` and garbage all name no one (the next source does),
 * each counted by reason; JWT_REQUIRED answers 401; a static public key and an HMAC secret;
 * rules keyed and matched by a claim; no token or claim value in any log line.
 */
import { createServer, type Server } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { errors, exportJWK, exportSPKI, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK } from 'jose'
import { ManualClock } from '../../src/core/clock.js'
import { jwtIdentityKey } from '../../src/identity/identify.js'
import { reasonOf } from '../../src/identity/jwt.js'
import { loadConfig } from '../../src/config/index.js'
import { rulesFile, startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { captureLogs } from '../helpers/logs.js'
import { startUpstream } from '../helpers/upstream.js'

const NOW_S = 1_800_000_000
const ISSUER = 'https://issuer.test'
const AUDIENCE = 'gateway-tests'
const TOKEN = 'jwt-test-admin-token-0123456789'

interface Key { kid: string, alg: 'RS256' | 'ES256', privateKey: CryptoKey, jwk: JWK }

async function key (kid: string, alg: 'RS256' | 'ES256'): Promise<Key> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true })
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } }
}

/** A JWKS server on loopback whose key set can change, and that counts its fetches. */
async function jwksServer (t: Test, keys: Key[]): Promise<{ url: string, keys: Key[], fetches: () => number, server: Server }> {
  let fetches = 0
  const state = { keys }
  const server = createServer((_req, res) => {
    fetches++
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ keys: state.keys.map(k => k.jwk) }))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`, get keys () { return state.keys }, set keys (k) { state.keys = k }, fetches: () => fetches, server }
}

function mint (k: Key, claims: Record<string, unknown>, opts: { exp?: number, nbf?: number, iss?: string, aud?: string } = {}): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: k.alg, kid: k.kid }).setIssuedAt(NOW_S - 10).setExpirationTime(opts.exp ?? NOW_S + 3600).setIssuer(opts.iss ?? ISSUER).setAudience(opts.aud ?? AUDIENCE)
  if (opts.nbf !== undefined) jwt.setNotBefore(opts.nbf)
  return jwt.sign(k.privateKey)
}

const bearer = (token: string, from = '127.0.0.2') => ({ from, headers: { authorization: `Bearer ${token}` } })

async function metric (adminUrl: string, result: string): Promise<number> {
  const text = (await send(`${adminUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).body
  return Number(new RegExp(`gateway_jwt_verifications_total\\{result="${result}"\\} (\\d+)`).exec(text)?.[1] ?? NaN)
}

t.test('JWKS: one user one bucket, tiers by claim, every bad token names no one', async t => {
  const a = await key('a', 'RS256')
  const b = await key('b', 'ES256')
  const jwks = await jwksServer(t, [a])
  const upstream = await startUpstream(t)
  const { logger, lines } = captureLogs('debug')
  const clock = new ManualClock(NOW_S * 1000)
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url,
    TRUST_PROXY: '127.0.0.1',
    RATE_LIMIT_KEY_BY: 'jwt:sub,ip',
    RATE_LIMIT_RATE: '1/h',
    RATE_LIMIT_BURST: '2',
    RATE_LIMIT_TIERS: 'pro=1/h:5',
    JWT_JWKS_URL: jwks.url,
    JWT_JWKS_COOLDOWN_MS: '0',
    JWT_ISSUER: ISSUER,
    JWT_AUDIENCE: AUDIENCE,
    JWT_TIER_CLAIM: 'plan',
    ADMIN_TOKEN: TOKEN,
    LOG_LEVEL: 'debug',
    VIOLATION_LOG_INTERVAL_MS: '1000'
  }, { clock, logger })
  const u1 = await mint(a, { sub: 'user-1', plan: 'free' })
  const r1 = await send(`${gw.url}/ping`, bearer(u1, '127.0.0.2'))
  t.equal(r1.status, 200)
  t.equal(r1.headers['x-ratelimit-remaining'], '1')
  t.equal((await send(`${gw.url}/ping`, bearer(u1, '127.0.0.3'))).headers['x-ratelimit-remaining'], '0', 'the same user from another address: the same bucket')
  t.equal((await send(`${gw.url}/ping`, bearer(u1, '127.0.0.4'))).status, 429, 'and a third address is refused')
  t.equal((await send(`${gw.url}/ping`, bearer(await mint(a, { sub: 'user-1' }), '127.0.0.5'))).status, 429, 'another token of the same user: still the same bucket')
  t.equal(await metric(gw.adminUrl, 'valid'), 2, 'two tokens verified; the others were cached verdicts')

  const pro = await send(`${gw.url}/ping`, bearer(await mint(a, { sub: 'user-2', plan: 'pro' })))
  t.equal(pro.headers['ratelimit-policy'], '"pro";q=5;w=18000', 'plan: pro picks the pro tier')
  const unknownPlan = await send(`${gw.url}/ping`, bearer(await mint(a, { sub: 'user-3', plan: 'platinum' })))
  t.equal(unknownPlan.headers['ratelimit-policy'], '"default";q=2;w=7200', 'an unknown tier value: the default')
  t.equal((await send(`${gw.url}/ping`, bearer(await mint(a, { sub: 12345 })))).headers['x-ratelimit-remaining'], '1', 'a numeric sub names a user')
  t.equal((await send(`${gw.url}/ping`, bearer(await mint(a, { name: 'no sub' }), '127.0.0.9'))).headers['x-ratelimit-remaining'], '1', 'no sub claim: the address names the client')

  // Each bad token: the next source (the address) names the client; counted by reason.
  const other = await key('a', 'RS256')
  const none = 'eyJhbGciOiJub25lIiwia2lkIjoiYSJ9.' + Buffer.from(JSON.stringify({ sub: 'user-1', iss: ISSUER, aud: AUDIENCE, exp: NOW_S + 3600 })).toString('base64url') + '.'
  const bad: Array<[string, string]> = [
    ['bad_signature', await mint(other, { sub: 'user-1' })],
    ['expired', await mint(a, { sub: 'user-1' }, { exp: NOW_S - 31 })],
    ['not_yet_valid', await mint(a, { sub: 'user-1' }, { nbf: NOW_S + 31 })],
    ['wrong_issuer', await mint(a, { sub: 'user-1' }, { iss: 'https://evil.test' })],
    ['wrong_audience', await mint(a, { sub: 'user-1' }, { aud: 'someone-else' })],
    ['algorithm_not_allowed', none],
    ['malformed', 'not.a.jwt'],
    ['unknown_key', await mint(await key('zz', 'RS256'), { sub: 'user-1' })]
  ]
  let ip = 10
  for (const [reason, token] of bad) {
    const from = `127.0.0.${ip++}`
    const res = await send(`${gw.url}/ping`, bearer(token, from))
    t.equal(res.status, 200, `${reason}: not refused, and not user-1's (whose bucket is empty)`)
    t.equal(res.headers['x-ratelimit-remaining'], '1', `${reason}: its address's own bucket`)
    t.equal(await metric(gw.adminUrl, reason), 1, `${reason}: counted`)
  }
  t.equal((await send(`${gw.url}/ping`, bearer(await mint(a, { sub: 'user-1' }, { exp: NOW_S - 29 }), '127.0.0.30'))).status, 429, 'expired within JWT_CLOCK_SKEW_S (30 s): still valid')
  t.equal((await send(`${gw.url}/ping`, bearer(await new SignJWT({ sub: 'user-1', exp: 'soon' as unknown as number }).setProtectedHeader({ alg: 'RS256', kid: 'a' }).setIssuer(ISSUER).setAudience(AUDIENCE).sign(a.privateKey), '127.0.0.31'))).headers['x-ratelimit-remaining'], '1', 'an exp that is no time: malformed')
  t.equal((await send(`${gw.url}/ping`, bearer('x'.repeat(9000), '127.0.0.32'))).headers['x-ratelimit-remaining'], '1', 'a token past 8 KiB: malformed, never parsed')
  t.equal(await metric(gw.adminUrl, 'malformed'), 3)

  // Rotation: a new ES256 key published; a token signed with it verifies (the JWKS fetched again).
  const fetched = jwks.fetches()
  jwks.keys = [a, b]
  const es = await send(`${gw.url}/ping`, bearer(await mint(b, { sub: 'user-4' })))
  t.equal(es.headers['x-ratelimit-remaining'], '1', 'an ES256 token of a key added to the JWKS while running')
  t.ok(jwks.fetches() > fetched, 'the unknown kid fetched the JWKS again')

  // The JWKS down: keys already fetched still verify; a new kid cannot, and names no one.
  jwks.server.close()
  t.equal((await send(`${gw.url}/ping`, bearer(await mint(b, { sub: 'user-5' }), '127.0.0.40'))).headers['x-ratelimit-remaining'], '1', 'JWKS down: a known key still verifies')
  const c = await key('c', 'ES256')
  t.equal((await send(`${gw.url}/ping`, bearer(await mint(c, { sub: 'user-1' }), '127.0.0.41'))).headers['x-ratelimit-remaining'], '1', 'JWKS down: a new key names no one (the address does)')
  t.equal(await metric(gw.adminUrl, 'jwks_unavailable'), 1)

  // The offenders and logs name the user by a digest, never the claim or the token.
  t.match(JSON.parse((await send(`${gw.adminUrl}/admin/offenders`, { headers: { authorization: `Bearer ${TOKEN}` } })).body), { offenders: [{ client: jwtIdentityKey('sub', 'user-1') }] })
  await gw.app.close()
  const all = lines.map(l => JSON.stringify(l)).join('\n')
  t.ok(lines.length > 0)
  t.notOk(all.includes('user-1'), 'no claim value in the logs')
  t.notOk(all.includes(u1.split('.')[2]!), 'no token in the logs')
})

t.test('JWT_REQUIRED: no valid token, 401 problem+json; an allowlisted client needs none', async t => {
  const a = await key('a', 'RS256')
  const jwks = await jwksServer(t, [a])
  const upstream = await startUpstream(t)
  const clock = new ManualClock(NOW_S * 1000)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, TRUST_PROXY: '127.0.0.1', RATE_LIMIT_KEY_BY: 'jwt:sub', JWT_JWKS_URL: jwks.url, JWT_REQUIRED: 'true', ALLOWLIST: '127.0.0.99', ADMIN_TOKEN: TOKEN }, { clock })
  for (const [what, opts] of [['no token', { from: '127.0.0.2' }], ['a forged one', bearer(await mint(await key('a', 'RS256'), { sub: 'x' }))], ['not Bearer', { from: '127.0.0.2', headers: { authorization: 'Basic dXNlcjpwYXNz' } }]] as const) {
    const res = await send(`${gw.url}/ping`, opts)
    t.equal(res.status, 401, what)
    t.equal(res.headers['www-authenticate'], 'Bearer error="invalid_token"')
    t.match(JSON.parse(res.body), { status: 401, code: 'GW_TOKEN_INVALID', detail: 'A valid bearer token is required' })
  }
  t.equal((await send(`${gw.url}/ping`, bearer(await mint(a, { sub: 'x' })))).status, 200, 'a valid token goes through')
  t.equal((await send(`${gw.url}/ping`, { from: '127.0.0.99' })).status, 200, 'an allowlisted client needs none')
  t.equal(upstream.hits.get('/ping'), 2, 'a refused request never reached the upstream')
  t.match((await send(`${gw.adminUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).body, /gateway_requests_total\{outcome="token_invalid"\} 3/)
})

t.test('a static public key (PEM), an HMAC secret and a token header of its own; rules by claim', async t => {
  const upstream = await startUpstream(t)
  const clock = new ManualClock(NOW_S * 1000)
  const k = await key('p', 'ES256')
  const pem = await exportSPKI(await importJWK(k.jwk, 'ES256') as CryptoKey)
  const rules = rulesFile(t, [
    { name: 'free-plan', path: '/', claims: { plan: 'free' }, rate: '1/h', exclusive: true },
    { name: 'per-org', path: '/org/', keyBy: 'jwt:org_id', rate: '1/h', exclusive: true },
    { name: 'org-seven', path: '/seven/', claims: { org_id: '7' }, rate: '1/h', exclusive: true }
  ])
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_KEY_BY: 'jwt:sub,ip', JWT_PUBLIC_KEY: pem, JWT_HEADER: 'X-Token', RATE_LIMIT_RULES_FILE: rules, ADMIN_TOKEN: TOKEN }, { clock })
  const token = await mint(k, { sub: 's1', plan: 'free', org_id: 7 })
  const as = (tok: string) => ({ headers: { 'x-token': tok } })
  t.equal((await send(`${gw.url}/a`, as(token))).headers['ratelimit-policy'], '"free-plan";q=1;w=3600', 'a rule matched by a claim, the token in X-Token alone')
  t.equal((await send(`${gw.url}/a`, as(await mint(k, { sub: 's2', plan: 'pro' })))).headers['ratelimit-policy'], '"default";q=20;w=2', 'another claim value: the default limit')
  t.equal((await send(`${gw.url}/a`, { headers: { 'x-token': `Bearer ${token}` } })).headers['ratelimit-policy'], '"default";q=20;w=2', 'with JWT_HEADER the header is the token alone')
  t.equal((await send(`${gw.url}/a`, { headers: { 'x-token': '' } })).headers['ratelimit-policy'], '"default";q=20;w=2', 'an empty token header: no token')
  const noExp = await new SignJWT({ sub: 's9', plan: 'free' }).setProtectedHeader({ alg: 'ES256', kid: 'p' }).sign(k.privateKey)
  t.equal((await send(`${gw.url}/a`, as(noExp))).headers['ratelimit-policy'], '"free-plan";q=1;w=3600', 'a token without exp verifies (its verdict kept an hour at most)')
  t.not((await send(`${gw.url}/org/1`, as(await mint(k, { sub: 's3', org_id: 7 })))).status, 429, 'the upstream answered (its 404)')
  t.equal((await send(`${gw.url}/org/1`, as(await mint(k, { sub: 's4', org_id: 7 })))).status, 429, 'keyBy jwt:org_id: two users of org 7 share its bucket')
  t.equal((await send(`${gw.url}/seven/`, as(await mint(k, { sub: 's5', org_id: 7 })))).headers['ratelimit-policy'], '"org-seven";q=1;w=3600', 'a numeric claim matches its text')
  t.match(JSON.parse((await send(`${gw.adminUrl}/admin/config`, { headers: { authorization: `Bearer ${TOKEN}` } })).body), { rules: [{ name: 'free-plan', claims: { plan: 'free' } }] }, 'GET /admin/config shows a rule\'s claims')
  const org = JSON.parse((await send(`${gw.adminUrl}/admin/clients?client=${encodeURIComponent(jwtIdentityKey('org_id', '7'))}`, { headers: { authorization: `Bearer ${TOKEN}` } })).body) as { limits: Array<{ policy: string, remaining: number }> }
  t.match(org.limits.find(l => l.policy === 'per-org'), { remaining: 0 }, 'the admin API inspects an organisation by its identity key (a digest)')

  const secret = 'a-test-secret-of-at-least-32-bytes-long!'
  const hs = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_KEY_BY: 'jwt:sub,ip', RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '1', JWT_SECRET: secret }, { clock })
  const hsToken = await new SignJWT({ sub: 'h1' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(NOW_S + 60).sign(new TextEncoder().encode(secret))
  t.not((await send(`${hs.url}/a`, bearer(hsToken, '127.0.0.2'))).status, 429)
  t.equal((await send(`${hs.url}/a`, bearer(hsToken, '127.0.0.3'))).status, 429, 'HS256: one user one bucket')
  clock.advance(61_000 + 30_000)
  t.not((await send(`${hs.url}/a`, bearer(hsToken, '127.0.0.4'))).status, 429, 'past exp (and the skew) the cached verdict ends: the token names no one, the address does')
})

t.test('configuration: one key, algorithms that fit it, never none; what needs a key', async t => {
  const base = { UPSTREAM_URL: 'http://127.0.0.1:1' }
  const secret = 'x'.repeat(32)
  t.throws(() => loadConfig({ ...base, RATE_LIMIT_KEY_BY: 'jwt:sub' }), /RATE_LIMIT_KEY_BY: jwt:sub needs a key to verify tokens with/)
  t.throws(() => loadConfig({ ...base, JWT_REQUIRED: 'true' }), /JWT_REQUIRED=true but no key/)
  t.throws(() => loadConfig({ ...base, JWT_TIER_CLAIM: 'plan' }), /JWT_TIER_CLAIM is set but no key/)
  t.throws(() => loadConfig({ ...base, JWT_SECRET: secret, JWT_JWKS_URL: 'http://127.0.0.1/jwks' }), /JWT_JWKS_URL and JWT_SECRET are both set/)
  t.throws(() => loadConfig({ ...base, JWT_SECRET: 'short' }), /JWT_SECRET: at least 32 bytes/)
  t.throws(() => loadConfig({ ...base, JWT_SECRET: secret, JWT_ALGORITHMS: 'HS256,none' }), /JWT_ALGORITHMS: "none" is not one the secret verifies/)
  t.throws(() => loadConfig({ ...base, JWT_JWKS_URL: 'http://127.0.0.1/jwks', JWT_ALGORITHMS: 'HS256' }), /"HS256" is not one the public key verifies/)
  t.throws(() => loadConfig({ ...base, JWT_JWKS_URL: 'ftp://x/jwks' }), /JWT_JWKS_URL: expected an http/)
  t.throws(() => loadConfig({ ...base, JWT_PUBLIC_KEY: '/no/such/key.pem' }), /JWT_PUBLIC_KEY: ENOENT/)
  t.throws(() => loadConfig({ ...base, JWT_SECRET: secret, JWT_TIER_CLAIM: 'a b' }), /JWT_TIER_CLAIM: "a b" is not a claim name/)
  t.throws(() => loadConfig({ ...base, RATE_LIMIT_KEY_BY: 'jwt:' }), /a claim name is letters/)
  t.throws(() => loadConfig({ ...base, RATE_LIMIT_RULES_FILE: rulesFile(t, [{ name: 'r', path: '/', rate: '1/s', keyBy: 'jwt:sub' }]) }), /keyBy jwt: needs verified tokens/)
  t.throws(() => loadConfig({ ...base, RATE_LIMIT_RULES_FILE: rulesFile(t, [{ name: 'r', path: '/', rate: '1/s', claims: { plan: 'free' } }]) }), /claims needs verified tokens/)
  t.match(loadConfig({ ...base, JWT_SECRET: secret, JWT_ALGORITHMS: 'HS512' }).jwt, { algorithms: ['HS512'], header: 'authorization', clockSkewS: 30, required: false })
  t.equal(reasonOf(new Error('anything else')), 'jwks_unavailable', 'an error not jose\'s own: the JWKS fetch')
  t.equal(reasonOf(new errors.JWKSTimeout()), 'jwks_unavailable', 'the JWKS did not answer in time')
  t.equal(reasonOf(new errors.JWKSInvalid()), 'jwks_unavailable', 'the JWKS is not a key set')
})
