import t from 'tap'
import { mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { startUpstream } from '../helpers/upstream.js'
import { rulesFile, startGateway } from '../helpers/gateway.js'
import { send, statuses } from '../helpers/http.js'
import { startRedis } from '../helpers/redis.js'

/** Debian's chromium (installed by .ci/run where missing). */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
/** Where the screenshot goes: a test artifact, and the README's picture. */
const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/', import.meta.url))

t.test('the dashboard, opened in headless Chromium, shows live numbers after traffic', async t => {
  const upstream = await startUpstream(t)
  const token = 'test-admin-token-0123456789'
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url, ADMIN_TOKEN: token, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '5',
    RATE_LIMIT_TIERS: 'pro=100/s:200', API_KEYS: 'k-pro:pro', USAGE_LEDGER: 'true',
    RATE_LIMIT_RULES_FILE: rulesFile(t, [{ name: 'api', path: '/status/', rate: '100/s', refund: { status: ['5xx'] } }])
  })
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking'] })
  t.teardown(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } })
  await page.goto(`${gw.adminUrl}/dashboard`)
  // Regression (issue 25.14): before a token, no store pill (it showed green) and no numbers.
  t.equal(await page.isVisible('#status'), false, 'no store or in-flight pill before the token is given')
  t.equal(await page.isVisible('#board'), false, 'no numbers either')

  await page.fill('#token', 'a-wrong-token-000000')
  await page.click('button[type=submit]')
  // Predicates are functions (run through the DevTools protocol): the page's CSP forbids eval.
  await page.waitForFunction(() => (globalThis as any).document.getElementById('error').textContent === 'the token was refused')
  t.pass('a wrong token is refused on the page')

  await page.fill('#token', token)
  await page.click('button[type=submit]')
  await page.waitForSelector('#board:not([hidden])')
  // Traffic while the page polls: one client over its limit, another within its tier.
  let running = true
  const traffic = (async () => {
    while (running) {
      await statuses(`${gw.url}/ping`, 6, { from: '127.0.0.2' })
      await statuses(`${gw.url}/ping`, 4, { from: '127.0.0.3', headers: { 'x-api-key': 'k-pro' } })
      await statuses(`${gw.url}/status/503`, 1, { from: '127.0.0.3', headers: { 'x-api-key': 'k-pro' } })
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  })()
  try {
    // Live numbers: rates from at least three polls, and the offender.
    await page.waitForFunction(() => {
      const d = (globalThis as any).document
      return Number(d.getElementById('rate-limited').textContent) > 0 && d.querySelector('#offenders td').textContent === 'ip:127.0.0.2' &&
        d.getElementById('line-limited').getAttribute('points').split(' ').length >= 3
    }, undefined, { timeout: 20_000 })
  } finally {
    running = false
    await traffic
  }

  const text = async (selector: string) => (await page.textContent(selector))!.trim()
  t.equal(await text('#store-mode'), 'memory')
  t.equal(await text('#in-flight'), '0')
  t.ok(Number(await text('#rate-allowed')) > 0, `allowed/s: ${await text('#rate-allowed')}`)
  t.ok(Number(await text('#rate-limited')) > 0, `limited/s: ${await text('#rate-limited')}`)
  t.match(await text('#totals'), /allowed\s*\d+/)
  t.match(await text('#limits'), /default1\/h5/)
  t.match(await text('#limits'), /tier pro100\/s200/)
  t.equal(await text('#offenders td'), 'ip:127.0.0.2', 'the client over its limit tops the offenders')
  t.equal(await text('#factor'), '1')
  t.match(await text('#rules'), /\/status\/api 100\/s · refunds 5xx/, 'the rule, with what it gives back')
  t.match(await text('#settlements'), /api refund\s*[1-9]/, 'the 503s given back')

  // The usage ledger, read when the page opens (and every 30 s): a reload shows the traffic's.
  await page.reload()
  await page.waitForFunction(() => /key:/.test((globalThis as any).document.querySelector('#usage-top td')?.textContent ?? ''))
  const cells = await page.$$eval('#usage-top tr:first-child td', tds => tds.map(td => td.textContent))
  t.equal(cells.length, 4)
  t.match(cells[0], /^pro key key:.{8}…$/, 'the pro key, by its tier and the start of its digest (issue 25.14)')
  t.match(await page.getAttribute('#usage-top tr:first-child', 'title'), /^key:.{22}$/, 'the whole digest as the row\'s title')
  t.match(await text('#usage-key'), /^pro key key:/)
  t.ok(Number(cells[1]) > 0 && cells[2] === '0' && cells[3] === cells[1], `admitted ${cells[1]}, refused ${cells[2]}, cost ${cells[3]}`)
  await page.waitForFunction(() => (globalThis as any).document.getElementById('usage-line').getAttribute('points').split(' ').length === 90)
  t.match(await text('#usage-days'), /^90 days, [1-9]\d* admitted$/, 'its days over the 90 kept, as a line')

  // A key made through the admin API: listed by name and tier, its usage by name.
  const made = JSON.parse((await send(`${gw.adminUrl}/admin/keys`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"name":"acme","tier":"pro"}' })).body) as { key: string, prefix: string }
  for (let i = 0; i < 50; i++) await send(`${gw.url}/ping`, { headers: { 'x-api-key': made.key } })
  await page.reload()
  await page.waitForFunction(() => /acme/.test((globalThis as any).document.getElementById('keys')?.textContent ?? ''))
  const keyCells = await page.$$eval('#keys tr:first-child td', tds => tds.map(td => td.textContent))
  t.same(keyCells.slice(0, 3), ['acme', 'pro', `${made.prefix}…`], 'the made key by name, tier and its first characters')
  t.notMatch(keyCells[3] ?? '', /not yet/, 'seen')
  await page.waitForFunction(() => /acme \(pro\)/.test((globalThis as any).document.getElementById('usage-top')?.textContent ?? ''))
  t.pass('its usage by name and tier')

  t.equal(await page.isVisible('#scope'), false, 'one gateway with the memory store: no fleet note')
  t.equal(await text('#status'), 'store memory · in flight 0')

  // Nothing wider than the window, on a desktop and on a phone (issue 25.14: the usage table overflowed at 1400 px).
  mkdirSync(ARTIFACTS, { recursive: true })
  for (const width of [1400, 390]) {
    await page.setViewportSize({ width, height: 900 })
    const overflow = await page.evaluate(() => {
      const d = (globalThis as any).document
      const wide = [...d.querySelectorAll('section, table')].filter((e: any) => e.scrollWidth > e.clientWidth + 1).map((e: any) => e.id || e.querySelector('h2')?.textContent || e.tagName)
      return { page: d.documentElement.scrollWidth - (globalThis as any).innerWidth, wide }
    })
    t.ok(overflow.page <= 0, `${width} px: the page is no wider than the window (${overflow.page} px over)`)
    t.same(overflow.wide, [], `${width} px: no section or table wider than itself`)
    const file = `${ARTIFACTS}dashboard-${width}.png`
    await page.screenshot({ path: file, fullPage: true })
    t.comment(`screenshot: ${file}`)
  }
})

t.test('the dashboard of one gateway in a fleet on Redis says which numbers are its own', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const token = 'test-admin-token-0123456789'
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: token, STORE: 'redis', REDIS_URL: redis.url })
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking'] })
  t.teardown(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 390, height: 900 } })
  await page.goto(`${gw.adminUrl}/dashboard`)
  await page.fill('#token', token)
  await page.click('button[type=submit]')
  await page.waitForSelector('#scope:not([hidden])')
  const scope = (await page.textContent('#scope'))!
  t.match(scope, /One gateway of a fleet on Redis \(.+:\d+\): requests, totals, settlements, offenders and in-flight are this instance’s own; the limits in force and the usage by API key are the fleet’s\./)
  const stats = JSON.parse((await send(`${gw.adminUrl}/admin/stats`, { headers: { authorization: `Bearer ${token}` } })).body)
  t.match(stats.instance, { id: /:\d+$/, fleet: true }, '/admin/stats names the instance')
  t.ok(scope.includes(stats.instance.id), 'the note names it too')
  t.same(await page.$$eval('h2 .here', hs => hs.map(h => h.textContent)), [' · this instance', ' · this instance', ' · this instance'], 'each per-instance section says so')
})
