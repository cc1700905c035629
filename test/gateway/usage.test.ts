/**
 * The usage ledger and the quota endpoint on the memory store, on a manual clock: per API
 * key and per day in QUOTA_TIMEZONE, what was admitted, refused and charged; the admin API
 * in JSON and CSV; the heaviest keys; and what a key holder sees at QUOTA_PATH.
 */
import t from 'tap'
import { ManualClock } from '../../src/core/clock.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

const TOKEN = 'test-admin-token-0123456789'
const admin = (gw: TestGateway, path: string, accept = 'application/json') => send(`${gw.adminUrl}${path}`, { headers: { authorization: `Bearer ${TOKEN}`, accept } })
const call = (gw: TestGateway, key?: string, path = '/ping') => send(`${gw.url}${path}`, { headers: key === undefined ? {} : { 'x-api-key': key } })

/** RFC 4180 CSV, parsed strictly: quoted fields, doubled quotes, CRLF line ends. */
function parseCsv (text: string): string[][] {
  const rows: string[][] = []
  let row: string[] = []
  let field = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++ } else if (ch === '"') quoted = false
      else field += ch
    } else if (ch === '"') quoted = true
    else if (ch === ',') { row.push(field); field = '' } else if (ch === '\r' && text[i + 1] === '\n') { row.push(field); rows.push(row); row = []; field = ''; i++ } else field += ch
  }
  if (field !== '' || row.length > 0) throw new Error('the last line does not end with CRLF')
  return rows
}

t.test('the ledger\'s counts equal what the upstream saw, over a run that crosses a day boundary in QUOTA_TIMEZONE', async t => {
  const upstream = await startUpstream(t)
  // 23:59:50 on 29 November in New York (EST): 04:59:50 UTC on the 30th.
  const clock = new ManualClock(Date.UTC(2026, 10, 30, 4, 59, 50))
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, RATE_LIMIT_RATE: '1/m', RATE_LIMIT_BURST: '5', RATE_LIMIT_QUOTA: '1000/mo',
    QUOTA_TIMEZONE: 'America/New_York', API_KEYS: 'k1,k2,k"3'
  }, { clock })
  const statuses: number[] = []
  for (let i = 0; i < 8; i++) statuses.push((await call(gw, 'k1')).status)
  t.same(statuses, [200, 200, 200, 200, 200, 429, 429, 429])
  clock.set(Date.UTC(2026, 10, 30, 5, 5))
  for (let i = 0; i < 6; i++) statuses.push((await call(gw, 'k1')).status)
  for (let i = 0; i < 2; i++) statuses.push((await call(gw, 'k2')).status)
  t.equal((await call(gw, undefined)).status, 200, 'a client without a key (its IP) is not in the ledger')
  const admitted = statuses.filter(s => s === 200).length
  t.equal(upstream.total(), admitted + 1, 'what the upstream saw')

  const usage = JSON.parse((await admin(gw, '/admin/usage?apiKey=k1&from=2026-11-28&to=2026-11-30')).body)
  t.match(usage, { client: /^key:/, timeZone: 'America/New_York', from: '2026-11-28', to: '2026-11-30' })
  t.same(usage.days, [
    { day: '2026-11-28', admitted: 0, refused: 0, cost: 0 },
    { day: '2026-11-29', admitted: 5, refused: 3, cost: 5 },
    { day: '2026-11-30', admitted: 5, refused: 1, cost: 5 }
  ], 'the New York days: 23:59:50 is the 29th, 00:05 the 30th')
  t.same(usage.total, { admitted: 10, refused: 4, cost: 10 })
  const k2 = JSON.parse((await admin(gw, '/admin/usage?apiKey=k2&from=2026-11-30&to=2026-11-30')).body)
  t.equal(usage.total.admitted + k2.total.admitted, admitted, 'the ledger admitted exactly what reached the upstream from keys')

  const csv = await admin(gw, '/admin/usage?apiKey=k1&from=2026-11-29&to=2026-11-30', 'text/csv')
  t.match(csv.headers['content-type'], /^text\/csv/)
  t.same(parseCsv(csv.body), [['day', 'admitted', 'refused', 'cost'], ['2026-11-29', '5', '3', '5'], ['2026-11-30', '5', '1', '5']], 'the CSV parses as CSV')

  const defaults = JSON.parse((await admin(gw, '/admin/usage?apiKey=k1')).body)
  t.same([defaults.from, defaults.to, defaults.days.length], ['2026-11-01', '2026-11-30', 30], 'by default the 30 days to today')
  await call(gw, 'k"3')
  const top = JSON.parse((await admin(gw, '/admin/usage/top?from=2026-11-29&to=2026-11-30')).body)
  t.same(top.clients.map((c: { admitted: number, refused: number }) => [c.admitted, c.refused]), [[10, 4], [2, 0], [1, 0]], 'the heaviest keys first')
  t.equal(top.clients[0].client, usage.client)
  const topCsv = parseCsv((await admin(gw, '/admin/usage/top?from=2026-11-30&to=2026-11-30&limit=2', 'text/csv')).body)
  t.same(topCsv.map(r => r.slice(1)), [['admitted', 'refused', 'cost'], ['5', '1', '5'], ['2', '0', '2']], 'limit 2, as CSV')

  t.equal((await admin(gw, '/admin/usage?apiKey=k1&from=2026-12-01&to=2026-11-30')).status, 400, 'from after to')
  t.equal((await admin(gw, '/admin/usage?apiKey=k1&from=2025-01-01&to=2026-11-30')).status, 400, 'more than USAGE_RETENTION_DAYS')
  t.equal((await admin(gw, '/admin/usage?apiKey=k1&from=2026-02-30&to=2026-03-01')).status, 400, 'not a day')
  t.equal((await admin(gw, '/admin/usage?apiKey=nope')).status, 404, 'not a registered key')
})

