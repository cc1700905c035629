/**
 * Regression (issue 25.8): admin errors came out with Fastify's codes and titles (415
 * FST_ERR_CTP_INVALID_MEDIA_TYPE titled "Bad Request", FST_ERR_CTP_INVALID_JSON_BODY, an
 * empty or 2 MB body likewise, JSON as text/plain → "body must be object"). Every admin
 * error is problem+json with a GW_* code from the README's table and its status's title.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

const TOKEN = 'test-admin-token-0123456789'
const auth = { authorization: `Bearer ${TOKEN}` }
const README = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8')

// [what, method, path, headers, body, status, code, title, detail]
const CASES: Array<[string, string, string, Record<string, string>, string | undefined, number, string, string, RegExp]> = [
  ['no content type', 'PATCH', '/admin/config', {}, '{"factor":0.5}', 415, 'GW_ADMIN_MEDIA_TYPE', 'Unsupported Media Type', /must be JSON, sent with content-type: application\/json/],
  ['JSON sent as text/plain', 'PATCH', '/admin/config', { 'content-type': 'text/plain' }, '{"factor":0.5}', 415, 'GW_ADMIN_MEDIA_TYPE', 'Unsupported Media Type', /content-type: application\/json/],
  ['broken JSON', 'PATCH', '/admin/config', { 'content-type': 'application/json' }, '{"factor":', 400, 'GW_ADMIN_INVALID', 'Bad Request', /not valid JSON/],
  ['an empty body', 'PUT', '/admin/config', { 'content-type': 'application/json' }, '', 400, 'GW_ADMIN_INVALID', 'Bad Request', /the body is empty/],
  ['a 2 MB body', 'PATCH', '/admin/config', { 'content-type': 'application/json' }, `{"x":"${'a'.repeat(2_000_000)}"}`, 413, 'GW_ADMIN_BODY_TOO_LARGE', 'Content Too Large', /larger than the admin API accepts \(1048576 bytes\)/],
  ['a body that is not an object', 'PATCH', '/admin/config', { 'content-type': 'application/json' }, '[1]', 400, 'GW_ADMIN_INVALID', 'Bad Request', /body must be object/],
  ['an unknown field', 'PATCH', '/admin/config', { 'content-type': 'application/json' }, '{"nope":1}', 400, 'GW_ADMIN_INVALID', 'Bad Request', /must NOT have additional properties/],
  ['a bad query', 'GET', '/admin/offenders?limit=0', {}, undefined, 400, 'GW_ADMIN_INVALID', 'Bad Request', /limit must be >= 1/],
  ['an unknown path', 'GET', '/admin/nope', {}, undefined, 404, 'GW_ADMIN_NOT_FOUND', 'Not Found', /no such admin endpoint/]
]

t.test('every admin error: problem+json, a GW_* code from the README\'s table, the right title', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN })
  for (const [what, method, path, headers, body, status, code, title, detail] of CASES) {
    const r = await send(`${gw.adminUrl}${path}`, { method: method as 'GET', headers: { ...auth, ...headers }, ...(body === undefined ? {} : { body }) })
    t.equal(r.status, status, `${what}: ${status}`)
    t.match(r.headers['content-type'], /^application\/problem\+json/, `${what}: problem+json`)
    t.match(JSON.parse(r.body), { type: 'about:blank', status, code, title, detail }, `${what}: ${code}, "${title}"`)
    t.ok(README.includes(`| ${status} | \`${code}\` |`), `${what}: ${code} is in the README's error table with status ${status}`)
  }
  t.match(JSON.parse((await send(`${gw.adminUrl}/admin/config`, { headers: auth })).body), { version: 0 }, 'nothing changed')
})
