/**
 * OpenTelemetry tracing's settings, from the standard OTEL_* variables (the OpenTelemetry
 * SDK environment specification), validated here like every other variable so a bad one
 * stops start-up naming it (the SDK itself would log and carry on with a default).
 * Tracing is off unless an OTLP endpoint is set or OTEL_TRACES_EXPORTER=otlp;
 * OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off whatever else is set.
 */
import { parseKeyPairsIntoRecord } from '@opentelemetry/core'
import type { FromSchema } from 'json-schema-to-ts'
import { ConfigError } from '../errors.js'

export const SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const
export type SamplerName = typeof SAMPLERS[number]

/** Where spans go when OTEL_TRACES_EXPORTER=otlp names no endpoint (the specification's default). */
export const DEFAULT_OTLP_TRACES_URL = 'http://localhost:4318/v1/traces'
export const DEFAULT_SERVICE_NAME = 'ratelimit-gateway'

/** The OTEL_* variables the gateway reads, merged into its environment schema. */
export const TRACING_SCHEMA_PROPERTIES = {
  OTEL_SDK_DISABLED: { type: 'boolean', default: false, description: 'true or false' },
  OTEL_TRACES_EXPORTER: { type: 'string', enum: ['otlp', 'none'], description: 'otlp or none' },
  OTEL_EXPORTER_OTLP_ENDPOINT: { type: 'string', default: '', description: 'an http:// or https:// URL (the collector\'s OTLP/HTTP base; /v1/traces is appended)' },
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: { type: 'string', default: '', description: 'an http:// or https:// URL (used as is)' },
  OTEL_EXPORTER_OTLP_PROTOCOL: { type: 'string', enum: ['http/protobuf'], default: 'http/protobuf', description: 'http/protobuf (the one protocol the gateway exports with)' },
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: { type: 'string', enum: ['http/protobuf'], description: 'http/protobuf (the one protocol the gateway exports with)' },
  OTEL_EXPORTER_OTLP_HEADERS: { type: 'string', default: '', description: 'key=value items, comma-separated, values URL-encoded' },
  OTEL_EXPORTER_OTLP_TRACES_HEADERS: { type: 'string', default: '', description: 'key=value items, comma-separated, values URL-encoded' },
  OTEL_EXPORTER_OTLP_TIMEOUT: { type: 'integer', minimum: 1, maximum: 600_000, default: 10_000, description: 'milliseconds, 1-600000' },
  OTEL_EXPORTER_OTLP_COMPRESSION: { type: 'string', enum: ['gzip', 'none'], default: 'none', description: 'gzip or none' },
  OTEL_TRACES_SAMPLER: { type: 'string', enum: [...SAMPLERS], default: 'parentbased_always_on', description: SAMPLERS.join(', ') },
  OTEL_TRACES_SAMPLER_ARG: { type: 'number', minimum: 0, maximum: 1, default: 1, description: 'a sampling probability from 0 to 1 (the traceidratio samplers)' },
  OTEL_SERVICE_NAME: { type: 'string', default: DEFAULT_SERVICE_NAME, description: 'the service.name of the spans' },
  OTEL_RESOURCE_ATTRIBUTES: { type: 'string', default: '', description: 'key=value items, comma-separated, values URL-encoded' },
  OTEL_BSP_SCHEDULE_DELAY: { type: 'integer', minimum: 0, maximum: 600_000, default: 5_000, description: 'milliseconds between span exports, 0-600000' },
  OTEL_BSP_EXPORT_TIMEOUT: { type: 'integer', minimum: 1, maximum: 600_000, default: 30_000, description: 'milliseconds, 1-600000' },
  OTEL_BSP_MAX_QUEUE_SIZE: { type: 'integer', minimum: 1, maximum: 1_000_000, default: 2048, description: 'spans waiting for export at most (beyond: dropped), 1-1000000' },
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: { type: 'integer', minimum: 1, maximum: 1_000_000, default: 512, description: 'spans per export at most, 1-1000000, at most OTEL_BSP_MAX_QUEUE_SIZE' }
} as const

/** Tracing's settings: where spans go, which are kept, what describes the service. */
export interface TracingSettings {
  /** The OTLP/HTTP traces URL (protobuf). */
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly timeoutMs: number
  readonly compression: 'gzip' | 'none'
  readonly sampler: SamplerName
  /** The ratio of the traceidratio samplers. */
  readonly samplerArg: number
  readonly serviceName: string
  readonly resourceAttributes: Readonly<Record<string, string>>
  readonly batch: {
    readonly scheduledDelayMillis: number
    readonly exportTimeoutMillis: number
    readonly maxQueueSize: number
    readonly maxExportBatchSize: number
  }
}

