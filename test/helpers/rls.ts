/**
 * Talking to the rate limit service (RLS_PORT) as Envoy does: ShouldRateLimit over gRPC
 * with grpc-js (the Python client in test/fixtures/rls_client.py is the independent one),
 * and RLS_CONFIG files written for a test.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { credentials, makeGenericClientConstructor, type Client, type ServiceError } from '@grpc/grpc-js'
import { rlsDefinition } from '../../src/rls/index.js'
import type { RlsRequest, RlsResponse } from '../../src/rls/service.js'
import type { Teardown } from './tap.js'

export type RlsClient = Client & { ShouldRateLimit: (req: RlsRequest, cb: (err: ServiceError | null, res: RlsResponse) => void) => void }

export function rlsClient (t: Teardown, address: string): RlsClient {
  const Ctor = makeGenericClientConstructor(rlsDefinition(), 'RateLimitService')
  const client = new Ctor(address, credentials.createInsecure()) as unknown as RlsClient
  t.teardown(() => { client.close() })
  return client
}

export function ask (client: RlsClient, req: RlsRequest): Promise<RlsResponse> {
  return new Promise((resolve, reject) => {
    client.ShouldRateLimit(req, (err, res) => { if (err === null) resolve(res); else reject(err) })
  })
}

/** One descriptor from `key: value` pairs, in order (a value '' leaves it out). */
export function descriptor (...pairs: Array<[string, string]>): { entries: Array<{ key: string, value: string }> } {
  return { entries: pairs.map(([key, value]) => ({ key, value })) }
}

/** A directory holding these YAML files (name → text), removed when the test ends. */
export function rlsConfigDir (t: Teardown, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'gw-rls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  return dir
}
