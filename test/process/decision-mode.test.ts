/**
 * MODE=decision as a real process (`npm start`'s server.js): no UPSTREAM_URL, only the
 * decision listener and admin listen; it answers, says so when ready, and drains on SIGTERM.
 */
import t from 'tap'
import { send } from '../helpers/http.js'
import { freePort, spawnGateway } from '../helpers/process.js'

t.test('MODE=decision: the decision listener answers, the client port stays closed, SIGTERM exits 0', async t => {
  const decisionPort = await freePort()
  const gw = await spawnGateway(t, { MODE: 'decision', DECISION_PORT: String(decisionPort), LOG_LEVEL: 'info', RATE_LIMIT_RATE: '1/m', RATE_LIMIT_BURST: '1' }, { captureLogs: true })
  const ask = () => send(`http://127.0.0.1:${decisionPort}/`, { headers: { 'x-forwarded-uri': '/ping', 'x-forwarded-method': 'GET' } })
  t.equal((await ask()).status, 200)
  t.equal((await ask()).status, 429)
  await t.rejects(send(`${gw.url}/ping`), 'the client port is not listening')
  const ready = gw.logs.map(l => JSON.parse(l) as Record<string, unknown>).find(l => l.msg === 'gateway ready')
  t.match(ready, { mode: 'decision', decisionPort, upstream: undefined })
  gw.child.kill('SIGTERM')
  const [code] = await gw.exited
  t.equal(code, 0)
})
