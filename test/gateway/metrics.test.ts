import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send, statuses } from '../helpers/http.js'
import { parsePrometheus, type Family } from '../helpers/prometheus.js'

const TOKEN = 'test-admin-token-0123456789'

t.test('/metrics: Prometheus text, requests by outcome, latency histograms, store mode, no client in any label', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '2',
    ALLOWLIST: '127.0.0.9', API_KEYS: 'secret-key-1', RATE_LIMIT_BAN_AFTER: '3'
  })
  await statuses(`${gw.url}/ping`, 3, { from: '127.0.0.2' }) // 2 allowed, 1 limited
  await statuses(`${gw.url}/ping`, 6, { from: '127.0.0.3', headers: { 'x-api-key': 'secret-key-1' } }) // 2 allowed, 3 limited, 1 banned
  await statuses(`${gw.url}/ping`, 2, { from: '127.0.0.9' }) // allowlisted
  await send(`${gw.url}/status/503`, { from: '127.0.0.4' })

  const res = await send(`${gw.adminUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(res.status, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0.0.4/)
  const families = parsePrometheus(res.body)
  const value = (f: Family | undefined, labels: Record<string, string> = {}) =>
    f?.samples.find(s => s.name === f.name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value

  const requests = families.get('gateway_requests_total')
  t.equal(requests?.type, 'counter')
  t.equal(value(requests, { outcome: 'allowed' }), 5, 'allowed: 2 + 2 + the 503')
  t.equal(value(requests, { outcome: 'limited' }), 4)
  t.equal(value(requests, { outcome: 'banned' }), 1)
  t.equal(value(requests, { outcome: 'allowlisted' }), 2)
  t.equal(value(requests, { outcome: 'store_error' }), 0)

  const decision = families.get('gateway_decision_duration_seconds')
  t.equal(decision?.type, 'histogram')
  t.equal(decision?.samples.find(s => s.name === 'gateway_decision_duration_seconds_count')?.value, 10, 'one observation per decided request (not the allowlisted)')
  const upstreamSeconds = families.get('gateway_upstream_duration_seconds')
  t.equal(upstreamSeconds?.samples.find(s => s.name === 'gateway_upstream_duration_seconds_count')?.value, 7, 'one per proxied request: 5 allowed + 2 allowlisted')
  t.equal(value(families.get('gateway_upstream_responses_total'), { class: '2xx' }), 6)
  t.equal(value(families.get('gateway_upstream_responses_total'), { class: '5xx' }), 1)
  t.equal(value(families.get('gateway_store_mode'), { mode: 'memory' }), 1)
  t.equal(value(families.get('gateway_store_mode'), { mode: 'redis' }), 0)
  t.ok((value(families.get('gateway_tracked_clients')) ?? 0) >= 2)
  t.equal(value(families.get('gateway_limit_factor'), { source: 'emergency' }), 1)
  const refusals = families.get('gateway_refusals_total')
  t.equal(refusals?.type, 'counter')
  t.equal(refusals?.samples.reduce((sum, s) => sum + s.value, 0), 5, 'refusals by policy: the 4 limited and the ban')
  t.ok(refusals?.samples.every(s => s.labels.policy !== undefined && s.labels.policy !== ''), 'each under its policy')
  const topRate = value(families.get('gateway_top_client_refusals_per_second'))!
  t.ok(topRate > 3 / 60 && topRate <= 4 / 60 + 1e-9, `the client refused most: 4 refusals in the last minute, ${topRate}/s`)
  t.ok(families.has('process_cpu_seconds_total') && families.has('nodejs_eventloop_lag_seconds'), 'the process metrics too')

  for (const f of families.values()) {
    t.match(f.name, /^[a-z_:][a-z0-9_:]*$/, `${f.name}: a Prometheus name`)
    t.ok(f.help.length > 0, `${f.name}: has HELP`)
    if (f.type === 'counter') t.match(f.name, /_total$/, `${f.name}: a counter ends in _total`)
  }
  t.notMatch(res.body, /127\.0\.0\.|key:|secret-key/, 'no client address or key in any label')
})
