/**
 * The decision listener behind the proxies people run, from Debian's packages, as this
 * test's own processes on loopback ports: nginx (auth_request) and Caddy (forward_auth),
 * each in front of a real upstream, configured with docs/nginx-auth-request.conf and
 * docs/Caddyfile as they are (only the ports changed), the gateway in MODE=decision beside.
 */
import t from 'tap'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { freePort, startPeer } from '../helpers/process.js'
import { nginxMainConfig } from '../helpers/nginx.js'
import { startRedis } from '../helpers/redis.js'
import type { Teardown } from '../helpers/tap.js'
import { startUpstream, type TestUpstream } from '../helpers/upstream.js'

const DOCS = fileURLToPath(new URL('../../../docs/', import.meta.url))
const NGINX_SITE = readFileSync(join(DOCS, 'nginx-auth-request.conf'), 'utf8')
const CADDYFILE = readFileSync(join(DOCS, 'Caddyfile'), 'utf8')
const NGINX_FAIL_OPEN = readFileSync(join(DOCS, 'nginx-auth-request-fail-open.conf'), 'utf8')
const CADDYFILE_FAIL_OPEN = readFileSync(join(DOCS, 'Caddyfile.fail-open'), 'utf8')

/** The documented file with its example ports (8000 the proxy, 8080 the app, 9100 the gateway) replaced. */
function withPorts (text: string, proxy: string, upstream: TestUpstream, gateway: Pick<TestGateway, 'decisionUrl'>): string {
  const out = text
    .replace('listen 8000;', `listen ${proxy};`)
    .replace(/^:8000 \{/m, `http://${proxy} {`)
    .replaceAll('127.0.0.1:8080', `127.0.0.1:${upstream.port}`)
    .replaceAll('127.0.0.1:9100', gateway.decisionUrl.slice('http://'.length))
  for (const example of ['8000', '8080', '9100']) if (new RegExp(`[: ]${example}\\b`).test(out)) throw new Error(`port ${example} left in the documented file`)
  return out
}

async function startNginx (t: Teardown, upstream: TestUpstream, gateway: Pick<TestGateway, 'decisionUrl'>, site = NGINX_SITE): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-nginx-'))
  // nginx's workers run as nobody when started by root: their temp paths must be open to them.
  chmodSync(dir, 0o777)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const proxy = `127.0.0.1:${await freePort()}`
  writeFileSync(join(dir, 'site.conf'), withPorts(site, proxy, upstream, gateway))
  writeFileSync(join(dir, 'nginx.conf'), nginxMainConfig(dir, `  include ${dir}/site.conf;`))
  await startPeer(t, 'nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir, '-g', 'daemon off;'], {}, `http://${proxy}/_started`)
  return `http://${proxy}`
}

async function startCaddy (t: Teardown, upstream: TestUpstream, gateway: Pick<TestGateway, 'decisionUrl'>, caddyfile = CADDYFILE): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-caddy-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const proxy = `127.0.0.1:${await freePort()}`
  // Test-only global options: no admin endpoint (:2019 is anyone's), no certificates.
  writeFileSync(join(dir, 'Caddyfile'), `{\n\tadmin off\n\tauto_https off\n}\n\n${withPorts(caddyfile, proxy, upstream, gateway)}`)
  await startPeer(t, 'caddy', ['run', '--config', join(dir, 'Caddyfile'), '--adapter', 'caddyfile'], { HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir }, `http://${proxy}/_started`)
  return `http://${proxy}`
}

const ENV = { MODE: 'decision', DECISION_PORT: '0', TRUST_PROXY: '127.0.0.1', RATE_LIMIT_RATE: '1/m', RATE_LIMIT_BURST: '3', RATE_LIMIT_TIERS: 'pro=100/s:200', API_KEYS: 'k-pro:pro' }
/** As each documented file says: nginx's auth_request needs the refusal as a 401; Caddy passes the 429 itself. */
type Start = (t: Teardown, upstream: TestUpstream, gateway: Pick<TestGateway, 'decisionUrl'>) => Promise<string>
const PROXIES: ReadonlyArray<readonly [string, Start, Record<string, string>]> = [
  ['nginx auth_request', startNginx, { DECISION_DENY_STATUS: '401' }],
  ['Caddy forward_auth', startCaddy, {}],
  ['nginx auth_request, fail-open', (t, u, g) => startNginx(t, u, g, NGINX_FAIL_OPEN), { DECISION_DENY_STATUS: '401' }],
  ['Caddy forward_auth, fail-open', (t, u, g) => startCaddy(t, u, g, CADDYFILE_FAIL_OPEN), {}]
]

