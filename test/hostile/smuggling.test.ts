/**
 * Smuggling and malformed requests over raw sockets, against the gateway process: each
 * gets a 4xx, nothing smuggled reaches the upstream, the gateway keeps serving.
 */
import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { spawnGateway } from '../helpers/process.js'
import { send } from '../helpers/http.js'
import { Tally, writeFigures, WORKERS_ENV } from './harness.js'
import { rawExchange } from '../helpers/http.js'

const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'
// [name, bytes sent on one connection]
const ATTACKS: Array<[string, string]> = [
  ['Content-Length and Transfer-Encoding together', 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' + SMUGGLED],
  ['Transfer-Encoding then Content-Length', 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n' + SMUGGLED],
  ['two differing Content-Lengths', 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello' + SMUGGLED],
  ['a Content-Length list', 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 40\r\n\r\nhello' + SMUGGLED],
  ['space before the colon', 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length : 40\r\n\r\nhello' + SMUGGLED],
  ['bare CR in a header', 'GET /echo HTTP/1.1\r\nHost: x\r\nX-A: a\rGET /smuggled HTTP/1.1\r\n\r\n'],
  ['bare LF line ends', 'GET /echo HTTP/1.1\nHost: x\nContent-Length: 40\n\n' + SMUGGLED],
  ['obfuscated Transfer-Encoding (xchunked)', 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n' + SMUGGLED],
  ['obfuscated Transfer-Encoding (chunked, identity)', 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n' + SMUGGLED],
  ['obfuscated Transfer-Encoding (line folding)', 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n' + SMUGGLED],
  ['chunk extension flood', 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;' + 'a'.repeat(20_000) + '\r\nx\r\n0\r\n\r\n' + SMUGGLED],
  ['a chunk size overflow', 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nx\r\n0\r\n\r\n' + SMUGGLED],
  ['a 20 KB header', 'GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ' + 'a'.repeat(20_000) + '\r\n\r\n'],
  ['a 20 KB request line', 'GET /' + 'a'.repeat(20_000) + ' HTTP/1.1\r\nHost: x\r\n\r\n'],
  ['missing Host', 'GET /echo HTTP/1.1\r\n\r\n'],
  ['two Hosts', 'GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
  ['an invalid method', 'G\x00T /echo HTTP/1.1\r\nHost: x\r\n\r\n'],
  ['an unknown HTTP version', 'GET /echo HTTP/9.9\r\nHost: x\r\n\r\n'],
  ['a NUL in a header value', 'GET /echo HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n']
]

t.test('smuggling and malformed requests: a 4xx each, nothing smuggled upstream, the gateway keeps serving', async t => {
  const upstream = await startUpstream(t)
  const gw = await spawnGateway(t, { ...WORKERS_ENV, UPSTREAM_URL: upstream.url, RATE_LIMIT_RATE: '100000/s', RATE_LIMIT_BURST: '100000' })
  const tally = new Tally()
  for (const [name, bytes] of ATTACKS) {
    tally.sent++
    const answer = await rawExchange(gw.port, bytes, { waitMs: 2000 })
    tally.record(answer.status ?? 'closed')
    t.ok(answer.status !== undefined && answer.status >= 400 && answer.status < 500, `${name}: ${answer.status}`)
    t.same(answer.statuses.length, 1, `${name}: one answer, nothing behind it`)
    t.equal((await send(`${gw.url}/ping`)).status, 200, `${name}: the gateway still serves`)
  }
  const smuggled = upstream.hits.get('/smuggled') ?? 0
  t.equal(smuggled, 0, 'no smuggled request reached the upstream')
  t.equal(upstream.hits.get('/echo') ?? 0, 0, 'no malformed request reached the upstream either')
  t.equal(gw.child.exitCode, null, 'no crash')
  const figures = writeFigures({
    scenario: 'smuggling',
    sent: tally.sent,
    answered: tally.answered,
    lost: tally.sent - tally.total,
    upstream: upstream.total() - ATTACKS.length, // minus the health checks after each
    smuggled,
    crashes: gw.child.exitCode === null ? 0 : 1,
    rssBytes: gw.rss()
  })
  t.same(figures.answered, { '4xx': ATTACKS.length })
  t.equal(figures.lost, 0)
  t.equal(figures.upstream, 0)
})
