import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { loadConfig, variableNames } from '../../src/config/index.js'
import { Metrics } from '../../src/observe/metrics.js'

const read = (path: string) => readFileSync(fileURLToPath(new URL(`../../../${path}`, import.meta.url)), 'utf8')

t.test('every variable is in .env.example with its default, and in the README\'s table', async t => {
  const example = read('.env.example')
  const readme = read('README.md')
  const names = variableNames()
  t.ok(names.length >= 40, `${names.length} variables`)
  for (const name of names) {
    t.match(example, new RegExp(`^${name}=`, 'm'), `.env.example lists ${name}`)
    t.match(readme, new RegExp(`^\\| \`${name}\` \\|`, 'm'), `README's table lists ${name}`)
  }
  // The values in .env.example are the defaults: loading it changes nothing.
  const env: Record<string, string> = {}
  for (const m of example.matchAll(/^([A-Z_]+)=(.*)$/gm)) env[m[1]!] = m[2]!
  const fromExample = loadConfig({ ...env, UPSTREAM_URL: 'http://127.0.0.1:8080' })
  const defaults = loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:8080' })
  t.same(fromExample, defaults, '.env.example holds the defaults')
})

t.test('the README shows the nginx and Caddy files the decision tests run, verbatim', async t => {
  const readme = read('README.md')
  t.ok(readme.includes('```nginx\n' + read('docs/nginx-auth-request.conf') + '```'), 'docs/nginx-auth-request.conf')
  t.ok(readme.includes('```caddyfile\n' + read('docs/Caddyfile') + '```'), 'docs/Caddyfile')
})

t.test('every metric the gateway exports is in the README\'s table; every alert in its Monitoring table, with its threshold and duration', async t => {
  const readme = read('README.md')
  const metrics = new Metrics({ store: undefined, factors: () => ({ emergency: 1, adaptive: 1 }), inFlight: () => 0, topClientRate: () => 0 })
  const names = (await metrics.registry.getMetricsAsJSON()).map(m => m.name).filter(n => n.startsWith('gateway_'))
  t.ok(names.length >= 15, `${names.length} gateway metrics`)
  for (const name of names) t.match(readme, new RegExp(`^\\| \`${name}(\\{[a-z,]+\\})?\` \\|`, 'm'), `README's metrics table lists ${name}`)

  const rules = parse(read('deploy/prometheus/gateway-rules.yml')) as { groups: Array<{ rules: Array<{ alert?: string, expr: string, for?: string, labels?: { severity: string } }> }> }
  const alerts = rules.groups.flatMap(g => g.rules).filter(r => r.alert !== undefined)
  t.equal(alerts.length, 8)
  // Regression (issue 25.15): the flooding alert is per instance, and the table says so.
  t.match(readme.split('\n').find(l => l.startsWith('| `RateLimitGatewayClientFlooding` |')), /\*\*Per instance\*\*.*10·N times a second/, 'the flooding alert\'s row says it is per instance')
  for (const a of alerts) {
    const row = readme.split('\n').find(l => l.startsWith(`| \`${a.alert!}\` |`))
    t.ok(row, `README lists ${a.alert!}`)
    t.ok(row?.endsWith(`| ${a.for!} | ${a.labels!.severity} |`), `${a.alert!}: for ${a.for!}, ${a.labels!.severity}, as the rules say`)
    const threshold = /[><]=? ?([\d.]+)$/.exec(a.expr.trim())?.[1]
    if (threshold !== undefined && threshold !== '1') {
      // As the README words it: seconds in ms, a ratio in percent, a rate as it is.
      const value = Number(threshold)
      const shown = /_seconds:/.test(a.expr) ? `${value * 1000} ms` : value < 1 ? `${Math.round(value * 100)}%` : String(value)
      t.ok(row?.includes(shown), `${a.alert!}: the README's threshold is the rule's (${shown})`)
    }
  }
})

t.test('the dependencies install quietly (issue 25.17): @types/node is the engines\' Node line; no stale exporter kept for its .proto files; one OpenTelemetry API', async t => {
  const pkg = JSON.parse(read('package.json')) as { engines: { node: string }, devDependencies: Record<string, string> }
  const enginesMajor = /(\d+)/.exec(pkg.engines.node)![1]
  t.equal(/(\d+)/.exec(pkg.devDependencies['@types/node']!)![1], enginesMajor, `@types/node ${pkg.devDependencies['@types/node']} for engines ${pkg.engines.node}`)
  t.equal(pkg.devDependencies['@opentelemetry/otlp-grpc-exporter-base'], undefined, 'the OTLP test decodes with protos held in test/fixtures')
  const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { version?: string }> }
  const apis = new Set(Object.entries(lock.packages).filter(([path]) => path.endsWith('node_modules/@opentelemetry/api')).map(([, p]) => p.version))
  t.equal(apis.size, 1, `one @opentelemetry/api in the lock file (${[...apis].join(', ')}): no peer conflict to warn about`)
})
