import t from 'tap'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config/index.js'
import { problem, statusTitle } from '../src/errors.js'

t.test('unexpected errors are answered as problem+json without internals; 4xx errors keep their message', async t => {
  const app = await buildApp(loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:9', LOG_LEVEL: 'silent' }), { logger: pino({ level: 'silent' }) })
  t.teardown(() => app.close())
  // Routes that fail the way a bug or a library would, registered beside the proxy.
  app.gateway.get('/__test/boom', async () => { throw new Error('secret internal detail at 10.0.0.5') })
  app.gateway.get('/__test/bad', async () => { throw Object.assign(new Error('bad input here'), { statusCode: 400, code: 'X_BAD' }) })

  const boom = await app.gateway.inject({ url: '/__test/boom' })
  t.equal(boom.statusCode, 500)
  t.match(boom.headers['content-type'], /^application\/problem\+json/)
  t.same(JSON.parse(boom.body), { type: 'about:blank', title: 'Internal Server Error', status: 500, detail: 'Internal error', code: 'GW_INTERNAL' })

  const bad = await app.gateway.inject({ url: '/__test/bad' })
  t.equal(bad.statusCode, 400)
  t.same(JSON.parse(bad.body), { type: 'about:blank', title: 'Bad Request', status: 400, detail: 'bad input here', code: 'X_BAD' })
})

t.test('problem details titles', async t => {
  t.equal(statusTitle(429), 'Too Many Requests')
  t.equal(statusTitle(499), 'Bad Request', 'unknown 4xx')
  t.equal(statusTitle(599), 'Internal Server Error', 'unknown 5xx')
  t.same(problem(503), { type: 'about:blank', title: 'Service Unavailable', status: 503 })
})
