import t from 'tap'
import { fileURLToPath } from 'node:url'
import type { FastifyRequest } from 'fastify'
import { loadConfig } from '../../src/config/index.js'
import { createIdentify } from '../../src/identity/identify.js'
import { createLimits, hostOf, SKIP } from '../../src/limiter/limits.js'
import { startUpstream } from '../helpers/upstream.js'
import { rulesFile, startGateway } from '../helpers/gateway.js'
import { send, statuses } from '../helpers/http.js'

const EXAMPLE = fileURLToPath(new URL('../../../examples/rules.json', import.meta.url))

t.test('rule matching: method and path prefix, first match wins, normalised paths', async t => {
  const config = loadConfig({
    UPSTREAM_URL: 'http://127.0.0.1:1', RATE_LIMIT_RULES_FILE: EXAMPLE,
    RATE_LIMIT_TIERS: 'pro=100/s:200', API_KEYS: 'k-pro:pro', GLOBAL_RATE_LIMIT_RATE: '1000/s'
  })
  const select = createLimits(config, config.rules)
  const identify = createIdentify(config)
  const req = (method: string, url: string, headers: Record<string, string> = {}) =>
    ({ method, url, headers, ip: '192.0.2.1' }) as unknown as FastifyRequest

  // [method, url, headers, policies that apply (or 'skip'), cost]
  const CASES: Array<[string, string, Record<string, string>, string[] | 'skip', number]> = [
    ['GET', '/', {}, ['global', 'default'], 1],
    ['GET', '/healthz', {}, 'skip', 0],
    ['GET', '/healthz/deep', {}, 'skip', 0],
    ['POST', '/login', {}, ['global', 'default', 'login'], 1],
    ['GET', '/login', {}, ['global', 'default'], 1],
    ['POST', '/LOGIN/', {}, ['global', 'default', 'login'], 1],
    ['POST', '/x/../login', {}, ['global', 'default', 'login'], 1],
    ['POST', '/%6cogin', {}, ['global', 'default', 'login'], 1],
    ['POST', '/search?q=a', {}, ['global', 'default'], 5],
    ['GET', '/search', { 'x-api-key': 'k-pro' }, ['global', 'pro'], 5],
    ['DELETE', '/search', {}, ['global', 'default'], 1],
    ['HEAD', '/search', {}, ['global', 'default'], 5],
    ['GET', '/export/a.csv', {}, ['global', 'default', 'export-burst', 'export-daily'], 1],
    ['GET', '/export', {}, ['global', 'default'], 1],
    ['PUT', '/upload/big', { 'x-api-key': 'k-pro' }, ['global', 'upload'], 1],
    ['GET', '/upload', {}, ['global', 'default'], 1],
    ['GET', '/api/v2/reports/7', {}, ['global', 'default', 'reports-v2'], 1]
  ]
  for (const [method, url, headers, want, cost] of CASES) {
    const r = req(method, url, headers)
    const s = select(r, identify(r))
    if (want === 'skip') {
      t.equal(s, SKIP, `${method} ${url}: not limited`)
      continue
    }
    t.same(s.policies.map(p => p.name), want, `${method} ${url}: ${want.join(' + ')}`)
    t.equal(s.cost, cost, `${method} ${url}: costs ${cost}`)
  }

  const a = req('GET', '/export/x', { 'x-user-id': 'u-1' })
  const s = select(a, identify(a))
  t.same(s.subjects, ['ip:192.0.2.1', 'ip:192.0.2.1', 'h:x-user-id:u-1', 'h:x-user-id:u-1'], 'the export limits are the user\'s, the others the client\'s')
  t.ok(s.policies.find(p => p.name === 'reports-v2') === undefined)
  const dry = select(req('GET', '/api/v2/reports'), identify(req('GET', '/api/v2/reports')))
  t.same(dry.policies.map(p => p.dryRun), [false, false, true], 'only the rule\'s own limit is a dry run')
  t.equal(select(req('GET', '/'), identify(req('GET', '/'))), select(req('GET', '/x'), identify(req('GET', '/x'))), 'requests matching no rule share one selection (nothing allocated)')
})

t.test('through the gateway: cost, skip, exclusive, per-rule identity and per-rule dry run', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_RULES_FILE: EXAMPLE, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '12' })
  const url = gw.url
  // The upstream answers 404 for most of these paths: what matters is that it answered.
  const passed = async (path: string, n: number, opts: Parameters<typeof statuses>[2]) =>
    (await statuses(`${url}${path}`, n, opts)).map(s => (s === 429 ? 429 : 'passed'))

  t.same(await passed('/search', 3, { from: '127.0.0.2' }), ['passed', 'passed', 429], 'a search costs 5 of the burst of 12')
  const after = await send(`${url}/other`, { from: '127.0.0.2' })
  t.equal(after.headers['x-ratelimit-remaining'], '1', 'and it came out of the client\'s default limit: 12 - 2×5 - 1')
  t.same(await passed('/healthz', 20, { from: '127.0.0.2' }), Array(20).fill('passed'), 'a skip rule is never limited')
  t.equal(upstream.hits.get('/healthz'), 20)

  t.same(await passed('/upload', 1, { method: 'PUT', from: '127.0.0.3' }), ['passed'])
  t.equal((await send(`${url}/`, { from: '127.0.0.3' })).headers['x-ratelimit-remaining'], '11', 'an exclusive rule takes nothing from the default limit')

  // The export limits belong to the user, whichever address the user comes from.
  const asUser = (from: string) => ({ from, headers: { 'x-user-id': 'u-7' } })
  t.not((await send(`${url}/export/1`, asUser('127.0.0.4'))).status, 429)
  t.not((await send(`${url}/export/2`, asUser('127.0.0.5'))).status, 429)
  const third = await send(`${url}/export/3`, asUser('127.0.0.6'))
  t.equal(third.status, 429, 'the third export of user u-7 within its burst of 2 is refused, from a third address')
  t.match(JSON.parse(third.body), { policy: 'export-burst' })
  t.equal(third.headers['ratelimit-policy'], '"default";q=12;w=43200, "export-burst";q=2;w=2, "export-daily";q=100;w=86400', 'RateLimit-Policy lists every limit that applied')
  t.not((await send(`${url}/export/4`, { from: '127.0.0.6', headers: { 'x-user-id': 'u-8' } })).status, 429, 'another user from the same address is not')

  t.same(await passed('/api/v2/reports', 11, { from: '127.0.0.7' }), Array(11).fill('passed'), 'a dry-run rule refuses nothing (10/m, 11 sent)')
  const last = await send(`${url}/api/v2/reports`, { from: '127.0.0.7' })
  t.match(last.headers.ratelimit, /"reports-v2";r=0/, 'but its headers say it would have')
})

