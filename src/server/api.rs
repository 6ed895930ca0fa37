//! The server API under `/api/`, for a backend rather than a browser: where
//! a topic stands, its history from a position, a batch of publications in
//! one request, and disconnecting every WebSocket of a token's subject.
//! Every answer is JSON; every call needs `Authorization: Bearer
//! <api_token>` ([`Config::api_token`]); without a token configured the API
//! is off (404). docs/feed-protocol.md ("Server API") is the reference.
//!
//! Arguments are query parameters, not path segments: a topic may hold a
//! `/`.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::proto::http::{same_secret, HttpRequest};
use crate::pubsub::{valid_topic, Position, Publication};
use crate::runtime::app::{Batch, BatchParts, RequestCx, Response, Route};

use super::Config;

/// Publications one history read returns at most (`limit`).
pub const MAX_READ: usize = 1000;
/// Publications one batch may hold.
pub const MAX_BATCH: usize = 10_000;

/// A JSON answer: the value, then a newline.
fn json_response(status: u16, v: Value) -> Response {
    Response::with_body(status, "application/json", format!("{v}\n"))
}

fn json(status: u16, v: Value) -> Route {
    Route::Respond(json_response(status, v))
}

/// `{"error": why}`.
fn error_response(status: u16, why: &str) -> Response {
    json_response(status, json!({ "error": why }))
}

fn error(status: u16, why: &str) -> Route {
    Route::Respond(error_response(status, why))
}

/// Serve `/api/<call>` (`call` is the rest of the path).
pub(super) fn route(cfg: &Config, http: &HttpRequest, call: &str, cx: &RequestCx<'_>) -> Route {
    let Some(token) = cfg.api_token.as_deref() else {
        return error(
            404,
            "the server API is off: start the server with --api-token",
        );
    };
    if !http.bearer().is_some_and(|b| same_secret(b, token)) {
        let why = "send Authorization: Bearer <--api-token>";
        return Route::Respond(error_response(401, why).header("WWW-Authenticate", "Bearer"));
    }
    let post = http.method == "POST";
    match (call, post) {
        ("position", false) => position(http, cx),
        ("history", false) => history(http, cx),
        ("publish", true) => publish(cfg, http),
        ("disconnect", true) => disconnect(http, cx),
        ("position" | "history", true) | ("publish" | "disconnect", false) => error(
            405,
            "position and history take GET; publish and disconnect take POST",
        ),
        _ => error(
            404,
            "no such call: /api/position, /api/history, /api/publish, /api/disconnect",
        ),
    }
}

/// The `topic` query parameter, valid; else why not (answered 400).
fn topic(http: &HttpRequest) -> Result<String, &'static str> {
    match http.query("topic") {
        None => Err("topic=<name> is required"),
        Some(t) if !valid_topic(&t) => Err("bad topic: 1 to 256 bytes without control characters"),
        Some(t) => Ok(t),
    }
}

/// `GET /api/position?topic=T`: the topic's epoch and newest offset (null
/// without history) and its subscribers in this process.
fn position(http: &HttpRequest, cx: &RequestCx<'_>) -> Route {
    let topic = match topic(http) {
        Ok(t) => t,
        Err(why) => return error(400, why),
    };
    let read = cx
        .history()
        .and_then(|h| h.read(&topic, None, 0, std::time::Instant::now()));
    json(
        200,
        json!({
            "topic": topic,
            "epoch": read.as_ref().map(|r| r.position.epoch_str()),
            "offset": read.as_ref().map(|r| r.position.offset),
            "subscribers": cx.subscribers(&topic),
        }),
    )
}

/// `GET /api/history?topic=T[&since=EPOCH:OFFSET][&limit=N]`: up to `limit`
/// (default 100, at most [`MAX_READ`]) publications after `since` (from the
/// oldest kept without it, or when it is no longer covered: then
/// `recovered` is false).
fn history(http: &HttpRequest, cx: &RequestCx<'_>) -> Route {
    let topic = match topic(http) {
        Ok(t) => t,
        Err(why) => return error(400, why),
    };
    let since = match http.query("since") {
        None => None,
        Some(s) => match Position::parse_id(&s) {
            Some(p) => Some(p),
            None => return error(400, "since must be EPOCH:OFFSET, as in the envelopes"),
        },
    };
    let limit = match http.query("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=MAX_READ).contains(&n) => n,
        Some(_) => return error(400, "limit must be 1 to 1000"),
    };
    let now = std::time::Instant::now();
    let Some(read) = cx.history().and_then(|h| h.read(&topic, since, limit, now)) else {
        return error(404, "the topic keeps no history (--history)");
    };
    let publications: Vec<Value> = read.publications.iter().map(|p| envelope(p)).collect();
    json(
        200,
        json!({
            "topic": topic,
            "epoch": read.position.epoch_str(),
            "offset": read.position.offset,
            "recovered": read.recovered,
            "publications": publications,
        }),
    )
}

