//! The opening handshake (RFC 6455 §4) on a parsed HTTP/1.1 request head
//! (`proto::http`): every check of §4.2.1, `Sec-WebSocket-Accept`,
//! subprotocol and extension negotiation and the 101 response; and the
//! client side (request, response check) used by the load generator. A
//! request that fails a check is an [`HttpError`] (400 or 426).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use super::deflate::{self, DeflateConfig, DeflateParams};
use super::extension::{is_token, parse_extensions, ExtensionOffer};
use crate::proto::http::request::{blank_line, MAX_HEADERS};
use crate::proto::http::{HttpError, HttpRequest};
use crate::proto::Limits;

/// The GUID of RFC 6455 §1.3.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(WS_GUID.as_bytes());
    B64.encode(h.finalize())
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
    pub fn from_http(http: HttpRequest) -> Result<UpgradeRequest, HttpError> {
        if http.method != "GET" {
            return Err(HttpError::bad(format!(
                "WebSocket upgrade must use GET, not {}",
                http.method
            )));
        }
        if http.minor_version < 1 {
            return Err(HttpError::bad("WebSocket upgrade needs HTTP/1.1"));
        }
        if http.header("host").is_none_or(str::is_empty) {
            return Err(HttpError::bad("missing Host header"));
        }
        if !http.has_token("upgrade", "websocket") {
            return Err(HttpError::bad("Upgrade header must name websocket"));
        }
        if !http.has_token("connection", "upgrade") {
            return Err(HttpError::bad("Connection header must contain Upgrade"));
        }
        match http.header("sec-websocket-version") {
            Some("13") => {}
            Some(v) => {
                return Err(HttpError {
                    status: 426,
                    reason: format!(
                        "unsupported Sec-WebSocket-Version {v:?}; this server speaks 13"
                    ),
                })
            }
            None if http.header_values("sec-websocket-version").next().is_some() => {
                return Err(HttpError {
                    status: 426,
                    reason: "Sec-WebSocket-Version must be sent once, as 13".into(),
                })
            }
            None => return Err(HttpError::bad("missing Sec-WebSocket-Version")),
        }
        let key = http
            .header("sec-websocket-key")
            .ok_or_else(|| HttpError::bad("Sec-WebSocket-Key must be sent exactly once"))?
            .to_string();
        match B64.decode(key.as_bytes()) {
            Ok(k) if k.len() == 16 => {}
            _ => {
                return Err(HttpError::bad(
                    "Sec-WebSocket-Key must be 16 bytes in base64",
                ))
            }
        }
        let mut protocols = Vec::new();
        for v in http.header_values("sec-websocket-protocol") {
            let v = std::str::from_utf8(v)
                .map_err(|_| HttpError::bad("Sec-WebSocket-Protocol is not text"))?;
            for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if !is_token(p) {
                    return Err(HttpError::bad(format!("invalid subprotocol {p:?}")));
                }
                protocols.push(p.to_string());
            }
        }
        let mut extensions = Vec::new();
        for v in http.header_values("sec-websocket-extensions") {
            let parsed = std::str::from_utf8(v)
                .ok()
                .and_then(parse_extensions)
                .ok_or_else(|| HttpError::bad("malformed Sec-WebSocket-Extensions"))?;
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
    pub fn read(&mut self, data: &[u8]) -> Result<Option<ClientAccepted>, HttpError> {
        self.buf.extend_from_slice(data);
        // The head ends where httparse says (see `RequestParser::read`).
        let head = &self.buf[..self.buf.len().min(self.limit)];
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let parsed = match blank_line(head) {
            Some(_) => resp.parse(head),
            None => Ok(httparse::Status::Partial),
        };
        let end = match parsed {
            Ok(httparse::Status::Complete(end)) => end,
            Ok(httparse::Status::Partial) if self.buf.len() > self.limit => {
                return Err(HttpError::too_large(self.limit))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(HttpError::bad("malformed HTTP response")),
        };
        if resp.code != Some(101) {
            return Err(HttpError::bad(format!(
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
            return Err(HttpError::bad("response lacks Upgrade/Connection"));
        }
        if http.header("sec-websocket-accept") != Some(accept_key(&self.key).as_str()) {
            return Err(HttpError::bad("wrong Sec-WebSocket-Accept"));
        }
        let protocol = http.header("sec-websocket-protocol").map(str::to_string);
        if let Some(p) = &protocol {
            if !self.protocols.iter().any(|o| o == p) {
                return Err(HttpError::bad(format!(
                    "server chose unoffered subprotocol {p}"
                )));
            }
        }
        let mut deflate_params = None;
        for v in http.header_values("sec-websocket-extensions") {
            let exts = std::str::from_utf8(v)
                .ok()
                .and_then(parse_extensions)
                .ok_or_else(|| HttpError::bad("malformed Sec-WebSocket-Extensions"))?;
            for e in exts {
                let cfg = self
                    .deflate
                    .as_ref()
                    .filter(|_| deflate_params.is_none())
                    .ok_or_else(|| HttpError::bad(format!("unoffered extension {}", e.name)))?;
                deflate_params =
                    Some(deflate::accept_client(&e, cfg).ok_or_else(|| {
                        HttpError::bad("unacceptable permessage-deflate response")
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
}
