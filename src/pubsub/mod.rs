//! Publish/subscribe as data: publications framed once and shared by
//! reference, the slow-consumer [`Policy`], each subscriber's queue and each
//! worker's topic table. This layer knows nothing of the runtime: workers,
//! mailboxes and sockets use it, never the other way round.
//!
//! A publish builds one [`Publication`]: the WebSocket frame (header and
//! payload) is encoded once, and the Server-Sent Events form is built once on
//! first use. Every subscriber's queue holds an `Arc` to it, on its own worker
//! and on the others, which receive it through their mailboxes. A subscriber
//! sees a topic's publications in the order they were published from any one
//! publisher; on a topic with history ([`history`]) in offset order, the same
//! on every worker.

#![forbid(unsafe_code)]

pub mod history;
mod queue;
mod topics;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::proto::ws::frame::encode_frame;
use crate::proto::{MessageKind, OpCode};

pub use history::{HistoryConfig, Position, Retention};
pub(crate) use queue::Subscriber;
pub(crate) use topics::Topics;
pub use topics::{SubscribeOptions, Subscribed};

/// Most topics one connection may subscribe to.
pub const MAX_SUBSCRIPTIONS: usize = 1024;
/// Longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;

/// What to do with a subscriber whose unsent bytes passed its limit
/// (the server's `max_buffered`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Close it with 1008 (policy violation) and count it.
    Close,
    /// Skip publications for it while it is over the limit, and count them.
    Drop,
    /// Keep only the newest publication per topic (per topic and key, for
    /// keyed publishes) while it is over the limit; send those when it drains,
    /// so a slow client catches up to the latest value.
    Conflate,
}

impl Policy {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Close => "close",
            Policy::Drop => "drop",
            Policy::Conflate => "conflate",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "close" => Ok(Policy::Close),
            "drop" => Ok(Policy::Drop),
            "conflate" => Ok(Policy::Conflate),
            _ => Err(format!(
                "unknown slow-consumer policy {s:?}: expected close, drop or conflate"
            )),
        }
    }
}

/// One published message, framed once for every subscriber.
pub struct Publication {
    topic: Arc<str>,
    key: Option<Box<str>>,
    kind: MessageKind,
    frame: Box<[u8]>,
    header_len: usize,
    sse: OnceLock<Box<[u8]>>,
    /// Several publications' frames back to back ([`Publication::run`]).
    run: bool,
    /// How many publications it carries: 1, or a run's length.
    carries: u32,
    /// Its topic's offset, on a topic with history.
    position: OnceLock<Position>,
    /// The offset was given by a broker (JetStream), not by this node: one
    /// source hands them over in order, and a jump is a gap for good.
    relayed: AtomicBool,
    /// The same with its position in the message ([`Publication::meta`]):
    /// as live, and as a snapshot.
    meta: [OnceLock<Arc<Publication>>; 2],
    /// When it first reached a worker (that worker's clock), for the
    /// delivery lag ([`Publication::arrived`]).
    arrived: OnceLock<Instant>,
}

impl fmt::Debug for Publication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publication")
            .field("topic", &self.topic)
            .field("key", &self.key)
            .field("kind", &self.kind)
            .field("len", &self.payload().len())
            .finish()
    }
}

impl Publication {
    /// Frame `payload` for `topic`. `key`, if given, narrows conflation to
    /// publications with the same topic and key (a symbol on a ticks topic).
    pub fn new(topic: &str, key: Option<&str>, kind: MessageKind, payload: &[u8]) -> Arc<Self> {
        let op = match kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        let mut frame = Vec::with_capacity(payload.len() + 10);
        encode_frame(&mut frame, op, true, false, None, payload);
        let header_len = frame.len() - payload.len();
        Arc::new(Publication {
            topic: Arc::from(topic),
            key: key.map(Box::from),
            kind,
            frame: frame.into_boxed_slice(),
            header_len,
            sse: OnceLock::new(),
            run: false,
            carries: 1,
            position: OnceLock::new(),
            relayed: AtomicBool::new(false),
            meta: Default::default(),
            arrived: OnceLock::new(),
        })
    }

