/**
 * WORKERS on this machine and runtime: `auto` is the CPUs the process may use (affinity,
 * then the cgroup quota rounded up), and more than one worker needs reusePort (Node ≥
 * 22.12 on Linux), else the start stops naming WORKERS.
 */
import t from 'tap'
import { resolveWorkers, reusePortAvailable, usableCpus } from '../../src/workers/runtime.js'

const files = (map: Record<string, string>) => (path: string): string | undefined => map[path]

t.test('usable CPUs: affinity, capped by a cgroup v2 or v1 quota', async t => {
  t.equal(usableCpus(8, files({})), 8, 'no cgroup files: the affinity')
  t.equal(usableCpus(8, files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' })), 8, 'v2 without a quota')
  t.equal(usableCpus(8, files({ '/sys/fs/cgroup/cpu.max': '150000 100000\n' })), 2, 'v2: 1.5 CPUs round up to 2')
  t.equal(usableCpus(2, files({ '/sys/fs/cgroup/cpu.max': '400000 100000' })), 2, 'a quota above the affinity: the affinity')
  t.equal(usableCpus(8, files({ '/sys/fs/cgroup/cpu.max': '50000 100000' })), 1, 'half a CPU: one worker')
  t.equal(usableCpus(8, files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '300000', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' })), 3, 'v1 quota')
  t.equal(usableCpus(8, files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' })), 8, 'v1 without a quota')
  t.equal(usableCpus(0, files({})), 1, 'never fewer than one')
  t.ok(usableCpus() >= 1, `this machine: ${usableCpus()}`)
})

t.test('reusePort: Node >= 22.12 (or 23+) on Linux', async t => {
  t.equal(reusePortAvailable('v22.12.0', 'linux'), true)
  t.equal(reusePortAvailable('v24.1.0', 'linux'), true)
  t.equal(reusePortAvailable('v22.11.9', 'linux'), false)
  t.equal(reusePortAvailable('v20.20.2', 'linux'), false)
  t.equal(reusePortAvailable('v24.1.0', 'darwin'), false)
})

t.test('WORKERS resolved, or refused naming the variable and what to do', async t => {
  t.equal(resolveWorkers(1, 'v20.20.2', 'linux'), 1, 'one worker needs nothing')
  t.equal(resolveWorkers(4, 'v24.1.0', 'linux'), 4)
  t.equal(resolveWorkers('auto', 'v24.1.0', 'linux', () => 6), 6)
  t.equal(resolveWorkers('auto', 'v20.20.2', 'linux', () => 1), 1, 'auto on one CPU: one, on any Node')
  t.throws(() => resolveWorkers(2, 'v20.20.2', 'linux'), /^WORKERS=2: .*reusePort.*Node >= 22\.12 on Linux; this is Node v20\.20\.2 on linux\. Set WORKERS=1/)
  t.throws(() => resolveWorkers('auto', 'v20.20.2', 'linux', () => 4), /^WORKERS=auto \(4 CPUs\): /)
  t.throws(() => resolveWorkers(2, 'v24.1.0', 'win32'), /on win32/)
})
