//! The built-in feed app on `/feed`: a small JSON text protocol over
//! WebSocket for subscribing to topics (and publishing, when allowed),
//! version 1.0, specified in `docs/feed-protocol.md`. An ordinary
//! [`Handler`], built only on the public API.
//!
//! Client to server: `subscribe` (`topic`, `since`, `snapshot`, `meta`),
//! `unsubscribe`, `publish` (`topic`, `data`, `key`) and `auth` (`token`).
//! Server to client: `subscribed` (with `epoch`, `offset`, `recovered` on a
//! topic with history, and `was_recovering`), `unsubscribed`,
//! `authenticated`, `error` (with a `code`, the connection stays open), and
//! the publications, as published or as envelopes with their position.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{json, Value};

use super::access::{Access, PublishRule};
use super::{
    ConnId, Handler, Msg, Position, Request, SendStatus, SubscribeError, SubscribeOptions, Upgrade,
    Ws,
};
use crate::proto::{CloseCode, MessageKind};
use crate::pubsub::history::parse_epoch;
use crate::pubsub::valid_topic;

/// The WebSocket subprotocol that names this protocol's version
/// (docs/feed-protocol.md): confirmed when a client offers it.
pub const PROTOCOL: &str = "ringwave.feed.v1";

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
    /// Open connections that named the protocol's version
    /// ([`PROTOCOL`]): they get gap notices unless they say otherwise.
    versioned: HashSet<ConnId>,
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
            versioned: HashSet::new(),
        }
    }

    /// `{"op":"auth","token":"…"}`: a token sent in band, first or to
    /// refresh the one the connection has. A valid one becomes the
    /// connection's identity (its rights, and its end at the new expiry); a
    /// bad one changes nothing (a connection still without one is closed at
    /// its deadline).
    fn auth(&mut self, ws: &mut Ws<'_>, token: Option<&str>) {
        let Some(keys) = self.access.keys() else {
            return self.error(
                ws,
                Code::AuthUnavailable,
                None,
                "tokens are not used on this server",
            );
        };
        let Some(token) = token else {
            return self.error(ws, Code::BadRequest, None, "missing \"token\"");
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
            Err(e) => self.error(ws, Code::TokenRefused, None, &format!("token refused: {e}")),
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
        // A client that names the protocol's version gets it confirmed, and
        // the fields 1.0 added; one that offers none gets the answers of
        // before 1.0, byte for byte.
        let protocol = req.protocols.iter().find(|p| *p == PROTOCOL).cloned();
        if protocol.is_some() {
            self.versioned.insert(req.id());
        }
        Upgrade::Accept { protocol }
    }

    fn on_message(&mut self, ws: &mut Ws<'_>, msg: Msg<'_>) {
        let Msg::Text(text) = msg else {
            return self.error(
                ws,
                Code::BadRequest,
                None,
                "the feed protocol uses JSON text messages",
            );
        };
        let req = match parse(text) {
            Ok(r) => r,
            Err((code, why)) => return self.error(ws, code, None, &why),
        };
        if req.op == "auth" {
            return self.auth(ws, req.token.as_deref());
        }
        if self.pending.contains(&ws.id()) {
            return self.error(
                ws,
                Code::AuthRequired,
                None,
                "send {\"op\":\"auth\",\"token\":\"…\"} first",
            );
        }
        self.handle(ws, req);
    }

    fn on_close(&mut self, id: ConnId, _code: CloseCode, _reason: &str) {
        self.publishers.remove(&id);
        self.pending.remove(&id);
        self.versioned.remove(&id);
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
    gaps: Option<bool>,
    token: Option<String>,
}

/// The ops a client may send.
const OPS: [&str; 4] = ["subscribe", "unsubscribe", "publish", "auth"];

/// A request, or what was wrong with it ([`diagnose`]). A well-formed one,
/// the common case, is parsed once, straight into its fields.
fn parse(text: &str) -> Result<FeedRequest, (Code, String)> {
    // (serde would also take a JSON array for the struct: only an object
    // goes this way.)
    if text.trim_start().starts_with('{') {
        if let Ok(req) = serde_json::from_str::<FeedRequest>(text) {
            if OPS.contains(&req.op.as_str()) {
                return Ok(req);
            }
        }
    }
    diagnose(text)
}

/// What is wrong with a request, said so that the sender knows what to
/// write instead: not JSON, not an object, no `op` or one this server does
/// not know, a field of the wrong type (named); or the request, should a
/// second look find nothing wrong (an object with a key given twice).
fn diagnose(text: &str) -> Result<FeedRequest, (Code, String)> {
    const LIKE: &str = r#"like {"op":"subscribe","topic":"ticks"}"#;
    let bad = |why: String| Err((Code::BadRequest, why));
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return bad(format!("not JSON ({e}): send an object {LIKE}")),
    };
    let Some(fields) = v.as_object() else {
        return bad(format!("expected a JSON object {LIKE}, not {}", kind(&v)));
    };
    match fields.get("op") {
        None => return bad(format!("missing \"op\": {}", OPS.join(", "))),
        Some(Value::String(op)) if !OPS.contains(&op.as_str()) => {
            let why = format!("unknown op {op:?}: expected {}", OPS.join(", "));
            return Err((Code::UnknownOp, why));
        }
        Some(Value::String(_)) => {}
        Some(other) => return bad(format!("\"op\" must be a string, not {}", kind(other))),
    }
    /// A field, the check of its type, and what that type is called.
    type Want = (&'static str, fn(&Value) -> bool, &'static str);
    let wants: [Want; 7] = [
        ("topic", Value::is_string, "a string"),
        ("key", Value::is_string, "a string"),
        ("token", Value::is_string, "a string"),
        ("snapshot", Value::is_boolean, "true or false"),
        ("meta", Value::is_boolean, "true or false"),
        ("gaps", Value::is_boolean, "true or false"),
        (
            "since",
            Value::is_object,
            r#"an object {"epoch":"…","offset":N}"#,
        ),
    ];
    for (name, ok, what) in wants {
        match fields.get(name) {
            Some(f) if !ok(f) && !f.is_null() => {
                return bad(format!("\"{name}\" must be {what}, not {}", kind(f)));
            }
            _ => {}
        }
    }
    serde_json::from_value(v).or_else(|e| bad(format!("bad request: {e}")))
}

