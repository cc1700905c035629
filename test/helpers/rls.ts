/**
 * Talking to the rate limit service (RLS_PORT) as Envoy does: ShouldRateLimit over gRPC
 * with grpc-js (the Python client in test/fixtures/rls_client.py is the independent one),
 * and RLS_CONFIG files written for a test.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { rlsClient as newClient, shouldRateLimit, type RlsClient } from '../../src/rls/ask.js'
import type { RlsRequest, RlsResponse } from '../../src/rls/service.js'
import type { Teardown } from './tap.js'

export type { RlsClient } from '../../src/rls/ask.js'

/** A client of the service at `address`, closed when the test ends. */
export function rlsClient (t: Teardown, address: string): RlsClient {
  const client = newClient(address)
  t.teardown(() => { client.close() })
  return client
}

/** One question, as long as it takes. */
export function ask (client: RlsClient, req: RlsRequest): Promise<RlsResponse> {
  return shouldRateLimit(client, req)
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
