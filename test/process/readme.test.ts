/**
 * The README is a contract: every shell example in it runs as printed, and prints what its
 * `# → ...` comments say. Each shell session runs in network and PID namespaces of its
 * own (unshare): ports 8000, 8080 and 9000 are free there whatever this machine runs,
 * nothing leaves loopback, and every process a session started ends with it. The
 * examples run in a copy of the checkout (`npm run demo` rebuilds dist/, which the other
 * test files are using).
 */
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Block, type Command, outcomes, outputPattern, parseReadme, sessionScript } from '../helpers/readme.js'
import { reusePortAvailable } from '../../src/workers/runtime.js'

const ROOT = fileURLToPath(new URL('../../..', import.meta.url))
const README = readFileSync(join(ROOT, 'README.md'), 'utf8')
/** Longest one session may take (it builds the TypeScript once or twice and starts servers). */
const SESSION_TIMEOUT_MS = 120_000
// Some 20 sessions, one after another: longer than tap's 120 s per file on a loaded machine.
t.setTimeout(600_000)

t.test('the parser: commands, continuations, comments, expectations, servers', async t => {
  const [block] = parseReadme([
    '<!-- readme-test: first: npm run demo & -->',
    '```sh',
    "curl -s 'http://x/#frag'   # → {\"a\":1}  — why",
    'A=1 npm start &      # note',
    'curl -X POST \\',
    "  -d 'x'    # → 200 ... 429 — the end",
    '```'
  ].join('\n'))
  t.match(block, { line: 2, first: 'npm run demo &', continues: false, skip: undefined, reusePort: false })
  t.equal(parseReadme('<!-- readme-test: reuse-port -->\n```sh\ntrue\n```')[0]!.reusePort, true, 'a block needing reusePort')
  t.same(block!.commands.map(c => [c.text, c.expect, c.readyLine]), [
    ["curl -s 'http://x/#frag'", '{"a":1}', undefined],
    ['A=1 npm start &', undefined, 'gateway ready'],
    ["curl -X POST \\\n  -d 'x'", '200 ... 429', undefined]
  ])
  t.ok(outputPattern('200 ... 429').test('200 200\n429\n'))
  t.notOk(outputPattern('200 ... 429').test('200 200 403'))
  t.ok(outputPattern('{"a":...}').test('{"a":1,"b":2}'))
})

/** Where WORKERS > 1 can run: blocks marked `reuse-port` run only here. */
const REUSE_PORT = reusePortAvailable(process.version, process.platform)

/** Sessions: a block that `continues` joins the one before it; skipped blocks join none. */
function sessions (blocks: readonly Block[]): Block[][] {
  const out: Block[][] = []
  for (const b of blocks) {
    if (b.skip !== undefined || (b.reusePort && !REUSE_PORT)) continue
    if (b.continues && out.length > 0) out.at(-1)!.push(b)
    else out.push([b])
  }
  return out
}

function workCopy (): string {
  const dir = mkdtempSync(join(tmpdir(), 'gw-readme-'))
  for (const name of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', '.env.example', 'src', 'test', 'bench', 'examples', 'scripts', 'deploy', 'proto']) {
    cpSync(join(ROOT, name), join(dir, name), { recursive: true })
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
  return dir
}

const canIsolate = spawnSync('unshare', ['--net', '--pid', '--fork', 'true']).status === 0

t.test('every shell example in the README runs as printed and prints what it says', { skip: canIsolate ? false : 'needs unshare (root): network and PID namespaces' }, async t => {
  const blocks = parseReadme(README)
  t.ok(blocks.length >= 20, `${blocks.length} shell blocks`)
  for (const b of blocks) {
    if (b.skip !== undefined) t.ok(b.skip.length > 10, `README line ${b.line}: not run, because ${b.skip}`)
    if (b.reusePort && !REUSE_PORT) t.pass(`README line ${b.line}: not run on Node ${process.version}, which has no reusePort (the Node 24 lane runs it)`)
  }
  const dir = workCopy()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))

  for (const session of sessions(blocks)) {
    const commands: Command[] = []
    const first = session[0]!.first
    if (first !== undefined) commands.push(...parseReadme('```sh\n' + first + '\n```')[0]!.commands)
    else if (session.some(b => b.commands.some(c => c.text.includes('127.0.0.1:8080')))) {
      // The README's convention: the examples forward to the demo upstream, started alone.
      commands.push(...parseReadme('```sh\nnpm run demo:upstream &\n```')[0]!.commands)
    }
    for (const b of session) commands.push(...b.commands)
    const where = `README line ${session[0]!.line}`
    await t.test(where, async t => {
      const logDir = mkdtempSync(join(tmpdir(), 'gw-readme-logs-'))
      t.teardown(() => rmSync(logDir, { recursive: true, force: true }))
      const script = join(logDir, 'session.sh')
      writeFileSync(script, sessionScript(commands, logDir))
      // tap's process tracking puts NODE_OPTIONS (a coverage loader) and _TAPJS_* into every
      // child's environment, whatever env says: not in a person's shell, so out.
      const clean = 'unset NODE_OPTIONS ${!_TAPJS_@}; '
      const child = spawn('unshare', ['--net', '--pid', '--fork', '--kill-child', 'bash', '-c', `${clean}ip link set lo up && exec bash ${script}`], {
        cwd: dir,
        // A person's shell: no variables of this test run (CI, tap's) leak into the examples.
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', LANG: 'C.UTF-8' },
        stdio: ['ignore', 'pipe', 'pipe']
      })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
      const timer = setTimeout(() => child.kill('SIGKILL'), SESSION_TIMEOUT_MS)
      const code = await new Promise<number | null>(resolve => child.on('exit', resolve))
      clearTimeout(timer)
      t.equal(code, 0, 'the session ran to its end')
      const results = outcomes(stdout, commands.length)
      commands.forEach((c, i) => {
        const { output, status } = results[i]!
        const label = `line ${c.line}: ${c.text.split('\n')[0]!.slice(0, 90)}`
        if (status !== 0) {
          t.fail(`${label}: exit status ${String(status)}`, { output, stderr: stderr.slice(-2000) })
          return
        }
        if (c.expect !== undefined) t.match(output, outputPattern(c.expect), `${label} → ${c.expect}`)
        else t.pass(label)
      })
    })
  }
})