for (const [name, start, denyStatus] of PROXIES) {
  t.test(`${name}: the burst passes, then 429 with Retry-After and the rate-limit headers; the upstream never sees a refusal`, async t => {
    const upstream = await startUpstream(t)
    const gateway = await startGateway(t, { ...ENV, ...denyStatus })
    const proxy = await start(t, upstream, gateway)
    const hits = () => upstream.hits.get('/ping') ?? 0
    const get = (from: string, headers: Record<string, string> = {}) => send(`${proxy}/ping`, { from, headers })
    for (let i = 0; i < 3; i++) {
      const r = await get('127.0.0.2')
      t.equal(r.status, 200, `request ${i + 1} of the burst`)
      t.equal(r.headers['ratelimit-policy'], '"default";q=3;w=180', `request ${i + 1}: RateLimit-Policy at the client`)
      t.equal(r.headers['x-ratelimit-remaining'], String(2 - i))
    }
    const refused = await get('127.0.0.2')
    t.equal(refused.status, 429)
    t.equal(refused.headers['retry-after'], '60')
    t.match(refused.headers['ratelimit'], /^"default";r=0;t=\d+$/)
    t.equal(refused.headers['x-ratelimit-remaining'], '0')
    t.match(JSON.parse(refused.body), { status: 429, code: 'GW_RATE_LIMITED' })
    t.equal(hits(), 3, 'the refused request never reached the upstream')
    t.equal((await get('127.0.0.2', { 'x-forwarded-for': '198.51.100.9', 'x-real-ip': '198.51.100.9' })).status, 429, 'a spoofed X-Forwarded-For from the client is not believed')
    t.equal((await get('127.0.0.3')).status, 200, 'another client address: its own bucket')
    const keyed = await get('127.0.0.2', { 'x-api-key': 'k-pro' })
    t.equal(keyed.status, 200, 'an API key\'s tier applies')
    t.equal(keyed.headers['ratelimit-policy'], '"pro";q=200;w=2')
    t.equal(hits(), 5)
  })
}

for (const [name, start, denyStatus] of PROXIES) {
  t.test(`${name}: a banned client gets the gateway's 403 problem body with Retry-After, never the proxy's own page (issue 25.13)`, async t => {
    const upstream = await startUpstream(t)
    const gateway = await startGateway(t, { ...ENV, ...denyStatus, RATE_LIMIT_BAN_AFTER: '1', RATE_LIMIT_BAN_DURATION: '10m' })
    const proxy = await start(t, upstream, gateway)
    const statuses = []
    for (let i = 0; i < 4; i++) statuses.push((await send(`${proxy}/ping`, { from: '127.0.0.2' })).status)
    t.same(statuses, [200, 200, 200, 429], 'the burst, then a refusal that bans')
    const banned = await send(`${proxy}/ping`, { from: '127.0.0.2' })
    t.equal(banned.status, 403)
    t.match(banned.headers['content-type'], /^application\/problem\+json/)
    t.match(JSON.parse(banned.body), { status: 403, title: 'Forbidden', code: 'GW_BANNED' })
    t.ok(Number(banned.headers['retry-after']) > 500, `Retry-After: the ban's time left (${banned.headers['retry-after']} s)`)
    t.equal(upstream.hits.get('/ping'), 3)
  })
}

t.test('the decision service down: the documented files answer 500 (nginx) and 502 (Caddy) to everyone; the fail-open ones admit, unlimited (issue 25.13)', async t => {
  const upstream = await startUpstream(t)
  const dead = { decisionUrl: `http://127.0.0.1:${await freePort()}` }
  const expected: Record<string, number> = { 'nginx auth_request': 500, 'Caddy forward_auth': 502, 'nginx auth_request, fail-open': 200, 'Caddy forward_auth, fail-open': 200 }
  for (const [name, start] of PROXIES) {
    const proxy = await start(t, upstream, dead)
    const answers = []
    for (let i = 0; i < 5; i++) answers.push(await send(`${proxy}/ping`, { from: '127.0.0.2' }))
    t.same(answers.map(a => a.status), Array(5).fill(expected[name]), `${name}: ${expected[name]} for every request`)
    if (expected[name] === 200) {
      t.equal(answers[0]!.body, '{"message":"pong"}', `${name}: the app's own answer`)
      t.equal(answers[0]!.headers.ratelimit, undefined, `${name}: no limit headers`)
    }
  }
  t.equal(upstream.hits.get('/ping'), 10, 'only the fail-open files reached the app')
})

t.test('Caddy forward_auth: an answer without limit headers (allowlisted, RATE_LIMIT_HEADERS=none) leaks no placeholder to the client or the upstream (issue 25.4)', async t => {
  const upstream = await startUpstream(t)
  for (const env of [{ ALLOWLIST: '127.0.0.2' }, { RATE_LIMIT_HEADERS: 'none' }] as Array<Record<string, string>>) {
    const gateway = await startGateway(t, { ...ENV, ...env })
    const proxy = await startCaddy(t, upstream, gateway)
    const r = await send(`${proxy}/echo`, { from: '127.0.0.2' })
    t.equal(r.status, 200)
    const seen = JSON.parse(r.body).headers as Record<string, string>
    const leaked = (headers: Record<string, unknown>) => Object.entries(headers).filter(([, v]) => String(v).includes('{http.'))
    t.same(leaked(r.headers), [], `${JSON.stringify(env)}: no placeholder at the client`)
    t.same(leaked(seen), [], `${JSON.stringify(env)}: none at the upstream`)
    t.equal(r.headers.ratelimit, undefined, `${JSON.stringify(env)}: no RateLimit header at all`)
    t.equal(r.headers['x-ratelimit-limit'], undefined)
  }
})

t.test('two nginx instances, each asking its own decision service on one Redis: one limit', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const env = { ...ENV, DECISION_DENY_STATUS: '401', STORE: 'redis', REDIS_URL: redis.url }
  const [a, b] = [await startGateway(t, env), await startGateway(t, env)]
  const proxies = [await startNginx(t, upstream, a), await startNginx(t, upstream, b)]
  const statuses: number[] = []
  for (let i = 0; i < 5; i++) statuses.push((await send(`${proxies[i % 2]}/ping`, { from: '127.0.0.2' })).status)
  t.same(statuses, [200, 200, 200, 429, 429], 'the burst of 3, shared')
  t.equal(upstream.hits.get('/ping'), 3)
})
