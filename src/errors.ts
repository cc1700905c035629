/**
 * The one error registry. Every error the gateway raises or answers with has a stable
 * code, a message template and an HTTP status; tests assert on codes, never on text.
 */
import createError from '@fastify/error'
import type { FastifyReply } from 'fastify'

/** A start-up configuration problem; the message names the variable and what it accepts. */
export const ConfigError = createError('GW_CONFIG_INVALID', '%s', 500)

/** The client is over a limit. */
export const RateLimitedError = createError('GW_RATE_LIMITED', 'Too Many Requests', 429)

/** Every slot of an in-flight limit is taken (CONCURRENCY_LIMIT, GLOBAL_CONCURRENCY_LIMIT, a rule's `concurrency`). */
export const ConcurrencyLimitedError = createError('GW_CONCURRENCY_LIMITED', 'Too Many Requests', 429)

/** The client was refused RATE_LIMIT_BAN_AFTER times within the ban window: refused outright. */
export const BannedError = createError('GW_BANNED', 'Refused after repeated rate-limit violations', 403)

/** A request HTTP forbids and the parser let through (e.g. two Host headers). */
export const BadRequestError = createError('GW_BAD_REQUEST', '%s', 400)

/** The client did not send its request headers (or whole request) in time. */
export const RequestTimeoutError = createError('GW_REQUEST_TIMEOUT', 'The request was not received in time', 408)

/** The request line or headers are larger than the gateway accepts. */
export const HeadersTooLargeError = createError('GW_HEADERS_TOO_LARGE', 'The request headers are too large', 431)

/** A path or method the gateway does not serve (e.g. TRACE, which it never proxies). */
export const RouteNotFoundError = createError('GW_NOT_FOUND', '%s', 404)

/** The upstream refused the connection, reset it or sent something unusable. */
export const UpstreamUnavailableError = createError('GW_UPSTREAM_UNAVAILABLE', 'The upstream server could not be reached', 502)

/** The upstream answered with a status outside 100-599 (logged; the client gets a 502). */
export const InvalidUpstreamStatusError = createError('GW_UPSTREAM_INVALID_STATUS', 'The upstream answered with status %d', 502)

/** The upstream did not answer within UPSTREAM_TIMEOUT_MS. */
export const UpstreamTimeoutError = createError('GW_UPSTREAM_TIMEOUT', 'The upstream server did not answer in time', 504)

/** The limiter store failed and STORE_FAILURE_MODE says to refuse meanwhile. */
export const StoreUnavailableError = createError('GW_STORE_UNAVAILABLE', 'Rate limiting is temporarily unavailable', 503)

/**
 * An admin write (ban, unban, reset, settings) that Redis did not confirm in time: refused,
 * and never applied later (store/redis/admin-write.ts). The detail names the write.
 */
export const AdminWriteFailedError = createError('GW_ADMIN_WRITE_FAILED', 'Redis did not confirm %s within %d ms, so it was not applied and will not be (%s); try again', 503)

/** Start-up could not reach the store (Redis) in time. */
export const StoreConnectError = createError('GW_STORE_CONNECT_FAILED', 'Redis was not ready within %d ms: %s', 500)

/** JWT_REQUIRED: a request without a token that verifies (missing, expired, forged, ...). */
export const TokenInvalidError = createError('GW_TOKEN_INVALID', 'A valid bearer token is required', 401)

/** An admin API request without the right bearer token. */
export const UnauthorizedError = createError('GW_ADMIN_UNAUTHORIZED', 'A valid Authorization: Bearer token is required', 401)

/** An admin API change that does not validate (the message says what is wrong). */
export const InvalidChangeError = createError('GW_ADMIN_INVALID', '%s', 400)

/** An admin API body that is not JSON (no content type, text/plain, ...). */
export const AdminMediaTypeError = createError('GW_ADMIN_MEDIA_TYPE', 'the body must be JSON, sent with content-type: application/json', 415)

/** An admin API body over the admin listener's limit. */
export const AdminBodyTooLargeError = createError('GW_ADMIN_BODY_TOO_LARGE', 'the body is larger than the admin API accepts (%d bytes)', 413)

/** An admin API request naming a tier, rule or client that does not exist. */
export const NotFoundError = createError('GW_ADMIN_NOT_FOUND', '%s', 404)

/** The quota endpoint (QUOTA_PATH) asked without a registered API key. */
export const QuotaKeyRequiredError = createError('GW_QUOTA_KEY_REQUIRED', 'A registered API key is required to read its quota', 401)

/** The quota endpoint asked too often from one address. */
export const QuotaEndpointLimitedError = createError('GW_QUOTA_ENDPOINT_LIMITED', 'The quota endpoint is asked too often; retry in %d s', 429)

/** Anything unexpected: answered without internals. */
export const InternalError = createError('GW_INTERNAL', 'Internal error', 500)

export interface ProblemDetails {
  type: string
  title: string
  status: number
  detail?: string
  code?: string
  [extension: string]: unknown
}

const STATUS_TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout'
}

/** Title for a status, as RFC 9457 wants for type "about:blank". */
export function statusTitle (status: number): string {
  return STATUS_TITLES[status] ?? (status >= 500 ? 'Internal Server Error' : 'Bad Request')
}

/** A problem body as JSON text, for answers rendered once (at start-up) or now. */
export function renderProblem (status: number, detail?: string, code?: string): string {
  return JSON.stringify(problem(status, detail, code))
}

/** Every problem+json answer that goes through a fastify reply: status, content type, body. */
export function sendProblem (reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply.code(status).header('content-type', PROBLEM_CONTENT_TYPE).send(body)
}

/** RFC 9457 problem details for a status and an optional detail and code (the limiter's 429/403 add their own fields: plugin.ts). */
export function problem (status: number, detail?: string, code?: string): ProblemDetails {
  const body: ProblemDetails = { type: 'about:blank', title: statusTitle(status), status }
  if (detail !== undefined) body.detail = detail
  if (code !== undefined) body.code = code
  return body
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json'
/** As fastify sends it for a string body; used where the gateway writes a response itself. */
export const PROBLEM_CONTENT_TYPE_UTF8 = 'application/problem+json; charset=utf-8'

/** An error as the one line start-up prints: its message and, for the gateway's own, its code. */
export function describeError (err: unknown): string {
  const { message, code } = err as Error & { code?: unknown }
  return typeof code === 'string' && code.startsWith('GW_') ? `${message} [${code}]` : message
}
