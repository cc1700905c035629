import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { loadConfig, variableNames } from '../../src/config/index.js'

const read = (path: string) => readFileSync(fileURLToPath(new URL(`../../../${path}`, import.meta.url)), 'utf8')

t.test('every variable is in .env.example with its default, and in the README\'s table', async t => {
  const example = read('.env.example')
  const readme = read('README.md')
  const names = variableNames()
  t.ok(names.length >= 40, `${names.length} variables`)
  for (const name of names) {
    t.match(example, new RegExp(`^${name}=`, 'm'), `.env.example lists ${name}`)
    t.match(readme, new RegExp(`^\\| \`${name}\` \\|`, 'm'), `README's table lists ${name}`)
  }
  // The values in .env.example are the defaults: loading it changes nothing.
  const env: Record<string, string> = {}
  for (const m of example.matchAll(/^([A-Z_]+)=(.*)$/gm)) env[m[1]!] = m[2]!
  const fromExample = loadConfig({ ...env, UPSTREAM_URL: 'http://127.0.0.1:8080' })
  const defaults = loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:8080' })
  t.same(fromExample, defaults, '.env.example holds the defaults')
})

t.test('the README shows the nginx and Caddy files the decision tests run, verbatim', async t => {
  const readme = read('README.md')
  t.ok(readme.includes('```nginx\n' + read('docs/nginx-auth-request.conf') + '```'), 'docs/nginx-auth-request.conf')
  t.ok(readme.includes('```caddyfile\n' + read('docs/Caddyfile') + '```'), 'docs/Caddyfile')
})