/// A publication as the feed's `meta` envelope; a binary one with its
/// bytes in `data_base64` instead of `data`.
fn envelope(p: &Publication) -> Value {
    let pos = p.position().unwrap_or(Position {
        epoch: 0,
        offset: 0,
    });
    let mut env = Map::new();
    env.insert("topic".into(), p.topic().into());
    env.insert("epoch".into(), pos.epoch_str().into());
    env.insert("offset".into(), pos.offset.into());
    if let Some(k) = p.key() {
        env.insert("key".into(), k.into());
    }
    match std::str::from_utf8(p.payload()) {
        Ok(text) if p.kind() == crate::proto::MessageKind::Text => {
            env.insert("data".into(), text.into());
        }
        _ => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(p.payload());
            env.insert("data_base64".into(), b64.into());
        }
    }
    Value::Object(env)
}

/// `POST /api/publish?topic=T`: a body of publications, one JSON value per
/// line (NDJSON), or a JSON array with `Content-Type: application/json`. A
/// string is published as its text, any other value as its JSON text.
fn publish(cfg: &Config, http: &HttpRequest) -> Route {
    let topic = match topic(http) {
        Ok(t) => t,
        Err(why) => return error(400, why),
    };
    if http.header_values("transfer-encoding").next().is_some() {
        return error(411, "send the body with Content-Length");
    }
    let len = match http.content_length() {
        Ok(Some(len)) => len,
        Ok(None) => return error(411, "Content-Length required"),
        Err(e) => return error(400, &e.reason),
    };
    let max = cfg.limits.max_message_size;
    if len > max {
        return error(
            413,
            &format!("body too large: {len} bytes, the limit is {max} (--max-message)"),
        );
    }
    let array = http.header("content-type").is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    Route::Publish {
        topic,
        key: None,
        len,
        continue_first: http.minor_version == 1 && http.has_token("expect", "100-continue"),
        batch: Some(Batch {
            split: if array { split_array } else { split_ndjson },
            answer: published,
        }),
    }
}

/// A value's publication: a string's text, or the value's JSON text.
fn text_of(v: Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.into_bytes(),
        v => v.to_string().into_bytes(),
    }
}

/// One JSON value per non-empty line; a body that is not is answered 400.
fn split_ndjson(body: &[u8]) -> BatchParts {
    ndjson(body).map_err(refused)
}

/// A JSON array of values; a body that is not is answered 400.
fn split_array(body: &[u8]) -> BatchParts {
    array(body).map_err(refused)
}

/// The answer to a body that is not a batch.
fn refused(why: String) -> Response {
    error_response(400, &why)
}

fn ndjson(body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for (n, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if out.len() == MAX_BATCH {
            return Err(format!("more than {MAX_BATCH} publications in one batch"));
        }
        let v: Value =
            serde_json::from_slice(line).map_err(|e| format!("line {}: not JSON: {e}", n + 1))?;
        out.push(text_of(v));
    }
    Ok(out)
}

fn array(body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Array(items) = v else {
        return Err("with Content-Type: application/json the body is an array".into());
    };
    if items.len() > MAX_BATCH {
        return Err(format!("more than {MAX_BATCH} publications in one batch"));
    }
    Ok(items.into_iter().map(text_of).collect())
}

/// The answer to a batch: how many, and on a topic with history the epoch
/// and the offsets of the first and the last.
fn published(topic: &str, count: usize, range: Option<(Position, Position)>) -> Response {
    let v = json!({
        "topic": topic,
        "count": count,
        "epoch": range.map(|r| r.0.epoch_str()),
        "first": range.map(|r| r.0.offset),
        "last": range.map(|r| r.1.offset),
    });
    json_response(200, v)
}

/// `POST /api/disconnect?sub=S`: close every WebSocket whose token names
/// `sub` (close code 4003), on every worker. Answered once every worker was
/// told (202): the closes follow at each one's next turn.
fn disconnect(http: &HttpRequest, cx: &RequestCx<'_>) -> Route {
    let Some(sub) = http.query("sub").filter(|s| !s.is_empty()) else {
        return error(400, "sub=<subject> is required");
    };
    let told = cx.disconnect(&sub);
    json(202, json!({ "sub": sub, "workers": told }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_lines_and_arrays_split_into_texts() {
        let body = b"\"plain text\"\n{\"px\":1.5}\r\n\n  \n42\n";
        assert_eq!(
            ndjson(body).unwrap(),
            [
                b"plain text".to_vec(),
                b"{\"px\":1.5}".to_vec(),
                b"42".to_vec()
            ]
        );
        assert_eq!(
            array(br#"["a", {"b": [1, 2]}, null]"#).unwrap(),
            [b"a".to_vec(), br#"{"b":[1,2]}"#.to_vec(), b"null".to_vec()]
        );
        let bad = ndjson(b"1\n{oops\n").unwrap_err();
        assert!(bad.starts_with("line 2: not JSON"), "{bad}");
        assert!(
            split_array(b"{\"a\":1}").is_err(),
            "an object is not a batch"
        );
    }

    #[test]
    fn a_batch_holds_at_most_max_batch_publications() {
        let body = "1\n".repeat(MAX_BATCH + 1);
        assert!(ndjson(body.as_bytes()).is_err());
        let array = format!("[{}1]", "1,".repeat(MAX_BATCH));
        assert!(super::array(array.as_bytes()).is_err());
        assert_eq!(
            ndjson("1\n".repeat(MAX_BATCH).as_bytes()).unwrap().len(),
            MAX_BATCH
        );
    }
}
