/**
 * What travels on a request between layers, declared once, here, below every layer that
 * reads or writes it (STYLE 21): the limiter sets them, the forwarder and the decision
 * listener read them. The layer test fails on a request field declared above a module
 * that uses it.
 */

/**
 * Settles an admitted request's charge by its response (the limiter's, for route rules
 * with `count`, `refund` or `costHeader`), set on the request as `gwSettle`.
 */
export interface ResponseSettlement {
  /** The response header with the request's real cost (lower case): read, then taken out of the response. */
  readonly costHeader: string | undefined
  /** The upstream answered `status`; `reported`: the cost header's value, if it sent one. */
  answered (status: number, reported: string | undefined): void
  /** The gateway answered for the upstream (502, 504). */
  failed (status: number): void
}

/**
 * A request's verified token (JWT_*), set as `gwToken` before the client is identified:
 * its claims, and the identities made of them (by claim name, memoised with the token).
 */
export interface VerifiedToken {
  readonly claims: Readonly<Record<string, unknown>>
  /** Identity per `jwt:<claim>` source, made once per token; null: the claim names no one. */
  readonly identities: Map<string, unknown>
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's verified token; null: none, or not a valid one (or tokens are off). */
    gwToken: VerifiedToken | null
    /** The limiter's response headers for an admitted request, [name, value, ...]; or null. */
    gwHeaders: string[] | null
    /** How to settle this request's charge by its response; null: it stands. */
    gwSettle: ResponseSettlement | null
  }
}
