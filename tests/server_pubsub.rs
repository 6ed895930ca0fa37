//! Pub/sub through the real binary's feed app (`/feed`), Server-Sent Events
//! and `POST /publish/<topic>`, on both backends: delivery on every worker,
//! per-topic order, unsubscribe, each slow-consumer policy with a client that
//! stops reading while a fast one keeps receiving, and control frames that
//! overtake queued publications.

mod server;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use server::pubsub::*;
use server::{eventually, frame, http_request, metrics, wait_metric, RawClient, TestServer};
use tungstenite::Message;

const SERVER_ARGS: &[&str] = &["--feed-sim", "off", "--allow-client-publish"];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = SERVER_ARGS.to_vec();
    v.extend_from_slice(extra);
    v
}

both_backends!(
    delivers_to_subscribers_on_every_worker_in_order,
    |backend| {
        let srv = TestServer::start(backend, &args(&["--threads", "2"]));
        // Connections spread over the workers by SO_REUSEPORT; open until both
        // workers hold subscribers (bounded).
        let mut subs: Vec<(Ws, bool)> = Vec::new();
        for i in 0..64 {
            let mut ws = feed(srv.addr);
            subscribe(&mut ws, "t");
            let also_u = i % 2 == 0;
            if also_u {
                subscribe(&mut ws, "u");
            }
            subs.push((ws, also_u));
            if subs.len() >= 12 {
                let m = metrics(srv.addr);
                let w0 = m["ringwave_worker_subscriptions{worker=\"0\"}"];
                let w1 = m["ringwave_worker_subscriptions{worker=\"1\"}"];
                if w0 > 0.0 && w1 > 0.0 {
                    break;
                }
            }
        }
        let m = metrics(srv.addr);
        assert!(
            m["ringwave_worker_subscriptions{worker=\"0\"}"] > 0.0,
            "{m:?}"
        );
        assert!(
            m["ringwave_worker_subscriptions{worker=\"1\"}"] > 0.0,
            "{m:?}"
        );
        let mut p = publisher(srv.addr);
        const N: usize = 300;
        for i in 0..N {
            let topic = if i % 3 == 0 { "u" } else { "t" };
            p.send(&frame(
                0x81,
                pub_json(topic, None, &format!("{topic}:{i}")).as_bytes(),
            ));
        }
        for (ws, also_u) in &mut subs {
            let want: Vec<String> = (0..N)
                .filter(|i| i % 3 != 0 || *also_u)
                .map(|i| format!("{}:{i}", if i % 3 == 0 { "u" } else { "t" }))
                .collect();
            let got: Vec<String> = (0..want.len()).map(|_| next_text(ws)).collect();
            assert_eq!(got, want);
        }
    }
);

both_backends!(unsubscribe_stops_delivery, |backend| {
    let srv = TestServer::start(backend, &args(&[]));
    let mut ws = feed(srv.addr);
    subscribe(&mut ws, "t");
    subscribe(&mut ws, "marker");
    let mut p = publisher(srv.addr);
    p.send(&frame(0x81, pub_json("t", None, "before").as_bytes()));
    assert_eq!(next_text(&mut ws), "before");
    ws.send(Message::text(sub_json("unsubscribe", "t")))
        .unwrap();
    assert_eq!(
        next_text(&mut ws),
        r#"{"event":"unsubscribed","topic":"t"}"#
    );
    for i in 0..20 {
        p.send(&frame(
            0x81,
            pub_json("t", None, &format!("after {i}")).as_bytes(),
        ));
    }
    p.send(&frame(0x81, pub_json("marker", None, "end").as_bytes()));
    // Publications are delivered in order from one publisher: had any "t"
    // message reached us, it would come before the marker.
    assert_eq!(next_text(&mut ws), "end");
    let m = metrics(srv.addr);
    assert_eq!(m["ringwave_subscriptions"], 1.0);
});

