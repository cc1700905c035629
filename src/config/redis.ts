/**
 * REDIS_*: how to reach Redis (one server, a Cluster, or a Sentinel-managed primary), and
 * how long to wait for it.
 */
import { ConfigError } from '../errors.js'
import { field } from './field.js'
import { parseHostPorts, parseRedisUrl, type HostPort } from './parse.js'
import type { RawEnv } from './schema.js'

/** How to reach Redis: one server, a Cluster, or a Sentinel-managed primary. */
export interface RedisSettings {
  readonly url: string
  /** Cluster seed nodes (host:port); non-empty means Redis Cluster. */
  readonly clusterNodes: readonly HostPort[]
  /** Sentinels (host:port); non-empty means Sentinel, with `sentinelName`. */
  readonly sentinels: readonly HostPort[]
  readonly sentinelName: string
  readonly keyPrefix: string
  /** Per-command timeout: bounds the latency a dead or stalled Redis adds (measured worst: 2-3× this). */
  readonly timeoutMs: number
  /** How long start-up waits for Redis to be ready. */
  readonly connectTimeoutMs: number
  /** While Redis is down, how often it is probed for recovery. */
  readonly probeIntervalMs: number
}


export function parseRedisSettings (raw: RawEnv): RedisSettings {
  const clusterNodes = field('REDIS_CLUSTER_NODES', () => parseHostPorts(raw.REDIS_CLUSTER_NODES))
  const sentinels = field('REDIS_SENTINELS', () => parseHostPorts(raw.REDIS_SENTINELS))
  if (clusterNodes.length > 0 && sentinels.length > 0) {
    throw new ConfigError('REDIS_CLUSTER_NODES and REDIS_SENTINELS are both set: choose Redis Cluster or Sentinel')
  }
  if (sentinels.length > 0 && raw.REDIS_SENTINEL_NAME === '') {
    throw new ConfigError('REDIS_SENTINEL_NAME is required with REDIS_SENTINELS (the name of the primary the sentinels monitor)')
  }
  return {
    url: field('REDIS_URL', () => parseRedisUrl(raw.REDIS_URL)),
    clusterNodes,
    sentinels,
    sentinelName: raw.REDIS_SENTINEL_NAME,
    keyPrefix: raw.REDIS_KEY_PREFIX,
    timeoutMs: raw.REDIS_TIMEOUT_MS,
    connectTimeoutMs: raw.REDIS_CONNECT_TIMEOUT_MS,
    probeIntervalMs: raw.REDIS_PROBE_INTERVAL_MS
  }
}
