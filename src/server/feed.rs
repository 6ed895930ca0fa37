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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use super::access::PublishRule;
use super::jwt::{Identity, JwtKeys};
use super::{
    ConnId, Handler, Msg, Position, Request, SendStatus, SubscribeOptions, Subscribed, Upgrade, Ws,
};
use crate::proto::{CloseCode, MessageKind};
use crate::pubsub::history::parse_epoch;
use crate::pubsub::valid_topic;

/// The feed app. Connections whose upgrade presented the publish token (or
/// all, with `allow_client_publish`) may publish on every topic; those that
/// presented a JWT subscribe and publish as its claims say.
#[derive(Debug)]
pub struct Feed {
    rule: PublishRule,
    /// Open connections allowed to publish.
    publishers: HashSet<ConnId>,
    /// Open connections' token identities (with `--jwt-key`).
    holders: HashMap<ConnId, Identity>,
    /// Open connections admitted without a token, which must send one.
    pending: HashSet<ConnId>,
    /// The keys in-band tokens are checked with (with `--jwt-key`).
    keys: Option<Arc<JwtKeys>>,
}

impl Feed {
    /// A feed app that lets every client publish, or only those presenting
    /// `token` (`?token=` or `Authorization: Bearer`), or none.
    pub fn with_publishing(allow_all: bool, token: Option<String>) -> Feed {
        Feed::new(PublishRule { allow_all, token }, None)
    }

    pub(super) fn new(rule: PublishRule, keys: Option<Arc<JwtKeys>>) -> Feed {
        Feed {
            rule,
            publishers: HashSet::new(),
            holders: HashMap::new(),
            pending: HashSet::new(),
            keys,
        }
    }

    /// `{"op":"auth","token":"…"}`: a token sent in band, first or to
    /// refresh the one the connection has. A valid one replaces its rights
    /// and moves its end to the new expiry; a bad one changes nothing (a
    /// connection still without one is closed at its deadline).
    fn auth(&mut self, ws: &mut Ws<'_>, token: Option<&str>) {
        let Some(keys) = &self.keys else {
            return error(ws, "tokens are not used on this server");
        };
        let Some(token) = token else {
            return error(ws, "missing \"token\"");
        };
        match keys.verify(token, ws.wall_clock()) {
            Ok(id) => {
                ws.set_token_expiry(Some(id.expires()));
                let exp = id
                    .expires()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let sub = id.subject().map(str::to_string);
                self.pending.remove(&ws.id());
                self.holders.insert(ws.id(), id);
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
        if self.rule.allows(&req.http) {
            self.publishers.insert(req.id());
        }
        if let Some(id) = req.identity() {
            self.holders.insert(req.id(), id.clone());
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
        let rights = Rights {
            publish_all: self.publishers.contains(&ws.id()),
            holder: self.holders.get(&ws.id()),
        };
        handle(ws, req, rights);
    }

    fn on_close(&mut self, id: ConnId, _code: CloseCode, _reason: &str) {
        self.publishers.remove(&id);
        self.holders.remove(&id);
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

/// What one connection may do.
struct Rights<'a> {
    /// Publish on every topic (the publish token, `allow_client_publish`).
    publish_all: bool,
    /// The identity of the token it presented, whose claims list topics.
    holder: Option<&'a Identity>,
}

impl Rights<'_> {
    fn may_subscribe(&self, topic: &str) -> bool {
        self.holder.is_none_or(|h| h.may_subscribe(topic))
    }

    fn may_publish(&self, topic: &str) -> bool {
        self.publish_all || self.holder.is_some_and(|h| h.may_publish(topic))
    }
}

/// Handle one message from a `/feed` client with `rights`.
fn handle(ws: &mut Ws<'_>, req: FeedRequest, rights: Rights<'_>) {
    let Some(topic) = req.topic.as_deref() else {
        return error(ws, "missing \"topic\"");
    };
    match req.op.as_str() {
        "subscribe" if !rights.may_subscribe(topic) => reply(
            ws,
            json!({"event": "error", "topic": topic,
                   "error": format!("not entitled to topic {topic:?}")}),
        ),
        "subscribe" => subscribe(ws, topic, &req),
        "unsubscribe" => {
            ws.unsubscribe(topic);
            reply(ws, json!({"event": "unsubscribed", "topic": topic}));
        }
        "publish" => {
            if !rights.may_publish(topic) {
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
