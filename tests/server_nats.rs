//! Pub/sub across nodes through a real nats-server (Debian's, which
//! scripts/test.sh installs), started by each test on free ports with its
//! monitoring endpoint: publications from every source on one node reach
//! `/feed` and SSE subscribers on the others exactly once and in order, with
//! binary payloads and conflation keys; subscriptions follow local
//! subscribers (checked in nats-server's `/subsz`); delivery resumes after
//! nats-server restarts, with the reconnect and the loss counted; a node
//! started before NATS connects when it comes; refused credentials stop the
//! start.

mod server;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use ringwave::server::{BuiltinRoutes, Config, Echo, EngineConfig, NatsConfig, Server};
use server::nats::{free_port, Nats};
use server::{
    eventually, frame, http_request, metrics, refused_start, wait_metric, RawClient, TestServer,
};
use socket2::{Domain, Socket, Type};
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

/// A ringwave process on `nats`.
fn node(backend: &str, nats: &str, extra: &[&str]) -> TestServer {
    let mut args = vec![
        "--feed-sim",
        "off",
        "--allow-client-publish",
        "--nats",
        nats,
    ];
    args.extend_from_slice(extra);
    TestServer::start(backend, &args)
}

fn feed(addr: SocketAddr) -> Ws {
    server::feed_client(addr)
}

fn send_json(ws: &mut Ws, v: serde_json::Value) {
    ws.send(Message::text(v.to_string())).unwrap();
}

fn subscribe(ws: &mut Ws, topic: &str) {
    send_json(ws, serde_json::json!({"op": "subscribe", "topic": topic}));
    match ws.read().unwrap() {
        Message::Text(t) => assert!(t.contains("subscribed"), "{t}"),
        other => panic!("{other:?}"),
    }
}