    /// A worker's run of publications on one topic, framed back to back in
    /// one buffer, so it can be queued to each WebSocket subscriber with room
    /// for all of them as one entry: one reference and one send part per
    /// subscriber instead of one per publication. Internal to the workers'
    /// queues: never queued to an SSE stream, never handed to handlers.
    pub(crate) fn run(run: &[Arc<Publication>]) -> Arc<Self> {
        let mut frame = Vec::with_capacity(run.iter().map(|p| p.frame.len()).sum());
        for p in run {
            frame.extend_from_slice(&p.frame);
        }
        let arrived = run.iter().filter_map(|p| p.arrived()).min();
        Arc::new(Publication {
            topic: run
                .first()
                .map_or_else(|| Arc::from(""), |p| p.topic.clone()),
            key: None,
            kind: run.first().map_or(MessageKind::Binary, |p| p.kind),
            frame: frame.into_boxed_slice(),
            header_len: 0,
            sse: OnceLock::new(),
            run: true,
            carries: u32::try_from(run.len()).unwrap_or(u32::MAX),
            position: OnceLock::new(),
            relayed: AtomicBool::new(false),
            meta: Default::default(),
            arrived: arrived.map_or_else(OnceLock::new, OnceLock::from),
        })
    }

    /// Mark it as reached by a worker at `now`: the first worker's mark
    /// stays (a publication forwarded to others keeps its first arrival,
    /// so the cross-worker hop counts in its lag).
    pub(crate) fn arrive(&self, now: Instant) {
        let _ = self.arrived.set(now);
    }

    /// How many publications it carries (a run: its length; else 1).
    pub(crate) fn carries(&self) -> u32 {
        self.carries
    }

    /// When it first reached a worker, if it has (a run: its oldest
    /// member's; a gap notice: never).
    pub(crate) fn arrived(&self) -> Option<Instant> {
        self.arrived.get().copied()
    }

    /// Its offset on a topic with history (set when it is published).
    pub fn position(&self) -> Option<Position> {
        self.position.get().copied()
    }

    pub(crate) fn set_position(&self, pos: Position) {
        let _ = self.position.set(pos);
    }

    /// Its position as a broker numbered it (see [`Publication::relayed`]).
    pub(crate) fn set_relayed_position(&self, pos: Position) {
        self.relayed.store(true, Ordering::Relaxed);
        let _ = self.position.set(pos);
    }

    /// Whether its offset came from a broker: offsets reach each worker in
    /// order from one source, so one that skips ahead marks a gap (the
    /// broker no longer had what lay between), not one still on its way.
    pub fn relayed(&self) -> bool {
        self.relayed.load(Ordering::Relaxed)
    }

