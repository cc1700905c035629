/**
 * Who is this request? The identity sources of RATE_LIMIT_KEY_BY are tried in order; the
 * first present names the client. An API key counts only when the registry knows it, so
 * made-up keys cannot mint fresh buckets; when nothing else names the client, its IP does.
 */
import type { FastifyRequest } from 'fastify'
import type { Config, KeySource } from '../config/index.js'
import { ipKey } from './ip.js'

/** Longest header value accepted as a user id; longer ones are ignored (IP is used). */
export const MAX_HEADER_ID_LENGTH = 256

export type IdentitySource = 'ip' | 'api-key' | 'header'

export interface Identity {
  /** The store key of the client, e.g. `ip:203.0.113.7`, `key:abc`, `h:x-user-id:42`. */
  readonly key: string
  readonly source: IdentitySource
  /** The API key's tier, when identified by a registered key that has one. */
  readonly tier: string | undefined
}

export type Identify = (request: FastifyRequest) => Identity

function headerValue (request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name]
  // A repeated header is ambiguous: ignore it rather than pick one.
  return typeof v === 'string' ? v : undefined
}

export function createIdentify (config: Pick<Config, 'keyBy' | 'apiKeyHeader' | 'apiKeys' | 'ipv6Subnet'>): Identify {
  const { apiKeyHeader, apiKeys, ipv6Subnet } = config
  const sources: readonly KeySource[] = config.keyBy
  const ipIdentity = (request: FastifyRequest): Identity =>
    ({ key: 'ip:' + ipKey(request.ip, ipv6Subnet), source: 'ip', tier: undefined })

  // The IP is always there, so sources listed after `ip` are never reached.
  if (sources[0]!.kind === 'ip') return ipIdentity

  return function identify (request) {
    for (let i = 0; i < sources.length; i++) {
      const source = sources[i]!
      if (source.kind === 'ip') {
        break
      } else if (source.kind === 'api-key') {
        const key = headerValue(request, apiKeyHeader)
        if (key !== undefined && apiKeys.has(key)) {
          return { key: 'key:' + key, source: 'api-key', tier: apiKeys.get(key) }
        }
      } else if (source.kind === 'header') {
        const value = headerValue(request, source.name)
        if (value !== undefined && value.length > 0 && value.length <= MAX_HEADER_ID_LENGTH) {
          return { key: 'h:' + source.name + ':' + value, source: 'header', tier: undefined }
        }
      }
    }
    return ipIdentity(request)
  }
}
