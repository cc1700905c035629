import t from 'tap'
import { Writable } from 'node:stream'
import pino from 'pino'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/index.js'
import { apiKeyId } from '../../src/identity/identify.js'
import { startUpstream } from '../helpers/upstream.js'
import { send } from '../helpers/http.js'

t.test('dry run admits everything, counts and reports, and logs would-be rejections (throttled)', async t => {
  const upstream = await startUpstream(t)
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write (chunk, _enc, cb) { lines.push(JSON.parse(chunk.toString())); cb() } })
  const config = loadConfig({ UPSTREAM_URL: upstream.url, RATE_LIMIT_DRY_RUN: 'true', RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '2', API_KEYS: 'secret-key', PORT: '0', HOST: '127.0.0.1', ADMIN_PORT: '0' })
  const app = await buildApp(config, { logger: pino({ level: 'info' }, sink) })
  t.teardown(() => app.close())
  await app.gateway.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.gateway.server.address() as { port: number }).port}/ping`

  const replies = []
  for (let i = 0; i < 6; i++) replies.push(await send(url, { headers: { 'x-api-key': 'secret-key' } }))
  t.same(replies.map(r => r.status), [200, 200, 200, 200, 200, 200], 'nothing is refused')
  t.equal(upstream.hits.get('/ping'), 6, 'everything reached the upstream')
  t.same(replies.map(r => r.headers['x-ratelimit-remaining']), ['1', '0', '0', '0', '0', '0'], 'the headers say what would happen')
  t.equal(replies[5]!.headers['retry-after'], undefined, 'no Retry-After on an admitted request')

  await app.close() // flushes the violation log
  const reports = lines.filter(l => l.msg === 'dry run: requests over their limit let through')
  t.equal(reports.length, 1, 'four would-be rejections, one log line (aggregated per client)')
  t.match(reports[0], { client: apiKeyId('secret-key'), count: 4, policies: ['default'], dryRun: true })
  t.notMatch(JSON.stringify(lines), 'secret-key', 'the API key itself is never logged')
})