    /// The form a subscriber that asked for positions gets, built once: a
    /// text publication as a JSON envelope,
    /// `{"topic":…,"epoch":…,"offset":…,"key":…,"snapshot":true,"data":"…"}`
    /// (`key` when keyed, `snapshot` when sent as one, `data` the text
    /// itself); a binary one as its offset (8 bytes, big-endian), a flags
    /// byte (1: snapshot) and the payload.
    pub fn meta(&self, snapshot: bool) -> Arc<Publication> {
        self.meta[usize::from(snapshot)]
            .get_or_init(|| {
                let pos = self.position().unwrap_or(Position {
                    epoch: 0,
                    offset: 0,
                });
                let payload = match self.kind {
                    MessageKind::Text => {
                        let mut env = serde_json::Map::new();
                        env.insert("topic".into(), self.topic().into());
                        env.insert("epoch".into(), pos.epoch_str().into());
                        env.insert("offset".into(), pos.offset.into());
                        if let Some(k) = self.key() {
                            env.insert("key".into(), k.into());
                        }
                        if snapshot {
                            env.insert("snapshot".into(), true.into());
                        }
                        let text = String::from_utf8_lossy(self.payload());
                        env.insert("data".into(), text.into());
                        serde_json::Value::Object(env).to_string().into_bytes()
                    }
                    MessageKind::Binary => {
                        let mut b = Vec::with_capacity(self.payload().len() + 9);
                        b.extend_from_slice(&pos.offset.to_be_bytes());
                        b.push(u8::from(snapshot));
                        b.extend_from_slice(self.payload());
                        b
                    }
                };
                let twin = Publication::new(self.topic(), self.key(), self.kind, &payload);
                twin.set_position(pos);
                if let Some(at) = self.arrived() {
                    twin.arrive(at);
                }
                twin
            })
            .clone()
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The topic, shared.
    pub(crate) fn topic_name(&self) -> &Arc<str> {
        &self.topic
    }

    /// The notice of `gap` a subscriber gets ahead of its next publication
    /// on the topic: `{"event":"gap","topic":…,"dropped":N,"from":F,"to":T}`
    /// (`from`, `to`: the first and last offsets skipped, on a topic with
    /// history) as a text message, or as an event stream's
    /// `event: gap` with that data.
    pub(crate) fn gap(gap: &queue::Gap) -> Arc<Publication> {
        let mut v = serde_json::json!({"event": "gap", "topic": &*gap.topic,
                                        "dropped": gap.dropped});
        if let (Some(from), Some(to)) = (gap.from, gap.to) {
            v["from"] = from.into();
            v["to"] = to.into();
        }
        let text = v.to_string();
        let p = Publication::new(&gap.topic, None, MessageKind::Text, text.as_bytes());
        let _ = p
            .sse
            .set(format!("event: gap\ndata: {text}\n\n").into_bytes().into());
        p
    }

    /// The conflation key, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Text or binary.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// The message as published.
    pub fn payload(&self) -> &[u8] {
        &self.frame[self.header_len..]
    }

    /// The whole WebSocket frame (server to client: unmasked, uncompressed,
    /// which is valid whether or not permessage-deflate was negotiated).
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    /// The Server-Sent Events form: `data:` lines (binary payloads in base64,
    /// announced with `event: binary`), and `id: EPOCH:OFFSET` on a topic
    /// with history; built on first use.
    pub fn sse(&self) -> &[u8] {
        self.sse
            .get_or_init(|| sse_event(self.kind, self.position(), self.payload()))
    }

    /// Whether `other` replaces `self` under conflation.
    pub(crate) fn same_slot(&self, other: &Publication) -> bool {
        self.topic == other.topic && self.key == other.key
    }

    /// Bytes of the publication as a subscriber of the given kind receives it.
    pub(crate) fn bytes(&self, sse: bool) -> &[u8] {
        debug_assert!(!(sse && self.run), "a run of frames is never queued to SSE");
        if sse {
            self.sse()
        } else {
            self.frame()
        }
    }
}

fn sse_event(kind: MessageKind, position: Option<Position>, payload: &[u8]) -> Box<[u8]> {
    use base64::Engine as _;
    let mut out = Vec::with_capacity(payload.len() + 16);
    if let Some(p) = position {
        out.extend_from_slice(format!("id: {p}\n").as_bytes());
    }
    let text;
    let body = match (kind, std::str::from_utf8(payload)) {
        (MessageKind::Text, Ok(t)) => t,
        _ => {
            out.extend_from_slice(b"event: binary\n");
            text = base64::engine::general_purpose::STANDARD.encode(payload);
            &text
        }
    };
    // A line break in the payload starts a new `data:` line; the client joins
    // them with "\n" again.
    for line in body.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.into_boxed_slice()
}

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeError {
    /// Empty, longer than [`MAX_TOPIC_LEN`], or holding control characters.
    BadTopic,
    /// The connection already holds [`MAX_SUBSCRIPTIONS`].
    TooMany,
    /// The connection is closing.
    Closing,
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubscribeError::BadTopic => write!(
                f,
                "a topic is 1 to {MAX_TOPIC_LEN} bytes without control characters"
            ),
            SubscribeError::TooMany => {
                write!(
                    f,
                    "at most {MAX_SUBSCRIPTIONS} subscriptions per connection"
                )
            }
            SubscribeError::Closing => f.write_str("the connection is closing"),
        }
    }
}

