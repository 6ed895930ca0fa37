// Peer echo server: uWebSockets.js (uWebSockets' C++ engine as a Node.js
// addon) run by Node, one thread. Usage: node server.js [PORT [CERT KEY]]:
// with a certificate and key it serves wss:// (SSLApp, OpenSSL/BoringSSL).
import { App, SSLApp, DISABLED } from "uws-pack";

const port = Number(process.argv[2] || 9006);
const [cert, key] = [process.argv[3], process.argv[4]];
const app = cert && key ? SSLApp({ cert_file_name: cert, key_file_name: key }) : App();
const scheme = cert && key ? "wss" : "ws";
app
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
    console.log(`uWebSockets.js listening on ${scheme}://127.0.0.1:${port}`);
  });
