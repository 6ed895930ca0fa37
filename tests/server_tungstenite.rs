//! The real server, on both backends, against the `tungstenite` client and a
//! raw socket for what no well-behaved client sends.

mod server;
use server::*;
use std::net::TcpStream;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

fn connect(srv: &TestServer) -> Ws {
    let mut cfg = WebSocketConfig::default();
    cfg.max_message_size = Some(64 << 20);
    cfg.max_frame_size = Some(64 << 20);
    let (ws, resp) =
        tungstenite::client::connect_with_config(srv.url("/echo"), Some(cfg), 3).expect("connect");
    assert_eq!(resp.status(), 101);
    ws
}

fn text_of(len: usize) -> String {
    // Multi-byte characters too, so UTF-8 crosses every boundary.
    "aé€😀"
        .chars()
        .cycle()
        .scan(0, |n, c| {
            *n += c.len_utf8();
            (*n <= len).then_some(c)
        })
        .collect()
}

both_backends!(echo_text_and_binary_at_every_size, |backend| {
    let srv = TestServer::start(backend, &[]);
    let mut ws = connect(&srv);
    for size in [0usize, 125, 126, 4096, 16 * 1024, 64 * 1024, 16 << 20] {
        let t = text_of(size);
        ws.send(Message::text(t.clone())).unwrap();
        match ws.read().unwrap() {
            Message::Text(got) => assert!(got.as_str() == t, "text of {size} bytes differs"),
            other => panic!("expected text, got {other:?}"),
        }
        let b: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        ws.send(Message::binary(b.clone())).unwrap();
        match ws.read().unwrap() {
            Message::Binary(got) => assert!(got[..] == b[..], "binary of {size} bytes differs"),
            other => panic!("expected binary, got {other:?}"),
        }
    }
});

both_backends!(ping_is_answered_with_pong, |backend| {
    let srv = TestServer::start(backend, &[]);
    let mut ws = connect(&srv);
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .unwrap();
    match ws.read().unwrap() {
        Message::Pong(p) => assert_eq!(&p[..], b"are you there"),
        other => panic!("expected pong, got {other:?}"),
    }
});

both_backends!(client_initiated_close_is_echoed, |backend| {
    let srv = TestServer::start(backend, &[]);
    let mut ws = connect(&srv);
    ws.close(Some(CloseFrame {
        code: CloseCode::from(4000),
        reason: "bye".into(),
    }))
    .unwrap();
    loop {
        match ws.read() {
            Ok(Message::Close(Some(f))) => {
                assert_eq!(u16::from(f.code), 4000);
                break;
            }
            Ok(Message::Close(None)) => panic!("close without the code"),
            Ok(_) => continue,
            Err(e) => panic!("no close reply: {e}"),
        }
    }
    // The server then closes TCP.
    assert!(matches!(
        ws.read(),
        Err(tungstenite::Error::ConnectionClosed) | Err(tungstenite::Error::AlreadyClosed)
    ));
});

both_backends!(fragmented_messages_are_reassembled, |backend| {
    let srv = TestServer::start(backend, &[]);
    let mut c = RawClient::connect(srv.addr);
    let mut bytes = frame(0x01, "Hel".as_bytes());
    bytes.extend(frame(0x89, b"mid")); // a ping between fragments
    bytes.extend(frame(0x00, "lo, wö".as_bytes()));
    bytes.extend(frame(0x80, "rld".as_bytes()));
    // Send it a few bytes at a time.
    for chunk in bytes.chunks(3) {
        c.send(chunk);
    }
    assert_eq!(c.read_frame(), Some((0xA, b"mid".to_vec())));
    assert_eq!(
        c.read_frame(),
        Some((0x1, "Hello, wörld".as_bytes().to_vec()))
    );
});

both_backends!(invalid_frames_get_the_right_close_code, |backend| {
    let srv = TestServer::start(backend, &[]);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked frame", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("reserved opcode", frame(0x83, b""), 1002),
        ("RSV1 without extension", frame(0xC1, b"x"), 1002),
        ("fragmented ping", frame(0x09, b""), 1002),
        ("continuation without start", frame(0x80, b"x"), 1002),
        ("invalid UTF-8", frame(0x81, &[0xce, 0xba, 0xff]), 1007),
        ("bad close code", frame(0x88, &999u16.to_be_bytes()), 1002),
    ];
    for (what, bytes, code) in cases {
        let mut c = RawClient::connect(srv.addr);
        c.send(&bytes);
        assert_eq!(c.read_close_code(), Some(code), "{what}");
        assert!(
            c.read_frame().is_none(),
            "{what}: the server closes TCP after its close frame"
        );
    }
});

