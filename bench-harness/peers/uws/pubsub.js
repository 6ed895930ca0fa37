// Peer pub/sub server: uWebSockets.js (topics with app.publish) run by Node,
// one thread, speaking ringwave's /feed JSON protocol (../feed.mjs).
// Usage: node pubsub.js [PORT [CERT KEY]]: with a certificate and key it
// serves wss:// (SSLApp).
import { App, SSLApp, DISABLED } from "uws-pack";
import { feedMessage } from "../feed.mjs";

const port = Number(process.argv[2] || 9007);
const decoder = new TextDecoder();
const [cert, key] = [process.argv[3], process.argv[4]];
const app = cert && key ? SSLApp({ cert_file_name: cert, key_file_name: key }) : App();
const scheme = cert && key ? "wss" : "ws";
app
  .ws("/*", {
    compression: DISABLED,
    maxPayloadLength: 16 * 1024 * 1024,
    idleTimeout: 0,
    // Buffer up to 1 MiB per subscriber, like ringwave's --max-buffered.
    maxBackpressure: 1024 * 1024,
    closeOnBackpressureLimit: false,
    message(ws, message) {
      feedMessage(decoder.decode(message), ws, (topic, data) => app.publish(topic, data));
    },
  })
  .get("/*", (res) => {
    res.end("WebSocket pub/sub peer\n");
  })
  .listen("127.0.0.1", port, (listenSocket) => {
    if (!listenSocket) {
      console.error(`uWebSockets.js could not listen on 127.0.0.1:${port}`);
      process.exit(1);
    }
    console.log(`uWebSockets.js pubsub listening on ${scheme}://127.0.0.1:${port}`);
  });