both_backends!(feed_protocol_errors_keep_the_connection, |backend| {
    let srv = TestServer::start(backend, &["--feed-sim", "off"]);
    let mut ws = feed(srv.addr);
    for (req, expect) in [
        (
            "not json",
            "not JSON (expected ident at line 1 column 2): send an object like",
        ),
        (
            "[1]",
            "expected a JSON object like {\\\"op\\\":\\\"subscribe\\\"",
        ),
        (
            r#"{"topic":"t"}"#,
            "missing \\\"op\\\": subscribe, unsubscribe, publish, auth",
        ),
        (r#"{"op":7}"#, "\\\"op\\\" must be a string, not a number"),
        (
            r#"{"op":"dance","topic":"t"}"#,
            "unknown op \\\"dance\\\": expected subscribe",
        ),
        (
            r#"{"op":"subscribe","topic":5}"#,
            "\\\"topic\\\" must be a string, not a number",
        ),
        (
            r#"{"op":"subscribe","topic":"t","snapshot":"yes"}"#,
            "\\\"snapshot\\\" must be true or false",
        ),
        (
            r#"{"op":"subscribe","topic":"t","since":3}"#,
            "\\\"since\\\" must be an object",
        ),
        (r#"{"op":"subscribe"}"#, "missing \\\"topic\\\""),
        (r#"{"op":"subscribe","topic":""}"#, "cannot subscribe"),
        (r#"{"op":"publish","topic":"t","data":"x"}"#, "not allowed"),
    ] {
        ws.send(Message::text(req)).unwrap();
        let reply = next_text(&mut ws);
        assert!(reply.starts_with(r#"{"error":"#), "{req} -> {reply}");
        assert!(reply.contains(expect), "{req} -> {reply}");
    }
    subscribe(&mut ws, "still-open");
});

both_backends!(slow_consumer_close_policy, |backend| {
    let srv = TestServer::start(
        backend,
        &args(&["--max-buffered", "65536", "--slow-consumer", "close"]),
    );
    let mut slow = slow_feed(srv.addr);
    raw_subscribe(&mut slow, "t");
    let mut fast = feed(srv.addr);
    subscribe(&mut fast, "t");
    let mut p = publisher(srv.addr);
    let n = publish_past_the_limit(
        srv.addr,
        &mut p,
        &mut fast,
        "ringwave_slow_consumer_closes_total",
        false,
    );
    assert_eq!(
        wait_metric(srv.addr, "ringwave_slow_consumer_closes_total", |v| v
            >= 1.0),
        1.0
    );
    // The slow client reads what was sent before the close: an unbroken
    // prefix, then close 1008.
    let mut next = 0;
    let code = loop {
        let (op, payload) = slow.read_frame().expect("frame before close");
        match op {
            0x1 => {
                assert_eq!(seq(&String::from_utf8(payload).unwrap()), next);
                next += 1;
            }
            0x8 => break u16::from_be_bytes([payload[0], payload[1]]),
            other => panic!("opcode {other:#x}"),
        }
    };
    assert_eq!(code, 1008);
    assert!(next < n, "the slow client got everything ({next})");
    // The fast subscriber is unaffected.
    p.send(&frame(0x81, pub_json("t", None, &numbered(n)).as_bytes()));
    assert_eq!(seq(&next_text(&mut fast)), n);
});

both_backends!(
    slow_consumer_drop_policy_counts_and_pings_still_answered,
    |backend| {
        let srv = TestServer::start(
            backend,
            &args(&["--max-buffered", "65536", "--slow-consumer", "drop"]),
        );
        let mut slow = slow_feed(srv.addr);
        raw_subscribe(&mut slow, "t");
        let mut fast = feed(srv.addr);
        subscribe(&mut fast, "t");
        let mut p = publisher(srv.addr);
        let n = publish_past_the_limit(
            srv.addr,
            &mut p,
            &mut fast,
            "ringwave_slow_consumer_drops_total",
            false,
        );
        // From here only the slow client subscribes: every drop is its own.
        fast.send(Message::text(sub_json("unsubscribe", "t")))
            .unwrap();
        assert!(next_text(&mut fast).contains("unsubscribed"));
        // Publish until drops keep coming (the kernel's autotuned socket
        // buffers are full too, so nothing drains the queue while the client
        // does not read), then stop; once the pong has been read, send end
        // markers. One connection: one order.
        let filled = Arc::new(AtomicBool::new(false));
        let pong_seen = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let filler = {
            let (filled, pong_seen, done) = (filled.clone(), pong_seen.clone(), done.clone());
            let addr = srv.addr;
            std::thread::spawn(move || {
                let mut p = publisher(addr);
                let deadline = Instant::now() + Duration::from_secs(30);
                let (mut next, mut markers) = (n, 0);
                while !filled.load(Ordering::Relaxed) && Instant::now() < deadline {
                    p.send(&frame(
                        0x81,
                        pub_json("t", None, &numbered(next)).as_bytes(),
                    ));
                    next += 1;
                }
                while !pong_seen.load(Ordering::Relaxed) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                    p.send(&frame(0x81, pub_json("t", None, "end").as_bytes()));
                    markers += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                (next, markers)
            })
        };
        // Drops keep coming: the slow client's queue is at its limit.
        // Saturated: publications keep being dropped while the server hands
        // the kernel (almost) nothing more (a scrape's own response is a few
        // KiB), so its queue for the slow client is full.
        let mut last = metrics(srv.addr);
        eventually(|| {
            // The window the two counters are compared over.
            std::thread::sleep(Duration::from_millis(100));
            let now = metrics(srv.addr);
            let sent = now["ringwave_bytes_out_total"] - last["ringwave_bytes_out_total"];
            let dropped = now["ringwave_slow_consumer_drops_total"]
                - last["ringwave_slow_consumer_drops_total"];
            last = now;
            match dropped >= 10.0 && sent < 32768.0 {
                true => Ok(()),
                false => Err(format!(
                    "the kernel kept taking bytes ({sent} in 100 ms, {dropped} dropped)"
                )),
            }
        });
        filled.store(true, Ordering::Relaxed);
        // Over its limit, the slow client pings: the pong overtakes the
        // publications queued in the server (no more come until it is read).
        slow.send(&frame(0x89, b"still there?"));
        let mut got = Vec::new();
        let mut before_pong = None;
        loop {
            let (op, payload) = slow.read_frame().expect("frame");
            match op {
                0xA => {
                    assert_eq!(payload, b"still there?");
                    before_pong = Some(got.len());
                    pong_seen.store(true, Ordering::Relaxed);
                }
                0x1 if payload == b"end" => break,
                0x1 => got.push(seq(&String::from_utf8(payload).unwrap())),
                other => panic!("opcode {other:#x}"),
            }
        }
        done.store(true, Ordering::Relaxed);
        let (sent, markers) = filler.join().unwrap();
        // The ping was answered while the client was over its limit. (Which
        // publications the pong overtook depends on how much of the queue
        // the kernel's autotuned buffers had taken: not asserted here.)
        let before_pong = before_pong.expect("the ping over the limit was answered");
        assert!(before_pong <= got.len());
        assert!(got.windows(2).all(|w| w[0] < w[1]), "order");
        assert!(got.len() < sent, "nothing was dropped");
        // Every numbered message either arrived or was counted as dropped
        // (end markers may add to the count).
        let total = metrics(srv.addr)["ringwave_slow_consumer_drops_total"];
        let missing = (sent - got.len()) as f64;
        assert!(
            total >= missing && total <= missing + markers as f64,
            "drops {total}, missing {missing}"
        );
        assert_eq!(
            metrics(srv.addr)["ringwave_slow_consumer_closes_total"],
            0.0
        );
    }
);

both_backends!(
    slow_consumer_conflate_policy_delivers_newest_after_drain,
    |backend| {
        let srv = TestServer::start(
            backend,
            &args(&["--max-buffered", "65536", "--slow-consumer", "conflate"]),
        );
        let mut slow = slow_feed(srv.addr);
        raw_subscribe(&mut slow, "t");
        let mut fast = feed(srv.addr);
        subscribe(&mut fast, "t");
        let mut p = publisher(srv.addr);
        let n = publish_past_the_limit(
            srv.addr,
            &mut p,
            &mut fast,
            // Held back is not yet conflated: publishing goes on until a
            // held-back value was replaced by a newer one of its key.
            "ringwave_slow_consumer_superseded_total",
            true,
        );
        // Reading again, the slow client catches up to the newest value of
        // each key: A's last is n-2, B's last is n-1 (n is even).
        let mut last: HashMap<char, usize> = HashMap::new();
        let mut count = 0;
        while last.get(&'A') != Some(&(n - 2)) || last.get(&'B') != Some(&(n - 1)) {
            let text = raw_text(&mut slow);
            let i = seq(&text);
            let key = if i.is_multiple_of(2) { 'A' } else { 'B' };
            if let Some(prev) = last.insert(key, i) {
                assert!(prev < i, "key {key}: {i} after {prev}");
            }
            count += 1;
        }
        assert!(count < n, "nothing was conflated");
        let m = metrics(srv.addr);
        assert!(m["ringwave_slow_consumer_superseded_total"] >= 1.0, "{m:?}");
        assert!(
            m["ringwave_slow_consumer_conflated_total"]
                >= m["ringwave_slow_consumer_superseded_total"],
            "every superseded publication was held back first: {m:?}"
        );
        assert_eq!(m["ringwave_slow_consumer_closes_total"], 0.0);
    }
);

/// Read one Server-Sent Event's data lines, joined with "\n".
fn sse_event(c: &mut RawClient, pending: &mut String) -> String {
    loop {
        if let Some(i) = pending.find("\n\n") {
            let block: String = pending.drain(..i + 2).collect();
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            if data.is_empty() {
                continue; // a comment (": subscribed", keep-alive)
            }
            return data.join("\n");
        }
        let mut buf = [0u8; 4096];
        let n = std::io::Read::read(&mut c.stream, &mut buf).expect("sse read");
        assert!(n > 0, "SSE stream ended");
        pending.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
}

both_backends!(sse_delivers_the_same_messages, |backend| {
    let srv = TestServer::start(backend, &args(&[]));
    let mut sse = RawClient::tcp(srv.addr);
    sse.send(b"GET /sse/news HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n");
    let head = sse.read_http_head();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Content-Type: text/event-stream"), "{head}");
    let mut ws = feed(srv.addr);
    subscribe(&mut ws, "news");
    wait_metric(srv.addr, "ringwave_subscriptions", |v| v >= 2.0);
    let mut p = publisher(srv.addr);
    let sent: Vec<String> = (0..50)
        .map(|i| {
            if i == 7 {
                "two\\nlines".to_string()
            } else {
                format!("item {i} ✓")
            }
        })
        .collect();
    for s in &sent {
        p.send(&frame(0x81, pub_json("news", None, s).as_bytes()));
    }
    let mut pending = String::new();
    let mut sse_got = Vec::new();
    let mut ws_got = Vec::new();
    for _ in 0..sent.len() {
        sse_got.push(sse_event(&mut sse, &mut pending));
        ws_got.push(next_text(&mut ws));
    }
    assert_eq!(sse_got, ws_got);
    assert_eq!(ws_got[7], "two\nlines");
    assert_eq!(ws_got[8], "item 8 ✓");
});

both_backends!(http_publish_needs_permission_and_a_length, |backend| {
    let srv = TestServer::start(
        backend,
        &[
            "--feed-sim",
            "off",
            "--publish-token",
            "s3cret",
            "--max-message",
            "1000",
        ],
    );
    let mut ws = feed(srv.addr);
    subscribe(&mut ws, "alerts");
    let post = |auth: &str, body: &str| {
        http_request(
            srv.addr,
            format!(
                "POST /publish/alerts HTTP/1.1\r\nHost: t\r\n{auth}Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    let (st, body) = post("", "nope");
    assert_eq!(st, 403, "{body}");
    let (st, _) = post("Authorization: Bearer wrong\r\n", "nope");
    assert_eq!(st, 403);
    let (st, body) = post("Authorization: Bearer s3cret\r\n", "fire!");
    assert_eq!(st, 202, "{body}");
    assert_eq!(next_text(&mut ws), "fire!");
    let (st, _) = http_request(
        srv.addr,
        b"POST /publish/alerts?token=s3cret HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(st, 411);
    let (st, _) = post("Authorization: Bearer s3cret\r\n", &"x".repeat(1001));
    assert_eq!(st, 413);
    // The token on the URL works too, and a body may arrive in pieces.
    let mut c = RawClient::tcp(srv.addr);
    c.send(
        b"POST /publish/alerts?token=s3cret HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello",
    );
    c.send(b" world");
    let head = c.read_http_head();
    assert!(head.starts_with("HTTP/1.1 202"), "{head}");
    assert_eq!(next_text(&mut ws), "hello world");
    // A /feed client with the token may publish; one without may not.
    let mut tok = RawClient::upgrade(RawClient::tcp(srv.addr), "/feed?token=s3cret");
    tok.send(&frame(
        0x81,
        pub_json("alerts", None, "via feed").as_bytes(),
    ));
    assert_eq!(next_text(&mut ws), "via feed");
});

both_backends!(
    every_delivery_is_counted_in_the_delivery_lag_histogram,
    |backend| {
        let srv = TestServer::start(backend, &args(&[]));
        let mut subs: Vec<Ws> = (0..3).map(|_| feed(srv.addr)).collect();
        for s in &mut subs {
            subscribe(s, "lag");
        }
        let mut p = publisher(srv.addr);
        const N: usize = 200;
        for i in 0..N {
            p.send(&frame(
                0x81,
                pub_json("lag", None, &i.to_string()).as_bytes(),
            ));
        }
        for s in &mut subs {
            for i in 0..N {
                assert_eq!(next_text(s), i.to_string());
            }
        }
        // Each of the 3 x 200 deliveries once, whichever worker sent it
        // (several queued as one run count as many).
        let m = metrics(srv.addr);
        let sum = |name: &str| -> f64 {
            m.iter()
                .filter(|(k, _)| k.starts_with(name))
                .map(|(_, v)| v)
                .sum()
        };
        assert_eq!(sum("ringwave_delivery_lag_seconds_count"), (3 * N) as f64);
        let inf: f64 = m
            .iter()
            .filter(|(k, _)| {
                k.starts_with("ringwave_delivery_lag_seconds_bucket") && k.contains("+Inf")
            })
            .map(|(_, v)| v)
            .sum();
        assert_eq!(inf, (3 * N) as f64);
    }
);
