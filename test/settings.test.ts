import t from 'tap'
import { loadConfig } from '../src/config/index.js'
import { parseRules } from '../src/config/rules.js'
import { rulesContext } from '../src/config/index.js'
import { resolve } from '../src/control/settings.js'

t.test('scaling: buckets scale rate and burst, windows whole requests, never below the largest rule cost', async t => {
  const base = loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:1', RATE_LIMIT_ALGORITHM: 'sliding-window', RATE_LIMIT_RATE: '10/m', GLOBAL_RATE_LIMIT_RATE: '100/s' })
  const rules = parseRules(JSON.stringify({ rules: [{ name: 'r', path: '/r', cost: 3, algorithm: 'token-bucket', rate: '5/s', burst: 8 }] }), rulesContext(base))
  const eff = resolve(base, rules, { factor: 0.25 }, 1)
  t.equal(eff.factor, 0.25)
  t.same(eff.config.limit.rate, { count: 3, periodMs: 60_000, text: '3/m' }, 'a window: 10 × 0.25 = 2.5, floored to 2, raised to the cost 3')
  t.same(eff.config.globalLimit!.rate.text, '25/s')
  t.match(eff.rules[0]!.limits[0], { rate: { count: 1.25, text: '1.25/s' }, burst: 3 }, 'a bucket: the rate scales freely, the burst floors to the cost')
  const adaptive = resolve(base, rules, { factor: 0.5 }, 0.5)
  t.equal(adaptive.factor, 0.25, 'emergency × adaptive')
  t.equal(resolve(base, rules, {}, 1).config.limit, base.limit, 'factor 1: the limits as configured')
})
