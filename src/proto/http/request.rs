//! HTTP/1.1 request heads (RFC 9112 §2-§5): the incremental parser, bounded
//! by [`Limits::max_handshake_bytes`](crate::proto::Limits) (431 past it),
//! and the parsed head with its header and query lookups.
//!
//! Requests may arrive a byte at a time: [`RequestParser`] keeps the bytes
//! until the head is complete.

use super::HttpError;
use crate::proto::Limits;

/// Most header lines a request may have.
pub(crate) const MAX_HEADERS: usize = 64;

/// A parsed HTTP/1.x request head (upgrade or not: the server also serves
/// plain routes on the same port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method, as sent.
    pub method: String,
    /// Request target (path and query).
    pub path: String,
    /// Minor HTTP version: 0 or 1.
    pub minor_version: u8,
    /// Header names and values in order; names as sent.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl HttpRequest {
    /// The decoded value of query parameter `name` in the request target.
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.path.split_once('?')?.1;
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| {
                percent_encoding::percent_decode_str(&v.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            })
        })
    }

    /// Whether the request carries `token`, as `Authorization: Bearer
    /// <token>` or as the query parameter `token` (for browsers, which cannot
    /// set headers on a WebSocket). Compared in constant time.
    pub fn presents_token(&self, token: &str) -> bool {
        let bearer = self
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| same_secret(t.trim(), token));
        bearer || self.query("token").is_some_and(|t| same_secret(&t, token))
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The single value of header `name` as text, if present exactly once and
    /// valid UTF-8.
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        let mut it = self.header_values(name);
        let v = it.next()?;
        if it.next().is_some() {
            return None;
        }
        std::str::from_utf8(v).ok().map(str::trim)
    }

    /// Whether any comma-separated element of any `name` header equals `token`
    /// (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_values(name)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether this request asks for a WebSocket upgrade at all (an `Upgrade`
    /// header naming `websocket`). Requests without it are plain HTTP.
    pub fn wants_websocket(&self) -> bool {
        self.has_token("upgrade", "websocket")
    }
}

/// Incremental request parser: feed bytes until it returns a request.
#[derive(Debug)]
pub struct RequestParser {
    buf: Vec<u8>,
    /// Bytes already searched for the blank line.
    scanned: usize,
    limit: usize,
}

/// A complete request head and the bytes that followed it.
#[derive(Debug)]
pub struct Parsed {
    /// The request.
    pub request: HttpRequest,
    /// Bytes received after the head (early frames); process them after the
    /// upgrade.
    pub rest: Vec<u8>,
}

impl RequestParser {
    /// A parser bounded by `limits.max_handshake_bytes`.
    pub fn new(limits: &Limits) -> Self {
        RequestParser {
            buf: Vec::new(),
            scanned: 0,
            limit: limits.max_handshake_bytes,
        }
    }

    /// Bytes held so far.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Add received bytes. `Ok(None)`: need more; `Ok(Some)`: the head is
    /// complete; `Err`: answer with the error's response and close.
    pub fn read(&mut self, data: &[u8]) -> Result<Option<Parsed>, HttpError> {
        self.buf.extend_from_slice(data);
        let from = self.scanned.saturating_sub(3);
        let Some(end) = find_head_end(&self.buf[from..]).map(|i| from + i) else {
            self.scanned = self.buf.len();
            if self.buf.len() > self.limit {
                return Err(HttpError::too_large(self.limit));
            }
            return Ok(None);
        };
        if end > self.limit {
            return Err(HttpError::too_large(self.limit));
        }
        let request = parse_head(&self.buf[..end])?;
        let rest = self.buf.split_off(end);
        self.buf.clear();
        self.scanned = 0;
        Ok(Some(Parsed { request, rest }))
    }
}

/// Index just past the first `\r\n\r\n`.
pub(crate) fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn parse_head(head: &[u8]) -> Result<HttpRequest, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HttpError::bad("incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError {
                status: 431,
                reason: format!("more than {MAX_HEADERS} header fields"),
            })
        }
        Err(e) => return Err(HttpError::bad(format!("malformed HTTP request: {e}"))),
    }
    Ok(HttpRequest {
        method: req.method.unwrap_or_default().to_string(),
        path: req.path.unwrap_or_default().to_string(),
        minor_version: req.version.unwrap_or_default(),
        headers: req
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect(),
    })
}

/// Equality whose time does not depend on where two equal-length secrets
/// differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}
