/**
 * deploy/kubernetes against the Kubernetes object schemas (kubernetes-models: the API's
 * OpenAPI schemas, compiled), and against the gateway itself: the sidecar's environment
 * and its ConfigMap's rules load as a Config, the probes, ports and mounts are the
 * gateway's own. The redis-replicas variant is rendered as kustomize renders it (its JSON
 * patch applied to the sidecar); where kubectl is installed, kubectl's rendering must agree.
 */
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Deployment } from 'kubernetes-models/apps/v1'
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1'
import { applyPatch, type Operation } from 'rfc6902'
import { parse, parseAllDocuments } from 'yaml'
import { loadConfig } from '../../src/config/index.js'

const K8S = fileURLToPath(new URL('../../../deploy/kubernetes/', import.meta.url))

interface K8sObject { apiVersion: string, kind: string, metadata: { name: string }, spec?: any, data?: Record<string, string>, stringData?: Record<string, string> }

const MODELS: Record<string, new (data: any) => { validate: () => void }> = {
  'apps/v1/Deployment': Deployment,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service
}

function readObjects (file: string): K8sObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map(d => d.toJS() as K8sObject).filter(o => o !== null)
}

/** What `kubectl kustomize <dir>` renders, for the features these kustomizations use: resources and JSON patches. */
function render (dir: string): K8sObject[] {
  const k = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as { resources: string[], patches?: Array<{ path: string, target: { kind: string, name: string } }> }
  const objects = k.resources.flatMap(r => r.endsWith('.yaml') ? readObjects(join(dir, r)) : render(join(dir, r)))
  for (const p of k.patches ?? []) {
    const ops = parse(readFileSync(join(dir, p.path), 'utf8')) as Operation[]
    const target = objects.find(o => o.kind === p.target.kind && o.metadata.name === p.target.name)!
    const errors = applyPatch(target, ops).filter(e => e !== null)
    if (errors.length > 0) throw new Error(`${p.path}: ${errors.map(String).join('; ')}`)
  }
  return objects
}

function validate (t: Test, objects: K8sObject[]): void {
  for (const o of objects) {
    const Model = MODELS[`${o.apiVersion}/${o.kind}`]
    t.ok(Model, `${o.kind} ${o.metadata.name}: a known kind`)
    t.doesNotThrow(() => { new Model!(o).validate() }, `${o.kind} ${o.metadata.name}: valid against the Kubernetes schema`)
  }
}

const find = (objects: K8sObject[], kind: string, name: string) => objects.find(o => o.kind === kind && o.metadata.name === name)!
type Container = { name: string, env: Array<{ name: string, value?: string, valueFrom?: any }>, ports: Array<{ name: string, containerPort: number }>, readinessProbe: any, livenessProbe: any, resources: any, volumeMounts?: Array<{ name: string, mountPath: string, subPath?: string }> }
const gatewayOf = (objects: K8sObject[]): Container => (find(objects, 'Deployment', 'web').spec.template.spec.containers as Container[]).find(c => c.name === 'gateway')!

