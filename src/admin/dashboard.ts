/**
 * The dashboard page: one static HTML document with inline script and style (no build
 * toolchain), served by the admin listener. It holds no data: it asks for the admin token
 * (kept in sessionStorage), then polls GET /admin/stats every 2 s with it.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rate-limit gateway</title>
<style>
  /* The hidden attribute must win over display: grid/flex below (the board showed zeros before the token). */
  [hidden] { display: none !important; }
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
  header { background: #1d2330; color: #fff; padding: 12px 20px; display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; }
  header h1 { font-size: 17px; margin: 0; flex: 1; }
  main { padding: 16px 20px; display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; }
  /* min-width 0: a grid item would otherwise grow to its longest word and overflow the page. */
  section { background: #fff; border-radius: 6px; padding: 12px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); min-width: 0; }
  #scope { grid-column: 1 / -1; background: #fff8e1; border-radius: 6px; padding: 8px 16px; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: #5a6275; margin: 0 0 8px; }
  .big { font-size: 28px; font-weight: 600; }
  .tiles { display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px; }
  .tile span { display: block; color: #5a6275; font-size: 12px; }
  table { width: 100%; border-collapse: collapse; }
  td, th { text-align: left; padding: 3px 6px; border-bottom: 1px solid #eceef2; font-variant-numeric: tabular-nums; }
  td { overflow-wrap: anywhere; }
  .badge { padding: 2px 8px; border-radius: 10px; background: #2e7d32; color: #fff; font-size: 12px; }
  .badge.warn { background: #c62828; }
  #login input { padding: 6px; width: 260px; max-width: 100%; box-sizing: border-box; }
  @media (max-width: 480px) { main { padding: 12px 8px; grid-template-columns: 1fr; } .big { font-size: 22px; } }
  #error { color: #c62828; }
  svg { width: 100%; height: 80px; background: #fafbfc; }
  .muted { color: #5a6275; }
</style>
</head>
<body>
<header>
  <h1>Rate-limit gateway</h1>
  <span id="status" hidden>store <span id="store-mode" class="badge">…</span> · in flight <span id="in-flight" class="badge">…</span></span>
  <span class="muted" id="updated">not connected</span>
</header>
<form id="login" style="padding: 16px 20px">
  <label>Admin token <input id="token" type="password" autocomplete="off" required></label>
  <button type="submit">Connect</button> <span id="error"></span>
</form>
<main id="board" hidden>
  <div id="scope" hidden></div>
  <section>
    <h2>Requests per second<span class="here"></span></h2>
    <div class="tiles">
      <div class="tile"><div class="big" id="rate-allowed">0</div><span>allowed</span></div>
      <div class="tile"><div class="big" id="rate-limited">0</div><span>limited (429)</span></div>
      <div class="tile"><div class="big" id="rate-banned">0</div><span>banned (403)</span></div>
    </div>
    <svg id="chart" viewBox="0 0 120 40" preserveAspectRatio="none">
      <polyline id="line-allowed" fill="none" stroke="#2e7d32" stroke-width="0.8" points=""/>
      <polyline id="line-limited" fill="none" stroke="#c62828" stroke-width="0.8" points=""/>
    </svg>
    <div class="muted">since the page opened (up to 2 minutes): <span style="color:#2e7d32">allowed</span>, <span style="color:#c62828">limited</span></div>
  </section>
  <section>
    <h2>Totals since start<span class="here"></span></h2>
    <table><tbody id="totals"></tbody></table>
    <h2 style="margin-top: 10px">Settled by the response</h2>
    <table><tbody id="settlements"></tbody></table>
  </section>
  <section>
    <h2>Limits in force</h2>
    <div>factor <b id="factor">1</b> <span class="muted" id="factor-detail"></span> · dry run <b id="dry-run">off</b></div>
    <table><thead><tr><th>limit</th><th>rate</th><th>burst</th></tr></thead><tbody id="limits"></tbody></table>
    <h2 style="margin-top: 10px">Route rules (<span id="rules-source"></span>)</h2>
    <table><tbody id="rules"></tbody></table>
  </section>
  <section>
    <h2>API keys made here (<span id="keys-count">0</span>)</h2>
    <table><thead><tr><th>name</th><th>tier</th><th>key</th><th>last seen</th></tr></thead><tbody id="keys"></tbody></table>
    <h2 style="margin-top: 10px">Usage by API key (<span id="usage-range">…</span>)</h2>
    <table><thead><tr><th>key</th><th>admitted</th><th>refused</th><th>cost</th></tr></thead><tbody id="usage-top"></tbody></table>
    <div class="muted" style="margin-top: 6px">admitted per day, <span id="usage-key">no key</span>: <span id="usage-days"></span></div>
    <svg id="usage-chart" viewBox="0 0 120 40" preserveAspectRatio="none"><polyline id="usage-line" fill="none" stroke="#1565c0" stroke-width="0.8" points=""/></svg>
  </section>
  <section>
    <h2>Top offenders (last 5 minutes)<span class="here"></span></h2>
    <table><thead><tr><th>client</th><th>refusals</th></tr></thead><tbody id="offenders"></tbody></table>
  </section>
</main>
<script>
(function () {
  var POLL_MS = 2000, HISTORY = 60
  var token = sessionStorage.getItem('gw-admin-token') || ''
  var previous = null, history = []
  var $ = function (id) { return document.getElementById(id) }
  function cell (text) { var td = document.createElement('td'); td.textContent = String(text); return td }
  function rows (tbody, data) {
    tbody.replaceChildren.apply(tbody, data.map(function (r) {
      var tr = document.createElement('tr'); r.forEach(function (c) { tr.appendChild(cell(c)) }); return tr
    }))
  }
  function line (id, key, max) {
    var step = 120 / Math.max(1, history.length - 1)
    $(id).setAttribute('points', history.map(function (h, i) {
      return (i * step).toFixed(1) + ',' + (40 - 38 * h[key] / max).toFixed(1)
    }).join(' '))
  }
  function render (s) {
    var now = Date.parse(s.at), req = s.requests
    if (previous) {
      var dt = (now - previous.t) / 1000 || 1
      var rate = function (k) { return Math.max(0, ((req[k] || 0) - (previous.req[k] || 0)) / dt) }
      var r = { allowed: rate('allowed') + rate('delayed') + rate('allowlisted') + rate('skipped') + rate('dry_run_would_limit'), limited: rate('limited') + rate('concurrency_limited'), banned: rate('banned') }
      $('rate-allowed').textContent = r.allowed.toFixed(1)
      $('rate-limited').textContent = r.limited.toFixed(1)
      $('rate-banned').textContent = r.banned.toFixed(1)
      history.push(r); if (history.length > HISTORY) history.shift()
      var max = Math.max.apply(null, history.map(function (h) { return Math.max(h.allowed, h.limited) }).concat([1]))
      line('line-allowed', 'allowed', max); line('line-limited', 'limited', max)
    }
    previous = { t: now, req: req }
    rows($('totals'), Object.keys(req).sort().map(function (k) { return [k.replace(/_/g, ' '), req[k]] }))
    rows($('settlements'), s.settlements.length ? s.settlements.map(function (x) { return [x.rule + ' ' + x.kind.replace(/_/g, ' '), x.count] }) : [['none', '']])
    // With Redis the counters are this gateway's own, the limits and the usage the fleet's: said so.
    var fleet = s.instance.fleet
    $('scope').hidden = !fleet
    $('scope').textContent = fleet ? 'One gateway of a fleet on Redis (' + s.instance.id + '): requests, totals, settlements, offenders and in-flight are this instance\u2019s own; the limits in force and the usage by API key are the fleet\u2019s.' : ''
    Array.prototype.forEach.call(document.querySelectorAll('.here'), function (el) { el.textContent = fleet ? ' \u00b7 this instance' : '' })
    $('status').hidden = false
    var mode = s.store ? s.store.mode : 'off'
    $('store-mode').textContent = mode
    $('store-mode').className = 'badge' + (mode === 'memory' || mode === 'redis' ? '' : ' warn')
    $('in-flight').textContent = s.inFlight
    var c = s.config
    $('factor').textContent = c.factor.effective
    $('factor-detail').textContent = '(emergency ' + c.factor.emergency + ', adaptive ' + c.factor.adaptive + ')'
    $('dry-run').textContent = c.dryRun ? 'ON' : 'off'
    var limits = [['default', c.limits.default.rate, c.limits.default.burst]]
    Object.keys(c.limits.tiers).forEach(function (t) { limits.push(['tier ' + t, c.limits.tiers[t].rate, c.limits.tiers[t].burst]) })
    if (c.limits.global) limits.push(['global', c.limits.global.rate, c.limits.global.burst])
    if (c.limits.concurrency.perClient !== null) limits.push(['in flight per client', 'at most', c.limits.concurrency.perClient])
    if (c.limits.concurrency.global !== null) limits.push(['in flight, everyone', 'at most', c.limits.concurrency.global])
    rows($('limits'), limits)
    $('rules-source').textContent = c.rulesSource
    rows($('rules'), c.rules.map(function (r) {
      return [(r.methods ? r.methods.join(',') + ' ' : '') + (r.host ? r.host : '') + r.path, r.skip ? 'skip' : r.limits.map(function (l) { return l.name + ' ' + l.rate }).join('; ') + (r.cost > 1 ? ' · cost ' + r.cost : '') + (r.concurrency ? ' · at most ' + r.concurrency + ' in flight' : '') + (r.count ? ' · counts ' + r.count.status.join(',') : '') + (r.refund ? ' · refunds ' + r.refund.status.join(',') : '') + (r.costHeader ? ' · cost from ' + r.costHeader : '') + (r.dryRun ? ' · dry run' : '')]
    }))
    rows($('offenders'), s.offenders.length ? s.offenders.map(function (o) { return [o.client, o.count] }) : [['none', '']])
    $('updated').textContent = 'updated ' + new Date(now).toLocaleTimeString()
  }
  // The usage ledger: the heaviest keys over the retained days, and one key's days as a line.
  var USAGE_MS = 30000, usageKey = null, usageRange = null
  function get (path) {
    return fetch(path, { headers: { authorization: 'Bearer ' + token } }).then(function (res) {
      if (!res.ok) throw new Error('HTTP ' + res.status)
      return res.json()
    })
  }
  // A key as a person tells it apart: its tier and the digest's start (the whole digest as the row's title).
  function keyLabel (c) { return c.name ? c.name + ' (' + (c.tier || 'default') + ')' : (c.tier ? c.tier + ' key ' : '') + (c.client.length > 14 ? c.client.slice(0, 12) + '\u2026' : c.client) }
  function showKey (key, label) {
    usageKey = key
    $('usage-key').textContent = label
    get('/admin/usage?client=' + encodeURIComponent(key) + '&from=' + usageRange.from + '&to=' + usageRange.to).then(function (u) {
      var max = Math.max.apply(null, u.days.map(function (d) { return d.admitted }).concat([1]))
      var step = 120 / Math.max(1, u.days.length - 1)
      $('usage-line').setAttribute('points', u.days.map(function (d, i) {
        return (i * step).toFixed(1) + ',' + (40 - 38 * d.admitted / max).toFixed(1)
      }).join(' '))
      $('usage-days').textContent = u.days.length + ' days, ' + u.total.admitted + ' admitted'
    }, function () {})
  }
  function pollUsage () {
    // The keys made through the admin API, by name and tier (never the key: its first characters).
    get('/admin/keys').then(function (k) {
      $('keys-count').textContent = k.keys.length
      rows($('keys'), k.keys.length ? k.keys.map(function (x) { return [x.name, x.tier || 'default', x.prefix + '\u2026', x.lastSeenAt ? new Date(x.lastSeenAt).toLocaleString() : 'not yet'] }) : [['none', '', '', '']])
    }, function () {})
    get('/admin/usage/top?limit=10').then(function (first) {
      var to = first.to, n = first.retentionDays
      var from = new Date(Date.parse(to + 'T00:00:00Z') - (n - 1) * 86400000).toISOString().slice(0, 10)
      usageRange = { from: from, to: to }
      $('usage-range').textContent = from + ' to ' + to + ', ' + first.timeZone
      return get('/admin/usage/top?limit=10&from=' + from + '&to=' + to)
    }).then(function (top) {
      var tbody = $('usage-top')
      rows(tbody, top.clients.length ? top.clients.map(function (c) { return [keyLabel(c), c.admitted, c.refused, c.cost] }) : [['none', '', '', '']])
      Array.prototype.forEach.call(tbody.children, function (tr, i) {
        var c = top.clients[i]
        if (c) { tr.title = c.client; tr.style.cursor = 'pointer'; tr.addEventListener('click', function () { showKey(c.client, keyLabel(c)) }) }
      })
      var shown = top.clients.filter(function (c) { return c.client === usageKey })[0] || top.clients[0]
      if (shown) showKey(shown.client, keyLabel(shown))
      setTimeout(pollUsage, USAGE_MS)
    }, function () { setTimeout(pollUsage, USAGE_MS) })
  }
  function poll () {
    fetch('/admin/stats', { headers: { authorization: 'Bearer ' + token } }).then(function (res) {
      if (res.status === 401) throw new Error('the token was refused')
      if (!res.ok) throw new Error('HTTP ' + res.status)
      return res.json()
    }).then(function (s) {
      $('login').hidden = true; $('board').hidden = false; $('error').textContent = ''
      render(s)
      setTimeout(poll, POLL_MS)
    }, function (err) {
      $('login').hidden = false; $('error').textContent = err.message
      $('updated').textContent = 'not connected'
    })
  }
  $('login').addEventListener('submit', function (e) {
    e.preventDefault()
    token = $('token').value
    sessionStorage.setItem('gw-admin-token', token)
    previous = null; history = []
    poll()
    pollUsage()
  })
  if (token) { poll(); pollUsage() }
})()
</script>
</body>
</html>
`