impl std::error::Error for SubscribeError {}

/// Whether `topic` is a valid topic name.
pub fn valid_topic(topic: &str) -> bool {
    !topic.is_empty() && topic.len() <= MAX_TOPIC_LEN && !topic.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framed_once_with_payload_inside() {
        let p = Publication::new("t", Some("k"), MessageKind::Text, b"hello");
        assert_eq!(p.frame(), b"\x81\x05hello");
        assert_eq!(p.payload(), b"hello");
        let big = Publication::new("t", None, MessageKind::Binary, &[7u8; 300]);
        assert_eq!(&big.frame()[..4], &[0x82, 126, 1, 44]);
        assert_eq!(big.payload().len(), 300);
    }

    #[test]
    fn a_gap_notice_is_json_on_websocket_and_a_gap_event_on_sse() {
        let gap = queue::Gap {
            topic: Arc::from("ticks"),
            dropped: 3,
            from: Some(7),
            to: Some(9),
        };
        let p = Publication::gap(&gap);
        let json = r#"{"dropped":3,"event":"gap","from":7,"to":9,"topic":"ticks"}"#;
        assert_eq!(p.payload(), json.as_bytes());
        assert_eq!(p.sse(), format!("event: gap\ndata: {json}\n\n").as_bytes());
        let no_history = queue::Gap {
            from: None,
            to: None,
            ..gap
        };
        let p = Publication::gap(&no_history);
        assert_eq!(
            p.payload(),
            br#"{"dropped":3,"event":"gap","topic":"ticks"}"#
        );
    }

    #[test]
    fn sse_form_splits_lines_and_encodes_binary() {
        let p = Publication::new("t", None, MessageKind::Text, b"a\nb\r\nc");
        assert_eq!(p.sse(), b"data: a\ndata: b\ndata: c\n\n");
        let b = Publication::new("t", None, MessageKind::Binary, &[0, 1, 2]);
        assert_eq!(b.sse(), b"event: binary\ndata: AAEC\n\n");
    }

    #[test]
    fn positions_show_in_the_sse_id_and_the_meta_forms() {
        let p = Publication::new("t", Some("k"), MessageKind::Text, b"say \"hi\"");
        let pos = Position {
            epoch: 0xab,
            offset: 7,
        };
        p.set_position(pos);
        assert_eq!(p.sse(), b"id: 000000ab:7\ndata: say \"hi\"\n\n");
        let m = p.meta(false);
        let v: serde_json::Value = serde_json::from_slice(m.payload()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"topic": "t", "epoch": "000000ab", "offset": 7, "key": "k", "data": "say \"hi\""})
        );
        assert!(Arc::ptr_eq(&m, &p.meta(false)), "built once");
        let s: serde_json::Value = serde_json::from_slice(p.meta(true).payload()).unwrap();
        assert_eq!(s["snapshot"], true);
        let b = Publication::new("t", None, MessageKind::Binary, &[9, 9]);
        b.set_position(pos);
        assert_eq!(b.meta(true).payload(), &[0, 0, 0, 0, 0, 0, 0, 7, 1, 9, 9]);
        assert_eq!(b.meta(true).kind(), MessageKind::Binary);
    }

    #[test]
    fn conflation_slots() {
        let a = Publication::new("t", Some("x"), MessageKind::Text, b"1");
        let b = Publication::new("t", Some("x"), MessageKind::Text, b"2");
        let c = Publication::new("t", Some("y"), MessageKind::Text, b"3");
        let d = Publication::new("u", Some("x"), MessageKind::Text, b"4");
        assert!(a.same_slot(&b));
        assert!(!a.same_slot(&c));
        assert!(!a.same_slot(&d));
    }

    #[test]
    fn policy_names_round_trip() {
        for p in [Policy::Close, Policy::Drop, Policy::Conflate] {
            assert_eq!(p.name().parse::<Policy>(), Ok(p));
        }
        assert!("slow".parse::<Policy>().is_err());
    }
}
