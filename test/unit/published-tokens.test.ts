/**
 * Regression: deploy/kubernetes shipped `ADMIN_TOKEN: replace-me-with-a-long-random-secret`,
 * which `kubectl apply -k` put in place of the operator's Secret, and the gateway accepted
 * it on 0.0.0.0 without a word. Every admin token this repository prints outside its tests
 * is refused at start, naming ADMIN_TOKEN; this test finds them all, so a new one cannot
 * slip in without being refused.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadConfig, PUBLISHED_TOKENS } from '../../src/config/index.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const BASE = { UPSTREAM_URL: 'http://127.0.0.1:8080', ADMIN_HOST: '0.0.0.0' }

/** Literal tokens after `ADMIN_TOKEN=`, `ADMIN_TOKEN: ` or `Bearer ` (not a $variable or a placeholder in angle brackets). */
function literalTokens (text: string): string[] {
  const found: string[] = []
  for (const m of text.matchAll(/(?:ADMIN_TOKEN\s*[=:]\s*|Bearer\s+)['"]?([\x21-\x7e]{16,})/g)) {
    const token = m[1]!.replace(/['"`),;]+$/, '')
    // Not a $variable, a <placeholder>, a YAML key (`credentials_file:`) or a parameter (`realm="..."`).
    if (!/^[$<{]/.test(token) && !/[=:]/.test(token) && token.length >= 16) found.push(token)
  }
  return found
}

t.test('every admin token printed in the repository (README, docs, deploy, examples, compose) is refused at start', async t => {
  const files = spawnSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' }).stdout.split('\n')
    .filter(f => f !== '' && !f.startsWith('test/') && !f.startsWith('bench/') && !f.endsWith('package-lock.json'))
  t.ok(files.length > 20, `the repository's files are read (${files.length})`)
  const tokens = new Set(PUBLISHED_TOKENS)
  for (const file of files) {
    let text: string
    try {
      text = readFileSync(join(ROOT, file), 'utf8')
    } catch {
      continue
    }
    for (const token of literalTokens(text)) tokens.add(token)
  }
  for (const token of tokens) {
    t.throws(() => loadConfig({ ...BASE, ADMIN_TOKEN: token }), { code: 'GW_CONFIG_INVALID', message: /ADMIN_TOKEN: .*printed in the gateway's own README or manifests.*openssl rand/ }, `refused: ${token}`)
  }
  t.throws(() => loadConfig({ ...BASE, ADMIN_TOKEN: 'change-me-please-0123' }), { code: 'GW_CONFIG_INVALID' }, 'and any placeholder of that shape')
  t.doesNotThrow(() => loadConfig({ ...BASE, ADMIN_TOKEN: 'a-secret-of-my-own-0123456789' }), 'a token of the operator\'s own starts')
})

t.test('the finder finds the shapes the repository uses', async t => {
  t.same(literalTokens("export ADMIN_TOKEN=abcdefghijklmnop0 UPSTREAM_URL=x\nA='Authorization: Bearer qrstuvwxyz0123456'\n  ADMIN_TOKEN: replace-me-with-a-long-random-secret\n"), ['abcdefghijklmnop0', 'qrstuvwxyz0123456', 'replace-me-with-a-long-random-secret'])
  t.same(literalTokens('ADMIN_TOKEN=$(openssl rand -hex 24) Bearer $ADMIN_TOKEN Bearer <your-admin-token-here> Bearer realm="gateway-admin" bearer credentials_file: /x'), [])
})
