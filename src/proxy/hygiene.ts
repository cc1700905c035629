/**
 * Requests refused before anything else, limiting included. Node's parser refuses most
 * malformed requests (400/431) but keeps the first of several Host headers, and its own
 * 400 for an HTTP/1.1 request without one is a bare, empty answer (so Node's check is off and
 * done here instead); RFC 9112 §3.2 requires a 400 for both, and an upstream or cache reading another Host than the gateway would be
 * open to routing and cache-poisoning tricks. A `..` segment, even encoded twice, is
 * refused too: the upstream must only ever see paths under its root, however many times
 * it decodes them.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { BadRequestError, renderProblem, sendProblem } from '../errors.js'
import { climbsOut } from '../core/path.js'

const badBody = (detail: string): string => { const e = new BadRequestError(detail); return renderProblem(400, e.message, e.code) }
const TWO_HOSTS_BODY = badBody('more than one Host header')
const NO_HOST_BODY = badBody('an HTTP/1.1 request without a Host header')
const CLIMBS_OUT_BODY = badBody('the path climbs out of its root (a ".." segment, possibly encoded)')

/**
 * Answers a request HTTP forbids with a 400 (connection closed) and returns true; returns
 * false for every other request, having allocated nothing.
 */
export function refusedAsMalformed (request: FastifyRequest, reply: FastifyReply): boolean {
  const raw = request.raw.rawHeaders
  let hosts = 0
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') hosts++
  const body = hosts > 1
    ? TWO_HOSTS_BODY
    : (hosts === 0 && request.raw.httpVersionMinor === 1 ? NO_HOST_BODY : (climbsOut(request.url) ? CLIMBS_OUT_BODY : undefined))
  if (body === undefined) return false
  sendProblem(reply.header('connection', 'close'), 400, body)
  return true
}

/** Hygiene as an onRequest hook of its own, for a gateway without the limiter (whose first step it is otherwise). */
export function addHygieneHook (app: FastifyInstance): void {
  app.decorateRequest('gwHeaders', null)
  app.decorateRequest('gwSettle', null)
  app.addHook('onRequest', function wellFormed (request, reply, done) {
    if (!refusedAsMalformed(request, reply)) done()
  })
}
