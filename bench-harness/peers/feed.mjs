// ringwave's /feed JSON protocol, for the pub/sub peers (Bun's and
// uWebSockets.js's), so that ringwave-bench's fanout scenario measures every
// server the same way:
//   {"op":"subscribe","topic":T}   -> {"event":"subscribed","topic":T}
//   {"op":"unsubscribe","topic":T} -> {"event":"unsubscribed","topic":T}
//   {"op":"publish","topic":T,"data":D} -> D to every subscriber of T
// `ws` needs send(text), subscribe(topic) and unsubscribe(topic);
// `publish(topic, data)` is the server's.
export function feedMessage(text, ws, publish) {
  let req;
  try {
    req = JSON.parse(text);
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
    publish(req.topic, data);
  } else {
    ws.send(JSON.stringify({ event: "error", error: "unknown op" }));
  }
}
