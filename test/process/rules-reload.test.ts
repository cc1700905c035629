import t from 'tap'
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import pino from 'pino'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/index.js'
import { startUpstream } from '../helpers/upstream.js'
import { send } from '../helpers/http.js'
import { spawnGateway } from '../helpers/process.js'
import { startGateway } from '../helpers/gateway.js'
import { eventually, sleep, startLoad } from '../helpers/load.js'

const rules = (burst: number) => JSON.stringify({ rules: [{ name: 'api', path: '/ping', rate: '1/h', burst, exclusive: true }] })

/** Replaces the file the way editors and ConfigMaps do: a new file renamed over the old. */
function replace (file: string, text: string): void {
  writeFileSync(file + '.tmp', text)
  renameSync(file + '.tmp', file)
}

t.test('a rules file changed while traffic flows: no request fails, the new limit applies; a bad one is refused and the old rules stay', async t => {
  const upstream = await startUpstream(t)
  const file = join(mkdtempSync(join(tmpdir(), 'gw-reload-')), 'rules.json')
  writeFileSync(file, rules(3))
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write (chunk, _enc, cb) { lines.push(JSON.parse(chunk.toString())); cb() } })
  const config = loadConfig({
    UPSTREAM_URL: upstream.url, RATE_LIMIT_RULES_FILE: file, RATE_LIMIT_RULES_POLL_MS: '50',
    PORT: '0', HOST: '127.0.0.1', ADMIN_PORT: '0', LOG_LEVEL: 'info'
  })
  const app = await buildApp(config, { logger: pino({ level: 'info' }, sink) })
  t.teardown(() => app.close())
  await app.gateway.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.gateway.server.address() as { port: number }).port}/ping`

  const load = startLoad(url, 4)
  t.ok(await eventually(() => (load.stats.byStatus.get(429) ?? 0) > 20, 5000), 'under the first rules (burst 3) the client is soon refused')
  const okBefore = load.stats.byStatus.get(200) ?? 0
  t.equal(okBefore, 3, 'exactly the burst of 3 passed')

  replace(file, rules(1_000_000))
  t.ok(await eventually(() => (load.stats.byStatus.get(200) ?? 0) > okBefore + 100, 5000), 'after the change requests pass again: the new limit applies without a restart')

  replace(file, '{ "rules": [ { "name": "api", "path": "/ping", "rate": "fast" } ] }')
  t.ok(await eventually(() => lines.some(l => l.msg === 'route rules file rejected; the rules in force stay'), 5000), 'a bad file is logged')
  const okAtBad = load.stats.byStatus.get(200) ?? 0
  await sleep(300)
  const stats = await load.stop()
  t.ok((stats.byStatus.get(200) ?? 0) > okAtBad + 10, 'and the rules in force stay: requests keep passing')

  t.equal(stats.errors, 0, 'no request failed at the transport level')
  t.same([...stats.byStatus.keys()].sort(), [200, 429], 'every answer was a 200 or a 429: no 5xx during reloads')
  t.equal(upstream.hits.get('/ping'), stats.byStatus.get(200), 'exactly the admitted requests reached the upstream')
  const rejected = lines.find(l => l.msg === 'route rules file rejected; the rules in force stay')!
  t.match(rejected, { level: 50, file, reason: /rule 1 \("api"\): limit "api": expected a positive number/ }, 'the log line says where and what')
  t.equal(lines.filter(l => l.msg === 'route rules reloaded').length, 1, 'one reload logged')
  t.equal((await send(url)).headers['ratelimit-policy'], '"api";q=1000000;w=3600000000', 'the headers show the rules in force')
})

t.test('SIGHUP reloads the rules file (with polling off)', async t => {
  const upstream = await startUpstream(t)
  const file = join(mkdtempSync(join(tmpdir(), 'gw-hup-')), 'rules.json')
  writeFileSync(file, rules(1))
  const gw = await spawnGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_RULES_FILE: file, RATE_LIMIT_RULES_POLL_MS: '0', LOG_LEVEL: 'silent' })
  t.equal((await send(`${gw.url}/ping`)).status, 200)
  t.equal((await send(`${gw.url}/ping`)).status, 429, 'burst 1')
  replace(file, rules(50))
  await sleep(300)
  t.equal((await send(`${gw.url}/ping`)).status, 429, 'without polling a changed file is not read by itself')
  gw.child.kill('SIGHUP')
  t.ok(await eventually(async () => (await send(`${gw.url}/ping`)).status === 200, 5000), 'after SIGHUP the new limit applies')
  t.equal((await send(`${gw.url}/ping`)).headers['ratelimit-policy'], '"api";q=50;w=180000')
  t.equal(gw.child.exitCode, null, 'the gateway still runs')
})

t.test('a reload without a rules file says so and changes nothing', async t => {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write (chunk, _enc, cb) { lines.push(JSON.parse(chunk.toString())); cb() } })
  const app = await buildApp(loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:1' }), { logger: pino({ level: 'info' }, sink) })
  t.teardown(() => app.close())
  t.same(app.reloadRules(), { result: 'none' })
  t.match(lines.filter(l => l.component === 'rules'), [{ level: 40, msg: 'no RATE_LIMIT_RULES_FILE to reload' }])
})

t.test('a reload of an unchanged file changes nothing and logs nothing', async t => {
  const file = join(mkdtempSync(join(tmpdir(), 'gw-same-')), 'rules.json')
  writeFileSync(file, rules(2))
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write (chunk, _enc, cb) { lines.push(JSON.parse(chunk.toString())); cb() } })
  const app = await buildApp(loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:1', RATE_LIMIT_RULES_FILE: file }), { logger: pino({ level: 'info' }, sink) })
  t.teardown(() => app.close())
  t.same(app.reloadRules(), { result: 'unchanged' })
  t.same(lines.filter(l => l.component === 'rules').map(l => l.msg), ['route rules loaded'])
})

t.test('POST /admin/rules/reload reads the file again, as SIGHUP does, and says what it did (issue 25.11)', async t => {
  const TOKEN = 'test-admin-token-0123456789'
  const post = (gw: { adminUrl: string }) => send(`${gw.adminUrl}/admin/rules/reload`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
  const upstream = await startUpstream(t)
  const file = join(mkdtempSync(join(tmpdir(), 'gw-admin-reload-')), 'rules.json')
  writeFileSync(file, rules(1))
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, RATE_LIMIT_RULES_FILE: file, RATE_LIMIT_RULES_POLL_MS: '0' })
  t.same([(await send(`${gw.url}/ping`)).status, (await send(`${gw.url}/ping`)).status], [200, 429], 'burst 1')
  replace(file, rules(3))
  t.equal((await send(`${gw.url}/ping`)).status, 429, 'no polling: the change waits for a reload')
  const applied = await post(gw)
  t.equal(applied.status, 200)
  t.same(JSON.parse(applied.body), { result: 'applied', rules: 1, file })
  t.equal((await send(`${gw.url}/ping`)).status, 200, 'burst 3 in force at once')
  t.same(JSON.parse((await post(gw)).body), { result: 'unchanged', file })
  replace(file, '{"rules": [{"name": "api"}]}')
  const rejected = await post(gw)
  t.equal(rejected.status, 400)
  t.match(JSON.parse(rejected.body), { code: 'GW_ADMIN_INVALID', detail: /^the rules file does not validate; the rules in force stay: / })
  const none = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN })
  const missing = await post(none)
  t.equal(missing.status, 404)
  t.match(JSON.parse(missing.body), { code: 'GW_ADMIN_NOT_FOUND', detail: /RATE_LIMIT_RULES_FILE is not set/ })
})
