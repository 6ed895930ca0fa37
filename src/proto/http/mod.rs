//! HTTP/1.1 as the server speaks it, sans-IO: request heads
//! ([`request`]) and typed responses ([`response`]), and the error that
//! answers a request the server cannot take ([`HttpError`]).

pub mod request;
pub mod response;

use std::fmt;

pub use request::{same_secret, HttpRequest, Parsed, RequestParser};
pub use response::{reason_phrase, Response, TEXT_PLAIN};

/// Why a request head cannot be served, as the HTTP error that answers it:
/// a malformed head or WebSocket handshake (400), another WebSocket version
/// (426), a head too large (431). A valid request that the server refuses
/// (401, 403, 503) is not an `HttpError`: it is answered with a
/// [`Response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// HTTP status: 400 (malformed), 426 (another version) or 431 (head too
    /// large).
    pub status: u16,
    /// What was wrong, for the response body and the logs.
    pub reason: String,
}

impl HttpError {
    /// A 400 Bad Request for `reason`.
    pub fn bad(reason: impl Into<String>) -> Self {
        HttpError {
            status: 400,
            reason: reason.into(),
        }
    }

    /// A 431 for a head over `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        HttpError {
            status: 431,
            reason: format!("request head exceeds {limit} bytes"),
        }
    }

    /// The response for this error; the connection is closed after it.
    pub fn response(&self) -> Response {
        let r = Response::text(self.status, format!("{}\n", self.reason));
        if self.status == 426 {
            r.header("Sec-WebSocket-Version", "13")
                .header("Upgrade", "websocket")
        } else {
            r
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status,
            reason_phrase(self.status),
            self.reason
        )
    }
}

impl std::error::Error for HttpError {}
