/**
 * Path handling: whatever a client spells, the request reaches the upstream under the
 * upstream's base path, or is refused; admin routes are never reached through :8000.
 */
import t from 'tap'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { spawnGateway } from '../helpers/process.js'
import { normalizePath } from '../../src/core/path.js'
import { Tally, writeFigures, WORKERS_ENV } from './harness.js'
import { rawExchange } from '../helpers/http.js'

const TARGETS = [
  '/x', '/../secret', '/a/../../secret', '/%2e%2e/secret', '/%2E%2E/secret', '/..%2fsecret', '/..%2Fsecret', '/%2e%2e%2fsecret',
  '/.%2e/secret', '/%252e%252e/secret', '/x/..', '/./x', '//evil.example/x', '/x?q=/../y', '/x/%2e%2e/%2e%2e/secret',
  '/..;/secret', '/%c0%ae%c0%ae/secret', '\\..\\secret', '/metrics', '/admin/config', '/%2e%2e/admin/config', '/dashboard', '/healthz/../admin/stats'
]

t.test('encoded traversal stays under the upstream base path or is refused; admin routes are never reached', async t => {
  const seen: string[] = []
  const upstream = createServer((req, res) => { seen.push(req.url!); req.resume(); res.end('upstream') }).listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.teardown(() => new Promise(resolve => upstream.close(resolve)))
  const token = 'test-admin-token-0123456789'
  const gw = await spawnGateway(t, { ...WORKERS_ENV, UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/api`, ADMIN_TOKEN: token, RATE_LIMIT_BURST: '1000' })
  const tally = new Tally()
  for (const target of TARGETS) {
    tally.sent++
    const before = seen.length
    const answer = await rawExchange(gw.port, `GET ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`, { waitMs: 2000 })
    tally.record(answer.status ?? 'closed')
    const reached = seen.slice(before)
    t.notMatch(answer.raw, /"version"|gateway_requests_total|<title>Rate-limit gateway/, `${target}: never an admin answer`)
    if (reached.length === 0) {
      t.ok(answer.status !== undefined && answer.status >= 400 && answer.status < 500, `${target}: refused (${answer.status})`)
    } else {
      const url = reached[0]!
      t.ok(url.startsWith('/api/') && normalizePath(url).startsWith('/api/'), `${target}: reached ${url}, under /api however it is decoded`)
      t.equal(answer.status, 200)
    }
  }
  t.equal(gw.child.exitCode, null, 'no crash')
  const figures = writeFigures({
    scenario: 'paths', sent: tally.sent, answered: tally.answered, lost: tally.sent - tally.total,
    upstream: seen.length, smuggled: seen.filter(u => !normalizePath(u).startsWith('/api/')).length,
    crashes: gw.child.exitCode === null ? 0 : 1, rssBytes: gw.rss(), notes: { reached: seen }
  })
  t.equal(figures.lost, 0)
  t.equal(figures.smuggled, 0, 'nothing reached the upstream outside its base path')
})
