/** An upstream that is not there is said at start-up and shown in /readyz; the gateway keeps running. */
import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { freePort, spawnGateway } from '../helpers/process.js'
import { eventually } from '../helpers/load.js'
import { PROBE_CACHE_MS, UpstreamProbe, warnIfUnreachable } from '../../src/proxy/probe.js'
import { captureLogs } from '../helpers/logs.js'
import { ConfigError, describeError } from '../../src/errors.js'

t.test('an upstream name that does not resolve: a warning at start, 502s, /readyz says why', async t => {
  const gw = await spawnGateway(t, { UPSTREAM_URL: 'http://web.invalid:8080' }, { captureLogs: true })
  t.ok(await eventually(() => gw.logs.some(l => l.includes('the upstream is not reachable')), 5000), 'warned at start')
  const line = JSON.parse(gw.logs.find(l => l.includes('the upstream is not reachable'))!)
  t.match(line, { level: 40, upstream: 'http://web.invalid:8080', error: /ENOTFOUND|EAI_AGAIN/ })
  t.equal((await send(`${gw.url}/ping`)).status, 502, 'requests get 502')
  const ready = await send(`${gw.adminUrl}/readyz`)
  t.equal(ready.status, 200, 'the gateway itself is ready')
  t.match(JSON.parse(ready.body), { status: 'ready', upstream: { reachable: false, error: /ENOTFOUND|EAI_AGAIN/ } })
})

t.test('/readyz follows the upstream going away and coming back', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url })
  t.match(JSON.parse((await send(`${gw.adminUrl}/readyz`)).body), { upstream: { reachable: true, error: null } })
  await upstream.close()
  t.ok(await eventually(async () => JSON.parse((await send(`${gw.adminUrl}/readyz`)).body).upstream.reachable === false, PROBE_CACHE_MS * 3), 'refused: reachable false')
  t.match(JSON.parse((await send(`${gw.adminUrl}/readyz`)).body).upstream.error, /ECONNREFUSED/)
})

t.test('a recent result is reused; a URL without a port probes its scheme\'s default port', async t => {
  const probe = new UpstreamProbe(`http://127.0.0.1:${await freePort()}`, 100)
  const status = await probe.check()
  t.equal(status.reachable, false)
  t.equal(await probe.check(), status, 'the same result within PROBE_CACHE_MS')
  for (const url of ['http://127.0.0.1', 'https://[::1]']) {
    const s = await new UpstreamProbe(url, 500).check()
    const port = url.startsWith('https') ? '443' : '80'
    t.ok(s.reachable || s.error!.endsWith(`:${port}`), `${url}: port ${port} (${s.error ?? 'reachable'})`)
  }
})

t.test('start-up warns only when the upstream cannot be reached', async t => {
  const upstream = await startUpstream(t)
  const { logger, lines } = captureLogs()
  await warnIfUnreachable(new UpstreamProbe(upstream.url), logger, upstream.url)
  t.equal(lines.length, 0, 'reachable: nothing said')
  const down = `http://127.0.0.1:${await freePort()}`
  await warnIfUnreachable(new UpstreamProbe(down), logger, down)
  t.match(lines, [{ level: 40, upstream: down, error: /ECONNREFUSED/ }])
})

t.test('start-up errors name their code when they are the gateway\'s own', async t => {
  t.equal(describeError(new ConfigError('X must be set')), 'X must be set [GW_CONFIG_INVALID]')
  t.equal(describeError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })), 'connect ECONNREFUSED', 'a system error: its message')
})