t.test('rules by host (exact, *.example.com) and by header value: per-virtual-host limits', async t => {
  const upstream = await startUpstream(t)
  const file = rulesFile(t, [
    { name: 'api-host', host: 'API.example.com', path: '/', rate: '2/h', exclusive: true },
    { name: 'tenants', host: '*.tenants.example.com', path: '/', rate: '3/h', exclusive: true },
    { name: 'free-plan', path: '/', headers: { 'X-Plan': 'free', 'x-region': 'eu' }, rate: '1/h', exclusive: true }
  ])
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_RULES_FILE: file, RATE_LIMIT_RATE: '100/h', RATE_LIMIT_BURST: '100', ADMIN_TOKEN: 'route-rules-admin-token-0123456789' })
  const config = JSON.parse((await send(`${gw.adminUrl}/admin/config`, { headers: { authorization: 'Bearer route-rules-admin-token-0123456789' } })).body) as { rules: unknown[] }
  t.match(config.rules, [{ name: 'api-host', host: 'api.example.com', headers: null, claims: null }, { host: '*.tenants.example.com' }, { host: null, headers: { 'x-plan': 'free', 'x-region': 'eu' } }], 'GET /admin/config shows them')
  const as = (host: string, headers: Record<string, string> = {}) => ({ headers: { host, ...headers } })
  // The test upstream answers 404 for these paths: what matters is that it answered.
  const passed = async (path: string, n: number, opts: Parameters<typeof statuses>[2]) => (await statuses(`${gw.url}${path}`, n, opts)).map(s => (s === 429 ? 429 : 200))
  t.same(await passed('/a', 3, as('api.example.com:8000')), [200, 200, 429], 'api.example.com (any case, any port): 2 an hour')
  t.equal((await send(`${gw.url}/a`, as('api.example.com'))).headers['ratelimit-policy'], '"api-host";q=2;w=3600')
  t.equal((await send(`${gw.url}/a`, as('www.example.com'))).headers['ratelimit-policy'], '"default";q=100;w=3600', 'another host: the default limit')
  t.same(await passed('/a', 4, as('acme.tenants.example.com', { 'x-client': 'a' })), [200, 200, 200, 429], '*.tenants.example.com: 3 an hour')
  t.equal((await send(`${gw.url}/a`, as('eu.acme.tenants.example.com'))).headers['ratelimit-policy'], '"tenants";q=3;w=3600', 'any depth below')
  t.equal((await send(`${gw.url}/a`, as('tenants.example.com'))).headers['ratelimit-policy'], '"default";q=100;w=3600', 'not the name itself')
  t.equal((await send(`${gw.url}/a`, as('[::1]:8000'))).headers['ratelimit-policy'], '"default";q=100;w=3600', 'an IPv6 host')
  t.same(await passed('/b', 2, as('h', { 'x-plan': 'free', 'x-region': 'eu' })), [200, 429], 'x-plan: free and x-region: eu: 1 an hour')
  t.equal((await send(`${gw.url}/b`, as('h', { 'x-plan': 'free' }))).headers['ratelimit-policy'], '"default";q=100;w=3600', 'every header must match')
  t.equal((await send(`${gw.url}/b`, as('h', { 'x-plan': 'Free', 'x-region': 'eu' }))).headers['ratelimit-policy'], '"default";q=100;w=3600', 'values exactly')
  t.equal(hostOf(undefined), '', 'no Host header: no host')
})

t.test('host and headers are validated like the rest of a rule', async t => {
  for (const [rule, message] of [
    [{ host: 'a..b' }, /host must match pattern/],
    [{ host: 'exa mple.com' }, /host must match pattern/],
    [{ host: '*.*.example.com' }, /host must match pattern/],
    [{ headers: {} }, /headers must NOT have fewer than 1 properties/],
    [{ headers: { 'bad header': 'x' } }, /property name must be valid|must match pattern/],
    [{ headers: { a: 1 } }, /must be string/]
  ] as const) {
    t.throws(() => loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:1', RATE_LIMIT_RULES_FILE: rulesFile(t, [{ name: 'r', path: '/', rate: '1/s', ...rule }]) }), message, JSON.stringify(rule))
  }
})
