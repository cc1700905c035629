/**
 * Charges settled by the response on Redis (SETTLE_LUA), with the rules of
 * examples/rules.json: two instances on one Redis hold one count, one refund and one
 * cost, and the deny cache never outlives a refund.
 */
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startHoldingUpstream } from '../helpers/holding-upstream.js'
import { clearOfWindowEdges, startRedis } from '../helpers/redis.js'
import type { Teardown } from '../helpers/tap.js'

const EXAMPLE = fileURLToPath(new URL('../../../examples/rules.json', import.meta.url))
const ROOMY = { RATE_LIMIT_RATE: '1000/s', RATE_LIMIT_BURST: '1000' }
const TOKEN = 'test-admin-token-0123456789'
const DAY = 86_400_000

async function twoInstances (t: Teardown): Promise<{ a: TestGateway, b: TestGateway, hits: () => number }> {
  const redis = await startRedis(t)
  const upstream = await startHoldingUpstream(t)
  const env = { UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, RATE_LIMIT_RULES_FILE: EXAMPLE, ADMIN_TOKEN: TOKEN, ...ROOMY }
  // Per-minute windows here: Redis decides on a clock just past a day's start, so none
  // turns over during a test of a few requests (nor does any test wait for one to).
  const redisClock = clearOfWindowEdges()
  return { a: await startGateway(t, env, { redisClock }), b: await startGateway(t, env, { redisClock }), hits: () => upstream.hits.length }
}

t.test('login counting 401s, shared by two instances: successful logins are given back, the 6th failed one is refused by either', async t => {
  const { a, b, hits } = await twoInstances(t)
  const login = (gw: TestGateway, status: number) => send(`${gw.url}/login?status=${status}`, { method: 'POST', from: '127.0.0.2' })
  // Alternating: each success's refund reaches Redis before the next decision (the last on a).
  for (let i = 0; i < 10; i++) t.equal((await login(i % 2 === 0 ? b : a, 200)).status, 200, `successful login ${i + 1}`)
  for (let i = 0; i < 5; i++) t.equal((await login(a, 401)).status, 401, `failed login ${i + 1}`)
  t.equal((await login(b, 401)).status, 429, 'the 6th failed login, through the other instance, is refused')
  t.equal((await login(a, 200)).status, 429, 'and through the first')
  t.equal(hits(), 15, 'the refused ones never reached the upstream')
})

t.test('refund 5xx on Redis: a client whose requests all fail upstream is never refused by that rule', async t => {
  const { a, b } = await twoInstances(t)
  const user = { 'x-user-id': 'u1' }
  // export-burst: 1/s, burst 2, keyed by the user.
  for (let i = 0; i < 8; i++) t.equal((await send(`${(i % 2 === 0 ? a : b).url}/export/x?status=503`, { headers: user })).status, 503, `503 #${i + 1}`)
  t.equal((await send(`${a.url}/export/x`, { headers: user })).status, 200)
  t.equal((await send(`${a.url}/export/x`, { headers: user })).status, 200)
  const refused = await send(`${b.url}/export/x`, { headers: user })
  t.equal(refused.status, 429, 'two successes spend the burst of 2')
  t.match(JSON.parse(refused.body), { policy: 'export-burst' })
})

t.test('costHeader on Redis: cost 50 drains the 100-per-minute client in 2 requests, across instances', async t => {
  const { a, b, hits } = await twoInstances(t)
  const complete = (gw: TestGateway) => send(`${gw.url}/v1/completions?cost=50`, { method: 'POST', from: '127.0.0.2' })
  const first = await complete(a)
  t.equal(first.status, 200)
  t.equal(first.headers['x-request-cost'], undefined, 'never seen by the client')
  const seen = JSON.parse((await send(`${b.adminUrl}/admin/clients?ip=127.0.0.2`, { headers: { authorization: `Bearer ${TOKEN}` } })).body)
  const window = seen.limits.find((l: { policy: string }) => l.policy === 'completions')
  t.equal(window.state[0] % DAY, 0, `Redis decided by the test's clock: the window starts at a day's start (${window.state[0]})`)
  t.equal((await complete(b)).status, 200)
  t.equal((await complete(a)).status, 429)
  t.equal(hits(), 2)
})

t.test('Redis down: a charge is settled where the decisions go (the local fallback), or not at all (fail-open)', async t => {
  for (const mode of ['local', 'open']) {
    const redis = await startRedis(t)
    const upstream = await startHoldingUpstream(t)
    const gw = await startGateway(t, {
      UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '100', REDIS_PROBE_INTERVAL_MS: '60000',
      STORE_FAILURE_MODE: mode, RATE_LIMIT_RULES_FILE: EXAMPLE, ...ROOMY
    })
    await redis.kill()
    const login = (status: number) => send(`${gw.url}/login?status=${status}`, { method: 'POST', from: '127.0.0.2' })
    // The first failed decisions open the circuit (each answered by the failure mode).
    while (gw.app.store!.mode() === 'redis') await login(200)
    for (let i = 0; i < 10; i++) t.equal((await login(200)).status, 200, `${mode}: successful login ${i + 1}`)
    for (let i = 0; i < 5; i++) t.equal((await login(401)).status, 401, `${mode}: failed login ${i + 1}`)
    t.equal((await login(401)).status, mode === 'local' ? 429 : 401, mode === 'local' ? 'local: the fallback counted the failures and gave the successes back' : 'open: nothing counted')
  }
})
