//! History across nodes through NATS JetStream (a nats-server with `-js`
//! of the test's own, its store in a fresh directory), on both backends:
//! two nodes give one topic one sequence (one epoch, offsets 1, 2, … with
//! the same publication at the same offset on both) while four publishers
//! on the two nodes publish at once; a subscriber that leaves one node
//! recovers on the other from its position, exactly the missed ones and
//! then live ones; a node restarted reads the topic's history back from
//! the stream, so a position recovers on it too, and its snapshot is the
//! newest publication of every key; NATS restarted on its store, the
//! sequence goes on on both nodes; a foreign epoch is not recovered.

mod server;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;

use serde_json::{json, Value};
use server::nats::Nats;
use server::{wait_metric, TestServer};
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

/// Publications per publisher per phase.
const PHASE: usize = 150;
const PUBLISHERS: [&str; 4] = ["A1", "A2", "B1", "B2"];

/// A directory of the test's own, removed afterwards.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("ringwave-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn node(backend: &str, nats: &str) -> TestServer {
    TestServer::start(
        backend,
        &[
            "--feed-sim",
            "off",
            "--allow-client-publish",
            "--nats",
            nats,
            "--nats-jetstream",
            "--history",
            "prices=100000",
        ],
    )
}

fn next_json(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("a message within 20 s") {
            Message::Text(t) => return serde_json::from_str(&t).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn subscribe(addr: SocketAddr, req: Value) -> (Ws, Value) {
    let mut ws = server::feed_client(addr);
    ws.send(Message::text(req.to_string())).unwrap();
    let v = next_json(&mut ws);
    assert_eq!(v["event"], "subscribed", "{v}");
    (ws, v)
}

/// Publish one phase from every publisher at once: A1 and A2 on node A,
/// B1 and B2 on node B, each its own connection; payloads `NAME:PHASE:I`,
/// keyed by the publisher.
fn publish_phase(a: SocketAddr, b: SocketAddr, phase: usize) {
    let threads: Vec<_> = PUBLISHERS
        .into_iter()
        .map(|name| {
            let addr = if name.starts_with('A') { a } else { b };
            std::thread::spawn(move || {
                let mut ws = server::feed_client(addr);
                for i in 0..PHASE {
                    let m = json!({"op": "publish", "topic": "prices", "key": name,
                                   "data": format!("{name}:{phase}:{i}")});
                    ws.send(Message::text(m.to_string())).unwrap();
                }
                // The server reads a connection's messages in order: a
                // ping answered means every publish before it was taken.
                ws.send(Message::Ping(b"done".to_vec().into())).unwrap();
                loop {
                    if let Message::Pong(_) = ws.read().unwrap() {
                        break;
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a publisher");
    }
}

/// Read `n` envelopes: (offset, data), checking the epoch.
fn read(ws: &mut Ws, n: usize, epoch: &str) -> Vec<(u64, String)> {
    (0..n)
        .map(|_| {
            let v = next_json(ws);
            assert_eq!(v["epoch"], epoch, "{v}");
            assert_eq!(v["topic"], "prices", "{v}");
            (
                v["offset"].as_u64().expect("an offset"),
                v["data"].as_str().expect("data").to_string(),
            )
        })
        .collect()
}

/// Offsets `from..from+len` in order, each once; each publisher's own in
/// its order.
fn check_run(got: &[(u64, String)], from: u64, who: &str) {
    let offsets: Vec<u64> = got.iter().map(|g| g.0).collect();
    let want: Vec<u64> = (from..from + got.len() as u64).collect();
    assert_eq!(offsets, want, "{who}: offsets not contiguous");
    let mut last: HashMap<String, (usize, usize)> = HashMap::new();
    for (_, d) in got {
        let mut parts = d.split(':');
        let (name, phase, i) = (
            parts.next().unwrap().to_string(),
            parts.next().unwrap().parse::<usize>().unwrap(),
            parts.next().unwrap().parse::<usize>().unwrap(),
        );
        if let Some(prev) = last.get(&name) {
            assert!((phase, i) > *prev, "{who}: {name} out of order at {d}");
        }
        last.insert(name, (phase, i));
    }
}

both_backends!(
    one_sequence_across_nodes_recovers_on_any_node_and_after_a_restart,
    |backend: &str| {
        let store = Dir::new(&format!("js-{backend}"));
        let mut nats = Nats::start_with(&["-js", "-sd", store.0.to_str().unwrap()]);
        let url = nats.url();
        let mut a = node(backend, &url);
        let b = node(backend, &url);

        // Both nodes follow the stream from their start: the same epoch,
        // nothing published yet.
        let (mut on_a, first) = subscribe(
            a.addr,
            json!({"op": "subscribe", "topic": "prices", "meta": true}),
        );
        let (mut on_b, first_b) = subscribe(
            b.addr,
            json!({"op": "subscribe", "topic": "prices", "meta": true}),
        );
        let epoch = first["epoch"].as_str().expect("an epoch").to_string();
        assert_eq!(first_b["epoch"], first["epoch"]);
        assert_eq!(
            (first["offset"].as_u64(), first_b["offset"].as_u64()),
            (Some(0), Some(0))
        );

        // Phase 0: four publishers on two nodes at once. Both subscribers
        // see offsets 1..=600, and the same publication at each.
        let n = PHASE * PUBLISHERS.len();
        publish_phase(a.addr, b.addr, 0);
        let seen_a = read(&mut on_a, n, &epoch);
        let seen_b = read(&mut on_b, n, &epoch);
        check_run(&seen_a, 1, "subscriber on A");
        if let Some(i) = (0..n).find(|&i| seen_a[i] != seen_b[i]) {
            panic!(
                "the nodes disagree at offset {}: {:?} on A, {:?} on B",
                i + 1,
                seen_a[i],
                seen_b[i]
            );
        }
        let position = seen_a.last().unwrap().0;

        // The subscriber on A leaves; phase 1 is published meanwhile.
        drop(on_a);
        publish_phase(a.addr, b.addr, 1);
        let during = read(&mut on_b, n, &epoch);
        check_run(&during, position + 1, "subscriber on B");

        // It comes back on B with its position: exactly phase 1, then the
        // live phase 2, with no duplicate and no hole.
        let (mut back, answer) = subscribe(
            b.addr,
            json!({"op": "subscribe", "topic": "prices", "meta": true,
                   "since": {"epoch": epoch, "offset": position}}),
        );
        assert_eq!(answer["recovered"], true, "{answer}");
        publish_phase(a.addr, b.addr, 2);
        let resumed = read(&mut back, 2 * n, &epoch);
        check_run(&resumed, position + 1, "recovered on B");
        assert_eq!(&resumed[..n], &during[..], "the replay is what B delivered");
        let end = resumed.last().unwrap().0;
        assert_eq!(end, 3 * n as u64);
        wait_metric(b.addr, "ringwave_recoveries_total", |v| v == 1.0);

        // Node A restarts: it reads the history back from the stream, so a
        // position from before the restart recovers there.
        drop(std::mem::replace(&mut a, node(backend, &url)));
        let (mut on_new_a, answer) = subscribe(
            a.addr,
            json!({"op": "subscribe", "topic": "prices", "meta": true,
                   "since": {"epoch": epoch, "offset": position}}),
        );
        assert_eq!(answer["recovered"], true, "{answer}");
        assert_eq!(answer["epoch"], epoch.as_str());
        assert_eq!(answer["offset"].as_u64(), Some(end));
        let replay = read(&mut on_new_a, 2 * n, &epoch);
        assert_eq!(replay, resumed, "the restarted node's replay");

        // Its snapshot: the newest publication of each publisher (the key).
        let (mut snap, _) = subscribe(
            a.addr,
            json!({"op": "subscribe", "topic": "prices", "snapshot": true}),
        );
        let mut newest: Vec<String> = (0..PUBLISHERS.len())
            .map(|_| {
                let v = next_json(&mut snap);
                assert_eq!(v["snapshot"], true, "{v}");
                v["data"].as_str().unwrap().to_string()
            })
            .collect();
        newest.sort();
        let want: Vec<String> = PUBLISHERS
            .iter()
            .map(|p| format!("{p}:2:{}", PHASE - 1))
            .collect();
        assert_eq!(newest, want);

        // Live again on the restarted node, from either node's publishers.
        publish_phase(a.addr, b.addr, 3);
        let live = read(&mut on_new_a, n, &epoch);
        check_run(&live, end + 1, "live on the restarted node");

        // NATS itself restarts on its store: once both nodes are connected
        // again, the sequence goes on where it was, on both nodes (their
        // consumers follow again from their logs' next offset).
        nats.kill();
        nats.run();
        for node in [a.addr, b.addr] {
            wait_metric(node, "ringwave_nats_reconnects_total", |v| v >= 1.0);
            wait_metric(node, "ringwave_nats_connected", |v| v == 1.0);
        }
        publish_phase(a.addr, b.addr, 4);
        let after = read(&mut on_new_a, n, &epoch);
        check_run(&after, end + 1 + n as u64, "after NATS restarted, on A");
        assert_eq!(read(&mut back, 2 * n, &epoch)[n..], after[..], "B agrees");

        // Another epoch's position is not recovered.
        let foreign = if epoch == "00000001" {
            "00000002"
        } else {
            "00000001"
        };
        let (_, answer) = subscribe(
            b.addr,
            json!({"op": "subscribe", "topic": "prices",
                   "since": {"epoch": foreign, "offset": 3}}),
        );
        assert_eq!(answer["recovered"], false, "{answer}");
    }
);

/// `--nats-jetstream` against a NATS without JetStream stops the start
/// with what to do, rather than refusing every history topic later.
#[test]
fn a_nats_without_jetstream_stops_the_start() {
    let nats = Nats::start();
    let err = server::refused_start(&[
        "--listen",
        "127.0.0.1:0",
        "--feed-sim",
        "off",
        "--log-level",
        "error",
        "--history",
        "prices=10",
        "--nats",
        &nats.url(),
        "--nats-jetstream",
    ]);
    assert!(err.contains("has no JetStream"), "{err}");
    assert!(err.contains("-js"), "{err}");
}
