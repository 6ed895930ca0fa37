//! The POST body session of `Route::Publish`: read `Content-Length` bytes,
//! then publish them and answer 202.

use std::sync::Arc;

use crate::proto::MessageKind;
use crate::pubsub::Publication;

use super::super::app::Response;

/// Reading the body of a publish request.
pub(in crate::runtime) struct PostBody {
    topic: String,
    key: Option<String>,
    want: usize,
    body: Vec<u8>,
}

impl PostBody {
    /// A body of `want` bytes for `topic`.
    pub(in crate::runtime) fn new(topic: String, key: Option<String>, want: usize) -> PostBody {
        PostBody {
            topic,
            key,
            want,
            body: Vec::with_capacity(want),
        }
    }

    /// Take bytes (those past the body are ignored); true once it is whole.
    pub(in crate::runtime) fn take(&mut self, data: &[u8]) -> bool {
        let take = data.len().min(self.want - self.body.len());
        self.body.extend_from_slice(&data[..take]);
        self.body.len() == self.want
    }

    /// The publication: text if the body is UTF-8, binary otherwise.
    pub(in crate::runtime) fn publication(&self) -> Arc<Publication> {
        let kind = if std::str::from_utf8(&self.body).is_ok() {
            MessageKind::Text
        } else {
            MessageKind::Binary
        };
        Publication::new(&self.topic, self.key.as_deref(), kind, &self.body)
    }

    /// The answer once published.
    pub(in crate::runtime) fn published() -> Response {
        Response::text(202, "published\n")
    }
}
