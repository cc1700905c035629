import t from 'tap'
import { ManualClock } from '../../src/core/clock.js'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send, statuses } from '../helpers/http.js'

t.test('the burst+1th rapid request is a 429 with every header and a problem+json body', async t => {
  const upstream = await startUpstream(t)
  const clock = new ManualClock()
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_RATE: '1/s', RATE_LIMIT_BURST: '5' }, { clock })

  const first = await send(`${gw.url}/ping`)
  t.equal(first.status, 200)
  t.same(JSON.parse(first.body), { message: 'pong' })
  t.match(first.headers, {
    'x-ratelimit-limit': '5', 'x-ratelimit-remaining': '4', 'x-ratelimit-reset': '1',
    'ratelimit-policy': '"default";q=5;w=5', ratelimit: '"default";r=4;t=1'
  }, 'allowed responses carry the headers')
  t.same(await statuses(`${gw.url}/ping`, 4), [200, 200, 200, 200])

  const limited = await send(`${gw.url}/ping`)
  t.equal(limited.status, 429)
  t.match(limited.headers, {
    'retry-after': '1', 'x-ratelimit-limit': '5', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '5',
    'ratelimit-policy': '"default";q=5;w=5', ratelimit: '"default";r=0;t=5'
  })
  t.match(limited.headers['content-type'], /^application\/problem\+json/)
  t.match(JSON.parse(limited.body), { type: 'about:blank', title: 'Too Many Requests', status: 429, code: 'GW_RATE_LIMITED', policy: 'default', retryAfter: 1 })
  t.equal(upstream.hits.get('/ping'), 5, 'the rejected request never reached the upstream')

  // Retry-After is honest: just before it a retry still fails, at it the retry passes.
  clock.advance(999)
  t.equal((await send(`${gw.url}/ping`)).status, 429)
  clock.advance(1)
  t.equal((await send(`${gw.url}/ping`)).status, 200)
})

t.test('a rejected request with a body is refused before the body is read or forwarded', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '1' })
  t.equal((await send(`${gw.url}/upload`, { method: 'POST', body: 'x' })).status, 200)
  const limited = await send(`${gw.url}/upload`, { method: 'POST', body: Buffer.alloc(1024 * 1024) })
  t.equal(limited.status, 429)
  t.equal(limited.headers['retry-after'], '3600')
  t.equal(upstream.hits.get('/upload'), 1)
  t.equal(upstream.uploaded.bytes, 1)
})

const MODES: Array<[string, string[], string[]]> = [
  ['both', ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'ratelimit-policy', 'ratelimit'], []],
  ['draft', ['ratelimit-policy', 'ratelimit'], ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset']],
  ['legacy', ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'], ['ratelimit-policy', 'ratelimit']],
  ['none', [], ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'ratelimit-policy', 'ratelimit']]
]

t.test('RATE_LIMIT_HEADERS picks the header families, for one limit or several; Retry-After is always on a 429', async t => {
  const upstream = await startUpstream(t)
  const GLOBAL = { GLOBAL_RATE_LIMIT_RATE: '1000/s', GLOBAL_RATE_LIMIT_BURST: '1000' }
  for (const [limits, extra] of [['one limit', {}], ['with a global limit', GLOBAL]] as const) {
    for (const [mode, present, absent] of MODES) {
      const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_RATE: '1/m', RATE_LIMIT_BURST: '1', RATE_LIMIT_HEADERS: mode, ...extra })
      const ok = await send(`${gw.url}/ping`)
      const limited = await send(`${gw.url}/ping`)
      t.equal(limited.status, 429)
      t.equal(limited.headers['retry-after'], '60', `${mode}, ${limits}: Retry-After`)
      t.equal(limited.headers['content-length'], String(Buffer.byteLength(limited.body)))
      for (const h of present) t.ok(ok.headers[h] !== undefined && limited.headers[h] !== undefined, `${mode}, ${limits}: ${h} present`)
      for (const h of absent) t.ok(ok.headers[h] === undefined && limited.headers[h] === undefined, `${mode}, ${limits}: ${h} absent`)
    }
  }
})

t.test('a flood of 429s: each reads as its own client, limit and moment, however often the one before was the same', async t => {
  const upstream = await startUpstream(t)
  const clock = new ManualClock()
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url, RATE_LIMIT_RATE: '1/m', RATE_LIMIT_BURST: '1', RATE_LIMIT_KEY_BY: 'api-key,ip', RATE_LIMIT_TIERS: 'pro=1/m:1', API_KEYS: 'k-pro:pro'
  }, { clock })
  const pro = { headers: { 'x-api-key': 'k-pro' } }
  t.equal((await send(`${gw.url}/ping`)).status, 200)
  t.equal((await send(`${gw.url}/ping`, pro)).status, 200)
  const refusal = async (options = {}): Promise<[string | undefined, string | undefined, unknown]> => {
    const r = await send(`${gw.url}/ping`, options)
    t.equal(r.status, 429)
    const body = JSON.parse(r.body) as { policy: string, retryAfter: number }
    t.equal(r.headers['content-length'], String(Buffer.byteLength(r.body)))
    return [r.headers['retry-after'] as string | undefined, r.headers.ratelimit as string | undefined, [body.policy, body.retryAfter]]
  }
  const ip = ['60', '"default";r=0;t=60', ['default', 60]]
  // The same numbers under another name: only the limit tells the answers apart.
  const keyed = ['60', '"pro";r=0;t=60', ['pro', 60]]
  t.same(await refusal(), ip)
  t.same(await refusal(), ip, 'the same answer again')
  t.same(await refusal(pro), keyed, 'another limit: its own answer')
  t.same(await refusal(), ip, 'and back')
  clock.advance(30_000)
  t.same(await refusal(), ['30', '"default";r=0;t=30', ['default', 30]], 'half a minute on: what is left of it')
  t.same(await refusal(pro), ['30', '"pro";r=0;t=30', ['pro', 30]])
  clock.advance(400)
  t.same(await refusal(), ['30', '"default";r=0;t=30', ['default', 30]], 'within the same second: the same')
  clock.advance(600)
  t.same(await refusal(), ['29', '"default";r=0;t=29', ['default', 29]], 'the next second')
})
