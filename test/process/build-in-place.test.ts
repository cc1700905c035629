/**
 * Regression (issue 25.10): `npm run demo:upstream &` then `npm start` (the README's order)
 * failed with "Cannot find module dist/src/server.js": the upstream script's build deleted
 * dist/ and rebuilt it under the gateway starting beside it. The build now moves each
 * compiled file into place atomically: throughout a build every file of dist/ is there,
 * whole, and files no source makes any more are gone at the end.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const WATCHED = ['dist/src/server.js', 'dist/src/demo/serve-upstream.js', 'dist/src/app.js', 'dist/src/config/index.js']

t.test('a build never leaves dist/ without a file a running command needs, and removes stale ones', async t => {
  const stale = join(ROOT, 'dist/src/no-source-makes-this.js')
  writeFileSync(stale, 'throw new Error("stale")\n')
  const before = new Map(WATCHED.map(f => [f, statSync(join(ROOT, f)).size]))
  // As npm runs it: node_modules/.bin on the PATH. tap's process tracking puts NODE_OPTIONS
  // (a coverage loader, which TypeScript 7's launcher cannot run under) and _TAPJS_* into
  // every child's environment, whatever env says: not in a person's shell, so out.
  const env = { PATH: `${join(ROOT, 'node_modules/.bin')}:${process.env.PATH ?? ''}`, HOME: process.env.HOME ?? '/tmp' }
  const build = spawn('bash', ['-c', 'unset NODE_OPTIONS ${!_TAPJS_@}; exec node scripts/build.mjs'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env })
  let stderr = ''
  build.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = once(build, 'exit')
  let looks = 0
  const seen = new Map(WATCHED.map(f => [f, new Set<number>()]))
  let running = true
  void exited.then(() => { running = false })
  while (running) {
    for (const file of WATCHED) {
      looks++
      let size = -1
      try { size = statSync(join(ROOT, file)).size } catch {}
      seen.get(file)!.add(size)
    }
    await new Promise(resolve => setImmediate(resolve))
  }
  const [code] = await exited as [number | null]
  t.equal(code, 0, `the build succeeds ${stderr}`)
  t.ok(looks > 100, `dist/ looked at throughout the build (${looks} times)`)
  // Whole at every look: the file as it was, or as the build left it, never missing or cut.
  const partial: string[] = []
  for (const [file, sizes] of seen) {
    const whole = new Set([before.get(file)!, statSync(join(ROOT, file)).size])
    for (const size of sizes) if (!whole.has(size)) partial.push(`${file}: ${size === -1 ? 'missing' : `${size} bytes`}`)
  }
  t.same(partial, [], 'every watched file there and whole at every look')
  t.notOk(existsSync(stale), 'a file no source makes is removed')
  t.match(readFileSync(join(ROOT, 'dist/src/server.js'), 'utf8'), /sourceMappingURL=server\.js\.map/, 'source maps beside the files')
  t.notOk(existsSync(join(ROOT, 'dist/.dist-build')), 'no staging folder left')
})