both_backends!(oversized_message_is_1009, |backend| {
    let srv = TestServer::start(backend, &["--max-message", "1000"]);
    let mut c = RawClient::connect(srv.addr);
    c.send(&frame(0x82, &[0u8; 1000]));
    assert_eq!(c.read_frame(), Some((0x2, vec![0u8; 1000])));
    c.send(&frame(0x82, &[0u8; 1001]));
    assert_eq!(c.read_close_code(), Some(1009));
    // Across fragments too.
    let mut c = RawClient::connect(srv.addr);
    c.send(&frame(0x02, &[0u8; 600]));
    c.send(&frame(0x80, &[0u8; 600]));
    assert_eq!(c.read_close_code(), Some(1009));
});

both_backends!(bad_handshakes_are_answered, |backend| {
    let srv = TestServer::start(backend, &[]);
    let good = REQUEST;
    let cases: Vec<(String, &str)> = vec![
        (
            good.replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
            "HTTP/1.1 426",
        ),
        (good.replace("GET", "POST"), "HTTP/1.1 400"),
        (
            good.replace("Upgrade: websocket\r\n", "Upgrade: websocket\r\nX: y\r\n")
                .replace("Connection: Upgrade", "Connection: keep-alive"),
            "HTTP/1.1 400",
        ),
        (
            good.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="),
            "HTTP/1.1 400",
        ),
        (good.replace("Host: test\r\n", ""), "HTTP/1.1 400"),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(9000)
            ),
            "HTTP/1.1 431",
        ),
        ("GARBAGE\r\n\r\n".to_string(), "HTTP/1.1 400"),
    ];
    for (req, expect) in cases {
        let mut c = RawClient::tcp(srv.addr);
        c.send(req.as_bytes());
        let head = c.read_http_head();
        assert!(
            head.starts_with(expect),
            "{expect} for {:?}: got {head:?}",
            &req[..req.len().min(60)]
        );
        if expect == "HTTP/1.1 426" {
            assert!(head.contains("Sec-WebSocket-Version: 13"), "{head}");
        }
    }
    // The server still serves.
    let mut ws = connect(&srv);
    ws.send(Message::text("still here")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("still here"));
});

both_backends!(plain_get_serves_the_page, |backend| {
    let srv = TestServer::start(backend, &[]);
    let mut c = RawClient::tcp(srv.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = c.read_http_head();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = String::from_utf8(c.read_body(&head)).unwrap();
    assert!(body.contains("new WebSocket"), "{body}");
    let mut c = RawClient::tcp(srv.addr);
    c.send(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(c.read_http_head().starts_with("HTTP/1.1 404"));
});

both_backends!(
    sigterm_closes_connections_with_1001_and_exits_0,
    |backend| {
        let mut srv = TestServer::start(backend, &[]);
        let mut clients: Vec<RawClient> = (0..50).map(|_| RawClient::connect(srv.addr)).collect();
        // Make sure every connection is served before the signal.
        for c in clients.iter_mut() {
            c.send(&frame(0x81, b"x"));
            assert_eq!(c.read_frame(), Some((0x1, b"x".to_vec())));
        }
        let waiter = std::thread::spawn(move || {
            let st = srv.terminate();
            (st, srv)
        });
        for c in clients.iter_mut() {
            assert_eq!(c.read_close_code(), Some(1001));
            // Complete the close handshake as a client should.
            c.send(&frame(0x88, &1001u16.to_be_bytes()));
        }
        let (status, _srv) = waiter.join().unwrap();
        assert!(status.success(), "exit status {status}");
    }
);

both_backends!(a_plain_get_on_the_feed_says_to_upgrade, |backend| {
    // RFC 9110 §15.5.22: 426 names the protocol in Upgrade.
    let srv = TestServer::start(backend, &[]);
    let mut c = RawClient::tcp(srv.addr);
    c.send(b"GET /feed HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = c.read_http_head();
    assert!(head.starts_with("HTTP/1.1 426 Upgrade Required"), "{head}");
    assert!(head.contains("\r\nUpgrade: websocket\r\n"), "{head}");
    let body = String::from_utf8(c.read_body(&head)).unwrap();
    assert!(body.contains("WebSocket client"), "{body}");
});

both_backends!(
    tls_or_garbage_on_the_plain_port_is_answered_at_once,
    |backend| {
        // Not held for the 30 s handshake timeout: refused at the first byte
        // (RawClient gives up after 10 s).
        let srv = TestServer::start(backend, &["--handshake-timeout", "30"]);
        let hello = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03";
        for (bytes, why) in [
            (&hello[..], "a TLS handshake on the plaintext port"),
            (&b"\x00\xff\x13garbage"[..], "not an HTTP request"),
        ] {
            let mut c = RawClient::tcp(srv.addr);
            c.send(bytes);
            let head = c.read_http_head();
            assert!(head.starts_with("HTTP/1.1 400"), "{head:?}");
            let body = String::from_utf8_lossy(&c.read_body(&head)).into_owned();
            assert!(body.contains(why), "{body}");
        }
    }
);
