/**
 * The rate limit service when Redis fails, as it runs: Redis killed and stalled (SIGSTOP),
 * with STORE_FAILURE_MODE closed (OVER_LIMIT: Envoy refuses, whatever its
 * failure_mode_deny), open (OK) and local (this instance's memory store decides). Every
 * question is answered, none with a gRPC error, within the Redis timeout and some slack. And
 * on a Redis Cluster, one question's descriptors (different values, so different keys) are
 * decided in one script call: all its keys in one slot.
 */
import t from 'tap'
import { startGateway } from '../helpers/gateway.js'
import { startCluster, startRedis } from '../helpers/redis.js'
import { ask, descriptor as d, rlsClient, rlsConfigDir } from '../helpers/rls.js'

const CONFIG = `
domain: edge
descriptors:
  - key: remote_address
    rate_limit: {unit: hour, requests_per_unit: 2}
  - key: path
    rate_limit: {unit: hour, requests_per_unit: 100}
`
const REDIS_TIMEOUT_MS = 300
/** Slack for a loaded machine over the Redis timeout: the bound guards "answered, not hung". */
const ANSWER_BOUND_MS = REDIS_TIMEOUT_MS + 5_000

for (const mode of ['closed', 'open', 'local'] as const) {
  for (const how of ['killed', 'stalled'] as const) {
    t.test(`STORE_FAILURE_MODE=${mode}: Redis ${how} under a working connection`, async t => {
      const redis = await startRedis(t)
      const gw = await startGateway(t, { MODE: 'decision', RLS_PORT: '0', RLS_CONFIG: rlsConfigDir(t, { 'edge.yaml': CONFIG }), STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: String(REDIS_TIMEOUT_MS), STORE_FAILURE_MODE: mode })
      const client = rlsClient(t, gw.rlsAddress)
      const q = { domain: 'edge', descriptors: [d(['remote_address', '10.0.0.1']), d(['path', '/a'])] }
      t.equal((await ask(client, q)).overall_code, 'OK', 'Redis up: OK (charged in Redis)')
      if (how === 'killed') await redis.kill()
      else {
        redis.pause()
        t.teardown(() => { redis.resume() })
      }
      // local: this instance's memory store starts from nothing: 2 an hour, the third over.
      const expected = mode === 'closed' ? ['OVER_LIMIT', 'OVER_LIMIT', 'OVER_LIMIT'] : mode === 'open' ? ['OK', 'OK', 'OK'] : ['OK', 'OK', 'OVER_LIMIT']
      for (let i = 0; i < 3; i++) {
        const started = performance.now()
        const res = await ask(client, q)
        const ms = performance.now() - started
        t.equal(res.overall_code, expected[i], `question ${i + 1}: ${expected[i]!}`)
        t.ok(ms < ANSWER_BOUND_MS, `question ${i + 1}: answered in ${ms.toFixed(0)} ms (bound ${ANSWER_BOUND_MS})`)
      }
    })
  }
}

t.test('Redis Cluster: a question\'s descriptors in one slot, one script call', async t => {
  const nodes = await startCluster(t, 3)
  const gw = await startGateway(t, { MODE: 'decision', RLS_PORT: '0', RLS_CONFIG: rlsConfigDir(t, { 'edge.yaml': CONFIG }), STORE: 'redis', REDIS_CLUSTER_NODES: nodes.map(n => `127.0.0.1:${n.port}`).join(','), REDIS_TIMEOUT_MS: '2000', STORE_FAILURE_MODE: 'closed' })
  const client = rlsClient(t, gw.rlsAddress)
  for (let i = 0; i < 20; i++) {
    const res = await ask(client, { domain: 'edge', descriptors: [d(['remote_address', `10.0.0.${i}`]), d(['path', `/p${i}`])] })
    t.match(res, { overall_code: 'OK', statuses: [{ limit_remaining: 1 }, { limit_remaining: 99 }] }, `question ${i + 1}: decided (no CROSSSLOT), nothing failed closed`)
  }
})
