/**
 * Bearer-token authentication for the admin API: the token is compared in constant time
 * (as SHA-256 digests, so neither the content nor the length of the secret leaks through
 * timing).
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { renderProblem, sendProblem, UnauthorizedError } from '../errors.js'

const UNAUTHORIZED = new UnauthorizedError()
const UNAUTHORIZED_BODY = renderProblem(401, UNAUTHORIZED.message, UNAUTHORIZED.code)

function digest (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

/** An onRequest hook refusing requests without `Authorization: Bearer <token>`. */
export function requireToken (token: string) {
  const expected = digest(token)
  return async function authenticate (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization
    const given = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : ''
    if (!timingSafeEqual(digest(given), expected)) {
      await sendProblem(reply.header('www-authenticate', 'Bearer realm="gateway-admin"'), 401, UNAUTHORIZED_BODY)
    }
  }
}
