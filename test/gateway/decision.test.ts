/**
 * The decision listener, asked directly the way a proxy asks (the headers nginx, Caddy,
 * Traefik and Envoy send): the same limiter as inline, with the original request's client,
 * method and path taken from the headers of a trusted asker only.
 */
import t from 'tap'
import { loadConfig } from '../../src/config/index.js'
import { rulesFile, startGateway, type TestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'
import { captureLogs } from '../helpers/logs.js'

const ask = (gw: TestGateway, headers: Record<string, string>, path = '/') => send(`${gw.decisionUrl}${path}`, { headers })

t.test('MODE=decision: no UPSTREAM_URL needed; a trusted proxy\'s X-Forwarded-* describe the request; the burst, then the deny status', async t => {
  const rules = rulesFile(t, [{ name: 'login', methods: ['POST'], path: '/login', rate: '2/m', keyBy: 'ip' }])
  const gw = await startGateway(t, {
    MODE: 'decision', DECISION_PORT: '0', TRUST_PROXY: '127.0.0.1', RATE_LIMIT_RATE: '1/m', RATE_LIMIT_BURST: '3',
    DECISION_DENY_STATUS: '401', RATE_LIMIT_RULES_FILE: rules, RATE_LIMIT_TIERS: 'pro=100/s:200', API_KEYS: 'k-pro:pro'
  })
  t.equal(gw.app.config.upstreamUrl, undefined)
  const from = (ip: string) => ({ 'x-forwarded-for': ip, 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/app?x=1' })
  const first = await ask(gw, from('203.0.113.7'))
  t.equal(first.status, 200)
  t.equal(first.body, '', 'no body')
  t.equal(first.headers['ratelimit-policy'], '"default";q=3;w=180')
  t.equal(first.headers['x-ratelimit-remaining'], '2')
  t.equal((await ask(gw, from('203.0.113.7'))).status, 200)
  t.equal((await ask(gw, from('203.0.113.7'))).status, 200)
  const refused = await ask(gw, from('203.0.113.7'))
  t.equal(refused.status, 401, 'DECISION_DENY_STATUS')
  t.equal(refused.headers['retry-after'], '60')
  t.match(refused.headers['ratelimit'], /^"default";r=0;t=\d+/)
  t.match(JSON.parse(refused.body), { code: 'GW_RATE_LIMITED', policy: 'default', retryAfter: 60 })
  t.equal((await ask(gw, from('203.0.113.8'))).status, 200, 'another client: its own bucket')
  const key = await ask(gw, { ...from('203.0.113.7'), 'x-api-key': 'k-pro' })
  t.equal(key.status, 200, 'the original request\'s own headers: an API key\'s tier')
  t.equal(key.headers['ratelimit-policy'], '"pro";q=200;w=2')

  // The method and path: a rule applies to the original request, not to the question.
  const login = { 'x-original-method': 'POST', 'x-original-uri': '/login', 'x-real-ip': '198.51.100.1' }
  t.equal((await ask(gw, login)).status, 200)
  t.equal((await ask(gw, login)).status, 200)
  const third = await ask(gw, login)
  t.equal(third.status, 401, 'X-Original-Method/URI and X-Real-IP: the login rule, 2 a minute')
  t.equal(JSON.parse(third.body).policy, 'login')
  t.equal((await ask(gw, { ...login, 'x-original-method': 'GET' })).status, 200, 'GET /login is not the rule\'s')
  const counts = (await gw.app.metrics.requestsTotal.get()).values
  t.equal(counts.find(v => v.labels.outcome === 'limited')?.value, 2, 'counted as the inline path counts')

  const withBody = await send(`${gw.decisionUrl}/`, { method: 'POST', headers: { 'content-type': 'text/plain', 'x-forwarded-for': '203.0.113.20' }, body: 'the original\'s body, as Envoy may send it' })
  t.equal(withBody.status, 200, 'a question with a body: answered, the body never read')
  t.match(JSON.parse((await send(`${gw.adminUrl}/readyz`)).body), { status: 'ready', upstream: null }, '/readyz: no upstream to show')
  t.equal((await ask(gw, { 'x-forwarded-uri': 'login' })).status, 400, 'a URI that is not a path')
  t.equal((await ask(gw, { 'x-forwarded-method': 'GE T' })).status, 400, 'a method that is not one')
  t.equal((await ask(gw, { 'x-forwarded-uri': '/a/../../etc' })).status, 400, 'a path climbing out, as inline')
})

t.test('an asker outside TRUST_PROXY is the client itself: its X-Forwarded-For is not believed', async t => {
  const gw = await startGateway(t, { MODE: 'decision', DECISION_PORT: '0', RATE_LIMIT_RATE: '1/m', RATE_LIMIT_BURST: '1' })
  t.equal((await ask(gw, { 'x-forwarded-for': '203.0.113.1' })).status, 200)
  t.equal((await ask(gw, { 'x-forwarded-for': '203.0.113.2' })).status, 429, 'another claimed address, the same asker: refused')
  t.equal((await ask(gw, { 'x-real-ip': '203.0.113.3' })).status, 429)
})

t.test('beside the proxy: DECISION_PORT with MODE=proxy; in-flight limits and settlements apply inline only', async t => {
  const upstream = await startUpstream(t)
  const rules = rulesFile(t, [{ name: 'health', path: '/healthz', skip: true }, { name: 'api', path: '/api', rate: '2/m', concurrency: 1, refund: { status: ['5xx'] } }])
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, DECISION_PORT: '0', RATE_LIMIT_RULES_FILE: rules, CONCURRENCY_LIMIT: '1' })
  t.equal((await send(`${gw.url}/ping`)).status, 200, 'the proxy runs too')
  // Nothing releases a slot after a question: none is taken, so questions never run out of them.
  for (let i = 0; i < 2; i++) t.equal((await ask(gw, { 'x-forwarded-uri': '/api/x' })).status, 200)
  t.equal((await ask(gw, { 'x-forwarded-uri': '/api/x' })).status, 429, 'the rate limit holds; nothing was given back')
  const skipped = await ask(gw, { 'x-forwarded-uri': '/healthz' })
  t.same([skipped.status, skipped.headers['ratelimit'], skipped.headers['x-ratelimit-limit']], [200, undefined, undefined], 'a skip rule: allowed, with no limit headers')
})

t.test('MODE=decision needs DECISION_PORT or RLS_PORT; MODE=proxy needs UPSTREAM_URL', async t => {
  t.throws(() => loadConfig({ MODE: 'decision' }), /DECISION_PORT or RLS_PORT is required with MODE=decision/)
  t.throws(() => loadConfig({}), /UPSTREAM_URL is required/)
  t.throws(() => loadConfig({ MODE: 'decision', DECISION_PORT: '9100', RATE_LIMIT_ENABLED: 'false' }), /nothing to decide/)
  t.throws(() => loadConfig({ MODE: 'decision', DECISION_PORT: '9100', DECISION_DENY_STATUS: '500' }), /DECISION_DENY_STATUS/)
})

t.test('what needs the response (issue 25.12): refused at run time in MODE=decision, named in a start-up warning beside an inline gateway', async t => {
  const TOKEN = 'test-admin-token-0123456789'
  const gw = await startGateway(t, { MODE: 'decision', DECISION_PORT: '0', ADMIN_TOKEN: TOKEN })
  const put = await send(`${gw.adminUrl}/admin/config`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ rules: { rules: [{ name: 'login', path: '/login', rate: '5/m', count: { status: [401] } }] } })
  })
  t.equal(put.status, 400)
  t.match(JSON.parse(put.body), { code: 'GW_ADMIN_INVALID', detail: /rule 1 \("login"\): MODE=decision never sees the response, so "count" cannot apply/ })

  const upstream = await startUpstream(t)
  const rules = rulesFile(t, [
    { name: 'export', path: '/export', rate: '1/s', concurrency: 2, costHeader: 'x-cost' },
    { name: 'login', path: '/login', rate: '5/m', count: { status: [401] } },
    { name: 'search', path: '/search', rate: '5/s', refund: { status: ['5xx'] } },
    { name: 'plain', path: '/p', rate: '1/s' }
  ])
  const { logger, lines } = captureLogs('warn')
  await startGateway(t, { UPSTREAM_URL: upstream.url, DECISION_PORT: '0', CONCURRENCY_LIMIT: '3', GLOBAL_CONCURRENCY_LIMIT: '100', RATE_LIMIT_RULES_FILE: rules }, { logger })
  t.match(lines.find(l => /the decision listener never sees a response/.test(String(l.msg))), {
    level: 40,
    settings: ['CONCURRENCY_LIMIT', 'GLOBAL_CONCURRENCY_LIMIT', 'rule "export": concurrency, costHeader', 'rule "login": count', 'rule "search": refund']
  }, 'each setting the decision listener leaves to the inline path, by name')
  const { logger: quiet, lines: none } = captureLogs('warn')
  await startGateway(t, { UPSTREAM_URL: upstream.url, DECISION_PORT: '0' }, { logger: quiet })
  t.notOk(none.some(l => /the decision listener never sees a response/.test(String(l.msg))), 'nothing to say without them')
})
