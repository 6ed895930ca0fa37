//! The opening handshake: every requirement of RFC 6455 §4.2.1 with a
//! rejection test each, incremental parsing, negotiation, and the client side.

use ringwave::proto::http::{HttpError, RequestParser};
use ringwave::proto::ws::handshake::{accept_key, ClientHandshake, UpgradeRequest};
use ringwave::proto::{DeflateConfig, Limits};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn request(lines: &[&str]) -> Vec<u8> {
    let mut s = String::new();
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

fn good_lines() -> Vec<String> {
    vec![
        "GET /chat?x=1 HTTP/1.1".into(),
        "Host: server.example.com".into(),
        "Upgrade: websocket".into(),
        "Connection: Upgrade".into(),
        format!("Sec-WebSocket-Key: {KEY}"),
        "Origin: http://example.com".into(),
        "Sec-WebSocket-Protocol: chat, superchat".into(),
        "Sec-WebSocket-Version: 13".into(),
    ]
}

fn parse(bytes: &[u8]) -> Result<UpgradeRequest, HttpError> {
    let mut p = RequestParser::new(&Limits::default());
    let parsed = p.read(bytes)?.expect("complete request");
    UpgradeRequest::from_http(parsed.request)
}

fn with(edit: impl Fn(&mut Vec<String>)) -> Vec<u8> {
    let mut l = good_lines();
    edit(&mut l);
    let refs: Vec<&str> = l.iter().map(String::as_str).collect();
    request(&refs)
}

fn drop_header(name: &str) -> Vec<u8> {
    with(|l| {
        l.retain(|h| {
            !h.to_ascii_lowercase()
                .starts_with(&name.to_ascii_lowercase())
        })
    })
}

fn replace_header(name: &str, line: &str) -> Vec<u8> {
    with(|l| {
        for h in l.iter_mut() {
            if h.to_ascii_lowercase()
                .starts_with(&name.to_ascii_lowercase())
            {
                *h = line.to_string();
            }
        }
    })
}

fn rejected(bytes: &[u8], status: u16) -> HttpError {
    let e = parse(bytes).expect_err("must be rejected");
    assert_eq!(e.status, status, "{e}");
    let resp = String::from_utf8(e.response().to_http1(false)).unwrap();
    assert!(resp.starts_with(&format!("HTTP/1.1 {status} ")), "{resp}");
    assert!(
        resp.contains(&e.reason),
        "the body carries the reason: {resp}"
    );
    e
}

#[test]
fn accepts_the_rfc_example_and_computes_accept() {
    let req = parse(&with(|_| {})).unwrap();
    assert_eq!(req.key, KEY);
    assert_eq!(req.origin.as_deref(), Some("http://example.com"));
    assert_eq!(req.protocols, vec!["chat", "superchat"]);
    assert_eq!(req.http.path, "/chat?x=1");
    let chosen = req.choose_protocol(&["superchat", "chat"]);
    assert_eq!(chosen, Some("superchat"));
    let resp = String::from_utf8(req.accept_response(chosen, None)).unwrap();
    assert_eq!(
        resp,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: superchat\r\n\r\n"
    );
}

#[test]
fn parses_one_byte_at_a_time_and_keeps_following_bytes() {
    let mut bytes = with(|_| {});
    let head_len = bytes.len();
    bytes.extend_from_slice(b"\x81\x85early");
    let mut p = RequestParser::new(&Limits::default());
    let mut done = None;
    for (i, b) in bytes.iter().enumerate() {
        if let Some(parsed) = p.read(std::slice::from_ref(b)).unwrap() {
            assert_eq!(i + 1, head_len, "complete exactly at the blank line");
            done = Some(parsed);
            break;
        }
    }
    let parsed = done.expect("request completes");
    assert!(parsed.rest.is_empty());
    // All at once: the bytes after the head come back.
    let mut p = RequestParser::new(&Limits::default());
    let parsed = p.read(&bytes).unwrap().unwrap();
    assert_eq!(parsed.rest, b"\x81\x85early");
    assert!(UpgradeRequest::from_http(parsed.request).is_ok());
}

#[test]
fn token_lists_and_case_are_accepted() {
    let req = with(|l| {
        l[2] = "UPGRADE: WebSocket".into();
        l[3] = "connection: keep-alive, UPGRADE".into();
    });
    assert!(parse(&req).is_ok());
}

// §4.2.1 item 1: an HTTP/1.1 or higher GET request.
#[test]
fn rejects_non_get() {
    let e = rejected(&with(|l| l[0] = "POST /chat HTTP/1.1".into()), 400);
    assert!(e.reason.contains("GET"));
}

#[test]
fn rejects_http_1_0() {
    rejected(&with(|l| l[0] = "GET /chat HTTP/1.0".into()), 400);
}

#[test]
fn rejects_malformed_request_line() {
    rejected(&with(|l| l[0] = "GET".into()), 400);
}

// Item 2: a Host header.
#[test]
fn rejects_missing_host() {
    let e = rejected(&drop_header("host"), 400);
    assert!(e.reason.contains("Host"));
}

// Item 3: Upgrade containing "websocket".
#[test]
fn rejects_missing_or_wrong_upgrade() {
    rejected(&drop_header("upgrade"), 400);
    rejected(&replace_header("upgrade", "Upgrade: h2c"), 400);
}

// Item 4: Connection containing "Upgrade".
#[test]
fn rejects_missing_or_wrong_connection() {
    rejected(&drop_header("connection"), 400);
    rejected(&replace_header("connection", "Connection: keep-alive"), 400);
}

// Item 5: Sec-WebSocket-Key, 16 bytes base64.
#[test]
fn rejects_bad_keys() {
    rejected(&drop_header("sec-websocket-key"), 400);
    rejected(
        &replace_header("sec-websocket-key", "Sec-WebSocket-Key: c2hvcnQ="),
        400,
    );
    rejected(
        &replace_header(
            "sec-websocket-key",
            "Sec-WebSocket-Key: !!!notbase64!!!!!!!!!!==",
        ),
        400,
    );
    rejected(&with(|l| l.push(format!("Sec-WebSocket-Key: {KEY}"))), 400);
}

// Item 6: Sec-WebSocket-Version 13, else 426 naming the version.
#[test]
fn rejects_other_versions_with_426() {
    let e = rejected(
        &replace_header("sec-websocket-version", "Sec-WebSocket-Version: 8"),
        426,
    );
    let resp = String::from_utf8(e.response().to_http1(false)).unwrap();
    assert!(resp.contains("Sec-WebSocket-Version: 13\r\n"), "{resp}");
    rejected(&with(|l| l.push("Sec-WebSocket-Version: 8".into())), 426);
    rejected(&drop_header("sec-websocket-version"), 400);
}

// Items 7-9: Origin, protocols and extensions are optional but must be
// well-formed when present.
#[test]
fn optional_headers() {
    let req = parse(&drop_header("origin")).unwrap();
    assert_eq!(req.origin, None);
    let req = parse(&drop_header("sec-websocket-protocol")).unwrap();
    assert!(req.protocols.is_empty());
    assert_eq!(req.choose_protocol(&["chat"]), None);
    rejected(
        &replace_header("sec-websocket-protocol", "Sec-WebSocket-Protocol: a b"),
        400,
    );
    rejected(
        &with(|l| l.push("Sec-WebSocket-Extensions: permessage-deflate; x=\"".into())),
        400,
    );
}

#[test]
fn oversized_head_is_431() {
    let big = format!("X-Filler: {}", "a".repeat(9000));
    let bytes = with(|l| l.insert(1, big.clone()));
    let mut p = RequestParser::new(&Limits::default());
    let e = p.read(&bytes).unwrap_err();
    assert_eq!(e.status, 431);
    // Also when it arrives in pieces without ever reaching the blank line.
    let mut p = RequestParser::new(&Limits::default());
    let mut status = None;
    for chunk in bytes[..bytes.len() - 4].chunks(100) {
        if let Err(e) = p.read(chunk) {
            status = Some(e.status);
            break;
        }
    }
    assert_eq!(status, Some(431));
    assert!(p.buffered() <= 8 * 1024 + 100);
}

#[test]
fn too_many_headers_is_431() {
    let bytes = with(|l| {
        for i in 0..70 {
            l.push(format!("X-H{i}: v"));
        }
    });
    rejected(&bytes, 431);
}

#[test]
fn negotiates_permessage_deflate() {
    let req = parse(&with(|l| {
        l.push("Sec-WebSocket-Extensions: foo, permessage-deflate; client_max_window_bits".into())
    }))
    .unwrap();
    let d = req
        .negotiate_deflate(Some(&DeflateConfig::default()))
        .unwrap();
    let resp = String::from_utf8(req.accept_response(None, Some(&d))).unwrap();
    assert!(
        resp.contains("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
        "{resp}"
    );
    assert_eq!(req.negotiate_deflate(None), None, "off unless configured");
}

#[test]
fn client_handshake_round_trip() {
    let limits = Limits::default();
    let mut client =
        ClientHandshake::new([7; 16], &["chat"], Some(DeflateConfig::default()), &limits);
    let req_bytes = client.request("localhost:9001", "/ws");
    let req = parse(&req_bytes).unwrap();
    let d = req.negotiate_deflate(Some(&DeflateConfig::default()));
    let mut resp = req.accept_response(req.choose_protocol(&["chat"]), d.as_ref());
    resp.extend_from_slice(b"\x81\x00");
    // Byte at a time on the client side too.
    let mut accepted = None;
    for b in &resp {
        if let Some(a) = client.read(std::slice::from_ref(b)).unwrap() {
            accepted = Some(a);
            break;
        }
    }
    let a = accepted.unwrap();
    assert_eq!(a.protocol.as_deref(), Some("chat"));
    assert!(a.deflate.is_some());
    assert!(a.rest.is_empty());
}

#[test]
fn client_rejects_a_wrong_accept() {
    let mut client = ClientHandshake::new([7; 16], &[], None, &Limits::default());
    let bad = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key("AAAAAAAAAAAAAAAAAAAAAA==")
    );
    assert!(client.read(bad.as_bytes()).is_err());
    let mut client = ClientHandshake::new([7; 16], &[], None, &Limits::default());
    assert!(client.read(b"HTTP/1.1 403 Forbidden\r\n\r\n").is_err());
}