/// The next publication a /feed client gets: (binary, payload).
fn next(ws: &mut Ws) -> (bool, Vec<u8>) {
    loop {
        match ws.read().unwrap() {
            Message::Text(t) => return (false, t.as_bytes().to_vec()),
            Message::Binary(b) => return (true, b.to_vec()),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn post(addr: SocketAddr, topic: &str, body: &[u8]) {
    let mut req = format!(
        "POST /publish/{topic} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let (status, text) = http_request(addr, &req);
    assert_eq!(status, 202, "{text}");
}

/// A Server-Sent Events client of `/sse/<topic>`.
struct Sse {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Sse {
    fn open(addr: SocketAddr, topic: &str) -> Sse {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        write!(
            stream,
            "GET /sse/{topic} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut s = Sse {
            stream,
            pending: Vec::new(),
        };
        let head = s.block(b"\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        s
    }

    /// Bytes up to and including `end`.
    fn block(&mut self, end: &[u8]) -> String {
        loop {
            if let Some(i) = self.pending.windows(end.len()).position(|w| w == end) {
                let b: Vec<u8> = self.pending.drain(..i + end.len()).collect();
                return String::from_utf8(b).unwrap();
            }
            let mut buf = [0u8; 4096];
            let n = self.stream.read(&mut buf).expect("SSE read");
            assert!(n > 0, "SSE stream ended");
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    /// The next event: (binary, data lines joined with "\n").
    fn next(&mut self) -> (bool, String) {
        loop {
            let block = self.block(b"\n\n");
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            if !data.is_empty() {
                return (block.contains("event: binary"), data.join("\n"));
            }
        }
    }
}

/// What a subscriber got up to the end marker, checked: every source's
/// messages once each, in the order they were sent.
fn check_all(got: &[(bool, Vec<u8>)], n: usize, binary: &[u8], who: &str) {
    let mut texts: Vec<String> = Vec::new();
    let mut binaries = 0;
    for (is_binary, p) in got {
        if *is_binary {
            assert_eq!(p, binary, "{who}: binary payload");
            binaries += 1;
        } else {
            texts.push(String::from_utf8(p.clone()).unwrap());
        }
    }
    assert_eq!(binaries, 1, "{who}: the binary publication once");
    for source in ["ws", "post", "lib"] {
        let mine: Vec<&String> = texts
            .iter()
            .filter(|t| t.starts_with(&format!("{source}-")))
            .collect();
        let want: Vec<String> = (0..n).map(|i| format!("{source}-{i}")).collect();
        assert_eq!(
            mine.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            want.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "{who}: {source} publications, once each and in order"
        );
    }
    assert_eq!(texts.len(), 3 * n, "{who}: nothing else, nothing twice");
}

both_backends!(three_nodes_and_a_library_node_share_a_topic, |backend| {
    const N: usize = 30;
    let binary: Vec<u8> = vec![0xff, 0x00, 0xfe, 0x80];
    let nats = Nats::start();
    let a = node(backend, &nats.url(), &[]);
    let c = node(backend, &nats.url(), &[]);
    // Node B in this process, for the library's Publisher; it serves the
    // feed app and POST /publish like the binary.
    let b = Server::builder()
        .config(Config {
            engine: EngineConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                threads: 2,
                backend: backend.parse().unwrap(),
                pin_threads: false,
                ..EngineConfig::default()
            },
            allow_client_publish: true,
            routes: BuiltinRoutes::ALL,
            feed_path: Some("/feed".into()),
            nats: Some(NatsConfig {
                urls: vec![nats.url()],
                ..NatsConfig::default()
            }),
            ..Config::default()
        })
        .serve(|| Echo)
        .expect("node B");
    let b_addr = b.local_addr();
    let mut on_a = feed(a.addr);
    subscribe(&mut on_a, "t");
    let mut on_b = feed(b_addr);
    subscribe(&mut on_b, "t");
    let mut on_c = Sse::open(c.addr, "t");
    // Each node holds one subscription for the topic.
    nats.wait_subscriptions("ringwave.t", 3);

    let mut publisher = feed(b_addr);
    for i in 0..N {
        send_json(
            &mut publisher,
            serde_json::json!({"op": "publish", "topic": "t", "data": format!("ws-{i}")}),
        );
    }
    let mut got_b = Vec::new();
    // B's own subscriber sees them (so they were published) before the
    // next source starts.
    for _ in 0..N {
        got_b.push(next(&mut on_b));
    }
    for i in 0..N {
        post(b_addr, "t", format!("post-{i}").as_bytes());
    }
    post(b_addr, "t", &binary);
    let lib = b.publisher();
    for i in 0..N {
        lib.publish_text("t", &format!("lib-{i}")).unwrap();
    }
    lib.publish_text("t", "end").unwrap();

    let until_end = |next: &mut dyn FnMut() -> (bool, Vec<u8>)| {
        let mut got = Vec::new();
        loop {
            let m = next();
            if m == (false, b"end".to_vec()) {
                return got;
            }
            got.push(m);
        }
    };
    let got_a = until_end(&mut || next(&mut on_a));
    check_all(&got_a, N, &binary, "node A (/feed)");
    got_b.extend(until_end(&mut || next(&mut on_b)));
    check_all(&got_b, N, &binary, "node B itself (/feed)");
    let got_c = until_end(&mut || {
        let (is_binary, data) = on_c.next();
        if is_binary {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .expect("base64");
            (true, bytes)
        } else {
            (false, data.into_bytes())
        }
    });
    check_all(&got_c, N, &binary, "node C (SSE)");
    // Nothing more arrives after the end marker: a publication seen twice
    // through NATS's echo would come in order, before it; and the counts
    // agree.
    let m = metrics(a.addr);
    assert_eq!(
        m["ringwave_nats_received_total"],
        (3 * N + 2) as f64,
        "{m:?}"
    );
    assert_eq!(m["ringwave_nats_published_total"], 0.0);
    let m = metrics(b_addr);
    assert_eq!(m["ringwave_nats_published_total"], (3 * N + 2) as f64);
    assert_eq!(m["ringwave_nats_received_total"], 0.0, "no echo");
    b.shutdown();
    b.join().unwrap();
});

/// A raw /feed client with a tiny receive buffer, so the server's queue for
/// it fills as soon as it stops reading.
fn slow_feed(addr: SocketAddr) -> RawClient {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&addr.into()).unwrap();
    let mut c = RawClient::upgrade(RawClient::from_stream(s.into()), "/feed");
    c.send(&frame(0x81, br#"{"op":"subscribe","topic":"t"}"#));
    let (op, p) = c.read_frame().expect("subscribed");
    assert_eq!(op, 1);
    assert!(String::from_utf8_lossy(&p).contains("subscribed"));
    c
}

fn seq(text: &str) -> usize {
    text.split(':')
        .find_map(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no number in {text:.40}"))
}

both_backends!(conflation_keys_cross_nodes, |backend| {
    let nats = Nats::start();
    let a = node(
        backend,
        &nats.url(),
        &["--max-buffered", "65536", "--slow-consumer", "conflate"],
    );
    let b = node(backend, &nats.url(), &[]);
    let mut slow = slow_feed(a.addr);
    let mut fast = feed(a.addr);
    subscribe(&mut fast, "t");
    nats.wait_subscriptions("ringwave.t", 1);
    let mut p = feed(b.addr);
    // Keyed publications of ~1 KiB on B, alternating keys A and B, paced by
    // A's fast subscriber, until A's slow one had a held-back value replaced
    // by a newer one of its key.
    let pad = "x".repeat(1000);
    let mut publish = |from: usize, to: usize| {
        for i in from..to {
            let key = if i.is_multiple_of(2) { "A" } else { "B" };
            send_json(
                &mut p,
                serde_json::json!({"op": "publish", "topic": "t", "key": key, "data": format!("{i:06}:{pad}")}),
            );
        }
        for i in from..to {
            let (_, m) = next(&mut fast);
            assert_eq!(seq(&String::from_utf8(m).unwrap()), i, "fast subscriber");
        }
    };
    let mut n: usize = 0;
    loop {
        publish(n, n + 16);
        n += 16;
        if n.is_multiple_of(256)
            && metrics(a.addr)
                .get("ringwave_slow_consumer_superseded_total")
                .copied()
                .unwrap_or(0.0)
                >= 1.0
        {
            break;
        }
        assert!(n < 20_000, "conflation never started");
    }
    // The last pair is held back whole (the slow client is still over its
    // limit), so what it gets at the end is the conflated values.
    let conflated = |addr| metrics(addr)["ringwave_slow_consumer_conflated_total"];
    loop {
        let before = conflated(a.addr);
        publish(n, n + 2);
        n += 2;
        if conflated(a.addr) - before >= 2.0 {
            break;
        }
        assert!(n < 20_000, "the slow client left its limit");
    }
    // Reading again, the slow client catches up to the newest value of each
    // key (A's last is n-2, B's n-1): without the key through NATS, only the
    // newest of the topic would be kept.
    let mut last: HashMap<char, usize> = HashMap::new();
    let mut count = 0;
    while last.get(&'A') != Some(&(n - 2)) || last.get(&'B') != Some(&(n - 1)) {
        let (op, payload) = slow.read_frame().expect("frame");
        if op != 1 {
            continue;
        }
        let i = seq(&String::from_utf8(payload).unwrap());
        let key = if i.is_multiple_of(2) { 'A' } else { 'B' };
        if let Some(prev) = last.insert(key, i) {
            assert!(prev < i, "key {key}: {i} after {prev}");
        }
        count += 1;
    }
    assert!(count < n, "nothing was conflated");
});

both_backends!(the_last_local_subscriber_leaving_unsubscribes, |backend| {
    let nats = Nats::start();
    let a = node(backend, &nats.url(), &[]);
    let mut first = feed(a.addr);
    subscribe(&mut first, "gone.soon");
    let mut second = feed(a.addr);
    subscribe(&mut second, "gone.soon");
    // One subscription for the node, however many local subscribers.
    nats.wait_subscriptions("ringwave.gone%2Esoon", 1);
    assert_eq!(metrics(a.addr)["ringwave_nats_subjects"], 1.0);
    send_json(
        &mut first,
        serde_json::json!({"op": "unsubscribe", "topic": "gone.soon"}),
    );
    let _ = next(&mut first);
    drop(second);
    nats.wait_subscriptions("ringwave.gone%2Esoon", 0);
    wait_metric(a.addr, "ringwave_nats_subjects", |v| v == 0.0);
});

both_backends!(nats_restarted_mid_stream, |backend| {
    let mut nats = Nats::start();
    let a = node(backend, &nats.url(), &[]);
    let b = node(backend, &nats.url(), &[]);
    let mut sub = feed(a.addr);
    subscribe(&mut sub, "t");
    nats.wait_subscriptions("ringwave.t", 1);
    for i in 0..5 {
        post(b.addr, "t", format!("before-{i}").as_bytes());
    }
    for i in 0..5 {
        assert_eq!(next(&mut sub), (false, format!("before-{i}").into_bytes()));
    }
    nats.kill();
    wait_metric(b.addr, "ringwave_nats_connected", |v| v == 0.0);
    wait_metric(a.addr, "ringwave_nats_connected", |v| v == 0.0);
    // Published while NATS is away: lost, and counted as such.
    for i in 0..7 {
        post(b.addr, "t", format!("lost-{i}").as_bytes());
    }
    nats.run();
    wait_metric(b.addr, "ringwave_nats_reconnects_total", |v| v >= 1.0);
    wait_metric(a.addr, "ringwave_nats_reconnects_total", |v| v >= 1.0);
    wait_metric(b.addr, "ringwave_nats_connected", |v| v == 1.0);
    // A subscribed again by itself.
    nats.wait_subscriptions("ringwave.t", 1);
    for i in 0..5 {
        post(b.addr, "t", format!("after-{i}").as_bytes());
    }
    for i in 0..5 {
        assert_eq!(
            next(&mut sub),
            (false, format!("after-{i}").into_bytes()),
            "delivery resumes, without what was published during the outage"
        );
    }
    let m = metrics(b.addr);
    assert_eq!(
        m["ringwave_nats_dropped_total{reason=\"disconnected\"}"], 7.0,
        "{m:?}"
    );
    assert_eq!(m["ringwave_nats_published_total"], 10.0);
});

#[test]
fn a_node_started_before_nats_connects_when_it_comes() {
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let a = node("poll", &url, &[]);
    // Serving meanwhile, pub/sub included.
    let mut sub = feed(a.addr);
    subscribe(&mut sub, "t");
    post(a.addr, "t", b"local");
    assert_eq!(next(&mut sub), (false, b"local".to_vec()));
    let m = metrics(a.addr);
    assert_eq!(m["ringwave_nats_connected"], 0.0);
    assert_eq!(
        m["ringwave_nats_dropped_total{reason=\"disconnected\"}"],
        1.0
    );
    let mut nats = Nats {
        child: None,
        port,
        monitor: free_port(),
        extra: Vec::new(),
    };
    nats.run();
    wait_metric(a.addr, "ringwave_nats_connected", |v| v == 1.0);
    // Its subscription made before the connection reaches NATS, and
    // another node's publication reaches it.
    nats.wait_subscriptions("ringwave.t", 1);
    let b = node("poll", &url, &[]);
    post(b.addr, "t", b"from B");
    assert_eq!(next(&mut sub), (false, b"from B".to_vec()));
    assert_eq!(metrics(a.addr)["ringwave_nats_reconnects_total"], 0.0);
}

#[test]
fn credentials_nats_refuses_stop_the_start() {
    let nats = Nats::start_with(&["--user", "ringwave", "--pass", "right"]);
    let err = refused_start(&[
        "--listen",
        "127.0.0.1:0",
        "--feed-sim",
        "off",
        "--log-level",
        "error",
        "--nats",
        &nats.url(),
        "--nats-user",
        "ringwave",
        "--nats-password",
        "wrong",
    ]);
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(!err.contains("wrong"), "the password is not printed: {err}");
    let a = node(
        "poll",
        &nats.url(),
        &["--nats-user", "ringwave", "--nats-password", "right"],
    );
    assert_eq!(metrics(a.addr)["ringwave_nats_connected"], 1.0);
    // A prefix that is not a subject prefix is refused before anything.
    let err = refused_start(&[
        "--listen",
        "127.0.0.1:0",
        "--nats",
        &nats.url(),
        "--nats-prefix",
        "no-dot",
    ]);
    assert!(err.contains("must end with '.'"), "{err}");
}

both_backends!(a_stalled_nats_never_blocks_a_worker, |backend| {
    let nats = Nats::start();
    // Subscribers read only after the burst: room for all of it.
    let room = ["--max-buffered", "67108864"];
    let a = node(
        backend,
        &nats.url(),
        &[&room[..], &["--nats-queue", "16"]].concat(),
    );
    let b = node(backend, &nats.url(), &room);
    let mut local = feed(a.addr);
    subscribe(&mut local, "t");
    let mut remote = feed(b.addr);
    subscribe(&mut remote, "t");
    nats.wait_subscriptions("ringwave.t", 2);
    // nats-server stops reading (SIGSTOP): the bridge's connection stays
    // up, the kernel's buffers fill, the client's writes wait, and A's
    // queue of 16 fills behind them.
    let pid = nats.child.as_ref().expect("running").id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let body = vec![b'x'; 32 << 10];
    // 48 MiB: more than the client's queue of 256 and loopback's socket
    // buffers hold.
    const N: usize = 1500;
    for _ in 0..N {
        post(a.addr, "t", &body);
    }
    // A's own subscriber got every one: no worker waited for NATS.
    for _ in 0..N {
        assert_eq!(next(&mut local).1.len(), body.len());
    }
    let m = metrics(a.addr);
    assert!(
        m["ringwave_nats_dropped_total{reason=\"queue_full\"}"] > 0.0,
        "{m:?}"
    );
    assert_eq!(m["ringwave_nats_connected"], 1.0);
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    // NATS reads again: what was queued goes out (until B has received all
    // that A sent, A's queue is not empty), then new publications.
    eventually(|| {
        let sent = metrics(a.addr)["ringwave_nats_published_total"];
        if metrics(b.addr)["ringwave_nats_received_total"] == sent
            && metrics(a.addr)["ringwave_nats_published_total"] == sent
        {
            Ok(())
        } else {
            Err("A's backlog did not drain".to_string())
        }
    });
    post(a.addr, "t", b"after the stall");
    loop {
        let (_, p) = next(&mut remote);
        if p == b"after the stall" {
            break;
        }
        assert_eq!(p.len(), body.len());
    }
    let m = metrics(a.addr);
    let sent = m["ringwave_nats_published_total"];
    let dropped = m["ringwave_nats_dropped_total{reason=\"queue_full\"}"];
    assert_eq!(sent + dropped, (N + 1) as f64, "{m:?}");
});