t.test('QUOTA_PATH: a key holder reads its own quota, never through to the upstream; unknown keys get 401; the endpoint is limited', async t => {
  const upstream = await startUpstream(t)
  const clock = new ManualClock(Date.UTC(2026, 10, 20, 12))
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url, QUOTA_PATH: '/_quota', RATE_LIMIT_TIERS: 'free=10/s:20+100/mo', API_KEYS: 'k1:free,k2'
  }, { clock })
  for (let i = 0; i < 3; i++) t.equal((await call(gw, 'k1')).status, 200)
  const mine = await call(gw, 'k1', '/_quota')
  t.equal(mine.status, 200)
  t.equal(mine.headers['cache-control'], 'no-store')
  t.match(JSON.parse(mine.body), {
    tier: 'free',
    limits: [
      { name: 'free', rate: '10/s', quota: 20, remaining: 17 },
      { name: 'free-quota', rate: '100/mo', quota: 100, remaining: 97, resetSeconds: 10 * 86400 + 12 * 3600, periodStart: '2026-11-01T00:00:00.000Z', periodEnd: '2026-12-01T00:00:00.000Z' }
    ],
    usage: { from: '2026-11-01', to: '2026-11-20', admitted: 3, refused: 0, cost: 3 }
  }, 'its limits, what is left, and this month\'s usage')
  t.equal(JSON.parse((await call(gw, 'k1', '/_quota?x=1')).body).limits[1].remaining, 97, 'reading it costs nothing')
  t.match(JSON.parse((await call(gw, 'k2', '/_quota')).body), { tier: null, limits: [{ name: 'default' }], usage: { from: '2026-11-20', to: '2026-11-20' } }, 'a key without a quota: today\'s usage')
  const none = await call(gw, undefined, '/_quota')
  t.equal(none.status, 401)
  t.match(JSON.parse(none.body), { status: 401, code: 'GW_QUOTA_KEY_REQUIRED' })
  t.match(none.headers['www-authenticate'], /x-api-key/)
  t.equal((await call(gw, 'made-up', '/_quota')).status, 401, 'an unknown key')
  t.equal(upstream.total(), 3, 'the endpoint never reached the upstream')
  t.equal((await call(gw, 'k1', '/_quotas')).status, 404, 'another path goes upstream as usual (404 there)')
  // 10 at once per address, then 1 a second: 5 asked so far from this address.
  const more: number[] = []
  for (let i = 0; i < 6; i++) more.push((await call(gw, 'k1', '/_quota')).status)
  t.same(more, [200, 200, 200, 200, 200, 429], 'the endpoint\'s own limit')
  clock.set(clock.now() + 1000)
  t.equal((await call(gw, 'k1', '/_quota')).status, 200, 'a second later, one more')
})

t.test('USAGE_LEDGER_IPS=true: clients without a key are in the ledger too, by address', async t => {
  const upstream = await startUpstream(t)
  const clock = new ManualClock(Date.UTC(2026, 10, 29, 12))
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, USAGE_LEDGER: 'true', USAGE_LEDGER_IPS: 'true', RATE_LIMIT_BURST: '2' }, { clock })
  for (let i = 0; i < 3; i++) await call(gw)
  t.same(JSON.parse((await admin(gw, '/admin/usage?ip=127.0.0.1&from=2026-11-29&to=2026-11-29')).body).days, [{ day: '2026-11-29', admitted: 2, refused: 1, cost: 2 }])
})

t.test('a key\'s quota: none, its tier\'s, or its own; a key never given one has nothing to take back', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, API_KEYS: 'plain' })
  t.match(JSON.parse((await admin(gw, '/admin/keys/quota?apiKey=plain')).body), { tier: null, quota: null, source: 'none' })
  const deleted = await send(`${gw.adminUrl}/admin/keys/quota?apiKey=plain`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(deleted.status, 204)
})
