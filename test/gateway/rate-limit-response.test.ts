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

t.test('RATE_LIMIT_HEADERS picks the header families; Retry-After is always on a 429', async t => {
  const upstream = await startUpstream(t)
  for (const [mode, present, absent] of MODES) {
    const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_RATE: '1/m', RATE_LIMIT_BURST: '1', RATE_LIMIT_HEADERS: mode })
    const ok = await send(`${gw.url}/ping`)
    const limited = await send(`${gw.url}/ping`)
    t.equal(limited.status, 429)
    t.equal(limited.headers['retry-after'], '60', `${mode}: Retry-After`)
    for (const h of present) t.ok(ok.headers[h] !== undefined && limited.headers[h] !== undefined, `${mode}: ${h} present`)
    for (const h of absent) t.ok(ok.headers[h] === undefined && limited.headers[h] === undefined, `${mode}: ${h} absent`)
  }
})
