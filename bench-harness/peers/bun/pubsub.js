// Peer pub/sub server: Bun's built-in WebSocket server (uWebSockets inside,
// topics with server.publish), one thread, speaking ringwave's /feed JSON
// protocol so ringwave-bench's fanout scenario measures both the same way:
//   {"op":"subscribe","topic":T}  -> {"event":"subscribed","topic":T}
//   {"op":"publish","topic":T,"data":D} -> D to every subscriber of T
// Usage: bun pubsub.js [PORT]
const port = Number(process.argv[2] || 9005);
const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
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
      let req;
      try {
        req = JSON.parse(message);
      } catch (e) {
        ws.send(JSON.stringify({ event: "error", error: "bad request" }));
        return;
      }
      if (req.op === "subscribe") {
        ws.subscribe(req.topic);
        ws.send(JSON.stringify({ event: "subscribed", topic: req.topic }));
      } else if (req.op === "unsubscribe") {
        ws.unsubscribe(req.topic);
        ws.send(JSON.stringify({ event: "unsubscribed", topic: req.topic }));
      } else if (req.op === "publish") {
        const data = typeof req.data === "string" ? req.data : JSON.stringify(req.data);
        server.publish(req.topic, data);
      } else {
        ws.send(JSON.stringify({ event: "error", error: "unknown op" }));
      }
    },
  },
});
console.log(`bun pubsub listening on ws://127.0.0.1:${server.port}`);
