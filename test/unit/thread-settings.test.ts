/**
 * The settings channel of one process's threads (WORKERS > 1): what Redis's is to a fleet,
 * in shared memory. Versions only go up, a reseed never overwrites a newer document, and
 * every change is announced to every other view of the share.
 */
import t from 'tap'
import { Worker } from 'node:worker_threads'
import { once } from 'node:events'
import { newSettingsShare, ThreadSettingsChannel, SETTINGS_DOC_BYTES } from '../../src/store/shared/settings-channel.js'

t.test('publish, read, reseed and announcements between two views of one share', async t => {
  const share = newSettingsShare()
  const a = new ThreadSettingsChannel(share)
  const b = new ThreadSettingsChannel(share)
  t.teardown(() => { a.close(); b.close() })
  let ready = 0
  const heard: string[] = []
  await b.subscribe(text => heard.push(text), () => { ready++ })
  t.equal(ready, 1, 'ready at once: nothing to connect to')
  t.equal((await a.read()).settings, null, 'nothing stored yet')

  t.equal(await a.publish('"settings":{"dryRun":true}', 0), 1)
  t.equal((await b.read()).settings, '{"version":1,"settings":{"dryRun":true}}', 'the other view reads it')
  t.equal(await a.publish('"settings":{"dryRun":false},"actor":"é"', 5), 6, 'above the floor the publisher knows')
  t.equal((await b.read()).settings, '{"version":6,"settings":{"dryRun":false},"actor":"é"}', 'UTF-8 kept')

  await a.reseed('{"version":3,"settings":{}}', 3)
  t.equal((await b.read()).settings, '{"version":6,"settings":{"dryRun":false},"actor":"é"}', 'a reseed never overwrites a newer document')
  await a.reseed('{"version":9,"settings":{}}', 9)
  t.equal((await b.read()).settings, '{"version":9,"settings":{}}', 'nor keeps an older one')

  await new Promise(resolve => setTimeout(resolve, 50))
  t.same(heard.map(h => JSON.parse(h)), [{ type: 'settings', version: 1 }, { type: 'settings', version: 6 }, { type: 'settings', version: 9 }], 'every change announced, in order')
  a.forgetLocally()
})

t.test('a document over the share\'s size is refused, and the stored one stays', async t => {
  const c = new ThreadSettingsChannel(newSettingsShare())
  t.teardown(() => c.close())
  await c.publish('"settings":{}', 0)
  await t.rejects(c.publish(`"settings":{"big":"${'x'.repeat(SETTINGS_DOC_BYTES)}"}`, 0), /over 2097152 bytes/)
  t.equal((await c.read()).settings, '{"version":1,"settings":{}}')
})

t.test('a thread holding the document\'s lock is waited for', async t => {
  const share = newSettingsShare()
  const c = new ThreadSettingsChannel(share)
  t.teardown(() => c.close())
  Atomics.store(new Int32Array(share.buffer, 0, 4), 0, 1)
  // Another thread lets go of it a little later.
  const other = new Worker('const { workerData } = require("node:worker_threads"); const h = new Int32Array(workerData, 0, 4); setTimeout(() => { Atomics.store(h, 0, 0); Atomics.notify(h, 0) }, 50)', { eval: true, workerData: share.buffer })
  await once(other, 'online')
  const started = performance.now()
  t.equal(await c.publish('"settings":{}', 0), 1, 'published once the lock was free')
  t.ok(performance.now() - started >= 20, 'after waiting for it')
  await once(other, 'exit')
})
