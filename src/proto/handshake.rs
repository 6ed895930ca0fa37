//! The opening handshake (RFC 6455 §4): incremental parsing of the HTTP/1.1
//! request, every check of §4.2.1, `Sec-WebSocket-Accept`, subprotocol and
//! extension negotiation, the 101 response and the error responses; and the
//! client side (request, response check) used by the load generator.
//!
//! Requests may arrive a byte at a time: [`RequestParser`] keeps the bytes
//! until the blank line, bounded by [`Limits::max_handshake_bytes`]
//! (431 past it).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sha1::{Digest, Sha1};
use std::fmt;

use super::deflate::{self, DeflateConfig, DeflateParams};
use super::Limits;

/// The GUID of RFC 6455 §1.3.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Most header lines a request may have.
const MAX_HEADERS: usize = 64;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(WS_GUID.as_bytes());
    B64.encode(h.finalize())
}

/// Why a request head is not a valid WebSocket opening handshake, as the
/// HTTP error that answers it. (A valid request that the server refuses, 401,
/// 403 or 503, is not a handshake error: see [`http_response`].)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeError {
    /// HTTP status: 400 (malformed), 426 (another version) or 431 (head too
    /// large).
    pub status: u16,
    /// What was wrong, for the response body and the logs.
    pub reason: String,
}

impl HandshakeError {
    fn bad(reason: impl Into<String>) -> Self {
        HandshakeError {
            status: 400,
            reason: reason.into(),
        }
    }

    /// The full HTTP response for this error; the connection is closed after
    /// it.
    pub fn response(&self) -> Vec<u8> {
        let extra = if self.status == 426 {
            "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n"
        } else {
            ""
        };
        let body = format!("{}\n", self.reason);
        http_response(self.status, extra, TEXT_PLAIN, body.as_bytes(), false)
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status,
            status_text(self.status),
            self.reason
        )
    }
}

impl std::error::Error for HandshakeError {}

/// The content type of plain-text answers.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// A whole HTTP/1.1 response that closes the connection: status line,
/// `extra` header lines (each ending in CRLF), content type and length, then
/// the body (left out for a `HEAD` request, the length still given).
pub fn http_response(
    status: u16,
    extra: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\n{extra}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        status_text(status),
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// The reason phrase for the statuses this crate produces.
pub fn status_text(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

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
    pub fn read(&mut self, data: &[u8]) -> Result<Option<Parsed>, HandshakeError> {
        self.buf.extend_from_slice(data);
        let from = self.scanned.saturating_sub(3);
        let Some(end) = find_head_end(&self.buf[from..]).map(|i| from + i) else {
            self.scanned = self.buf.len();
            if self.buf.len() > self.limit {
                return Err(too_large(self.limit));
            }
            return Ok(None);
        };
        if end > self.limit {
            return Err(too_large(self.limit));
        }
        let request = parse_head(&self.buf[..end])?;
        let rest = self.buf.split_off(end);
        self.buf.clear();
        self.scanned = 0;
        Ok(Some(Parsed { request, rest }))
    }
}

fn too_large(limit: usize) -> HandshakeError {
    HandshakeError {
        status: 431,
        reason: format!("request head exceeds {limit} bytes"),
    }
}

/// Index just past the first `\r\n\r\n`.
fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn parse_head(head: &[u8]) -> Result<HttpRequest, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(HandshakeError::bad("incomplete request head"))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HandshakeError {
                status: 431,
                reason: format!("more than {MAX_HEADERS} header fields"),
            })
        }
        Err(e) => return Err(HandshakeError::bad(format!("malformed HTTP request: {e}"))),
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

/// One element of a `Sec-WebSocket-Extensions` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// Extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in order; the value is unquoted.
    pub params: Vec<(String, Option<String>)>,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parse a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1). `None` when it
