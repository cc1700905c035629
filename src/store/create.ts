/**
 * The store the Config names: the memory store; or, for Redis, the Redis store behind the
 * failover store (with a memory store of its own for STORE_FAILURE_MODE=local), connected
 * before the gateway starts, or failing with what went wrong.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config/index.js'
import type { Clock } from '../core/clock.js'
import { FailoverStore } from './failover.js'
import { MemoryStore } from './memory.js'
import { RedisStore } from './redis/store.js'
import type { Store } from './types.js'
import type { SharedTables } from './shared/tables.js'

export interface Stores {
  store: Store
  /** The Redis store itself (the fleet settings sync talks to it), when STORE=redis. */
  redis: RedisStore | undefined
}

/**
 * @param redisClock what the Redis scripts take as now instead of TIME (tests; see AppDeps)
 * @param shared the memory store's tables in shared memory (WORKERS > 1), for the memory
 *        store or Redis's local fallback
 */
export async function createStore (config: Config, clock: Clock, log: FastifyBaseLogger, redisClock?: Clock, shared?: SharedTables): Promise<Stores> {
  const local = new MemoryStore({ maxKeys: config.memoryStoreMaxKeys, clock, bans: config.bans, ...(shared === undefined ? {} : { shared }) })
  if (config.store === 'memory') return { store: local, redis: undefined }
  // One decision mixing subjects (the global limits; on a Cluster, rules that may be keyed
  // by another identity source, or the rate limit service's descriptors of one question)
  // needs all its keys in one slot. Fixed for the store's life.
  const singleSlot = config.globalLimit !== undefined || config.concurrency.global !== undefined || (config.redis.clusterNodes.length > 0 && (config.rulesFile !== undefined || config.rls !== undefined))
  const primary = new RedisStore({ settings: config.redis, clock, bans: config.bans, singleSlot, leaseMs: config.concurrency.leaseMs, decisionClock: redisClock })
  try {
    await primary.connect()
  } catch (err) {
    await primary.close()
    await local.close()
    throw err
  }
  const store = new FailoverStore({ primary, local, failureMode: config.storeFailureMode, probeIntervalMs: config.redis.probeIntervalMs, log: log.child({ component: 'store' }) })
  return { store, redis: primary }
}
