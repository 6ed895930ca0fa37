//! The page served on `GET /`: a live ticker table fed by the JavaScript
//! client ([`CLIENT_JS`], `clients/js` compiled, served on `/client.js`)
//! from the feed app (`/feed`, topic `ticks`), showing the client's
//! connection state and its recoveries; and an echo test that sends a text
//! and a binary message and shows the echoes; a form sends more. The same
//! ticks also arrive as Server-Sent Events (`/sse/ticks`).

/// The JavaScript client (`clients/js/dist/index.js`, which `npm run build`
/// makes from `clients/js/src/index.ts`; `scripts/test.sh` checks that this
/// copy is the build's).
pub const CLIENT_JS: &str = include_str!("client.js");

/// The HTML document.
pub const INDEX_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ringwave</title>
<style>
 body { font: 15px/1.4 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; }
 #status { font-weight: 600; }
 #log { font-family: ui-monospace, monospace; background: #f4f4f4; padding: .5rem 1rem; min-height: 6rem; }
 #log li { list-style: none; }
 table { border-collapse: collapse; font-family: ui-monospace, monospace; }
 th, td { padding: .15rem .8rem; text-align: right; border-bottom: 1px solid #ddd; }
 th:first-child, td:first-child { text-align: left; }
 .up { color: #0a7d2c; } .down { color: #b3261e; }
</style>
</head>
<body>
<h1>ringwave</h1>
<h2>Live ticker</h2>
<p>Subscribed to topic <code>ticks</code> on <code>/feed</code> (published by the built-in simulator, <code>--feed-sim</code>)
by the JavaScript client (<a href="/client.js"><code>/client.js</code></a>, from <code>clients/js</code>), which reconnects and resumes from its last position.
Feed: <span id="feed-status">connecting…</span>, <span id="tick-count">0</span> ticks received;
the same topic as Server-Sent Events (<code>/sse/ticks</code>): <span id="sse-count">0</span> events.</p>
<p>Connections: <span id="connects">0</span>; resumed without a gap: <span id="recovered">0</span>;
position lost (snapshot taken): <span id="lost">0</span>; publications skipped by the server: <span id="gaps">0</span>;
position: <code id="position">–</code>.
<span id="history-hint" hidden>(The topic keeps no history, so a reconnect cannot resume: start the server with <code>--history ticks=1000</code>.)</span></p>
<table id="ticker"><thead><tr><th>symbol</th><th>price</th><th>change</th><th>size</th><th>updates</th></tr></thead><tbody></tbody></table>
<h2>Echo</h2>
<p>This page opened a WebSocket to the server; every message you send is echoed back.</p>
<p>Status: <span id="status">connecting…</span></p>
<form id="form"><input id="text" value="hello" autocomplete="off"> <button>Send</button></form>
<ul id="log"></ul>
<script>
const log = (line) => {
  const li = document.createElement('li');
  li.textContent = line;
  document.getElementById('log').appendChild(li);
};
const status = document.getElementById('status');
const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/echo';
const ws = new WebSocket(url);
ws.binaryType = 'arraybuffer';
window.ringwave = { echoes: [], closed: false, ticks: 0, symbols: 0, sse: 0 };
const events = new EventSource('/sse/ticks');
events.onmessage = () => {
  window.ringwave.sse += 1;
  document.getElementById('sse-count').textContent = window.ringwave.sse;
};
const rows = new Map();
const show = (id, v) => { document.getElementById(id).textContent = v; };
const showTick = (m) => {
  let row = rows.get(m.symbol);
  if (!row) {
    const tr = document.createElement('tr');
    tr.innerHTML = '<td></td><td></td><td></td><td></td><td></td>';
    tr.cells[0].textContent = m.symbol;
    row = { tr, first: m.price, updates: 0 };
    rows.set(m.symbol, row);
    const body = document.querySelector('#ticker tbody');
    const after = Array.from(body.rows).find((r) => r.cells[0].textContent > m.symbol);
    body.insertBefore(tr, after || null);
    window.ringwave.symbols = rows.size;
  }
  row.updates += 1;
  const change = m.price - row.first;
  row.tr.cells[1].textContent = m.price.toFixed(2);
  row.tr.cells[2].textContent = (change >= 0 ? '+' : '') + change.toFixed(2);
  row.tr.cells[2].className = change >= 0 ? 'up' : 'down';
  row.tr.cells[3].textContent = m.size;
  row.tr.cells[4].textContent = row.updates;
};
// What the client did, for people (above) and for tests: holes and repeats
// count offsets missing or seen twice within an epoch.
const feed = window.ringwave.feed = {
  state: 'connecting', connects: 0, recovered: 0, lost: 0, gaps: 0,
  epoch: null, offset: 0, holes: 0, repeats: 0,
};
(async () => {
  const { Client } = await import('/client.js');
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/feed';
  const client = new Client(url, {
    onState: (state) => {
      feed.state = state;
      feed.connects = client.connects;
      show('feed-status', state);
      show('connects', client.connects);
    },
  });
  window.ringwave.client = client;
  for await (const ev of client.subscribe('ticks', { snapshot: true })) {
    if (ev.type === 'resubscribed') {
      if (ev.recovered) feed.recovered += 1;
      if (ev.lost) feed.lost += 1;
      show('recovered', feed.recovered);
      show('lost', feed.lost);
      continue;
    }
    if (ev.type === 'gap') {
      feed.gaps += ev.dropped;
      show('gaps', feed.gaps);
      continue;
    }
    if (ev.offset === 0) {
      // A topic without history: nothing to resume from.
      document.getElementById('history-hint').hidden = false;
    } else if (!ev.snapshot) {
      if (ev.epoch === feed.epoch) {
        if (ev.offset <= feed.offset) feed.repeats += 1;
        else feed.holes += ev.offset - feed.offset - 1;
      }
      feed.epoch = ev.epoch;
      feed.offset = ev.offset;
      show('position', ev.position);
    }
    let m;
    try { m = JSON.parse(ev.data); } catch { continue; }
    if (m.type !== 'tick') continue;
    showTick(m);
    window.ringwave.ticks += 1;
    show('tick-count', window.ringwave.ticks);
  }
  show('feed-status', 'stopped: ' + (client.error ? client.error.message : 'closed'));
})().catch((e) => show('feed-status', 'error: ' + e.message));
ws.onopen = () => {
  status.textContent = 'open';
  ws.send('hello from the browser ✓');
  ws.send(new Uint8Array([1, 2, 3, 250]));
};
ws.onmessage = (e) => {
  const shown = typeof e.data === 'string'
    ? 'text: ' + e.data
    : 'binary: [' + Array.from(new Uint8Array(e.data)).join(',') + ']';
  window.ringwave.echoes.push(shown);
  log('echo ' + shown);
};
ws.onclose = (e) => { status.textContent = 'closed (' + e.code + ')'; window.ringwave.closed = true; };
ws.onerror = () => { status.textContent = 'error'; };
document.getElementById('form').onsubmit = (e) => {
  e.preventDefault();
  ws.send(document.getElementById('text').value);
};
</script>
</body>
</html>
"#;
