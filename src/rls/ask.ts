/**
 * `npm run rls:ask -- <host:port> <domain> <descriptor>...`: asks a rate limit service (this
 * gateway's RLS_PORT, or any RLS v3 server) as Envoy would, and prints its answer on one
 * line: the overall code, then each descriptor's (`OK 4/5 per DAY`). A descriptor is its
 * entries, `key=value` joined by `,` (`message_type=marketing,to_number=2061111111`);
 * `--hits=N` sets the question's hits_addend. Exits 0 with an answer (OK or OVER_LIMIT, as
 * curl does with a 429), 2 when it could not ask.
 */
import { pathToFileURL } from 'node:url'
import { credentials, makeGenericClientConstructor, type CallOptions, type Client, type ServiceError } from '@grpc/grpc-js'
import { rlsDefinition } from './index.js'
import type { RlsDescriptor, RlsRequest, RlsResponse, RlsStatus } from './service.js'

const USAGE = 'usage: npm run rls:ask -- <host:port> <domain> <key=value[,key=value]>... [--hits=N]'

/** The question the arguments describe. */
export function question (args: readonly string[]): { address: string, request: RlsRequest } {
  const hits = args.find(a => a.startsWith('--hits='))
  const [address, domain, ...rest] = args.filter(a => !a.startsWith('--hits='))
  if (address === undefined || domain === undefined || rest.length === 0) throw new Error(USAGE)
  const descriptors: RlsDescriptor[] = rest.map(text => ({
    entries: text.split(',').map(pair => {
      const at = pair.indexOf('=')
      return at === -1 ? { key: pair, value: '' } : { key: pair.slice(0, at), value: pair.slice(at + 1) }
    })
  }))
  return { address, request: { domain, descriptors, ...(hits === undefined ? {} : { hits_addend: Number(hits.slice(7)) }) } }
}

function describe (s: RlsStatus): string {
  if (s.current_limit == null) return `${s.code} (${s.limit_remaining === 4_294_967_295 ? 'unlimited' : 'no limit'})`
  return `${s.code} ${s.limit_remaining}/${s.current_limit.requests_per_unit} per ${s.current_limit.unit}`
}

/** The answer on one line. */
export function answerLine (res: RlsResponse): string {
  return `${res.overall_code}: ${res.statuses.map(describe).join(', ')}`
}

/** A grpc-js client of the RLS v3 service at `address` (host:port), plaintext. */
export type RlsClient = Client & { ShouldRateLimit: (q: RlsRequest, o: CallOptions, cb: (err: ServiceError | null, res: RlsResponse) => void) => void }

export function rlsClient (address: string): RlsClient {
  const Ctor = makeGenericClientConstructor(rlsDefinition(), 'RateLimitService')
  return new Ctor(address, credentials.createInsecure()) as unknown as RlsClient
}

/** One question on `client`, waiting at most `deadlineMs` (none: as long as it takes). */
export function shouldRateLimit (client: RlsClient, request: RlsRequest, deadlineMs?: number): Promise<RlsResponse> {
  return new Promise((resolve, reject) => {
    client.ShouldRateLimit(request, deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs }, (err, res) => {
      if (err === null) resolve(res)
      else reject(err)
    })
  })
}

/** One question on a connection of its own, within 5 s. */
export async function ask (address: string, request: RlsRequest): Promise<RlsResponse> {
  const client = rlsClient(address)
  try {
    return await shouldRateLimit(client, request, 5000)
  } finally {
    client.close()
  }
}

export async function main (args: readonly string[], out: (line: string) => void): Promise<number> {
  try {
    const { address, request } = question(args)
    const res = await ask(address, request)
    out(answerLine(res))
    return 0
  } catch (err) {
    out(`rls:ask: ${(err as Error).message}`)
    return 2
  }
}

/* c8 ignore start -- the command line's entry: main() is what the tests run */
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2), line => { process.stdout.write(line + '\n') }).then(code => { process.exitCode = code }, () => { process.exitCode = 2 })
}
/* c8 ignore stop */
