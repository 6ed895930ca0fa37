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

    /// The token in `Authorization: Bearer <token>` (the scheme matched
    /// without regard to case, RFC 9110 §11.1).
    pub fn bearer(&self) -> Option<&str> {
        let v = self.header("authorization")?;
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }

    /// The tokens the request presents: its bearer token, then the query
    /// parameter `token` (for browsers, which cannot set headers on a
    /// WebSocket or an `EventSource`).
    pub fn tokens(&self) -> impl Iterator<Item = String> + '_ {
        self.bearer()
            .map(str::to_string)
            .into_iter()
            .chain(self.query("token").filter(|t| !t.is_empty()))
    }

    /// Whether the request carries `token`, as `Authorization: Bearer
    /// <token>` or as the query parameter `token`. Compared in constant time.
    pub fn presents_token(&self, token: &str) -> bool {
        self.tokens().any(|t| same_secret(&t, token))
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

    /// Whether the client keeps the connection for another request after
    /// this one's answer: an HTTP/1.1 request without `Connection: close`
    /// and without a body the answer could leave unread (RFC 9112 §9.3;
    /// HTTP/1.0 clients, which must ask for it, get a close). A request
    /// whose body is read to its end (a publish) persists by
    /// [`HttpRequest::persists_after_body`].
    pub fn persists(&self) -> bool {
        self.persists_after_body()
            && self.header_values("transfer-encoding").next().is_none()
            && matches!(self.content_length(), Ok(None | Some(0)))
    }

    /// Whether the client keeps the connection once the whole request,
    /// body included, is read: HTTP/1.1 without `Connection: close`.
    pub fn persists_after_body(&self) -> bool {
        self.minor_version == 1 && !self.has_token("connection", "close")
    }

    /// The body's length from `Content-Length` (RFC 9112 §6.2): `None`
    /// without one; an error (400) unless it is sent once, as 1*DIGIT
    /// without a sign, padding or leading zeros and within `usize`. A
    /// lenient reading here is one a proxy in front may not share.
    pub fn content_length(&self) -> Result<Option<usize>, HttpError> {
        let mut values = self.header_values("content-length");
        let Some(v) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(HttpError::bad("Content-Length sent more than once"));
        }
        let digits = !v.is_empty() && v.iter().all(u8::is_ascii_digit);
        let canonical = digits && (v[0] != b'0' || v.len() == 1);
        let len = std::str::from_utf8(v)
            .ok()
            .filter(|_| canonical)
            .and_then(|v| v.parse::<usize>().ok());
        match len {
            Some(len) => Ok(Some(len)),
            None => Err(HttpError::bad(
                "Content-Length must be a decimal number of bytes",
            )),
        }
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
    ///
    /// The head ends where httparse says it does, and nowhere else: a blank
    /// line (`\r\n\r\n`, or with bare LFs, which httparse accepts as RFC
    /// 9112 §2.2 allows) only prompts a parse. So the bytes taken as the
    /// body or the next request are exactly those the parser left.
    pub fn read(&mut self, data: &[u8]) -> Result<Option<Parsed>, HttpError> {
        self.buf.extend_from_slice(data);
        // RFC 9112 §2.2 asks a server to ignore one empty line before the
        // request line (httparse skips any number); more is not a request.
        // Decided on the first bytes alone, so no split of the input into
        // reads changes the outcome.
        if empty_lines_first(&self.buf) {
            return Err(HttpError::bad("empty lines instead of a request"));
        }
        // A request line starts with its method, a token: anything else
        // (a TLS ClientHello, binary bytes) is refused at its first byte
        // rather than held until the handshake timeout.
        if let Some(why) = not_a_request(&self.buf) {
            return Err(HttpError::bad(why));
        }
        let from = self.scanned.saturating_sub(2);
        let parsed = match blank_line(&self.buf[from..]) {
            // A head that ends past the limit is too large, whatever it
            // holds: as when its end has not come by then.
            Some(at) if from + at > self.limit => return Err(HttpError::too_large(self.limit)),
            Some(_) => parse_head(&self.buf)?,
            None => None,
        };
        let Some((request, end)) = parsed else {
            self.scanned = self.buf.len();
            if self.buf.len() > self.limit {
                return Err(HttpError::too_large(self.limit));
            }
            return Ok(None);
        };
        let rest = self.buf.split_off(end);
        self.buf.clear();
        self.scanned = 0;
        Ok(Some(Parsed { request, rest }))
    }
}

/// Whether `b` starts with two empty lines (CRLF or bare LF each).
/// Why the first byte after at most one empty line cannot start a request
/// line (RFC 9112 §3: the method, a token), if it cannot.
fn not_a_request(b: &[u8]) -> Option<&'static str> {
    let rest = b
        .strip_prefix(b"\r\n")
        .or_else(|| b.strip_prefix(b"\n"))
        .unwrap_or(b);
    match *rest.first()? {
        // A lone CR: its LF may follow.
        b'\r' if rest.len() == 1 => None,
        0x16 => Some("a TLS handshake on the plaintext port: TLS goes to the TLS listener"),
        c if c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c) => None,
        _ => Some("not an HTTP request"),
    }
}

