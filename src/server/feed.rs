//! The built-in feed app on `/feed`: a small JSON text protocol over
//! WebSocket for subscribing to topics (and publishing, when allowed).
//!
//! Client to server, one JSON object per text message:
//!
//! - `{"op":"subscribe","topic":"ticks"}` → `{"event":"subscribed","topic":"ticks"}`
//! - `{"op":"unsubscribe","topic":"ticks"}` → `{"event":"unsubscribed","topic":"ticks"}`
//! - `{"op":"publish","topic":"ticks","data":…,"key":"AAPL"}` → no reply on
//!   success. `data` is sent to subscribers as a text message: a JSON string
//!   as its contents, anything else as its JSON text. `key` (optional) is the
//!   conflation key.
//!
//! Errors (bad JSON, unknown op, bad topic, publishing not allowed) are
//! answered with `{"event":"error","error":"…"}` and the connection stays
//! open. Subscribers receive each publication as it was published, with no
//! envelope.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{Msg, Ws};
use crate::proto::MessageKind;

#[derive(Deserialize)]
struct Request {
    op: String,
    topic: Option<String>,
    data: Option<Value>,
    key: Option<String>,
}

fn reply(ws: &mut Ws<'_>, v: Value) {
    let _ = ws.send_text(&v.to_string());
}

fn error(ws: &mut Ws<'_>, msg: &str) {
    reply(ws, json!({"event": "error", "error": msg}));
}

/// Handle one message from a `/feed` client. `can_publish`: the server
/// allows this client to publish.
pub(crate) fn handle(ws: &mut Ws<'_>, msg: Msg<'_>, can_publish: bool) {
    let Msg::Text(text) = msg else {
        return error(ws, "the feed protocol uses JSON text messages");
    };
    let req: Request = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) => return error(ws, &format!("bad request: {e}")),
    };
    let Some(topic) = req.topic.as_deref() else {
        return error(ws, "missing \"topic\"");
    };
    match req.op.as_str() {
        "subscribe" => match ws.subscribe(topic) {
            Ok(_) => reply(ws, json!({"event": "subscribed", "topic": topic})),
            Err(e) => error(ws, &format!("cannot subscribe to {topic:?}: {e}")),
        },
        "unsubscribe" => {
            ws.unsubscribe(topic);
            reply(ws, json!({"event": "unsubscribed", "topic": topic}));
        }
        "publish" => {
            if !can_publish {
                return error(
                    ws,
                    "publishing is not allowed: the server needs --allow-client-publish, \
                     or connect with ?token=… matching --publish-token",
                );
            }
            if !super::pubsub::valid_topic(topic) {
                return error(ws, &format!("bad topic {topic:?}"));
            }
            let data = match req.data {
                Some(Value::String(s)) => s,
                Some(v) => v.to_string(),
                None => return error(ws, "missing \"data\""),
            };
            ws.publish_keyed(
                topic,
                req.key.as_deref(),
                MessageKind::Text,
                data.as_bytes(),
            );
        }
        other => error(
            ws,
            &format!("unknown op {other:?}: expected subscribe, unsubscribe or publish"),
        ),
    }
}
