//! The page served on `GET /`: a live ticker table fed over WebSocket by the
//! feed app (`/feed`, topic `ticks`), and an echo test that sends a text and
//! a binary message and shows the echoes; a form sends more. The same ticks
//! also arrive as Server-Sent Events (`/sse/ticks`).

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
<p>Subscribed to topic <code>ticks</code> on <code>/feed</code> (published by the built-in simulator, <code>--feed-sim</code>).
Feed: <span id="feed-status">connecting…</span>, <span id="tick-count">0</span> ticks received;
the same topic as Server-Sent Events (<code>/sse/ticks</code>): <span id="sse-count">0</span> events.</p>
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
const feedStatus = document.getElementById('feed-status');
const rows = new Map();
const feed = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/feed');
feed.onopen = () => {
  feedStatus.textContent = 'open';
  feed.send(JSON.stringify({ op: 'subscribe', topic: 'ticks' }));
};
feed.onclose = (e) => { feedStatus.textContent = 'closed (' + e.code + ')'; };
feed.onmessage = (e) => {
  const m = JSON.parse(e.data);
  if (m.event) { if (m.event === 'error') feedStatus.textContent = 'error: ' + m.error; return; }
  if (m.type !== 'tick') return;
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
  window.ringwave.ticks += 1;
  document.getElementById('tick-count').textContent = window.ringwave.ticks;
};
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
