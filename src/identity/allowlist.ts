/**
 * ALLOWLIST: clients that skip limiting entirely (never limited, never counted): API keys
 * by exact match, and networks matched against the client address (the same address the
 * limiter would use, so behind a trusted proxy it is the X-Forwarded-For client).
 */
import type { FastifyRequest } from 'fastify'
import proxyAddr from 'proxy-addr'
import type { Config } from '../config/index.js'

export function createAllowlist (config: Pick<Config, 'allowlist' | 'apiKeyHeader'>): (request: FastifyRequest) => boolean {
  const { networks, keys } = config.allowlist
  const header = config.apiKeyHeader
  const inNetworks = networks.length > 0 ? proxyAddr.compile([...networks]) : undefined
  if (inNetworks === undefined && keys.size === 0) return () => false
  return function isAllowlisted (request) {
    if (keys.size > 0) {
      const key = request.headers[header]
      if (typeof key === 'string' && keys.has(key)) return true
    }
    return inNetworks !== undefined && inNetworks(request.ip, 0)
  }
}