/// is malformed.
pub fn parse_extensions(value: &str) -> Option<Vec<ExtensionOffer>> {
    let mut out = Vec::new();
    for ext in split_outside_quotes(value, ',') {
        let ext = ext.trim();
        if ext.is_empty() {
            continue;
        }
        let mut parts = split_outside_quotes(ext, ';').into_iter();
        let name = parts.next()?.trim();
        if !is_token(name) {
            return None;
        }
        let mut params = Vec::new();
        for p in parts {
            let p = p.trim();
            let (k, v) = match p.split_once('=') {
                None => (p, None),
                Some((k, v)) => {
                    let v = v.trim();
                    let v = if let Some(q) = v.strip_prefix('"') {
                        q.strip_suffix('"')?.to_string()
                    } else {
                        v.to_string()
                    };
                    if !is_token(&v) {
                        return None;
                    }
                    (k.trim(), Some(v))
                }
            };
            if !is_token(k) {
                return None;
            }
            params.push((k.to_string(), v));
        }
        out.push(ExtensionOffer {
            name: name.to_string(),
            params,
        });
    }
    Some(out)
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// A request that passed every check of RFC 6455 §4.2.1.
#[derive(Debug, Clone)]
pub struct UpgradeRequest {
    /// The HTTP request it came from.
    pub http: HttpRequest,
    /// `Sec-WebSocket-Key`, trimmed.
    pub key: String,
    /// `Origin`, when sent.
    pub origin: Option<String>,
    /// Offered subprotocols in the client's order.
    pub protocols: Vec<String>,
    /// Offered extensions in the client's order.
    pub extensions: Vec<ExtensionOffer>,
}

impl UpgradeRequest {
    /// Validate `http` as a WebSocket opening handshake.
    pub fn from_http(http: HttpRequest) -> Result<UpgradeRequest, HandshakeError> {
        if http.method != "GET" {
            return Err(HandshakeError::bad(format!(
                "WebSocket upgrade must use GET, not {}",
                http.method
            )));
        }
        if http.minor_version < 1 {
            return Err(HandshakeError::bad("WebSocket upgrade needs HTTP/1.1"));
        }
        if http.header("host").is_none_or(str::is_empty) {
            return Err(HandshakeError::bad("missing Host header"));
        }
        if !http.has_token("upgrade", "websocket") {
            return Err(HandshakeError::bad("Upgrade header must name websocket"));
        }
        if !http.has_token("connection", "upgrade") {
            return Err(HandshakeError::bad(
                "Connection header must contain Upgrade",
            ));
        }
        match http.header("sec-websocket-version") {
            Some("13") => {}
            Some(v) => {
                return Err(HandshakeError {
                    status: 426,
                    reason: format!(
                        "unsupported Sec-WebSocket-Version {v:?}; this server speaks 13"
                    ),
                })
            }
            None if http.header_values("sec-websocket-version").next().is_some() => {
                return Err(HandshakeError {
                    status: 426,
                    reason: "Sec-WebSocket-Version must be sent once, as 13".into(),
                })
            }
            None => return Err(HandshakeError::bad("missing Sec-WebSocket-Version")),
        }
        let key = http
            .header("sec-websocket-key")
            .ok_or_else(|| HandshakeError::bad("Sec-WebSocket-Key must be sent exactly once"))?
            .to_string();
        match B64.decode(key.as_bytes()) {
            Ok(k) if k.len() == 16 => {}
            _ => {
                return Err(HandshakeError::bad(
                    "Sec-WebSocket-Key must be 16 bytes in base64",
                ))
            }
        }
        let mut protocols = Vec::new();
        for v in http.header_values("sec-websocket-protocol") {
            let v = std::str::from_utf8(v)
                .map_err(|_| HandshakeError::bad("Sec-WebSocket-Protocol is not text"))?;
            for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if !is_token(p) {
                    return Err(HandshakeError::bad(format!("invalid subprotocol {p:?}")));
                }
                protocols.push(p.to_string());
            }
        }
        let mut extensions = Vec::new();
        for v in http.header_values("sec-websocket-extensions") {
            let parsed = std::str::from_utf8(v)
                .ok()
                .and_then(parse_extensions)
                .ok_or_else(|| HandshakeError::bad("malformed Sec-WebSocket-Extensions"))?;
            extensions.extend(parsed);
        }
        let origin = http.header("origin").map(str::to_string);
        Ok(UpgradeRequest {
            http,
            key,
            origin,
            protocols,
            extensions,
        })
    }

    /// The first of `supported` (server preference) that the client offered.
    pub fn choose_protocol<'a>(&self, supported: &[&'a str]) -> Option<&'a str> {
        supported
            .iter()
            .copied()
            .find(|s| self.protocols.iter().any(|p| p == s))
    }

    /// Negotiate permessage-deflate if `cfg` is given.
    pub fn negotiate_deflate(&self, cfg: Option<&DeflateConfig>) -> Option<DeflateParams> {
        deflate::negotiate_server(&self.extensions, cfg?)
    }

    /// The 101 response accepting this request.
    pub fn accept_response(
        &self,
        protocol: Option<&str>,
        deflate: Option<&DeflateParams>,
    ) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
            accept_key(&self.key)
        );
        if let Some(p) = protocol {
            r.push_str("Sec-WebSocket-Protocol: ");
            r.push_str(p);
            r.push_str("\r\n");
        }
        if let Some(d) = deflate {
            r.push_str("Sec-WebSocket-Extensions: ");
            r.push_str(&d.header_value());
            r.push_str("\r\n");
        }
        r.push_str("\r\n");
        r.into_bytes()
    }
}

