/**
 * Regression: calendar quotas took their period from each gateway's clock, not Redis TIME.
 * Two gateways on one Redis, one a day ahead (and one a day behind): with 5/d, 8 requests
 * alternating between them were all admitted (two days counted), and the lagging one got
 * a negative reset. Now the script picks the period holding Redis TIME for every gateway.
 */
import t from 'tap'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startRedis } from '../helpers/redis.js'
import { startUpstream } from '../helpers/upstream.js'

const DAY = 86_400_000

t.test('gateways whose clocks are a day apart count one calendar day: Redis\'s', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const env = { UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, RATE_LIMIT_RATE: '100/s', RATE_LIMIT_BURST: '100', RATE_LIMIT_QUOTA: '5/d' }
  const ahead = await startGateway(t, env, { clock: { now: () => Date.now() + DAY } })
  const behind = await startGateway(t, env, { clock: { now: () => Date.now() - DAY } })
  const gateways: TestGateway[] = [ahead, behind]
  const answers = []
  for (let i = 0; i < 8; i++) answers.push(await send(`${gateways[i % 2]!.url}/ping`))
  t.same(answers.map(a => a.status), [200, 200, 200, 200, 200, 429, 429, 429], 'one quota of 5 a day through both')

  // Seconds to Redis's (here, UTC's) midnight, as both gateways say it.
  const untilMidnight = (DAY - Date.now() % DAY) / 1000
  for (const [i, a] of answers.entries()) {
    if (a.status !== 429) continue
    const retry = Number(a.headers['retry-after'])
    t.ok(retry >= 1 && Math.abs(retry - untilMidnight) <= 5, `answer ${i} (${i % 2 === 0 ? 'ahead' : 'behind'}): Retry-After ${retry} s is the time to Redis's midnight (${untilMidnight.toFixed(0)} s)`)
  }
  const keys = await redis.admin.keys('rl:*quota*')
  t.equal(keys.length, 1, 'one counter')
  const ttl = await redis.admin.pttl(keys[0]!)
  t.ok(ttl > 0 && Math.abs(ttl / 1000 - untilMidnight) <= 5, `its TTL runs to Redis's midnight (${ttl} ms), never 1 ms`)
})
