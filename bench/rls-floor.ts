/**
 * The floor the rate limit service is measured against (bench/rls.ts): a grpc-js server
 * with the same service definition answering OK to every descriptor, deciding nothing.
 * Usage: node dist/bench/rls-floor.js <port>
 */
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js'
import { rlsDefinition } from '../src/rls/index.js'
import type { RlsRequest, RlsResponse } from '../src/rls/service.js'

const server = new Server()
server.addService(rlsDefinition(), {
  ShouldRateLimit (call: ServerUnaryCall<RlsRequest, RlsResponse>, callback: sendUnaryData<RlsResponse>): void {
    callback(null, { overall_code: 'OK', statuses: call.request.descriptors.map(() => ({ code: 'OK', limit_remaining: 1 })), response_headers_to_add: [] })
  }
})
server.bindAsync(`127.0.0.1:${process.argv[2]!}`, ServerCredentials.createInsecure(), err => {
  if (err !== null) throw err
  process.stdout.write('rls floor listening\n')
})
