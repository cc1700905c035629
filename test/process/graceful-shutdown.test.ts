import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { send } from '../helpers/http.js'
import { spawnGateway } from '../helpers/process.js'

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${signal}: in-flight requests finish, new ones are refused, exit 0`, async t => {
    const upstream = await startUpstream(t)
    const gw = await spawnGateway(t, { UPSTREAM_URL: upstream.url })

    const inFlight = send(`${gw.url}/slow?ms=3000`)
    await sleep(300)
    t.equal(upstream.hits.get('/slow'), 1, 'the slow request is upstream')
    gw.child.kill(signal)
    await sleep(300)
    await t.rejects(send(`${gw.url}/ping`), 'a new connection is refused while draining')

    const r = await inFlight
    t.equal(r.status, 200, 'the in-flight request still got its answer')
    t.same(JSON.parse(r.body), { slow: true })
    const [code] = await gw.exited
    t.equal(code, 0, 'exit status 0')
  })
}

t.test('a request that outlives SHUTDOWN_TIMEOUT_MS is cut and the process still exits 0', async t => {
  const upstream = await startUpstream(t)
  const gw = await spawnGateway(t, { UPSTREAM_URL: upstream.url, SHUTDOWN_TIMEOUT_MS: '300', LOG_LEVEL: 'silent' })
  const inFlight = send(`${gw.url}/slow?ms=20000`).catch((err: Error) => err)
  await sleep(200)
  const started = Date.now()
  gw.child.kill('SIGTERM')
  const [code] = await gw.exited
  t.equal(code, 0)
  t.ok(Date.now() - started < 5000, 'exited soon after the drain bound')
  t.ok((await inFlight) instanceof Error, 'the stuck request was cut')
})
