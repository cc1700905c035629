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

export async function waitFor (url: string, deadlineMs = 10_000): Promise<void> {
  const until = Date.now() + deadlineMs
  for (;;) {
    try {
      if ((await send(url)).status === 200) return
    } catch {}
    if (Date.now() > until) throw new Error(`${url} never answered`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
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
  await waitFor(`${adminUrl}/healthz`)
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
