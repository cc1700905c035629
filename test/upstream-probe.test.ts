/** An upstream that is not there is said at start-up and shown in /readyz; the gateway keeps running. */
import t from 'tap'
import { startUpstream } from './helpers/upstream.js'
import { startGateway } from './helpers/gateway.js'
import { send } from './helpers/http.js'
import { freePort, spawnGateway } from './helpers/process.js'
import { eventually } from './helpers/load.js'
import { PROBE_CACHE_MS, UpstreamProbe } from '../src/proxy/probe.js'

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
