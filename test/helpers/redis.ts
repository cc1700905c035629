/**
 * Real redis-server processes on free loopback ports, started and ended by the tests
 * (by PID), so failure tests can kill, pause and restart them.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { Redis } from 'ioredis'
import { freePort } from './process.js'
import type { Teardown } from './tap.js'

export interface RedisServer {
  port: number
  url: string
  /** A plain client for inspecting the database (closed at teardown). */
  admin: Redis
  /** kill -9: the server is gone until restart(). */
  kill (): Promise<void>
  /** SIGSTOP / SIGCONT: the server holds connections but answers nothing. */
  pause (): void
  resume (): void
  /** Starts a new server on the same port (after kill()). */
  restart (): Promise<void>
}

async function launch (port: number, args: string[]): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout!.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr!.on('data', (d: Buffer) => { output += d.toString() })
  const deadline = Date.now() + 10_000
  for (;;) {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
    probe.on('error', () => {})
    try {
      await probe.connect()
      await probe.ping()
      probe.disconnect()
      return child
    } catch {
      probe.disconnect()
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server on ${port} did not start: ${output}`)
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

export async function startRedis (t: Teardown, args: string[] = []): Promise<RedisServer> {
  const port = await freePort()
  let child = await launch(port, args)
  let paused = false
  const admin = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => 50 })
  admin.on('error', () => {})
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    admin,
    async kill () {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
      paused = false
    },
    pause () { child.kill('SIGSTOP'); paused = true },
    resume () { child.kill('SIGCONT'); paused = false },
    async restart () { child = await launch(port, args) }
  }
  t.teardown(async () => {
    admin.disconnect()
    if (paused) child.kill('SIGCONT')
    await server.kill()
  })
  return server
}
