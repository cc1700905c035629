import t from 'tap'
import { mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { startUpstream } from '../helpers/upstream.js'
import { rulesFile, startGateway } from '../helpers/gateway.js'
import { statuses } from '../helpers/http.js'

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
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
  await page.goto(`${gw.adminUrl}/dashboard`)

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
  await page.waitForFunction(() => /^key:/.test((globalThis as any).document.querySelector('#usage-top td')?.textContent ?? ''))
  const cells = await page.$$eval('#usage-top tr:first-child td', tds => tds.map(td => td.textContent))
  t.equal(cells.length, 4)
  t.match(cells[0], /^key:/, 'the pro key (its digest)')
  t.ok(Number(cells[1]) > 0 && cells[2] === '0' && cells[3] === cells[1], `admitted ${cells[1]}, refused ${cells[2]}, cost ${cells[3]}`)
  await page.waitForFunction(() => (globalThis as any).document.getElementById('usage-line').getAttribute('points').split(' ').length === 90)
  t.match(await text('#usage-days'), /^90 days, [1-9]\d* admitted$/, 'its days over the 90 kept, as a line')

  mkdirSync(ARTIFACTS, { recursive: true })
  const file = `${ARTIFACTS}dashboard.png`
  await page.screenshot({ path: file, fullPage: true })
  t.comment(`screenshot: ${file}`)
})
