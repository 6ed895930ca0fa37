//! The page served on `GET /`: opens a WebSocket to the server, sends a text
//! and a binary message, and shows the echoes; a form sends more.

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
</style>
</head>
<body>
<h1>ringwave</h1>
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
window.ringwave = { echoes: [], closed: false };
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
