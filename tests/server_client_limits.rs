//! Limits per client: a WebSocket that sends faster than
//! `--max-message-rate` is closed with 1008 while a bystander on the same
//! server keeps its feed.

mod server;
use server::*;

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

both_backends!(
    a_client_over_its_message_rate_is_closed_with_1008,
    |backend| {
        let srv = TestServer::start(
            backend,
            &["--feed-sim", "20:200", "--max-message-rate", "50"],
        );
        let mut bystander = feed_client(srv.addr);
        bystander
            .send(Message::text(r#"{"op":"subscribe","topic":"ticks"}"#))
            .unwrap();
        // 1,000 echo requests at once: 50 are allowed in the first second.
        let (mut flood, _) = tungstenite::connect(srv.url("/echo")).expect("connect");
        for i in 0..1000 {
            flood.send(Message::text(format!("m{i}"))).unwrap();
        }
        let mut echoed = 0;
        let close = loop {
            match flood.read() {
                Ok(Message::Text(_)) => echoed += 1,
                Ok(Message::Close(c)) => break c.expect("a close code"),
                Ok(_) => {}
                Err(e) => panic!("no close after {echoed} echoes: {e}"),
            }
        };
        assert_eq!(close.code, CloseCode::Policy, "{close:?}");
        assert_eq!(close.reason.as_str(), "message rate exceeded");
        assert!((50..1000).contains(&echoed), "{echoed} echoed");
        // The bystander's ticks keep coming after the flooder is gone.
        let mut ticks = 0;
        while ticks < 20 {
            if let Message::Text(t) = bystander.read().unwrap() {
                if t.contains("\"tick\"") {
                    ticks += 1;
                }
            }
        }
        assert_eq!(metrics(srv.addr)["ringwave_message_rate_closes_total"], 1.0);
    }
);

/// A raw connection from `source` (a loopback address) and its upgrade's
/// status line.
fn upgrade_from(addr: std::net::SocketAddr, source: [u8; 4]) -> (String, RawClient) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&std::net::SocketAddr::from((source, 0)).into())
        .unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut c = RawClient::from_stream(sock.into());
    c.send(REQUEST.as_bytes());
    (c.read_http_head(), c)
}

both_backends!(connections_per_client_address_are_limited, |backend| {
    let srv = TestServer::start(
        backend,
        &["--feed-sim", "off", "--max-connections-per-ip", "2"],
    );
    let (a, ca) = upgrade_from(srv.addr, [127, 0, 0, 1]);
    let (b, cb) = upgrade_from(srv.addr, [127, 0, 0, 1]);
    assert!(a.starts_with("HTTP/1.1 101") && b.starts_with("HTTP/1.1 101"));
    let (c, _) = upgrade_from(srv.addr, [127, 0, 0, 1]);
    assert!(c.starts_with("HTTP/1.1 429"), "{c}");
    assert!(c.contains("Retry-After: 1"), "{c}");
    // Another address is not counted with it.
    let (d, cd) = upgrade_from(srv.addr, [127, 0, 0, 2]);
    assert!(d.starts_with("HTTP/1.1 101"), "{d}");
    // One of the two goes: room again, once the server has seen it close.
    drop(cb);
    let e = eventually(|| match upgrade_from(srv.addr, [127, 0, 0, 1]) {
        (h, c) if h.starts_with("HTTP/1.1 101") => Ok(c),
        (h, _) => Err(h),
    });
    // Counted; read once 127.0.0.1 has room for the scrape.
    drop((ca, cd, e));
    let body = eventually(|| match http_get(srv.addr, "/metrics") {
        (200, body) => Ok(body),
        (st, body) => Err(format!("{st} {body}")),
    });
    // The third, and any retry of the fifth before the close was seen.
    let refused = parse_metrics(&body)[r#"ringwave_rejects_total{reason="429"}"#];
    assert!(refused >= 1.0, "{body}");
});

both_backends!(new_connections_per_client_address_are_limited, |backend| {
    let srv = TestServer::start(
        backend,
        &["--feed-sim", "off", "--new-connections-per-ip", "1"],
    );
    // Twenty at once, one a second allowed: unless the twenty took twenty
    // seconds, some are refused; each refusal says when to come back.
    let heads: Vec<String> = (0..20)
        .map(|_| upgrade_from(srv.addr, [127, 0, 0, 3]).0)
        .collect();
    let refused: Vec<&String> = heads
        .iter()
        .filter(|h| h.starts_with("HTTP/1.1 429"))
        .collect();
    assert!(!refused.is_empty(), "{heads:?}");
    assert!(refused.iter().all(|h| h.contains("Retry-After: 1")));
    // Another address is not counted with it.
    assert!(upgrade_from(srv.addr, [127, 0, 0, 4])
        .0
        .starts_with("HTTP/1.1 101"));
});
