//! Offsets, history and recovery through the real binary, on both backends
//! (two workers): a `/feed` subscriber that reconnects with its last
//! position gets exactly what it missed and then live publications, in
//! offset order, while four publishers on both workers keep publishing; positions too old,
//! from another epoch or never reached are answered `recovered: false`;
//! snapshots give the newest publication per key; Server-Sent Events carry
//! `EPOCH:OFFSET` ids and recover from `Last-Event-ID`, over HTTP/1.1 and
//! HTTP/2.

mod server;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use server::{curl_sse, http_request, wait_metric, TestServer};
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

fn feed(addr: SocketAddr) -> Ws {
    server::feed_client(addr)
}

fn next_json(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("a message within 20 s") {
            Message::Text(t) => {
                return serde_json::from_str(&t).unwrap_or(Value::String(t.to_string()))
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn next_text(ws: &mut Ws) -> String {
    loop {
        match ws.read().expect("a message within 20 s") {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Send a subscribe request and return its `subscribed` answer.
fn subscribe(ws: &mut Ws, req: Value) -> Value {
    ws.send(Message::text(req.to_string())).unwrap();
    let v = next_json(ws);
    assert_eq!(v["event"], "subscribed", "{v}");
    v
}

fn publish(ws: &mut Ws, topic: &str, key: Option<&str>, data: &str) {
    let mut m = json!({"op": "publish", "topic": topic, "data": data});
    if let Some(k) = key {
        m["key"] = k.into();
    }
    ws.send(Message::text(m.to_string())).unwrap();
}

/// A server (two workers) where clients may publish, keeping history as
/// each `TOPIC=COUNT` says.
fn start(backend: &str, history: &[&str]) -> TestServer {
    let mut args = vec!["--feed-sim", "off", "--allow-client-publish"];
    for h in history {
        args.extend(["--history", h]);
    }
    TestServer::start(backend, &args)
}

/// Wait until every one of the two workers took `n` publications in all.
fn taken_everywhere(addr: SocketAddr, n: usize) {
    wait_metric(addr, "ringwave_publishes_total", |v| v >= 2.0 * n as f64);
}

const PHASE: usize = 500;

/// A barrier whose wait gives up (fails the test) after 30 s, so that a
/// publisher that died cannot hang the run.
#[derive(Clone)]
struct Phases(Arc<(Mutex<(usize, usize)>, Condvar)>, usize);

impl Phases {
    fn new(publishers: usize) -> Phases {
        Phases(
            Arc::new((Mutex::new((0, 0)), Condvar::new())),
            publishers + 1,
        )
    }

    fn wait(&self) {
        let (lock, cv) = &*self.0;
        let mut g = lock.lock().unwrap();
        let generation = g.1;
        g.0 += 1;
        if g.0 == self.1 {
            *g = (0, generation + 1);
            cv.notify_all();
            return;
        }
        let (g, timeout) = cv
            .wait_timeout_while(g, Duration::from_secs(30), |g| g.1 == generation)
            .unwrap();
        assert!(!timeout.timed_out(), "a phase did not complete: {:?}", *g);
    }
}
const PUBLISHERS: [&str; 4] = ["A", "B", "C", "D"];

both_backends!(
    a_reconnect_resumes_exactly_under_concurrent_publishers,
    |backend| {
        let srv = start(backend, &["prices=10000"]);
        let addr = srv.addr;
        let mut s1 = feed(addr);
        let first = subscribe(
            &mut s1,
            json!({"op": "subscribe", "topic": "prices", "meta": true}),
        );
        assert_eq!(
            (first["offset"].as_u64(), first["recovered"].as_bool()),
            (Some(0), Some(false))
        );
        let epoch = first["epoch"].as_str().unwrap().to_string();

        // Four publishers, each on its own connection (so on either worker),
        // three phases: while s1 reads, while nobody is subscribed, and while
        // s2 recovers.
        let phases = Phases::new(PUBLISHERS.len());
        let publishers: Vec<_> = PUBLISHERS
            .into_iter()
            .map(|name| {
                let phases = phases.clone();
                std::thread::spawn(move || {
                    let mut ws = feed(addr);
                    for phase in 0..3 {
                        for i in 0..PHASE {
                            publish(
                                &mut ws,
                                "prices",
                                None,
                                &format!("{name}:{}", phase * PHASE + i),
                            );
                        }
                        if phase < 2 {
                            phases.wait();
                        }
                    }
                    ws
                })
            })
            .collect();

        // s1 reads at least 50, in order from offset 1, then goes away.
        let mut seen: Vec<(u64, String)> = Vec::new();
        while seen.len() < 50 {
            let v = next_json(&mut s1);
            assert_eq!(v["epoch"], epoch.as_str(), "{v}");
            seen.push((
                v["offset"].as_u64().unwrap(),
                v["data"].as_str().unwrap().to_string(),
            ));
        }
        drop(s1);
        let last = seen.last().unwrap().0;
        phases.wait(); // phase 1 sent, s1 gone
        phases.wait(); // phase 2 sent; phase 3 starts now
        let mut s2 = feed(addr);
        let back = subscribe(
            &mut s2,
            json!({"op": "subscribe", "topic": "prices", "meta": true,
               "since": {"epoch": epoch, "offset": last}}),
        );
        assert_eq!(back["recovered"], true, "{back}");
        assert_eq!(back["epoch"], epoch.as_str());
        assert!(back["offset"].as_u64().unwrap() >= last, "{back}");
        let total = (3 * PHASE * PUBLISHERS.len()) as u64;
        let mut next = last + 1;
        while next <= total {
            let v = next_json(&mut s2);
            let off = v["offset"].as_u64().unwrap();
            assert_eq!(off, next, "after {}: {v}", next - 1);
            seen.push((off, v["data"].as_str().unwrap().to_string()));
            next += 1;
        }
        for p in publishers {
            drop(p.join().unwrap());
        }
        // s1 saw 1..=last, s2 last+1..=total: each publisher's messages once
        // each, in the order it sent them.
        let offsets: Vec<u64> = seen.iter().map(|s| s.0).collect();
        assert_eq!(offsets, (1..=total).collect::<Vec<_>>());
        for name in PUBLISHERS {
            let mine: Vec<usize> = seen
                .iter()
                .filter_map(|(_, d)| d.strip_prefix(&format!("{name}:")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..3 * PHASE).collect::<Vec<_>>(), "publisher {name}");
        }
    }
);

both_backends!(
    positions_that_cannot_be_recovered_and_snapshots,
    |backend| {
        let srv = start(backend, &["short=5", "quotes=100"]);
        let addr = srv.addr;
        let mut p = feed(addr);
        for i in 1..=20 {
            publish(&mut p, "short", None, &format!("s{i}"));
        }
        taken_everywhere(addr, 20);
        let mut plain = feed(addr);
        let info = subscribe(&mut plain, json!({"op": "subscribe", "topic": "short"}));
        assert_eq!(
            (info["offset"].as_u64(), info["recovered"].as_bool()),
            (Some(20), Some(false))
        );
        let epoch = info["epoch"].as_str().unwrap().to_string();
        let since = |offset: u64, epoch: &str| json!({"op": "subscribe", "topic": "short", "since": {"epoch": epoch, "offset": offset}});
        // Within the five kept: 18, 19, 20 first, as published (no envelope).
        let mut recent = feed(addr);
        let r = subscribe(&mut recent, since(17, &epoch));
        assert_eq!(
            (r["recovered"].as_bool(), r["offset"].as_u64()),
            (Some(true), Some(20)),
            "{r}"
        );
        for want in ["s18", "s19", "s20"] {
            assert_eq!(next_text(&mut recent), want);
        }
        // Too old (3..=15 are gone), another epoch, a position never reached.
        let other = format!("{:08x}", u32::from_str_radix(&epoch, 16).unwrap() ^ 1);
        let mut lost = Vec::new();
        for req in [
            since(2, &epoch),
            since(10, &other),
            since(99, &epoch),
            since(3, "nonsense"),
        ] {
            let mut ws = feed(addr);
            let r = subscribe(&mut ws, req.clone());
            assert_eq!(r["recovered"], false, "{req} -> {r}");
            assert_eq!(r["offset"], 20, "{r}");
            lost.push(ws);
        }
        // Everyone continues live from 21, nothing replayed before it.
        publish(&mut p, "short", None, "s21");
        for ws in lost.iter_mut().chain([&mut plain, &mut recent]) {
            assert_eq!(next_text(ws), "s21");
        }

        // Snapshot: the newest per key, in offset order, as meta envelopes.
        for (k, v) in [
            ("AAPL", "1"),
            ("MSFT", "2"),
            ("AAPL", "3"),
            ("GOOG", "4"),
            ("MSFT", "5"),
        ] {
            publish(&mut p, "quotes", Some(k), v);
        }
        taken_everywhere(addr, 26);
        let mut snap = feed(addr);
        let r = subscribe(
            &mut snap,
            json!({"op": "subscribe", "topic": "quotes", "snapshot": true}),
        );
        assert_eq!(r["offset"], 5, "{r}");
        let got: Vec<(String, String, u64, bool)> = (0..3)
            .map(|_| {
                let v = next_json(&mut snap);
                (
                    v["key"].as_str().unwrap().to_string(),
                    v["data"].as_str().unwrap().to_string(),
                    v["offset"].as_u64().unwrap(),
                    v["snapshot"] == true,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("AAPL".into(), "3".into(), 3, true),
                ("GOOG".into(), "4".into(), 4, true),
                ("MSFT".into(), "5".into(), 5, true)
            ]
        );
        // Then live, as published.
        publish(&mut p, "quotes", Some("AAPL"), "6");
        assert_eq!(next_text(&mut snap), "6");
        // One recovered, three not ("nonsense" is no position at all); the
        // histories hold 5 of "short" and all 6 of "quotes", 3 keys.
        let m = server::metrics(addr);
        assert_eq!(m["ringwave_recoveries_total"], 1.0);
        assert_eq!(m["ringwave_recoveries_failed_total"], 3.0);
        assert_eq!(m["ringwave_history_entries"], 11.0);
        assert_eq!(m["ringwave_history_snapshot_keys"], 3.0);
    }
);

/// Read an event stream until `events` events (blank-line separated) are
/// in; returns them.
fn sse_events(addr: SocketAddr, request: &str, events: usize) -> Vec<String> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    loop {
        let body = got.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let done: Vec<String> = body.split("\n\n").map(str::to_string).collect();
        if done.len() > events {
            return done[..events].to_vec();
        }
        let n = s.read(&mut buf).expect("events within 20 s");
        assert!(n > 0, "stream ended: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

fn post(addr: SocketAddr, topic: &str, body: &str) {
    let req = format!(
        "POST /publish/{topic} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(http_request(addr, req.as_bytes()).0, 202);
}

both_backends!(event_streams_resume_from_last_event_id, |backend| {
    let srv = start(backend, &["news=100"]);
    let addr = srv.addr;
    for i in 1..=10 {
        post(addr, "news", &format!("n{i}"));
    }
    taken_everywhere(addr, 10);
    let fresh = sse_events(addr, "GET /sse/news HTTP/1.1\r\nHost: t\r\n\r\n", 1);
    let epoch = fresh[0]
        .split("epoch=")
        .nth(1)
        .and_then(|r| r.get(..8))
        .unwrap_or_else(|| panic!("no epoch in {fresh:?}"))
        .to_string();
    assert_eq!(
        fresh[0],
        format!(": subscribed epoch={epoch} offset=10 recovered=false\nid: {epoch}:10")
    );
    // A reconnect from 6: its first id is 6 (where it stands), then 7..=10.
    let req = format!("GET /sse/news HTTP/1.1\r\nHost: t\r\nLast-Event-ID: {epoch}:6\r\n\r\n");
    let ev = sse_events(addr, &req, 5);
    assert_eq!(
        ev[0],
        format!(": subscribed epoch={epoch} offset=10 recovered=true\nid: {epoch}:6")
    );
    for (i, e) in ev[1..].iter().enumerate() {
        assert_eq!(e, &format!("id: {epoch}:{}\ndata: n{}", i + 7, i + 7));
    }
    // The same over HTTP/2 (curl, prior knowledge), from 8.
    let url = format!("http://{addr}/sse/news");
    let last = format!("Last-Event-ID: {epoch}:8");
    let (out, _) = curl_sse(&["--http2-prior-knowledge", "-H", &last, &url]);
    assert!(
        out.contains(&format!("recovered=true\nid: {epoch}:8\n")),
        "{out}"
    );
    assert!(out.contains(&format!("id: {epoch}:9\ndata: n9")), "{out}");
    // A bad ?since is refused with the reason; a foreign Last-Event-ID is
    // just not ours (live from now).
    let (status, body) = http_request(
        addr,
        b"GET /sse/news?since=yesterday HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("EPOCH:OFFSET"), "{body}");
    let ev = sse_events(
        addr,
        "GET /sse/news HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 42\r\n\r\n",
        1,
    );
    assert!(ev[0].contains("recovered=false"), "{ev:?}");
});

both_backends!(
    chromium_event_source_resumes_across_server_ends,
    |backend| {
        // The simulator's ticks, kept; every stream ended after 2 s.
        let srv = TestServer::start(
            backend,
            &[
                "--feed-sim",
                "20:50",
                "--history",
                "ticks=100000",
                "--sse-lifetime",
                "2",
            ],
        );
        let page = format!("http://{}/", srv.addr);
        server::run_python("browser_sse.py", &[&page, "ticks"], &[]);
    }
);