/** The gateway container's environment as the gateway reads it, with the operator's own Secret (a token made here) and the ConfigMap's rules file. */
function gatewayEnv (t: Test, objects: K8sObject[]): Record<string, string> {
  const gateway = gatewayOf(objects)
  const env: Record<string, string> = {}
  const secret = { ADMIN_TOKEN: randomBytes(24).toString('hex') } as Record<string, string>
  const rules = find(objects, 'ConfigMap', 'ratelimit-rules')
  const dir = mkdtempSync(join(tmpdir(), 'gw-k8s-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const mount = gateway.volumeMounts!.find(m => m.name === 'rules')!
  for (const e of gateway.env) {
    if (e.valueFrom !== undefined) env[e.name] = secret[e.valueFrom.secretKeyRef.key]!
    else env[e.name] = e.value!
  }
  // The ConfigMap's files, where the mount puts them.
  for (const [name, text] of Object.entries(rules.data!)) writeFileSync(join(dir, name), text)
  t.ok(env.RATE_LIMIT_RULES_FILE!.startsWith(`${mount.mountPath}/`), 'the rules file is in the ConfigMap\'s mount')
  env.RATE_LIMIT_RULES_FILE = join(dir, env.RATE_LIMIT_RULES_FILE!.slice(mount.mountPath.length + 1))
  delete env.NODE_OPTIONS
  return env
}

t.test('the sidecar: valid objects, a gateway whose environment and rules load, probes, ports and mounts as the gateway has them', async t => {
  const objects = render(join(K8S, 'sidecar'))
  t.same(objects.map(o => o.kind).sort(), ['ConfigMap', 'Deployment', 'Service'], 'no Secret: the manifests ship no admin token, they name the operator\'s')
  validate(t, objects)
  const gateway = gatewayOf(objects)
  const config = loadConfig(gatewayEnv(t, objects))
  t.equal(config.port, 8000)
  t.equal(config.adminPort, 9000)
  t.equal(config.upstreamUrl, 'http://127.0.0.1:8080')
  t.ok(config.rules.length >= 1, 'the ConfigMap\'s rules load')
  t.equal(config.store, 'memory')
  const web = (find(objects, 'Deployment', 'web').spec.template.spec.containers as Container[]).find(c => c.name === 'web')!
  t.equal(web.ports[0]!.containerPort, Number(new URL(config.upstreamUrl!).port), 'UPSTREAM_URL is the web container\'s port')

  const port = (name: string) => gateway.ports.find(p => p.name === name)!.containerPort
  t.equal(port('http'), config.port)
  t.equal(port('admin'), config.adminPort)
  t.match(gateway.readinessProbe, { httpGet: { path: '/readyz', port: 'admin' } })
  t.match(gateway.livenessProbe, { httpGet: { path: '/healthz', port: 'admin' } })
  t.equal(gateway.env.find(e => e.name === 'ADMIN_TOKEN')!.valueFrom.secretKeyRef.name, 'ratelimit-admin', 'the admin token from the Secret')
  t.equal(gateway.volumeMounts![0]!.subPath, undefined, 'the ConfigMap mounted as a directory (a subPath mount never sees an edit)')
  t.match(gateway.resources, { requests: { cpu: /^\d+m$/, memory: /^\d+Mi$/ }, limits: { memory: /^\d+Mi$/ } })
  t.equal(gateway.resources.limits.cpu, undefined, 'no CPU limit (throttling adds latency)')
  const grace = find(objects, 'Deployment', 'web').spec.template.spec.terminationGracePeriodSeconds as number
  t.ok(grace * 1000 > config.shutdownTimeoutMs, 'the pod outlives the gateway\'s drain')

  const service = find(objects, 'Service', 'web')
  t.same(service.spec.ports, [{ name: 'http', port: 8000, targetPort: 'http' }], 'the Service: port 8000 only')
  t.same(service.spec.selector, find(objects, 'Deployment', 'web').spec.template.metadata.labels)
})

t.test('redis-replicas: two replicas of the pod on one Redis, valid objects, a gateway environment that loads', async t => {
  const objects = render(join(K8S, 'redis-replicas'))
  t.same(objects.map(o => `${o.kind}/${o.metadata.name}`).sort(), ['ConfigMap/ratelimit-rules', 'Deployment/ratelimit-redis', 'Deployment/web', 'Service/ratelimit-redis', 'Service/web'])
  validate(t, objects)
  t.equal(find(objects, 'Deployment', 'web').spec.replicas, 2)
  const config = loadConfig(gatewayEnv(t, objects))
  t.equal(config.store, 'redis')
  t.equal(config.storeFailureMode, 'local')
  const url = new URL(config.redis.url)
  const redis = find(objects, 'Service', 'ratelimit-redis')
  t.equal(url.hostname, redis.metadata.name, 'REDIS_URL names the Redis Service')
  t.equal(Number(url.port), redis.spec.ports[0].port)
  t.same(redis.spec.selector, find(objects, 'Deployment', 'ratelimit-redis').spec.template.metadata.labels)

  const kubectl = spawnSync('kubectl', ['kustomize', join(K8S, 'redis-replicas')], { encoding: 'utf8' })
  if (kubectl.error !== undefined) {
    t.comment('kubectl is not installed: its own rendering not compared')
    return
  }
  t.equal(kubectl.status, 0, kubectl.stderr)
  const byName = (list: K8sObject[]) => Object.fromEntries(list.map(o => [`${o.kind}/${o.metadata.name}`, o]))
  t.same(byName(parseAllDocuments(kubectl.stdout).map(d => d.toJS() as K8sObject)), byName(objects), 'kubectl kustomize renders the same objects')
})
