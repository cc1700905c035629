import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { startCluster, type RedisServer } from '../helpers/redis.js'
import { send, statuses } from '../helpers/http.js'

/** Every key on every master, with the slot the master holds it in. */
async function allKeys (nodes: RedisServer[]): Promise<Array<{ key: string, slot: number, node: number }>> {
  const out = []
  for (const [i, node] of nodes.entries()) {
    for (const key of await node.admin.keys('*')) out.push({ key, slot: Number(await node.admin.cluster('KEYSLOT', key)), node: i })
  }
  return out
}

t.test('Redis Cluster: limits hold, each decision in one slot', async t => {
  const nodes = await startCluster(t, 3)
  const upstream = await startUpstream(t)
  const clusterNodes = nodes.map(n => `127.0.0.1:${n.port}`).join(',')

  await t.test('per-client limits: each client in one slot, clients spread over masters', async t => {
    const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_CLUSTER_NODES: clusterNodes, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '2', TRUST_PROXY: '127.0.0.1', REDIS_TIMEOUT_MS: '1000', REDIS_KEY_PREFIX: 'a:' })
    for (let c = 0; c < 12; c++) {
      t.same(await statuses(`${gw.url}/ping`, 3, { headers: { 'x-forwarded-for': `203.0.113.${c}` } }), [200, 200, 429], `client ${c}`)
    }
    const keys = (await allKeys(nodes)).filter(k => k.key.startsWith('a:'))
    t.equal(keys.length, 12, 'one key per client')
    t.ok(new Set(keys.map(k => k.node)).size > 1, 'clients are spread over the masters')
    t.equal(gw.app.store!.mode(), 'redis')
  })

  await t.test('global plus per-client limit: one atomic call, all keys in the global slot', async t => {
    const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_CLUSTER_NODES: clusterNodes, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '2', GLOBAL_RATE_LIMIT_RATE: '1/h', GLOBAL_RATE_LIMIT_BURST: '5', TRUST_PROXY: '127.0.0.1', REDIS_TIMEOUT_MS: '1000', REDIS_KEY_PREFIX: 'b:' })
    const seen = []
    for (let c = 0; c < 4; c++) seen.push(...await statuses(`${gw.url}/ping`, 2, { headers: { 'x-forwarded-for': `198.51.100.${c}` } }))
    t.same(seen, [200, 200, 200, 200, 200, 429, 429, 429], 'five admitted in all: the global burst')
    const keys = (await allKeys(nodes)).filter(k => k.key.startsWith('b:'))
    t.equal(new Set(keys.map(k => k.slot)).size, 1, `${keys.length} keys, one slot`)
  })

  await t.test('the usage ledger on a Cluster: each client\'s day beside its limits, the heaviest found on every master', async t => {
    const token = 'test-admin-token-0123456789'
    const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_CLUSTER_NODES: clusterNodes, USAGE_LEDGER: 'true', USAGE_LEDGER_IPS: 'true', TRUST_PROXY: '127.0.0.1', REDIS_TIMEOUT_MS: '1000', REDIS_KEY_PREFIX: 'c:', ADMIN_TOKEN: token })
    for (let c = 1; c <= 6; c++) await statuses(`${gw.url}/ping`, c, { headers: { 'x-forwarded-for': `192.0.2.${c}` } })
    const lines = (await allKeys(nodes)).filter(k => k.key.startsWith('c:') && k.key.includes(':usage:'))
    t.equal(lines.length, 6, 'one line per client')
    t.ok(new Set(lines.map(k => k.node)).size > 1, 'on several masters')
    const top = JSON.parse((await send(`${gw.adminUrl}/admin/usage/top?limit=3`, { headers: { authorization: `Bearer ${token}` } })).body)
    t.same(top.clients.map((c: { client: string, admitted: number }) => [c.client, c.admitted]), [['ip:192.0.2.6', 6], ['ip:192.0.2.5', 5], ['ip:192.0.2.4', 4]])
  })
})