/**
 * The OTEL_* variables as validated: derived from their schema (defaults applied), so a
 * variable added there is here too (a hand copy had missed two of the eighteen).
 */
export type TracingEnv = FromSchema<{ type: 'object', properties: typeof TRACING_SCHEMA_PROPERTIES, required: RequiredKeys<typeof TRACING_SCHEMA_PROPERTIES> }>

/** The properties with a default: always present once validated. */
type RequiredKeys<P> = Array<{ [K in keyof P]: P[K] extends { default: unknown } ? K : never }[keyof P]>

function httpUrl (name: string, value: string): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new ConfigError(`${name}: "${value}" is not a URL (expected http:// or https://, e.g. http://otel-collector:4318)`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${name}: "${value}" must be http:// or https:// (OTLP/HTTP)`)
  return url
}

/** `key=value,key=value` (W3C Baggage-like, values URL-encoded); an item without `key=`, or badly encoded, is an error. */
function keyValues (name: string, value: string): Record<string, string> {
  for (const item of value.split(',')) {
    if (item.trim() === '') continue
    const eq = item.indexOf('=')
    const key = item.slice(0, eq).trim()
    if (eq <= 0 || key === '') throw new ConfigError(`${name}: "${item.trim()}" is not a key=value item`)
    try {
      decodeURIComponent(item.slice(eq + 1))
    } catch {
      throw new ConfigError(`${name}: "${key}": the value is not valid URL encoding (a % must start %XX)`)
    }
  }
  return parseKeyPairsIntoRecord(value)
}

/** The traces URL: the signal's own endpoint as is, or the base endpoint with /v1/traces. */
function tracesUrl (raw: TracingEnv): string {
  if (raw.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== '') return httpUrl('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', raw.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).href
  if (raw.OTEL_EXPORTER_OTLP_ENDPOINT !== '') {
    const base = httpUrl('OTEL_EXPORTER_OTLP_ENDPOINT', raw.OTEL_EXPORTER_OTLP_ENDPOINT).href
    return `${base.endsWith('/') ? base : `${base}/`}v1/traces`
  }
  return DEFAULT_OTLP_TRACES_URL
}

/** Tracing's settings, or undefined when it is off (the default). */
export function parseTracing (raw: TracingEnv): TracingSettings | undefined {
  const endpointSet = raw.OTEL_EXPORTER_OTLP_ENDPOINT !== '' || raw.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== ''
  const exporter = raw.OTEL_TRACES_EXPORTER ?? (endpointSet ? 'otlp' : 'none')
  if (raw.OTEL_SDK_DISABLED || exporter === 'none') return undefined
  if (raw.OTEL_BSP_MAX_EXPORT_BATCH_SIZE > raw.OTEL_BSP_MAX_QUEUE_SIZE) {
    throw new ConfigError(`OTEL_BSP_MAX_EXPORT_BATCH_SIZE (${raw.OTEL_BSP_MAX_EXPORT_BATCH_SIZE}) must not exceed OTEL_BSP_MAX_QUEUE_SIZE (${raw.OTEL_BSP_MAX_QUEUE_SIZE})`)
  }
  return {
    url: tracesUrl(raw),
    // The signal's own headers win over the shared ones of the same name.
    headers: { ...keyValues('OTEL_EXPORTER_OTLP_HEADERS', raw.OTEL_EXPORTER_OTLP_HEADERS), ...keyValues('OTEL_EXPORTER_OTLP_TRACES_HEADERS', raw.OTEL_EXPORTER_OTLP_TRACES_HEADERS) },
    timeoutMs: raw.OTEL_EXPORTER_OTLP_TIMEOUT,
    compression: raw.OTEL_EXPORTER_OTLP_COMPRESSION,
    sampler: raw.OTEL_TRACES_SAMPLER,
    samplerArg: raw.OTEL_TRACES_SAMPLER_ARG,
    serviceName: raw.OTEL_SERVICE_NAME,
    resourceAttributes: keyValues('OTEL_RESOURCE_ATTRIBUTES', raw.OTEL_RESOURCE_ATTRIBUTES),
    batch: {
      scheduledDelayMillis: raw.OTEL_BSP_SCHEDULE_DELAY,
      exportTimeoutMillis: raw.OTEL_BSP_EXPORT_TIMEOUT,
      maxQueueSize: raw.OTEL_BSP_MAX_QUEUE_SIZE,
      maxExportBatchSize: raw.OTEL_BSP_MAX_EXPORT_BATCH_SIZE
    }
  }
}
