//! A request's header fields checked as RFC 9113 §8.2 and §8.3.1 and RFC
//! 8441 §4 ask: pseudo-headers first, once each, the ones each method
//! needs; names lower-case; no connection-specific fields.

use super::Request;

const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Check a request's fields (RFC 9113 §8.2 and §8.3.1, RFC 8441 §4).
pub(super) fn parse(
    stream: u32,
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    end_stream: bool,
) -> Result<Request, &'static str> {
    let mut req = Request {
        stream,
        method: String::new(),
        scheme: String::new(),
        authority: String::new(),
        path: String::new(),
        protocol: None,
        headers: Vec::with_capacity(fields.len()),
        end_stream,
    };
    let mut regular = false;
    for (name, value) in fields {
        let text =
            || String::from_utf8(value.clone()).map_err(|_| "a pseudo-header that is not UTF-8");
        if name.first() == Some(&b':') {
            if regular {
                return Err("a pseudo-header after a regular field");
            }
            let slot = match &name[..] {
                b":method" => &mut req.method,
                b":scheme" => &mut req.scheme,
                b":authority" => &mut req.authority,
                b":path" => &mut req.path,
                b":protocol" => {
                    if req.protocol.is_some() {
                        return Err("a repeated pseudo-header");
                    }
                    req.protocol = Some(text()?);
                    continue;
                }
                _ => return Err("an unknown pseudo-header"),
            };
            if !slot.is_empty() {
                return Err("a repeated pseudo-header");
            }
            *slot = text()?;
            if slot.is_empty() {
                return Err("an empty pseudo-header");
            }
            continue;
        }
        regular = true;
        if name.iter().any(|b| b.is_ascii_uppercase()) {
            return Err("an upper-case field name");
        }
        let Ok(name) = String::from_utf8(name) else {
            return Err("a field name that is not UTF-8");
        };
        if CONNECTION_SPECIFIC.contains(&name.as_str()) || (name == "te" && value != b"trailers") {
            return Err("a connection-specific field");
        }
        req.headers.push((name, value));
    }
    if req.method.is_empty() {
        return Err("no :method");
    }
    if req.method == "CONNECT" && req.protocol.is_none() {
        if !req.scheme.is_empty() || !req.path.is_empty() || req.authority.is_empty() {
            return Err("a CONNECT with :scheme or :path, or without :authority");
        }
        return Ok(req);
    }
    if req.protocol.is_some() && req.method != "CONNECT" {
        return Err(":protocol on a method other than CONNECT");
    }
    if req.scheme.is_empty() || req.path.is_empty() {
        return Err("no :scheme or :path");
    }
    Ok(req)
}

/// The request's `content-length`: `None` without one; an error (malformed)
/// unless every value is plain digits within `u64` and all are the same
/// (RFC 9110 §8.6; RFC 9113 §8.1.1 then checks the body against it).
pub(super) fn content_length(req: &Request) -> Result<Option<u64>, &'static str> {
    let mut found = None;
    for (_, v) in req.headers.iter().filter(|(n, _)| n == "content-length") {
        for part in v.split(|&b| b == b',') {
            let part = part.trim_ascii();
            let n = std::str::from_utf8(part)
                .ok()
                .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|t| t.parse::<u64>().ok())
                .ok_or("a content-length that is not a number")?;
            if found.is_some_and(|f| f != n) {
                return Err("content-length values that differ");
            }
            found = Some(n);
        }
    }
    Ok(found)
}
