/**
 * What WORKERS needs of the machine and the runtime: how many CPUs this process may use
 * (`auto`), and whether several threads can listen on one port (`reusePort`: Node ≥ 22.12
 * on Linux). Each takes what it reads as arguments, so the tests can pose any machine.
 */
import { availableParallelism } from 'node:os'
import { readFileSync } from 'node:fs'
import { ConfigError } from '../errors.js'

/** Reads a file's text, or undefined if it cannot (no such cgroup file here). */
export type ReadText = (path: string) => string | undefined

const readText: ReadText = path => {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}

/**
 * The CPUs this process may use: the ones its affinity allows (availableParallelism), at
 * most its cgroup CPU quota rounded up (v2 `cpu.max`, else v1 `cpu.cfs_quota_us` /
 * `cpu.cfs_period_us`), as a container limited with `--cpus` or a Kubernetes CPU limit has.
 */
export function usableCpus (affinity = availableParallelism(), read: ReadText = readText): number {
  let quota: number | undefined
  const v2 = read('/sys/fs/cgroup/cpu.max')?.trim().split(/\s+/)
  if (v2 !== undefined && v2[0] !== 'max' && Number(v2[1]) > 0) quota = Number(v2[0]) / Number(v2[1])
  if (v2 === undefined) {
    const q = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'))
    const p = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us'))
    if (q > 0 && p > 0) quota = q / p
  }
  const cpus = quota === undefined || !Number.isFinite(quota) ? affinity : Math.min(affinity, Math.ceil(quota))
  return Math.max(1, cpus)
}

/** Whether `net` listens with `reusePort` here: Node ≥ 22.12 (or 23.1) on Linux. */
export function reusePortAvailable (version: string, platform: string): boolean {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number)
  return platform === 'linux' && (major > 22 || (major === 22 && minor >= 12))
}

/**
 * The worker threads WORKERS asks for on this machine; more than one where reusePort is
 * missing stops the start, saying what to do.
 */
export function resolveWorkers (workers: number | 'auto', version: string, platform: string, cpus: () => number = usableCpus): number {
  const n = workers === 'auto' ? cpus() : workers
  if (n > 1 && !reusePortAvailable(version, platform)) {
    throw new ConfigError(`WORKERS=${workers}${workers === 'auto' ? ` (${n} CPUs)` : ''}: several worker threads listen on one port with reusePort, which needs Node >= 22.12 on Linux; this is Node ${version} on ${platform}. Set WORKERS=1, or run Node >= 22.12 (the image's Node 24 does)`)
  }
  return n
}
