/**
 * One worker thread of a gateway with WORKERS > 1: the whole client path (the client
 * listener, the limiter, the forwarder; the decision listener if on) on PORT with
 * reusePort, deciding against the memory tables every thread shares. The main thread
 * (supervisor.ts) answers the admin port; this one answers its questions: readiness,
 * metrics and offenders to sum, rules to reload, and when to drain.
 */
import { parentPort, workerData } from 'node:worker_threads'
import pino from 'pino'
import { buildApp, type App } from '../app.js'
import { CAPACITY } from '../observe/offenders.js'
import { loadConfig } from '../config/index.js'
import { describeError } from '../errors.js'
import { listenOn } from '../proxy/listener.js'
import type { AddressInfo } from 'node:net'
import { loggerOptions } from '../log.js'
import { sharedTables } from '../store/shared/tables.js'
import type { ToMain, ToWorker, WorkerData } from './messages.js'

const data = workerData as WorkerData
const port = parentPort!
const send = (message: ToMain): void => { port.postMessage(message) }

const config = loadConfig(data.env)
// Every line says which worker wrote it; all go to the one stdout.
const logger = pino(loggerOptions(config.logLevel, config.apiKeyHeader)).child({ worker: data.index })

let app: App | undefined
try {
  app = await buildApp(config, { logger, threads: { tables: sharedTables(config.memoryStoreMaxKeys, data.buffers), settings: data.settings } })
  const running = app
  // Every worker listens on the same port; the kernel spreads connections across them.
  if (config.mode === 'proxy') await listenOn(running.gateway, config.port, config.host, 'HOST/PORT', true)
  if (running.decision !== undefined) await listenOn(running.decision, config.decision!.port, config.decision!.host, 'DECISION_HOST/DECISION_PORT', true)
  port.on('message', (message: ToWorker) => {
    switch (message.type) {
      case 'reload':
        running.reloadRules()
        return
      case 'report':
        void report(running, message.id, message.minutes)
        return
      case 'usage':
        void Promise.resolve(running.store!.topUsage(message.days, message.limit)).then(top => { send({ type: 'usage', id: message.id, top }) })
        return
      case 'drain':
        running.close().then(() => port.close(), () => port.close())
    }
  })
  // Its client port: the gateway's, or with MODE=decision the decision listener's.
  send({ type: 'ready', port: ((config.mode === 'proxy' ? running.gateway : running.decision!).server.address() as AddressInfo).port })
} catch (err) {
  send({ type: 'failed', message: describeError(err) })
  // What did start (a listener, the store's timers) ends, so the thread does.
  await app?.close()
  port.close()
}

/**
 * This worker's metrics (prom-client's JSON, summed by the main thread), its offenders of
 * the last `minutes`, its requests holding in-flight slots, and its share of the traffic.
 */
async function report (app: App, id: number, minutes: number): Promise<void> {
  const metrics = await app.metrics.registry.getMetricsAsJSON()
  const requests = (await app.metrics.requestsTotal.get()).values.reduce((sum, v) => sum + v.value, 0)
  const connections = await new Promise<number>(resolve => { app.gateway.server.getConnections((_err, n) => resolve(n)) })
  send({ type: 'report', id, metrics, offenders: app.offenders.top(CAPACITY, minutes), inFlight: app.metrics.inFlight(), share: { worker: data.index, requests, connections } })
}