fn empty_lines_first(b: &[u8]) -> bool {
    let rest = b.strip_prefix(b"\r\n").or_else(|| b.strip_prefix(b"\n"));
    rest.is_some_and(|r| r.starts_with(b"\n") || r.starts_with(b"\r\n"))
}

/// Index just past the first empty line (`\n\n` or `\n\r\n`): where a
/// head may end, for the parser to confirm.
pub(crate) fn blank_line(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(at) = b[i..].iter().position(|&c| c == b'\n') {
        let next = i + at + 1;
        match b.get(next..) {
            Some([b'\n', ..]) => return Some(next + 1),
            Some([b'\r', b'\n', ..]) => return Some(next + 2),
            _ => i = next,
        }
    }
    None
}

/// The head at the start of `buf` and its length, or `None` when httparse
/// needs more bytes.
fn parse_head(buf: &[u8]) -> Result<Option<(HttpRequest, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let end = match req.parse(buf) {
        Ok(httparse::Status::Complete(end)) => end,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError {
                status: 431,
                reason: format!("more than {MAX_HEADERS} header fields"),
            })
        }
        Err(e) => return Err(HttpError::bad(format!("malformed HTTP request: {e}"))),
    };
    let request = HttpRequest {
        method: req.method.unwrap_or_default().to_string(),
        path: req.path.unwrap_or_default().to_string(),
        minor_version: req.version.unwrap_or_default(),
        headers: req
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect(),
    };
    Ok(Some((request, end)))
}

/// Equality whose time does not depend on where two equal-length secrets
/// differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(pieces: &[&[u8]]) -> Result<Option<Parsed>, HttpError> {
        let mut p = RequestParser::new(&Limits::default());
        let mut last = Ok(None);
        for piece in pieces {
            last = p.read(piece);
            if !matches!(last, Ok(None)) {
                break;
            }
        }
        last
    }

    #[test]
    fn the_head_ends_where_httparse_says() {
        // A bare-LF blank line ends the head; the rest is the body.
        let got = read_all(&[b"POST /p HTTP/1.1\r\nContent-Length: 4\r\n\nPPPP\r\n\r\nQQQQ"]);
        let parsed = got.unwrap().unwrap();
        assert_eq!(parsed.request.content_length().unwrap(), Some(4));
        assert_eq!(parsed.rest, b"PPPP\r\n\r\nQQQQ");
        // Split anywhere, the same.
        let got = read_all(&[b"GET / HTTP/1.1\r\nHost: x\r", b"\n\r", b"\nrest"]);
        assert_eq!(got.unwrap().unwrap().rest, b"rest");
        let got = read_all(&[b"GET / HTTP/1.1\nHost: x\n", b"\n"]);
        assert_eq!(got.unwrap().unwrap().request.header("host"), Some("x"));
    }

    #[test]
    fn empty_lines_alone_are_refused() {
        assert_eq!(read_all(&[b"\r\n\r\n"]).unwrap_err().status, 400);
        // Refused from the first bytes, whatever follows and however split.
        let req = b"\n\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(read_all(&[req]).unwrap_err().status, 400);
        let bytes: Vec<&[u8]> = req.chunks(1).collect();
        assert_eq!(read_all(&bytes).unwrap_err().status, 400);
    }

    #[test]
    fn a_head_past_the_limit_is_431_however_it_arrives() {
        // A bad byte early, and the end past the limit: too large, whole
        // or in pieces (the parser never sees it in pieces).
        let mut req = b"GET / HTTP/1.1\r\nX: \x9d\r\n".to_vec();
        req.extend(std::iter::repeat_n(b'a', 9000));
        req.extend_from_slice(b"\r\n\r\n");
        assert_eq!(read_all(&[&req]).unwrap_err().status, 431);
        let bytes: Vec<&[u8]> = req.chunks(7).collect();
        assert_eq!(read_all(&bytes).unwrap_err().status, 431);
        // One before the request line is ignored (RFC 9112 §2.2).
        let got = read_all(&[b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"]);
        assert!(got.unwrap().is_some());
    }

    #[test]
    fn content_length_is_plain_digits_once() {
        let head = |v: &str| {
            let req = format!("POST / HTTP/1.1\r\nHost: x\r\n{v}\r\n");
            read_all(&[req.as_bytes()]).unwrap().unwrap().request
        };
        assert_eq!(
            head("Content-Length: 0\r\n").content_length().unwrap(),
            Some(0)
        );
        assert_eq!(
            head("Content-Length: 17\r\n").content_length().unwrap(),
            Some(17)
        );
        assert_eq!(head("").content_length().unwrap(), None);
        for bad in [
            "+4",
            "04",
            "-1",
            "4 4",
            "0x4",
            "1e3",
            "99999999999999999999999",
        ] {
            let r = head(&format!("Content-Length: {bad}\r\n")).content_length();
            assert_eq!(r.unwrap_err().status, 400, "{bad}");
        }
        let twice = head("Content-Length: 4\r\nContent-Length: 4\r\n");
        assert_eq!(twice.content_length().unwrap_err().status, 400);
    }
}
