// Peer echo server: Bun's built-in WebSocket server (uWebSockets inside),
// one thread. Usage: bun server.js [PORT [CERT.pem KEY.pem]]: with a
// certificate and key it serves wss:// (Bun's BoringSSL) instead of ws://.
const port = Number(process.argv[2] || 9004);
const [cert, key] = [process.argv[3], process.argv[4]];
const tls = cert && key ? { cert: Bun.file(cert), key: Bun.file(key) } : undefined;
const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  tls,
  fetch(req, server) {
    if (server.upgrade(req)) return;
    return new Response("WebSocket echo peer\n");
  },
  websocket: {
    maxPayloadLength: 64 * 1024 * 1024,
    perMessageDeflate: false,
    message(ws, message) {
      ws.send(message);
    },
  },
});
console.log(`bun listening on ${tls ? "wss" : "ws"}://127.0.0.1:${server.port}`);
