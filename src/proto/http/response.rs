//! A whole HTTP response as data: status, header fields and body. Each
//! transport serialises it its own way ([`Response::to_http1`] here; HTTP/2
//! as HEADERS and DATA in the runtime), so no answer is ever printed in one
//! protocol and parsed back into another.
//!
//! Reason phrases come from one table, [`reason_phrase`], with every status
//! code RFC 9110 §15 defines (and 429 and 431 of RFC 6585).

use std::fmt::Write as _;

/// The content type of plain-text answers.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// A whole response. `Content-Length` (and on HTTP/1.1 `Connection`) are the
/// transport's: they are not among `headers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header fields in order, names as HTTP/1.1 writes them (HTTP/2 sends
    /// them lower-cased).
    pub headers: Vec<(String, String)>,
    /// The body (not sent in answer to `HEAD`; its length still is).
    pub body: Vec<u8>,
}

impl Response {
    /// A response with no header fields and an empty body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A plain-text response.
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response::with_body(status, TEXT_PLAIN, body)
    }

    /// A response with a body of `content_type`.
    pub fn with_body(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".to_string(), content_type.to_string())],
            body: body.into(),
        }
    }

    /// This response with one more header field.
    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The status's reason phrase.
    pub fn reason(&self) -> &'static str {
        reason_phrase(self.status)
    }

    /// The header fields a transport may send: a field whose name is not an
    /// HTTP token or whose value holds a control character (CR and LF
    /// among them: a split response) is left out, as are the fields the
    /// transport writes itself.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .filter(|(n, v)| is_token(n) && valid_value(v) && !transport_field(n))
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The response as HTTP/1.1 bytes, closing the connection: status
    /// line, the header fields, `Content-Length`, `Connection: close`, a
    /// blank line, then the body unless `head_only` (the answer to `HEAD`).
    pub fn to_http1(&self, head_only: bool) -> Vec<u8> {
        self.http1(head_only, "Connection: close\r\n")
    }

    /// The response as HTTP/1.1 bytes on a connection that stays open for
    /// the next request: as [`Response::to_http1`] without `Connection:
    /// close` (HTTP/1.1 connections persist unless one side says so, RFC
    /// 9112 §9.3).
    pub fn to_http1_persistent(&self, head_only: bool) -> Vec<u8> {
        self.http1(head_only, "")
    }

    fn http1(&self, head_only: bool, connection: &str) -> Vec<u8> {
        let mut head = String::with_capacity(128);
        let _ = write!(head, "HTTP/1.1 {} {}\r\n", self.status, self.reason());
        for (n, v) in self.fields() {
            let _ = write!(head, "{n}: {v}\r\n");
        }
        // 426 names the protocol to upgrade to (RFC 9110 §15.5.22): an
        // HTTP/1.1 field only (HTTP/2 has no Upgrade).
        if self.status == 426 {
            let upgrade = self
                .headers
                .iter()
                .find(|(n, v)| n.eq_ignore_ascii_case("upgrade") && is_token(v));
            if let Some((_, v)) = upgrade {
                let _ = write!(head, "Upgrade: {v}\r\n");
            }
        }
        let _ = write!(
            head,
            "Content-Length: {}\r\n{connection}\r\n",
            self.body.len()
        );
        let mut out = head.into_bytes();
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// Fields that belong to the transport, never to a response's own list.
fn transport_field(name: &str) -> bool {
    [
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
    ]
    .iter()
    .any(|t| name.eq_ignore_ascii_case(t))
}

/// An HTTP token (RFC 9110 §5.6.2).
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A field value without control characters but horizontal tab.
fn valid_value(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// The reason phrase of `status`: every code of RFC 9110 §15, plus 429 and
/// 431 (RFC 6585); "Unknown" for any other.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http1_bytes() {
        let r = Response::text(202, "published\n");
        assert_eq!(
            r.to_http1(false),
            b"HTTP/1.1 202 Accepted\r\nContent-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 10\r\nConnection: close\r\n\r\npublished\n"
        );
        let head = r.to_http1(true);
        assert!(head.ends_with(b"Content-Length: 10\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn every_status_the_server_sends_has_its_phrase() {
        for (code, phrase) in [
            (202, "Accepted"),
            (411, "Length Required"),
            (413, "Content Too Large"),
            (426, "Upgrade Required"),
            (429, "Too Many Requests"),
            (431, "Request Header Fields Too Large"),
            (503, "Service Unavailable"),
        ] {
            assert_eq!(reason_phrase(code), phrase);
        }
        for code in 100..600 {
            let p = reason_phrase(code);
            assert!(p
                .bytes()
                .all(|b| b == b' ' || b.is_ascii_alphanumeric() || b == b'-'));
        }
    }

    #[test]
    fn unsafe_fields_are_left_out() {
        let r = Response::new(200)
            .header("X-Ok", "yes")
            .header("X-Split", "a\r\nSet-Cookie: x")
            .header("Bad Name", "v")
            .header("Content-Length", "99")
            .header("Connection", "keep-alive");
        let fields: Vec<_> = r.fields().collect();
        assert_eq!(fields, vec![("X-Ok", "yes")]);
        let text = String::from_utf8(r.to_http1(false)).unwrap();
        assert_eq!(text.matches("Content-Length").count(), 1);
        assert!(text.contains("Content-Length: 0\r\n"));
        assert!(!text.contains("Set-Cookie"));
    }
}
