import t from 'tap'
import { once } from 'node:events'
import WebSocket from 'ws'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'

t.test('WebSocket upgrades are proxied, and limited like any request', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '1' })
  const wsUrl = gw.url.replace('http://', 'ws://') + '/chat'

  const ws = new WebSocket(wsUrl)
  t.teardown(() => ws.terminate())
  await once(ws, 'open')
  ws.send('hello')
  const [message] = await once(ws, 'message') as [Buffer]
  t.equal(message.toString(), 'echo:hello')
  t.equal(upstream.hits.get('ws:/chat'), 1)

  const second = new WebSocket(wsUrl)
  t.teardown(() => { if (second.readyState === WebSocket.OPEN) second.terminate() })
  const [, res] = await once(second, 'unexpected-response') as [unknown, { statusCode: number, headers: Record<string, string> }]
  t.equal(res.statusCode, 429, 'the over-limit upgrade is refused')
  t.equal(res.headers['retry-after'], '3600')
  t.equal(upstream.hits.get('ws:/chat'), 1, 'and never reached the upstream')
})
