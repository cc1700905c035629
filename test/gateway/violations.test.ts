import t from 'tap'
import { Agent, request } from 'undici'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { captureLogs } from '../helpers/logs.js'
import { apiKeyId } from '../../src/identity/identify.js'
import { MAX_CLIENTS, MAX_LINES, ViolationLog } from '../../src/observe/violations.js'

t.test('a flood of 10,000 refusals becomes one line per client per interval', async t => {
  const upstream = await startUpstream(t)
  const { logger, lines } = captureLogs()
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '1', API_KEYS: 'secret-key-1', VIOLATION_LOG_INTERVAL_MS: '1000'
  }, { logger })
  // 10,000 requests from 15 addresses and one API key, 50 at a time.
  const agents = Array.from({ length: 15 }, (_, i) => new Agent({ localAddress: `127.0.1.${i + 1}`, connections: 4 }))
  t.teardown(() => Promise.all(agents.map(a => a.close())))
  let sent = 0
  let refused = 0
  const started = Date.now()
  await Promise.all(Array.from({ length: 50 }, async () => {
    while (sent < 10_000) {
      const i = sent++
      const res = await request(`${gw.url}/ping`, { dispatcher: agents[i % 15]!, headers: i % 16 === 0 ? { 'x-api-key': 'secret-key-1' } : {} })
      await res.body.dump()
      if (res.statusCode === 429) refused++
    }
  }))
  const seconds = (Date.now() - started) / 1000
  await gw.app.close() // flushes the last interval

  const perClient = lines.filter(l => l.msg === 'requests refused by rate limits')
  const intervals = Math.ceil(seconds) + 1
  t.ok(refused >= 9_980, `${refused} refusals in ${seconds.toFixed(1)} s`)
  t.ok(perClient.length <= 16 * intervals, `${perClient.length} lines: at most one per client (16) per interval (${intervals})`)
  t.equal(lines.filter(l => l.msg === 'rate-limit refusals: summary of the interval').length, 0, 'no summary: every client had its line')
  t.equal(perClient.reduce((n, l) => n + (l.count as number), 0), refused, 'the lines account for every refusal')
  t.ok(perClient.some(l => l.client === apiKeyId('secret-key-1')), 'an API-key client appears as its digest')
  t.notMatch(JSON.stringify(lines), 'secret-key-1', 'never the key itself')
  t.match(perClient[0], { client: String, count: Number, policies: ['default'], dryRun: false, intervalMs: 1000 })
})

t.test('beyond MAX_LINES clients: the busiest listed, the rest in one summary line; beyond MAX_CLIENTS only counted', async t => {
  const { logger, lines } = captureLogs()
  const v = new ViolationLog(logger, 3_600_000)
  t.teardown(() => v.close())
  for (let c = 0; c < MAX_CLIENTS + 5; c++) v.record(`ip:c${c}`, 'default', false)
  for (let i = 0; i < 50; i++) v.record('ip:c7', 'default', false)
  v.record('ip:c7', 'search', false)
  v.flush()
  t.equal(lines.length, MAX_LINES + 1)
  t.match(lines[0], { client: 'ip:c7', count: 52, policies: ['default', 'search'] }, 'the busiest first')
  t.match(lines[MAX_LINES], { msg: 'rate-limit refusals: summary of the interval', clients: MAX_CLIENTS + 1, refusals: MAX_CLIENTS + 5 + 51, clientsNotListed: MAX_CLIENTS - MAX_LINES, refusalsOfClientsNotCounted: 5 })
  v.flush()
  t.equal(lines.length, MAX_LINES + 1, 'an empty interval writes nothing')
  for (let c = 0; c < MAX_LINES + 3; c++) v.record(`ip:d${c}`, 'default', false)
  v.flush()
  t.match(lines[lines.length - 1], { msg: 'rate-limit refusals: summary of the interval', clients: MAX_LINES + 3, clientsNotListed: 3, refusalsOfClientsNotCounted: 0 }, 'every client counted, three not listed')
  lines.length = MAX_LINES + 1
  v.record('ip:x', 'default', true)
  v.flush()
  t.match(lines[MAX_LINES + 1], { msg: 'dry run: requests over their limit let through', client: 'ip:x', dryRun: true })
})
