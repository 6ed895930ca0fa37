// Peer pub/sub server: uWebSockets.js (topics with app.publish) run by Node,
// one thread, speaking ringwave's /feed JSON protocol (../feed.mjs).
// Usage: node pubsub.js [PORT]
import { App, DISABLED } from "uws-pack";
import { feedMessage } from "../feed.mjs";

const port = Number(process.argv[2] || 9007);
const decoder = new TextDecoder();
const app = App();
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
    console.log(`uWebSockets.js pubsub listening on ws://127.0.0.1:${port}`);
  });
