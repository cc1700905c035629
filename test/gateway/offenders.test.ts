import t from 'tap'
import { ManualClock } from '../../src/core/clock.js'
import { TopOffenders } from '../../src/observe/offenders.js'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send, statuses } from '../helpers/http.js'

t.test('space-saving: the heaviest clients are found in bounded memory, over the last minutes', async t => {
  const clock = new ManualClock(1_795_000_000_000)
  // 20 counters for 1,550 refusals: any client with more than 1550 / 20 ≈ 78 is guaranteed
  // to be listed. 3 heavy clients among 1,000 light ones, interleaved.
  const top = new TopOffenders(clock, 20)
  for (let i = 0; i < 1000; i++) {
    top.record(`light-${i}`)
    if (i % 4 === 0) top.record('heavy-a')
    if (i % 5 === 0) top.record('heavy-b')
    if (i % 10 === 0) top.record('heavy-c')
  }
  const found = top.top(3)
  t.same(found.map(o => o.client), ['heavy-a', 'heavy-b', 'heavy-c'])
  t.ok(found.every(o => o.count - o.error <= { 'heavy-a': 250, 'heavy-b': 200, 'heavy-c': 100 }[o.client]! && o.count >= { 'heavy-a': 250, 'heavy-b': 200, 'heavy-c': 100 }[o.client]!), 'counts are upper bounds within their error')
  clock.advance(60_000)
  top.record('heavy-c')
  t.equal(top.top(3).find(o => o.client === 'heavy-c')!.count, found.find(o => o.client === 'heavy-c')!.count + 1, 'counts add up across minutes')
  clock.advance(2 * 60_000)
  top.record('later')
  t.equal(top.top(1, 1)[0]!.client, 'later', 'the last minute only')
  t.equal(top.top(50, 5).length, 21, 'the last five minutes still hold the earlier ones (20 counters and the new one)')
  clock.advance(5 * 60_000)
  top.record('latest')
  t.same(top.top(10).map(o => o.client), ['latest'], 'older minutes are gone')
  for (let m = 1; m <= 6; m++) {
    clock.advance(60_000)
    top.record(`minute-${m}`)
  }
  t.same(top.top(10).map(o => o.client).sort(), ['minute-2', 'minute-3', 'minute-4', 'minute-5', 'minute-6'], 'five minutes kept')
})

t.test('topRate: the refusals per second of the client refused most over a sliding minute', async t => {
  const clock = new ManualClock(1_795_000_020_000 - (1_795_000_020_000 % 60_000))
  const top = new TopOffenders(clock)
  t.equal(top.topRate(), 0, 'nobody refused')
  for (let i = 0; i < 120; i++) top.record('a')
  for (let i = 0; i < 60; i++) top.record('b')
  t.equal(top.topRate(), 2, '120 in this minute: 2/s')
  clock.advance(90_000) // half way into the next minute: the last minute counts half
  for (let i = 0; i < 30; i++) top.record('b')
  t.equal(top.topRate(), 1, 'a: 120 × ½ = 60, b: 30 + 60 × ½ = 60 → 1/s')
  top.record('b')
  t.equal(top.topRate(), 61 / 60, 'b leads now')
  clock.advance(120_000)
  t.equal(top.topRate(), 0, 'two minutes later: nothing in the sliding minute')
  for (let i = 0; i < 90; i++) top.record('c')
  clock.advance(45_000) // a quarter into the next minute, nobody refused in it yet
  t.equal(top.topRate(), 90 * 0.75 / 60, 'only the last minute\'s refusals, weighted')
})

t.test('GET /admin/offenders lists the clients refused most', async t => {
  const upstream = await startUpstream(t)
  const token = 'test-admin-token-0123456789'
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: token, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '1' })
  await statuses(`${gw.url}/ping`, 6, { from: '127.0.0.2' })
  await statuses(`${gw.url}/ping`, 3, { from: '127.0.0.3' })
  await statuses(`${gw.url}/ping`, 1, { from: '127.0.0.4' })
  const r = await send(`${gw.adminUrl}/admin/offenders?limit=5`, { headers: { authorization: `Bearer ${token}` } })
  t.same(JSON.parse(r.body), { minutes: 5, offenders: [{ client: 'ip:127.0.0.2', count: 5, error: 0 }, { client: 'ip:127.0.0.3', count: 2, error: 0 }] })
  t.equal((await send(`${gw.adminUrl}/admin/offenders?limit=0`, { headers: { authorization: `Bearer ${token}` } })).status, 400)
})
