/**
 * Real redis-server processes on free loopback ports, started and ended by the tests
 * (by PID), so failure tests can kill, pause and restart them.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { freePort } from './process.js'
import type { Teardown } from './tap.js'
import type { Clock } from '../../src/core/clock.js'

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

async function launch (port: number, args: string[], configFile?: string, password?: string): Promise<ChildProcess> {
  // A config file, when there is one, must be redis-server's first argument.
  const argv = [...(configFile ? [configFile] : []), '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning', '--dir', tmpdir(), ...args]
  const child = spawn('redis-server', argv, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout!.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr!.on('data', (d: Buffer) => { output += d.toString() })
  const deadline = Date.now() + 10_000
  for (;;) {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, ...(password ? { password } : {}) })
    probe.on('error', () => {})
    try {
      await probe.connect()
      await probe.ping()
      probe.disconnect()
      return child
    } catch {
      probe.disconnect()
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`redis-server on ${port} did not start: ${output}`)
    }
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

export interface RedisOptions {
  args?: string[]
  port?: number
  password?: string
  /** Start as a Sentinel with this configuration (written to a file sentinel may rewrite). */
  sentinelConfig?: string
}

export async function startRedis (t: Teardown, opts: RedisOptions = {}): Promise<RedisServer> {
  const port = opts.port ?? await freePort()
  let configFile: string | undefined
  if (opts.sentinelConfig !== undefined) {
    configFile = join(mkdtempSync(join(tmpdir(), 'gw-sentinel-')), 'sentinel.conf')
    writeFileSync(configFile, opts.sentinelConfig)
  }
  const args = [...(opts.args ?? []), ...(opts.password ? ['--requirepass', opts.password] : []), ...(configFile ? ['--sentinel'] : [])]
  let child = await launch(port, args, configFile, opts.password)
  let paused = false
  const admin = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => 50, ...(opts.password ? { password: opts.password } : {}) })
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
    async restart () { child = await launch(port, args, configFile, opts.password) }
  }
  t.teardown(async () => {
    admin.disconnect()
    if (paused) child.kill('SIGCONT')
    await server.kill()
  })
  return server
}

/** Held by the test process running a cluster (a directory: mkdir is atomic), with its pid inside. */
const CLUSTER_LOCK = join(tmpdir(), 'gw-test-redis-cluster.lock')

/**
 * Two clusters of six redis-servers at once, each under load, on a 2-core machine (tap runs
 * two test files at a time) make each other's latencies the test: one cluster at a time,
 * held until the test that started it ends. A lock left by a process that died is taken over.
 */
async function oneClusterAtATime (t: Teardown): Promise<void> {
  const pidFile = join(CLUSTER_LOCK, 'pid')
  for (;;) {
    try {
      mkdirSync(CLUSTER_LOCK)
      writeFileSync(pidFile, String(process.pid))
      break
    } catch {
      let holder = 0
      try { holder = Number(readFileSync(pidFile, 'utf8')) } catch {}
      if (holder === process.pid) break
      if (holder > 0 && !isAlive(holder)) rmSync(CLUSTER_LOCK, { recursive: true, force: true })
      else await new Promise(resolve => setTimeout(resolve, 100))
    }
  }
  t.teardown(() => rmSync(CLUSTER_LOCK, { recursive: true, force: true }))
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

export interface ClusterOptions {
  /** Replicas per master (each promoted when its master fails). */
  replicas?: number
  /** cluster-node-timeout: how long a silent node takes to be judged failed. */
  nodeTimeoutMs?: number
  /** More redis-server arguments for every node. */
  args?: string[]
}

/**
 * A real Redis Cluster on loopback, slots assigned: `masters` redis-server processes, then
 * `replicas` per master. The first `masters` returned are the masters.
 */
export async function startCluster (t: Teardown, masters = 3, opts: ClusterOptions = {}): Promise<RedisServer[]> {
  await oneClusterAtATime(t)
  const dir = mkdtempSync(join(tmpdir(), 'gw-cluster-'))
  const nodes: RedisServer[] = []
  const count = masters * (1 + (opts.replicas ?? 0))
  for (let i = 0; i < count; i++) {
    const port = await freePort()
    nodes.push(await startRedis(t, { args: ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', String(opts.nodeTimeoutMs ?? 2000), ...(opts.args ?? [])], port }))
  }
  // redis-cli puts the first `masters` addresses as masters, the rest as their replicas.
  await promisify(execFile)('redis-cli', ['--cluster', 'create', ...nodes.map(n => `127.0.0.1:${n.port}`), '--cluster-replicas', String(opts.replicas ?? 0), '--cluster-yes'])
  const deadline = Date.now() + 20_000
  for (const node of nodes) {
    for (;;) {
      const info = await node.admin.cluster('INFO') as string
      const known = Number(/cluster_known_nodes:(\d+)/.exec(info)?.[1] ?? 0)
      if (/cluster_state:ok/.test(info) && known === count) break
      if (Date.now() > deadline) throw new Error('the cluster never became ok')
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }
  if ((opts.replicas ?? 0) > 0) {
    // Every replica attached to its master (replication set up), so a failover can promote it.
    for (const node of nodes.slice(masters)) {
      while (!/master_link_status:up/.test(await node.admin.info('replication'))) {
        if (Date.now() > deadline) throw new Error('a replica never synced with its master')
        await new Promise(resolve => setTimeout(resolve, 50))
      }
    }
  }
  return nodes
}

/**
 * A clock for Redis's scripts (buildApp's redisClock) that runs at real speed from one
 * second past the start of a UTC day: windows up to a day long never turn over during a
 * test, whatever the real time, so no test waits for a minute or a day to end.
 */
export function clearOfWindowEdges (): Clock {
  const DAY = 86_400_000
  const started = Date.now()
  const offset = Math.ceil(started / DAY) * DAY + 1000 - started
  return { now: () => Date.now() + offset }
}
