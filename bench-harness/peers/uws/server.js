// Peer echo server: uWebSockets.js (uWebSockets' C++ engine as a Node.js
// addon) run by Node, one thread. Usage: node server.js [PORT]
import { App, DISABLED } from "uws-pack";

const port = Number(process.argv[2] || 9006);
App()
  .ws("/*", {
    compression: DISABLED,
    maxPayloadLength: 64 * 1024 * 1024,
    idleTimeout: 0,
    message(ws, message, isBinary) {
      ws.send(message, isBinary);
    },
  })
  .get("/*", (res) => {
    res.end("WebSocket echo peer\n");
  })
  .listen("127.0.0.1", port, (listenSocket) => {
    if (!listenSocket) {
      console.error(`uWebSockets.js could not listen on 127.0.0.1:${port}`);
      process.exit(1);
    }
    console.log(`uWebSockets.js listening on ws://127.0.0.1:${port}`);
  });
