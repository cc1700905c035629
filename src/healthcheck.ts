/**
 * Container health check: exit 0 when the admin listener's /healthz answers 200 within
 * HEALTHCHECK_TIMEOUT_MS, else 1. Reads the same environment as the gateway (through
 * loadConfig) so it always asks the port the gateway really listens on.
 */
import { request } from 'node:http'
import { loadConfig } from './config/index.js'

export const HEALTHCHECK_TIMEOUT_MS = 2_000

/** The address to reach a listener bound to `host` from inside the same machine. */
export function localAddress (host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1'
  return host
}

export function check (env: Record<string, string | undefined>, timeoutMs = HEALTHCHECK_TIMEOUT_MS): Promise<boolean> {
  const config = loadConfig(env)
  return new Promise(resolve => {
    const req = request({ host: localAddress(config.adminHost), port: config.adminPort, path: '/healthz', timeout: timeoutMs }, res => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(false))
    req.end()
  })
}

/* c8 ignore next 3 -- the entry-point guard runs only when started as a program (the container test runs it) */
if (process.argv[1]?.endsWith('healthcheck.js')) {
  process.exitCode = await check(process.env).catch(() => false) ? 0 : 1
}
