/**
 * deploy/prometheus and deploy/grafana against the real tools, from Debian's packages, as
 * this test's own processes on loopback ports: promtool checks and unit-tests the rules;
 * Prometheus (configured by deploy/prometheus/prometheus.yml, only the addresses, the
 * intervals and the alerts' `for` shortened) scrapes a gateway with its bearer token
 * under a flood from one client; the refusal alert fires and Alertmanager delivers it to a
 * webhook here; then every PromQL expression of the Grafana dashboard returns data.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { eventually } from '../helpers/load.js'
import { freePort, startPeer } from '../helpers/process.js'
import type { Teardown } from '../helpers/tap.js'
import { startReceiver } from '../helpers/receiver.js'
import { startUpstream } from '../helpers/upstream.js'

const DEPLOY = fileURLToPath(new URL('../../../deploy/', import.meta.url))
const RULES = join(DEPLOY, 'prometheus', 'gateway-rules.yml')
const TOKEN = 'prometheus-scrape-token-0123'

/** A directory for a peer's files, removed after the peer (started after it) has stopped. */
function tempDir (t: Teardown, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('promtool: the rules are valid, and their unit tests (real thresholds and durations) pass', async t => {
  const check = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' })
  t.equal(check.status, 0, check.stdout + check.stderr)
  t.match(check.stdout, /SUCCESS: 16 rules found/)
  const unit = spawnSync('promtool', ['test', 'rules', join(DEPLOY, 'prometheus', 'gateway-rules.test.yml')], { encoding: 'utf8' })
  t.equal(unit.status, 0, unit.stdout + unit.stderr)
  t.match(unit.stdout, /SUCCESS/)
})

interface Delivered { status: string, alerts: Array<{ status: string, labels: Record<string, string>, annotations: Record<string, string> }> }

/** An Alertmanager webhook receiver: what Alertmanager delivered. */
async function startWebhook (t: Teardown): Promise<{ url: string, received: Delivered[] }> {
  const received: Delivered[] = []
  const url = await startReceiver(t, body => { received.push(JSON.parse(body.toString()) as Delivered); return undefined })
  return { url: `${url}/alerts`, received }
}

async function query (prometheus: string, expr: string): Promise<Array<{ metric: Record<string, string>, value: [number, string] }>> {
  const res = await send(`${prometheus}/api/v1/query?query=${encodeURIComponent(expr)}`)
  const body = JSON.parse(res.body) as { status: string, error?: string, data: { result: Array<{ metric: Record<string, string>, value: [number, string] }> } }
  if (body.status !== 'success') throw new Error(`${expr}: ${body.error ?? res.body}`)
  return body.data.result
}

t.test('Prometheus scrapes a flooded gateway, the refusal alert reaches an Alertmanager webhook, the dashboard\'s queries return data', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, RATE_LIMIT_RATE: '10/m', RATE_LIMIT_BURST: '5', RATE_LIMIT_TIERS: 'pro=1000/s:2000', API_KEYS: 'k-pro:pro' })
  const adminAddress = gw.adminUrl.slice('http://'.length)

  const webhook = await startWebhook(t)
  const amDir = tempDir(t, 'gw-alertmanager-')
  const amPort = await freePort()
  writeFileSync(join(amDir, 'alertmanager.yml'), [
    'route:',
    '  receiver: test',
    '  group_by: [alertname]',
    '  group_wait: 1s',
    '  group_interval: 1s',
    '  repeat_interval: 1h',
    'receivers:',
    '  - name: test',
    '    webhook_configs:',
    `      - url: ${webhook.url}`,
    ''
  ].join('\n'))
  await startPeer(t, 'prometheus-alertmanager', [
    `--config.file=${join(amDir, 'alertmanager.yml')}`, `--storage.path=${amDir}`,
    `--web.listen-address=127.0.0.1:${amPort}`, '--cluster.listen-address='
  ], {}, `http://127.0.0.1:${amPort}/-/ready`, true)

  // deploy/prometheus as documented; the test's addresses, 1 s intervals, and the alerts'
  // `for` shortened to 2 s (their real durations are promtool's unit tests' business).
  const promDir = tempDir(t, 'gw-prometheus-')
  writeFileSync(join(promDir, 'gateway-admin-token'), `${TOKEN}\n`)
  const rules = readFileSync(RULES, 'utf8').replace(/^(\s+)for: \d+m$/gm, '$1for: 2s')
  t.not(rules, readFileSync(RULES, 'utf8'), 'the alerts\' durations were shortened')
  writeFileSync(join(promDir, 'gateway-rules.yml'), rules)
  const documented = readFileSync(join(DEPLOY, 'prometheus', 'prometheus.yml'), 'utf8')
  const config = documented
    .replace(/(scrape_interval|evaluation_interval): 15s/g, '$1: 1s')
    .replace('/etc/prometheus/gateway-rules.yml', join(promDir, 'gateway-rules.yml'))
    .replace('/etc/prometheus/gateway-admin-token', join(promDir, 'gateway-admin-token'))
    .replace("'alertmanager:9093'", `'127.0.0.1:${amPort}'`)
    .replace("'gateway:9000'", `'${adminAddress}'`)
  for (const example of ['15s', '/etc/prometheus', 'alertmanager:9093', 'gateway:9000']) t.notOk(config.includes(example), `${example} replaced`)
  writeFileSync(join(promDir, 'prometheus.yml'), config)
  const promPort = await freePort()
  const prometheus = `http://127.0.0.1:${promPort}`
  await startPeer(t, 'prometheus', [
    `--config.file=${join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(promDir, 'data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`
  ], {}, `${prometheus}/-/ready`, true)

  t.ok(await eventually(async () => (await query(prometheus, 'up{job="ratelimit-gateway"} == 1')).length === 1, 30_000), 'Prometheus scrapes the admin port with the bearer token')

  // The flood: 900 requests from one client within seconds (10/s over a minute is 600),
  // beside a trickle from other clients, with an API key whose tier allows them.
  const statuses = new Map<number, number>()
  for (let batch = 0; batch < 90; batch++) {
    const replies = await Promise.all(Array.from({ length: 10 }, async () => send(`${gw.url}/flood`, { from: '127.0.0.2' })))
    for (const r of replies) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
  }
  t.equal(statuses.get(429), 895, 'the burst of 5 passed, 895 refused')

  const others = async (): Promise<void> => {
    for (let i = 3; i < 8; i++) await send(`${gw.url}/ping`, { from: `127.0.0.${i}`, headers: { 'x-api-key': 'k-pro' } })
  }
  const fired = await eventually(async () => {
    await others()
    return webhook.received.some(d => d.alerts.some(a => a.labels.alertname === 'RateLimitGatewayClientFlooding' && a.status === 'firing'))
  }, 60_000)
  t.ok(fired, 'RateLimitGatewayClientFlooding reached the webhook through Alertmanager')
  const alert = webhook.received.flatMap(d => d.alerts).find(a => a.labels.alertname === 'RateLimitGatewayClientFlooding')
  t.match(alert, {
    labels: { severity: 'warning', job: 'ratelimit-gateway', instance: adminAddress },
    annotations: { summary: /^One client is refused \d+(\.\d+)?\/s on /, runbook: /GET \/admin\/offenders/ }
  })
  t.notOk(webhook.received.some(d => d.alerts.some(a => a.labels.alertname !== 'RateLimitGatewayClientFlooding')), 'no other alert: the store, upstream, factors and latency are fine')

  // Every expression of the Grafana dashboard, as Grafana would send it for "All instances".
  const dashboard = JSON.parse(readFileSync(join(DEPLOY, 'grafana', 'gateway.json'), 'utf8')) as { panels: Array<{ title: string, targets?: Array<{ expr: string }> }> }
  const exprs = dashboard.panels.flatMap(p => (p.targets ?? []).map(target => ({ panel: p.title, expr: target.expr.replaceAll('$__rate_interval', '30s').replaceAll('$instance', '.*') })))
  t.ok(exprs.length >= 15, `${exprs.length} expressions`)
  const empty = new Set(exprs.map(e => e.expr))
  await eventually(async () => {
    await others()
    for (const e of exprs) {
      if (empty.has(e.expr) && (await query(prometheus, e.expr)).some(r => Number.isFinite(Number(r.value[1])))) empty.delete(e.expr)
    }
    return empty.size === 0
  }, 60_000)
  for (const e of exprs) t.notOk(empty.has(e.expr), `${e.panel}: ${e.expr} returns data (a number, not NaN)`)
  t.same((await query(prometheus, 'max by (mode) (gateway_store_mode) == 1')).map(r => r.metric.mode), ['memory'], 'the store mode panel shows memory')
  const refusedBy = await query(prometheus, 'sum by (policy) (gateway_refusals_total)')
  t.same(refusedBy.map(r => [r.metric.policy, r.value[1]]), [['default', '895']], 'refusals by policy: the flood, under the default policy')
})
