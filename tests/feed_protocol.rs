//! The feed protocol 1.0 as docs/feed-protocol.md writes it, against the
//! real binary on both backends: the version's subprotocol, `was_recovering`
//! beside `recovered`, and the `code` of every error a client can cause.

mod server;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};
use server::TestServer;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

fn connect(addr: SocketAddr, protocols: Option<&str>) -> (Ws, Option<String>) {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut req = format!("ws://{addr}/feed").into_client_request().unwrap();
    if let Some(p) = protocols {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    let (ws, resp) = tungstenite::client(req, stream).expect("upgrade");
    let chosen = resp
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_string());
    (ws, chosen)
}

fn ask(ws: &mut Ws, req: Value) -> Value {
    send_text(ws, &req.to_string())
}

fn send_text(ws: &mut Ws, text: &str) -> Value {
    ws.send(Message::text(text)).unwrap();
    next(ws)
}

fn next(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("an answer within 10 s") {
            Message::Text(t) => return serde_json::from_str(&t).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

both_backends!(the_version_is_a_subprotocol, |backend| {
    let srv = TestServer::start(backend, &["--feed-sim", "off"]);
    let (mut v1, chosen) = connect(srv.addr, Some("ringwave.feed.v1"));
    assert_eq!(chosen.as_deref(), Some("ringwave.feed.v1"));
    let (_, chosen) = connect(srv.addr, Some("other, ringwave.feed.v1"));
    assert_eq!(
        chosen.as_deref(),
        Some("ringwave.feed.v1"),
        "picked from a list"
    );
    // A client that names no version gets the answers of before 1.0, byte
    // for byte; one that names it gets the fields 1.0 adds.
    let (mut old, chosen) = connect(srv.addr, None);
    assert_eq!(chosen, None);
    let subscribe = json!({"op": "subscribe", "topic": "t"}).to_string();
    old.send(Message::text(subscribe.clone())).unwrap();
    assert_eq!(
        old.read().unwrap().into_text().unwrap().as_str(),
        r#"{"event":"subscribed","topic":"t"}"#
    );
    let a = send_text(&mut v1, &subscribe);
    assert_eq!(
        a,
        json!({"event": "subscribed", "topic": "t", "was_recovering": false})
    );
    let e = send_text(&mut old, "not json");
    assert_eq!(e.get("code"), None, "{e}");
    let e = send_text(&mut v1, "not json");
    assert_eq!(e["code"], "bad_request", "{e}");
});

both_backends!(
    was_recovering_tells_a_lost_position_from_a_fresh_one,
    |backend| {
        let srv = TestServer::start(
            backend,
            &[
                "--feed-sim",
                "off",
                "--allow-client-publish",
                "--history",
                "t=3",
            ],
        );
        let (mut ws, _) = connect(srv.addr, Some("ringwave.feed.v1"));
        let fresh = ask(
            &mut ws,
            json!({"op": "subscribe", "topic": "t", "meta": true}),
        );
        assert_eq!(
            (&fresh["recovered"], &fresh["was_recovering"]),
            (&json!(false), &json!(false)),
            "{fresh}"
        );
        let epoch = fresh["epoch"].as_str().unwrap().to_string();
        for i in 0..5 {
            ws.send(Message::text(
                json!({"op": "publish", "topic": "t", "data": i.to_string()}).to_string(),
            ))
            .unwrap();
            let env = next(&mut ws);
            assert_eq!(env["offset"], i + 1, "{env}");
        }
        // A second connection: from offset 3 (4 and 5 are kept), and from
        // offset 1 (2 is gone: three are kept), and from another epoch.
        let (mut again, _) = connect(srv.addr, Some("ringwave.feed.v1"));
        let cases = [
            (json!({"epoch": &epoch, "offset": 3}), true),
            (json!({"epoch": &epoch, "offset": 1}), false),
            (json!({"epoch": "0badcafe", "offset": 3}), false),
        ];
        for (i, (since, recovered)) in cases.into_iter().enumerate() {
            let topic = "t";
            let a = ask(
                &mut again,
                json!({"op": "subscribe", "topic": topic, "since": since}),
            );
            assert_eq!(a["recovered"], recovered, "case {i}: {a}");
            assert_eq!(a["was_recovering"], true, "case {i}: {a}");
            if recovered {
                assert_eq!(next(&mut again).as_i64(), Some(3), "the replay: 4 (data 3)");
                assert_eq!(next(&mut again).as_i64(), Some(4), "then 5 (data 4)");
            }
            // A repeated subscribe changes nothing, and tried nothing.
            let since = json!({"epoch": &epoch, "offset": 3});
            let repeat = ask(
                &mut again,
                json!({"op": "subscribe", "topic": topic, "since": since}),
            );
            assert_eq!(repeat["was_recovering"], false, "{repeat}");
            let gone = ask(&mut again, json!({"op": "unsubscribe", "topic": topic}));
            assert_eq!(gone["event"], "unsubscribed", "{gone}");
        }
    }
);

both_backends!(every_error_has_its_code, |backend| {
    let srv = TestServer::start(backend, &["--feed-sim", "off"]);
    let (mut ws, _) = connect(srv.addr, Some("ringwave.feed.v1"));
    let cases: [(&str, &str, Option<&str>); 7] = [
        ("not json", "bad_request", None),
        ("[1,2]", "bad_request", None),
        (r#"{"op":"subscribe"}"#, "bad_request", None),
        (r#"{"op":"shout","topic":"t"}"#, "unknown_op", None),
        (r#"{"op":"subscribe","topic":""}"#, "bad_topic", Some("")),
        (
            r#"{"op":"publish","topic":"t","data":1}"#,
            "not_entitled",
            Some("t"),
        ),
        (r#"{"op":"auth","token":"x"}"#, "auth_unavailable", None),
    ];
    for (req, code, topic) in cases {
        let e = send_text(&mut ws, req);
        assert_eq!(e["event"], "error", "{req}: {e}");
        assert_eq!(e["code"], code, "{req}: {e}");
        assert!(!e["error"].as_str().unwrap().is_empty(), "{req}: {e}");
        assert_eq!(e["topic"].as_str(), topic, "{req}: {e}");
    }
    ws.send(Message::binary(vec![1, 2, 3])).unwrap();
    assert_eq!(next(&mut ws)["code"], "bad_request");
    // 1,025 subscriptions: the last one is refused with its code.
    for i in 0..1024 {
        ws.send(Message::text(
            json!({"op": "subscribe", "topic": format!("t{i}")}).to_string(),
        ))
        .unwrap();
    }
    for _ in 0..1024 {
        assert_eq!(next(&mut ws)["event"], "subscribed");
    }
    let e = ask(&mut ws, json!({"op": "subscribe", "topic": "one-too-many"}));
    assert_eq!(e["code"], "too_many_subscriptions", "{e}");
    assert_eq!(e["topic"], "one-too-many", "{e}");
    // After all of it the connection is still served.
    let ok = ask(&mut ws, json!({"op": "unsubscribe", "topic": "t0"}));
    assert_eq!(ok["event"], "unsubscribed", "{ok}");
});

// A v1 subscriber (gap notices by default) with `meta` that does not read
// while 20,000 publications of 1 KiB are published on a `drop` topic with
// history: the kernel's buffers and `--max-buffered` fill, and the rest is
// skipped for it. A publisher then keeps the topic live (a marker every
// 50 ms, at most 400) while it reads: every offset reaches it once, either
// in an envelope or inside a `gap` notice that comes right where the
// offsets jump.
both_backends!(
    a_subscriber_that_falls_behind_is_told_what_it_missed,
    |backend| {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        const N: u64 = 20_000;
        let srv = TestServer::start(
            backend,
            &[
                "--feed-sim",
                "off",
                "--allow-client-publish",
                "--history",
                "t=100000",
                "--topic-policy",
                "t=drop",
                "--max-buffered",
                "16384",
            ],
        );
        let (mut sub, _) = connect(srv.addr, Some("ringwave.feed.v1"));
        let first = ask(
            &mut sub,
            json!({"op": "subscribe", "topic": "t", "meta": true}),
        );
        assert_eq!(first["offset"], 0, "{first}");
        let done = Arc::new(AtomicBool::new(false));
        let addr = srv.addr;
        let publisher = std::thread::spawn({
            let done = done.clone();
            move || {
                let (mut p, _) = connect(addr, None);
                let pad = "x".repeat(1000);
                for i in 0..N {
                    let m = json!({"op": "publish", "topic": "t", "data": format!("{i} {pad}")});
                    p.write(Message::text(m.to_string())).unwrap();
                }
                p.flush().unwrap();
                for i in 0..400 {
                    if done.load(Ordering::Relaxed) {
                        return;
                    }
                    let m = json!({"op": "publish", "topic": "t", "data": format!("marker {i}")});
                    p.send(Message::text(m.to_string())).unwrap();
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        // Not read until every flood publication has an offset.
        server::wait_metric(addr, "ringwave_history_entries", |v| v >= N as f64);
        let (mut next_offset, mut delivered, mut skipped, mut notices) = (1u64, 0u64, 0u64, 0);
        while next_offset <= N {
            let m = next(&mut sub);
            if m["event"] == "gap" {
                assert_eq!(m["topic"], "t", "{m}");
                assert_eq!(
                    m["from"], next_offset,
                    "the gap starts where delivery stopped: {m}"
                );
                let to = m["to"].as_u64().unwrap();
                assert_eq!(m["dropped"], to - next_offset + 1, "{m}");
                skipped += to - next_offset + 1;
                next_offset = to + 1;
                notices += 1;
                continue;
            }
            assert_eq!(m["offset"], next_offset, "in order, none twice: {m}");
            next_offset += 1;
            delivered += 1;
        }
        done.store(true, Ordering::Relaxed);
        publisher.join().unwrap();
        assert!(notices >= 1 && skipped > 0, "nothing was skipped");
        assert_eq!(delivered + skipped, N.max(next_offset - 1));
        println!("{backend}: {delivered} delivered, {skipped} skipped in {notices} gap notices");
        let m = server::metrics(addr);
        assert_eq!(
            m["ringwave_slow_consumer_gap_notices_total"],
            notices as f64
        );
    }
);
