import t from 'tap'
import { request } from 'undici'
import { startGateway } from '../helpers/gateway.js'
import { agentFrom, send } from '../helpers/http.js'
import { eventually } from '../helpers/load.js'
import { startHoldingUpstream } from '../helpers/holding-upstream.js'
import { spawnGateway } from '../helpers/process.js'
import { startRedis } from '../helpers/redis.js'

function start (url: string, from = '127.0.0.2'): Promise<number> {
  return request(url, { dispatcher: agentFrom(from) }).then(async r => { await r.body.text(); return r.statusCode }, () => 0)
}

t.test('two instances on one Redis share one in-flight limit; the slots come back when the requests end', async t => {
  const redis = await startRedis(t)
  const upstream = await startHoldingUpstream(t)
  const token = 'test-admin-token-0123456789'
  const env = { UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, CONCURRENCY_LIMIT: '2', ADMIN_TOKEN: token }
  const a = await startGateway(t, env)
  const b = await startGateway(t, env)
  const held = [start(`${a.url}/hold/1`), start(`${b.url}/hold/2`)]
  t.ok(await eventually(() => upstream.held() === 2, 3000), 'one in progress through each instance')
  const view = JSON.parse((await send(`${b.adminUrl}/admin/clients?ip=127.0.0.2`, { headers: { authorization: `Bearer ${token}` } })).body)
  t.same(view.inFlight, [{ limit: 'concurrency', max: 2, inProgress: 2 }], 'either instance\'s admin view shows the shared count')
  for (const gw of [a, b]) {
    const refused = await send(`${gw.url}/ok`, { from: '127.0.0.2' })
    t.equal(refused.status, 429, 'the third, through either instance, is refused')
    t.equal(JSON.parse(refused.body).code, 'GW_CONCURRENCY_LIMITED')
  }
  t.equal((await send(`${a.url}/ok`, { from: '127.0.0.3' })).status, 200, 'another client is not affected')
  t.equal(await redis.admin.zcard('rl:{ip:127.0.0.2}:concurrency'), 2, 'two leases in the shared set')
  upstream.releaseAll()
  t.same(await Promise.all(held), [200, 200])
  t.ok(await eventually(async () => await redis.admin.zcard('rl:{ip:127.0.0.2}:concurrency') === 0, 3000), 'both given back')
  t.equal((await send(`${b.url}/ok`, { from: '127.0.0.2' })).status, 200)
})

t.test('kill -9 of an instance holding slots: they come back within CONCURRENCY_LEASE_MS', async t => {
  const redis = await startRedis(t)
  const upstream = await startHoldingUpstream(t)
  const env = { UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, CONCURRENCY_LIMIT: '1', CONCURRENCY_LEASE_MS: '1500' }
  const doomed = await spawnGateway(t, env)
  const survivor = await startGateway(t, env)
  void start(`${doomed.url}/hold/1`)
  t.ok(await eventually(() => upstream.held() === 1, 3000))
  t.equal((await send(`${survivor.url}/ok`, { from: '127.0.0.2' })).status, 429, 'the dying instance holds the slot')
  doomed.child.kill('SIGKILL')
  await doomed.exited
  const killedAt = performance.now()
  t.ok(await eventually(async () => (await send(`${survivor.url}/ok`, { from: '127.0.0.2' })).status === 200, 6000), 'the slot came back')
  const after = performance.now() - killedAt
  t.ok(after <= 1500 + 1500, `within the lease (plus slack for a loaded machine): ${after.toFixed(0)} ms`)
  upstream.releaseAll()
})

t.test('a request outliving its lease keeps its slot (renewed), and gives it back at its end', async t => {
  const redis = await startRedis(t)
  const upstream = await startHoldingUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, CONCURRENCY_LIMIT: '1', CONCURRENCY_LEASE_MS: '1000' })
  const held = start(`${gw.url}/hold/long`)
  t.ok(await eventually(() => upstream.held() === 1, 3000))
  // Twice the lease later, the slot is still taken: the instance renewed it.
  await new Promise(resolve => setTimeout(resolve, 2000))
  t.equal((await send(`${gw.url}/ok`, { from: '127.0.0.2' })).status, 429, 'still held after 2 leases')
  upstream.releaseAll()
  t.equal(await held, 200)
  t.ok(await eventually(async () => (await send(`${gw.url}/ok`, { from: '127.0.0.2' })).status === 200, 3000), 'given back at its end')
})
