//! The built-in feed app on `/feed`: a small JSON text protocol over
//! WebSocket for subscribing to topics (and publishing, when allowed). An
//! ordinary [`Handler`], built only on the public API.
//!
//! Client to server, one JSON object per text message:
//!
//! - `{"op":"subscribe","topic":"ticks"}` → `{"event":"subscribed","topic":"ticks"}`;
//!   on a topic with history the answer adds `"epoch"`, `"offset"` (where
//!   the subscriber now stands) and `"recovered"`. Options:
//!   `"since":{"epoch":E,"offset":N}` replays N+1… before live publications
//!   (`recovered: false` when they are no longer kept or E is another
//!   epoch); `"snapshot":true` sends the newest publication of every key
//!   first, as meta envelopes with `"snapshot":true`, unless `since`
//!   recovered; `"meta":true` sends every publication as an envelope
//!   `{"topic","epoch","offset","key"?,"data"}` (binary: 8-byte offset, a
//!   flags byte, the payload).
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

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{json, Value};

use super::access::{Access, PublishRule};
use super::{
    ConnId, Handler, Msg, Position, Request, SendStatus, SubscribeOptions, Subscribed, Upgrade, Ws,
};
use crate::proto::{CloseCode, MessageKind};
use crate::pubsub::history::parse_epoch;
use crate::pubsub::valid_topic;

/// The feed app. Connections whose upgrade presented the publish token (or
/// all, with `allow_client_publish`) may publish on every topic; those that
/// presented a JWT subscribe and publish as its claims say (and as the
/// server's [`SubscribeGuard`](super::SubscribeGuard) allows).
#[derive(Debug)]
pub struct Feed {
    access: Access,
    /// Open connections allowed to publish by the publish rule.
    publishers: HashSet<ConnId>,
    /// Open connections admitted without a token, which must send one.
    pending: HashSet<ConnId>,
}

impl Feed {
    /// A feed app that lets every client publish, or only those presenting
    /// `token` (`?token=` or `Authorization: Bearer`), or none.
    pub fn with_publishing(allow_all: bool, token: Option<String>) -> Feed {
        Feed::new(Access::publishing(PublishRule { allow_all, token }))
    }

    pub(super) fn new(access: Access) -> Feed {
        Feed {
            access,
            publishers: HashSet::new(),
            pending: HashSet::new(),
        }
    }

    /// `{"op":"auth","token":"…"}`: a token sent in band, first or to
    /// refresh the one the connection has. A valid one becomes the
    /// connection's identity (its rights, and its end at the new expiry); a
    /// bad one changes nothing (a connection still without one is closed at
    /// its deadline).
    fn auth(&mut self, ws: &mut Ws<'_>, token: Option<&str>) {
        let Some(keys) = self.access.keys() else {
            return error(ws, "tokens are not used on this server");
        };
        let Some(token) = token else {
            return error(ws, "missing \"token\"");
        };
        match keys.verify(token, ws.wall_clock()) {
            Ok(id) => {
                let exp = id
                    .expires()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let sub = id.subject().map(str::to_string);
                self.pending.remove(&ws.id());
                ws.set_identity(id);
                reply(
                    ws,
                    json!({"event": "authenticated", "sub": sub, "exp": exp}),
                );
            }
            Err(e) => error(ws, &format!("token refused: {e}")),
        }
    }
}

impl Handler for Feed {
    fn on_upgrade(&mut self, req: &Request<'_>) -> Upgrade {
        if self.access.publish.allows(&req.http) {
            self.publishers.insert(req.id());
        }
        if req.awaits_token() {
            self.pending.insert(req.id());
        }
        Upgrade::Accept { protocol: None }
    }

    fn on_message(&mut self, ws: &mut Ws<'_>, msg: Msg<'_>) {
        let Msg::Text(text) = msg else {
            return error(ws, "the feed protocol uses JSON text messages");
        };
        let req: FeedRequest = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => return error(ws, &format!("bad request: {e}")),
        };
        if req.op == "auth" {
            return self.auth(ws, req.token.as_deref());
        }
        if self.pending.contains(&ws.id()) {
            return error(ws, "send {\"op\":\"auth\",\"token\":\"…\"} first");
        }
        self.handle(ws, req);
    }

    fn on_close(&mut self, id: ConnId, _code: CloseCode, _reason: &str) {
        self.publishers.remove(&id);
        self.pending.remove(&id);
    }
}

#[derive(Deserialize)]
struct FeedRequest {
    op: String,
    topic: Option<String>,
    data: Option<Value>,
    key: Option<String>,
    since: Option<Since>,
    #[serde(default)]
    snapshot: bool,
    #[serde(default)]
    meta: bool,
    token: Option<String>,
}

#[derive(Deserialize)]
struct Since {
    epoch: String,
    offset: u64,
}

/// Subscribe with the request's options and answer `subscribed`.
fn subscribe(ws: &mut Ws<'_>, topic: &str, req: &FeedRequest) {
    let opts = SubscribeOptions {
        // An epoch that is not one of ours cannot be recovered: live only.
        since: req.since.as_ref().and_then(|s| {
            Some(Position {
                epoch: parse_epoch(&s.epoch)?,
                offset: s.offset,
            })
        }),
        snapshot: req.snapshot,
        meta: req.meta,
    };
    match ws.subscribe_with(topic, &opts) {
        Ok(Subscribed {
            position: Some(p),
            recovered,
            ..
        }) => reply(
            ws,
            json!({"event": "subscribed", "topic": topic, "epoch": p.epoch_str(),
                   "offset": p.offset, "recovered": recovered}),
        ),
        Ok(_) => reply(ws, json!({"event": "subscribed", "topic": topic})),
        Err(e) => error(ws, &format!("cannot subscribe to {topic:?}: {e}")),
    }
}

/// Answer the client. A client that does not read its answers gets no
/// more once its unsent bytes pass `--max-buffered`: it is told why, and
/// closed with 1008, rather than losing answers without a word.
fn reply(ws: &mut Ws<'_>, v: Value) {
    if ws.send_text(&v.to_string()) == SendStatus::Refused {
        ws.close(
            CloseCode::POLICY_VIOLATION,
            "answers not read (over --max-buffered)",
        );
    }
}

fn error(ws: &mut Ws<'_>, msg: &str) {
    reply(ws, json!({"event": "error", "error": msg}));
}

impl Feed {
    /// Handle one message from a `/feed` client, with the rights its token
    /// (its identity) and the publish rule give it.
    fn handle(&self, ws: &mut Ws<'_>, req: FeedRequest) {
        let Some(topic) = req.topic.as_deref() else {
            return error(ws, "missing \"topic\"");
        };
        match req.op.as_str() {
            "subscribe" => match self.access.may_subscribe(ws.identity(), topic) {
                Ok(()) => subscribe(ws, topic, &req),
                Err(why) => reply(ws, json!({"event": "error", "topic": topic, "error": why})),
            },
            "unsubscribe" => {
                ws.unsubscribe(topic);
                reply(ws, json!({"event": "unsubscribed", "topic": topic}));
            }
            "publish" => {
                let by_rule = self.publishers.contains(&ws.id());
                if !Access::may_publish(by_rule, ws.identity(), topic) {
                    return reply(
                        ws,
                        json!({"event": "error", "topic": topic,
                           "error": "publishing is not allowed: the server needs \
                            --allow-client-publish, a connection with ?token=… matching \
                            --publish-token, or a token whose topics.publish lists the topic"}),
                    );
                }
                if !valid_topic(topic) {
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
}
