//! A publication's kind and conflation key as NATS message headers, both
//! ways: what the bridge sends with each publication and how a message from
//! NATS (core or JetStream) is read back.

use async_nats::HeaderMap;

use super::{add, subject, Counts};
use crate::proto::MessageKind;
use crate::pubsub::Publication;

/// The header that says `binary` for a binary message (absent: text).
const KIND: &str = "Ringwave-Kind";
/// The header that carries a conflation key (encoded as a subject token).
const KEY: &str = "Ringwave-Key";

/// The headers that carry `p`'s kind and key.
pub(super) fn encode(p: &Publication) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if p.kind() == MessageKind::Binary {
        headers.insert(KIND, "binary");
    }
    if let Some(k) = p.key() {
        headers.insert(KEY, subject::encode(k));
    }
    headers
}

/// A message's kind and key, from its headers; `None` (counted) for one
/// that cannot be delivered (an unknown kind, text that is not UTF-8).
pub(super) fn decode(
    m: &async_nats::Message,
    counts: &Counts,
) -> Option<(MessageKind, Option<String>)> {
    let header = |name: &str| {
        m.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    let kind = match header(KIND).as_deref() {
        None | Some("text") => MessageKind::Text,
        Some("binary") => MessageKind::Binary,
        Some(_) => {
            add(&counts.received_invalid);
            return None;
        }
    };
    if kind == MessageKind::Text && simdutf8::basic::from_utf8(&m.payload).is_err() {
        add(&counts.received_invalid);
        return None;
    }
    let key = header(KEY).map(|k| subject::decode(&k).unwrap_or(k));
    Some((kind, key))
}