/// Client side of the handshake: builds the request and checks the response.
#[derive(Debug)]
pub struct ClientHandshake {
    key: String,
    protocols: Vec<String>,
    deflate: Option<DeflateConfig>,
    buf: Vec<u8>,
    limit: usize,
}

/// What the server agreed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAccepted {
    /// The chosen subprotocol.
    pub protocol: Option<String>,
    /// permessage-deflate parameters, if the server accepted the offer.
    pub deflate: Option<DeflateParams>,
    /// Bytes that followed the response head (early frames).
    pub rest: Vec<u8>,
}

impl ClientHandshake {
    /// Start a handshake. `nonce` is 16 random bytes (the caller owns
    /// randomness).
    pub fn new(
        nonce: [u8; 16],
        protocols: &[&str],
        deflate: Option<DeflateConfig>,
        limits: &Limits,
    ) -> Self {
        ClientHandshake {
            key: B64.encode(nonce),
            protocols: protocols.iter().map(|s| s.to_string()).collect(),
            deflate,
            buf: Vec::new(),
            limit: limits.max_handshake_bytes,
        }
    }

    /// The request bytes for `host` and `path`.
    pub fn request(&self, host: &str, path: &str) -> Vec<u8> {
        let mut r = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
            self.key
        );
        if !self.protocols.is_empty() {
            r.push_str(&format!(
                "Sec-WebSocket-Protocol: {}\r\n",
                self.protocols.join(", ")
            ));
        }
        if let Some(d) = &self.deflate {
            r.push_str(&format!(
                "Sec-WebSocket-Extensions: {}\r\n",
                deflate::client_offer(d)
            ));
        }
        r.push_str("\r\n");
        r.into_bytes()
    }

    /// Add response bytes. `Ok(None)`: need more.
    pub fn read(&mut self, data: &[u8]) -> Result<Option<ClientAccepted>, HandshakeError> {
        self.buf.extend_from_slice(data);
        let Some(end) = find_head_end(&self.buf) else {
            if self.buf.len() > self.limit {
                return Err(too_large(self.limit));
            }
            return Ok(None);
        };
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&self.buf[..end]) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return Err(HandshakeError::bad("malformed HTTP response")),
        }
        if resp.code != Some(101) {
            return Err(HandshakeError::bad(format!(
                "server answered {} instead of 101",
                resp.code.unwrap_or(0)
            )));
        }
        let http = HttpRequest {
            method: String::new(),
            path: String::new(),
            minor_version: resp.version.unwrap_or(1),
            headers: resp
                .headers
                .iter()
                .map(|h| (h.name.to_string(), h.value.to_vec()))
                .collect(),
        };
        if !http.has_token("upgrade", "websocket") || !http.has_token("connection", "upgrade") {
            return Err(HandshakeError::bad("response lacks Upgrade/Connection"));
        }
        if http.header("sec-websocket-accept") != Some(accept_key(&self.key).as_str()) {
            return Err(HandshakeError::bad("wrong Sec-WebSocket-Accept"));
        }
        let protocol = http.header("sec-websocket-protocol").map(str::to_string);
        if let Some(p) = &protocol {
            if !self.protocols.iter().any(|o| o == p) {
                return Err(HandshakeError::bad(format!(
                    "server chose unoffered subprotocol {p}"
                )));
            }
        }
        let mut deflate_params = None;
        for v in http.header_values("sec-websocket-extensions") {
            let exts = std::str::from_utf8(v)
                .ok()
                .and_then(parse_extensions)
                .ok_or_else(|| HandshakeError::bad("malformed Sec-WebSocket-Extensions"))?;
            for e in exts {
                let cfg = self
                    .deflate
                    .as_ref()
                    .filter(|_| deflate_params.is_none())
                    .ok_or_else(|| {
                        HandshakeError::bad(format!("unoffered extension {}", e.name))
                    })?;
                deflate_params = Some(deflate::accept_client(&e, cfg).ok_or_else(|| {
                    HandshakeError::bad("unacceptable permessage-deflate response")
                })?);
            }
        }
        let rest = self.buf.split_off(end);
        Ok(Some(ClientAccepted {
            protocol,
            deflate: deflate_params,
            rest,
        }))
    }
}

/// Equality whose time does not depend on where two equal-length secrets
/// differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_accept_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn extension_lists() {
        let e = parse_extensions("permessage-deflate; client_max_window_bits=\"10\", foo").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0].params,
            vec![("client_max_window_bits".into(), Some("10".into()))]
        );
        assert_eq!(e[1].name, "foo");
        assert!(parse_extensions("bad name").is_none());
        assert!(parse_extensions("x; a=\"unterminated").is_none());
    }
}
