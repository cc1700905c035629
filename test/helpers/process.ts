/**
 * The gateway as a real process (dist/src/server.js), for what only a process shows:
 * exit codes, signals, its own memory.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { usableCpus } from '../../src/workers/runtime.js'
import { send } from './http.js'
import type { Teardown } from './tap.js'

export const SERVER = fileURLToPath(new URL('../../src/server.js', import.meta.url))

export async function freePort (): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as { port: number }).port
  await new Promise(resolve => s.close(resolve))
  return port
}

/** Resolves once `url` answers 200; throws past `deadlineMs`, or at once when `gone()` says nothing will answer. */
export async function waitFor (url: string, deadlineMs = 10_000, gone?: () => string | undefined): Promise<void> {
  const until = Date.now() + deadlineMs
  for (;;) {
    try {
      if ((await send(url)).status === 200) return
    } catch {}
    const why = gone?.()
    if (why !== undefined) throw new Error(`${url} never answered: ${why}`)
    if (Date.now() > until) throw new Error(`${url} never answered`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/**
 * A real peer (nginx, Caddy, Prometheus, Alertmanager) as this test's own process,
 * stopped at teardown; resolves once `url` answers (with 200 if `ok200`), or throws with
 * what it wrote to stderr.
 */
export async function startPeer (t: Teardown, command: string, args: string[], env: Record<string, string>, url: string, ok200 = false): Promise<ChildProcess> {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-20_000) })
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
    await exited
    clearTimeout(timer)
  })
  const until = Date.now() + 15_000
  for (;;) {
    if (child.exitCode !== null) break
    if (await send(url).then(r => !ok200 || r.status === 200, () => false)) return child
    if (Date.now() > until) break
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error(`${command} did not start: ${stderr}`)
}

export interface GatewayProcess {
  child: ChildProcess
  port: number
  /** Log lines the process wrote (with `captureLogs`). */
  logs: string[]
  url: string
  adminUrl: string
  exited: Promise<unknown[]>
  /** Resident set size of the gateway process, in bytes (Linux /proc). */
  rss (): number
}

/**
 * Where spawned gateways run: an empty directory, so that a developer's `.env` in the
 * checkout (which `npm start` reads) never leaks into a test.
 */
export const EMPTY_DIR = mkdtempSync(join(tmpdir(), 'gw-cwd-'))

export async function spawnGateway (t: Teardown, env: Record<string, string>, opts: { captureLogs?: boolean, cwd?: string } = {}): Promise<GatewayProcess> {
  const port = await freePort()
  const adminPort = await freePort()
  const child = spawn(process.execPath, [SERVER], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), ADMIN_PORT: String(adminPort), LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', opts.captureLogs ? 'pipe' : 'inherit', 'inherit'],
    cwd: opts.cwd ?? EMPTY_DIR
  })
  const logs: string[] = []
  let partial = ''
  child.stdout?.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n')
    partial = parts.pop()!
    logs.push(...parts.filter(l => l !== ''))
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const exited = once(child, 'exit')
  const adminUrl = `http://127.0.0.1:${adminPort}`
  // Each worker thread loads the whole gateway (1.5 s of CPU here, idle): WORKERS=4 took
  // 4.9 s to answer on an idle 2-core VM and over 10 s beside another test file. A start
  // that fails ends the process, which ends the wait at once.
  const workers = env.WORKERS === 'auto' ? usableCpus() : Math.max(1, Number(env.WORKERS ?? 1) || 1)
  await waitFor(`${adminUrl}/healthz`, 10_000 * workers, () => child.exitCode !== null || child.signalCode !== null ? `the gateway exited (${child.exitCode ?? child.signalCode})` : undefined)
  return {
    child,
    port,
    logs,
    url: `http://127.0.0.1:${port}`,
    adminUrl,
    exited,
    rss: () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) * 1024
  }
}
