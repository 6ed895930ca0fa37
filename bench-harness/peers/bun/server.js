// Peer echo server: Bun's built-in WebSocket server (uWebSockets inside),
// one thread. Usage: bun server.js [PORT]
const port = Number(process.argv[2] || 9004);
const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
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
console.log(`bun listening on ws://127.0.0.1:${server.port}`);