/// What kind of JSON value `v` is, for an error message.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[derive(Deserialize)]
struct Since {
    epoch: String,
    offset: u64,
}

/// Subscribe with the request's options (gap notices by default for a
/// client that named the version) and answer `subscribed`.
fn subscribe(ws: &mut Ws<'_>, topic: &str, req: &FeedRequest, versioned: bool) {
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
        gaps: req.gaps.unwrap_or(versioned),
    };
    // Whether it tried to recover: `recovered: false` then means the
    // position was lost (take a snapshot), not a fresh subscription. A
    // repeated subscribe changes nothing and recovers nothing.
    let asked = req.since.is_some();
    match ws.subscribe_with(topic, &opts) {
        Ok(s) => {
            let mut v = json!({"event": "subscribed", "topic": topic});
            if let Some(p) = s.position {
                v["epoch"] = p.epoch_str().into();
                v["offset"] = p.offset.into();
                v["recovered"] = s.recovered.into();
            }
            if versioned {
                v["was_recovering"] = (asked && s.new).into();
            }
            reply(ws, v)
        }
        Err(e) => {
            let code = match e {
                SubscribeError::BadTopic => Code::BadTopic,
                SubscribeError::TooMany => Code::TooManySubscriptions,
                SubscribeError::Closing => Code::Closing,
            };
            let why = format!("cannot subscribe to {topic:?}: {e}");
            error_to(ws, versioned, code, Some(topic), &why)
        }
    }
}

/// What went wrong, as a client acts on it (the `code` of an error
/// event; docs/feed-protocol.md lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    /// Not JSON, not an object, or a field missing or of the wrong type.
    BadRequest,
    /// An `op` this server does not know.
    UnknownOp,
    /// A topic name that is not valid.
    BadTopic,
    /// The token's claims (or the application) do not allow this topic.
    NotEntitled,
    /// The connection already holds as many subscriptions as it may.
    TooManySubscriptions,
    /// The connection is closing.
    Closing,
    /// The connection opened without a token and must send one first.
    AuthRequired,
    /// The token sent in band was refused.
    TokenRefused,
    /// An in-band token on a server that does not verify tokens.
    AuthUnavailable,
}

