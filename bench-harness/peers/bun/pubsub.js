// Peer pub/sub server: Bun's built-in WebSocket server (uWebSockets inside,
// topics with server.publish), one thread, speaking ringwave's /feed JSON
// protocol (../feed.mjs). Usage: bun pubsub.js [PORT [CERT KEY]]: with a
// certificate and key it serves wss://.
import { feedMessage } from "../feed.mjs";

const port = Number(process.argv[2] || 9005);
const [cert, key] = [process.argv[3], process.argv[4]];
const tls = cert && key ? { cert: Bun.file(cert), key: Bun.file(key) } : undefined;
const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  tls,
  fetch(req, server) {
    if (server.upgrade(req)) return;
    return new Response("WebSocket pub/sub peer\n");
  },
  websocket: {
    maxPayloadLength: 16 * 1024 * 1024,
    perMessageDeflate: false,
    // Buffer up to 1 MiB per subscriber, like ringwave's --max-buffered.
    backpressureLimit: 1024 * 1024,
    closeOnBackpressureLimit: false,
    message(ws, message) {
      feedMessage(message, ws, (topic, data) => server.publish(topic, data));
    },
  },
});
console.log(`bun pubsub listening on ${tls ? "wss" : "ws"}://127.0.0.1:${server.port}`);
