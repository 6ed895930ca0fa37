//! The POST body session of `Route::Publish`: read `Content-Length` bytes,
//! then publish them and answer 202.
//!
//! The body grows with what arrives, never with what was declared: a head
//! declaring 16 MiB costs nothing until the bytes come (and the handshake
//! timeout bounds how long they may take).

use std::sync::Arc;

use crate::proto::MessageKind;
use crate::pubsub::Publication;

use super::super::app::{Batch, Response};
use super::head::RequestHead;

/// Reading the body of a publish request.
pub(in crate::runtime) struct PostBody {
    topic: String,
    key: Option<String>,
    want: usize,
    body: Vec<u8>,
    /// An interim answer to send before the body (`100 Continue`), and how
    /// much of it went out.
    interim: &'static [u8],
    sent: usize,
    /// The request's head, to go back to for the connection's next request
    /// once this one is answered (HTTP/1.1 keep-alive); `None`: the answer
    /// closes.
    then: Option<Box<RequestHead>>,
    /// The body holds several publications.
    batch: Option<Batch>,
}

/// More body bytes than `Content-Length` declared.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::runtime) struct TooLong;

/// The interim answer to `Expect: 100-continue` (RFC 9110 §15.2.1).
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl PostBody {
    /// A body of `want` bytes for `topic`.
    pub(in crate::runtime) fn new(topic: String, key: Option<String>, want: usize) -> PostBody {
        PostBody {
            topic,
            key,
            want,
            body: Vec::new(),
            interim: &[],
            sent: 0,
            then: None,
            batch: None,
        }
    }

    /// The body holds several publications, split by `batch`.
    pub(in crate::runtime) fn batched(mut self, batch: Option<Batch>) -> PostBody {
        self.batch = batch;
        self
    }

    /// The publications of a batch, or why the body is not one; `None`
    /// for a body that is one publication.
    pub(in crate::runtime) fn parts(&self) -> Option<(Batch, Parts)> {
        let batch = self.batch?;
        let parts = (batch.split)(&self.body).map(|parts| {
            parts
                .iter()
                .map(|part| Publication::new(&self.topic, None, kind_of(part), part))
                .collect()
        });
        Some((batch, parts))
    }

    /// The topic.
    pub(in crate::runtime) fn topic(&self) -> &str {
        &self.topic
    }

    /// Keep the connection after the answer: its next request is read
    /// after `head`'s.
    pub(in crate::runtime) fn then(&mut self, head: Box<RequestHead>) {
        self.then = Some(head);
    }

    /// The head to go back to, once.
    pub(in crate::runtime) fn take_then(&mut self) -> Option<Box<RequestHead>> {
        self.then.take()
    }

    /// Ask for the body with `100 Continue` first.
    pub(in crate::runtime) fn continue_first(&mut self) {
        self.interim = CONTINUE;
    }

    /// The interim answer's unsent bytes.
    pub(in crate::runtime) fn output(&self) -> &[u8] {
        &self.interim[self.sent..]
    }

    pub(in crate::runtime) fn advance(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.interim.len());
    }

    /// Take bytes; true once the body is whole. Bytes past `Content-Length`
    /// are an error (HTTP/2, where a stream's DATA is its body); HTTP/1.1
    /// callers pass only what the body may hold ([`PostBody::room`]).
    pub(in crate::runtime) fn take(&mut self, data: &[u8]) -> Result<bool, TooLong> {
        if data.len() > self.room() {
            return Err(TooLong);
        }
        self.body.extend_from_slice(data);
        Ok(self.body.len() == self.want)
    }

    /// Bytes the body still lacks.
    pub(in crate::runtime) fn room(&self) -> usize {
        self.want - self.body.len()
    }

    /// The publication: text if the body is UTF-8, binary otherwise.
    pub(in crate::runtime) fn publication(&self) -> Arc<Publication> {
        Publication::new(
            &self.topic,
            self.key.as_deref(),
            kind_of(&self.body),
            &self.body,
        )
    }

    /// The answer once published.
    pub(in crate::runtime) fn published() -> Response {
        Response::text(202, "published\n")
    }
}

/// A batch's publications, or the answer to a body that is not one.
type Parts = Result<Vec<Arc<Publication>>, Response>;

/// Text when UTF-8, binary otherwise.
fn kind_of(bytes: &[u8]) -> MessageKind {
    if std::str::from_utf8(bytes).is_ok() {
        MessageKind::Text
    } else {
        MessageKind::Binary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_grows_with_what_arrives_not_with_what_was_declared() {
        let mut post = PostBody::new("t".into(), None, 16 << 20);
        assert_eq!(post.body.capacity(), 0);
        assert_eq!(post.take(b"abc"), Ok(false));
        assert!(post.body.capacity() < 1024, "{}", post.body.capacity());
        assert_eq!(post.room(), (16 << 20) - 3);
    }

    #[test]
    fn a_body_takes_exactly_its_length() {
        let mut post = PostBody::new("t".into(), None, 4);
        assert_eq!(post.take(b"te"), Ok(false));
        assert_eq!(post.take(b"stX"), Err(TooLong), "one byte too many");
        assert_eq!(post.take(b"st"), Ok(true));
        assert_eq!(post.take(b"!"), Err(TooLong));
        assert_eq!(&post.body, b"test");
    }

    #[test]
    fn continue_is_sent_once() {
        let mut post = PostBody::new("t".into(), None, 4);
        assert_eq!(post.output(), b"");
        post.continue_first();
        assert_eq!(post.output(), b"HTTP/1.1 100 Continue\r\n\r\n");
        post.advance(9);
        assert_eq!(post.output(), b"100 Continue\r\n\r\n");
        post.advance(100);
        assert_eq!(post.output(), b"");
    }
}