impl Code {
    fn as_str(self) -> &'static str {
        match self {
            Code::BadRequest => "bad_request",
            Code::UnknownOp => "unknown_op",
            Code::BadTopic => "bad_topic",
            Code::NotEntitled => "not_entitled",
            Code::TooManySubscriptions => "too_many_subscriptions",
            Code::Closing => "closing",
            Code::AuthRequired => "auth_required",
            Code::TokenRefused => "token_refused",
            Code::AuthUnavailable => "auth_unavailable",
        }
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

/// An error event: its `code` (what a client acts on), the topic it
/// concerns if any, and a message for people.
/// (`code` only for a client that named the version: one written before
/// 1.0 gets the answers it was written against.)
fn error_to(ws: &mut Ws<'_>, v1: bool, code: Code, topic: Option<&str>, msg: &str) {
    let mut v = json!({"event": "error", "error": msg});
    if v1 {
        v["code"] = code.as_str().into();
    }
    if let Some(t) = topic {
        v["topic"] = t.into();
    }
    reply(ws, v);
}

impl Feed {
    /// Answer an error (see [`error_to`]).
    fn error(&self, ws: &mut Ws<'_>, code: Code, topic: Option<&str>, msg: &str) {
        let v1 = self.versioned.contains(&ws.id());
        error_to(ws, v1, code, topic, msg);
    }

    /// Handle one message from a `/feed` client, with the rights its token
    /// (its identity) and the publish rule give it.
    fn handle(&self, ws: &mut Ws<'_>, req: FeedRequest) {
        let Some(topic) = req.topic.as_deref() else {
            return self.error(ws, Code::BadRequest, None, "missing \"topic\"");
        };
        match req.op.as_str() {
            "subscribe" => match self.access.may_subscribe(ws.identity(), topic) {
                Ok(()) => subscribe(ws, topic, &req, self.versioned.contains(&ws.id())),
                Err(why) => self.error(ws, Code::NotEntitled, Some(topic), &why),
            },
            "unsubscribe" => {
                ws.unsubscribe(topic);
                reply(ws, json!({"event": "unsubscribed", "topic": topic}));
            }
            "publish" => {
                let by_rule = self.publishers.contains(&ws.id());
                if !Access::may_publish(by_rule, ws.identity(), topic) {
                    return self.error(
                        ws,
                        Code::NotEntitled,
                        Some(topic),
                        "publishing is not allowed: the server needs \
                         --allow-client-publish, a connection with ?token=… matching \
                         --publish-token, or a token whose topics.publish lists the topic",
                    );
                }
                if !valid_topic(topic) {
                    return self.error(
                        ws,
                        Code::BadTopic,
                        Some(topic),
                        &format!("bad topic {topic:?}"),
                    );
                }
                let data = match req.data {
                    Some(Value::String(s)) => s,
                    Some(v) => v.to_string(),
                    None => {
                        return self.error(ws, Code::BadRequest, Some(topic), "missing \"data\"")
                    }
                };
                ws.publish_keyed(
                    topic,
                    req.key.as_deref(),
                    MessageKind::Text,
                    data.as_bytes(),
                );
            }
            other => self.error(
                ws,
                Code::UnknownOp,
                None,
                &format!("unknown op {other:?}: expected subscribe, unsubscribe, publish or auth"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{diagnose, parse};

    /// The one-pass parse of a well-formed request and the diagnosing one
    /// give the same answer, for requests and for mistakes alike.
    #[test]
    fn parsing_once_answers_as_the_diagnosis_does() {
        for text in [
            r#"{"op":"subscribe","topic":"t","since":{"epoch":"e","offset":3},"gaps":true}"#,
            r#"  {"op":"publish","topic":"t","key":"k","data":{"x":1}}"#,
            r#"{"op":"auth","token":"abc"}"#,
            r#"{"op":"unsubscribe","topic":"t","topic":"u"}"#,
            r#"{"op":"subscribe","topic":"t","snapshot":null}"#,
            r#"{"op":"dance","topic":"t"}"#,
            r#"["subscribe","t",null,null,null,false,false,null,null]"#,
            r#"{"op":"subscribe","topic":5}"#,
            "not json",
        ] {
            let once = parse(text).map(|r| (r.op, r.topic));
            let diagnosed = diagnose(text).map(|r| (r.op, r.topic));
            assert_eq!(once, diagnosed, "{text}");
        }
    }
}
