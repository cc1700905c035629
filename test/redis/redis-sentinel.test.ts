import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis.js'
import { statuses } from '../helpers/http.js'

t.test('Sentinel: the gateway finds the primary through the sentinels, with its password', async t => {
  const primary = await startRedis(t, { password: 's3cret' })
  const sentinel = await startRedis(t, {
    sentinelConfig: [
      `sentinel monitor gwprimary 127.0.0.1 ${primary.port} 1`,
      'sentinel auth-pass gwprimary s3cret',
      'sentinel down-after-milliseconds gwprimary 5000'
    ].join('\n') + '\n'
  })
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_SENTINELS: `127.0.0.1:${sentinel.port}`, REDIS_SENTINEL_NAME: 'gwprimary',
    // Credentials come from REDIS_URL; its host is not used with sentinels.
    REDIS_URL: 'redis://default:s3cret@unused:6379', REDIS_TIMEOUT_MS: '1000', RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '2'
  })
  t.same(await statuses(`${gw.url}/ping`, 3), [200, 200, 429])
  t.same(await primary.admin.keys('*'), ['rl:{ip:127.0.0.1}:default'], 'the state lives on the primary')
  t.equal(gw.app.store!.mode(), 'redis')
})
