//! The server API under `/api/` with curl, the client a backend's operator
//! would use: its guard, a topic's position and subscribers, history from a
//! position, batch publishing (NDJSON and a JSON array) over one kept-alive
//! connection, and disconnecting every WebSocket of a token's subject.

mod server;
use server::*;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use tungstenite::Message;

const TOKEN: &str = "api-test-token";
const SECRET: &[u8] = b"an api test secret of 32 bytes or more";

/// curl with the API token; returns (status, body as JSON). `extra`
/// comes before the URL.
fn curl(srv: &TestServer, extra: &[&str], call: &str) -> (u16, Value) {
    let url = format!("http://{}/api/{call}", srv.addr);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(extra)
        .arg(&url)
        .output()
        .expect("curl (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("a status line");
    let v = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    (status.parse().unwrap(), v)
}

fn start(backend: &str, extra: &[&str]) -> TestServer {
    let mut args = vec![
        "--feed-sim",
        "off",
        "--api-token",
        TOKEN,
        "--history",
        "orders=1000",
    ];
    args.extend(extra);
    TestServer::start(backend, &args)
}

both_backends!(the_api_needs_its_token_and_is_off_without_one, |backend| {
    let off = TestServer::start(backend, &["--feed-sim", "off"]);
    let (status, v) = curl(&off, &[], "position?topic=orders");
    assert_eq!(status, 404, "{v}");
    assert!(v["error"].as_str().unwrap().contains("--api-token"), "{v}");
    let srv = start(backend, &[]);
    for auth in ["Authorization: Bearer wrong", "Authorization: Basic YTpi"] {
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", auth])
            .arg(format!("http://{}/api/position?topic=orders", srv.addr))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "401", "{auth}");
    }
    assert_eq!(curl(&srv, &[], "nope").0, 404);
    assert_eq!(curl(&srv, &["-X", "POST"], "position?topic=orders").0, 405);
    assert_eq!(curl(&srv, &[], "position").0, 400, "no topic");
});

both_backends!(position_and_subscribers_of_a_topic, |backend| {
    let srv = start(backend, &[]);
    let (status, v) = curl(&srv, &[], "position?topic=orders");
    assert_eq!(status, 200);
    assert_eq!(
        (v["offset"].as_u64(), v["subscribers"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
    assert_eq!(v["epoch"].as_str().map(str::len), Some(8), "{v}");
    // Subscribers on both workers (a connection lands on either).
    let mut clients: Vec<_> = (0..4)
        .map(|_| {
            let mut ws = feed_client(srv.addr);
            ws.send(Message::text(r#"{"op":"subscribe","topic":"orders"}"#))
                .unwrap();
            let m = ws.read().unwrap();
            assert!(m.to_text().unwrap().contains("subscribed"), "{m}");
            ws
        })
        .collect();
    assert_eq!(curl(&srv, &[], "position?topic=orders").1["subscribers"], 4);
    clients.pop().unwrap().close(None).unwrap();
    until(
        || match curl(&srv, &[], "position?topic=orders").1["subscribers"].as_u64() {
            Some(3) => Ok(()),
            n => Err(format!("{n:?} subscribers")),
        },
    );
    // A topic without history: its subscribers, no position.
    let v = curl(&srv, &[], "position?topic=plain").1;
    assert_eq!(
        (v["epoch"].clone(), v["offset"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(v["subscribers"], 0);
});

both_backends!(a_batch_is_published_in_order_and_read_back, |backend| {
    let srv = start(backend, &[]);
    let mut ws = feed_client(srv.addr);
    ws.send(Message::text(r#"{"op":"subscribe","topic":"orders"}"#))
        .unwrap();
    ws.read().unwrap();
    let ndjson = "\"first\"\n{\"px\":1.5}\n\n42\n";
    // Two batches on one connection (curl's --next keeps it).
    let out = Command::new("curl")
        .args(["-sS", "-v", "--max-time", "20"])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args([
            "-H",
            "Content-Type: application/x-ndjson",
            "--data-binary",
            ndjson,
        ])
        .arg(format!("http://{}/api/publish?topic=orders", srv.addr))
        .args(["--next", "-sS", "-v", "--max-time", "20"])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args([
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"["x", ["y"]]"#,
        ])
        .arg(format!("http://{}/api/publish?topic=orders", srv.addr))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Re-using existing connection"), "{stderr}");
    let answers: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(
        (
            answers[0]["count"].as_u64(),
            answers[0]["first"].as_u64(),
            answers[0]["last"].as_u64()
        ),
        (Some(3), Some(1), Some(3))
    );
    assert_eq!(
        (
            answers[1]["count"].as_u64(),
            answers[1]["first"].as_u64(),
            answers[1]["last"].as_u64()
        ),
        (Some(2), Some(4), Some(5))
    );
    assert_eq!(answers[0]["epoch"], answers[1]["epoch"]);
    // The subscriber got each once, in order.
    for want in ["first", r#"{"px":1.5}"#, "42", "x", r#"["y"]"#] {
        assert_eq!(ws.read().unwrap(), Message::text(want));
    }
    // History from a position, with a limit.
    let epoch = answers[0]["epoch"].as_str().unwrap();
    let (status, v) = curl(
        &srv,
        &[],
        &format!("history?topic=orders&since={epoch}:1&limit=3"),
    );
    assert_eq!(status, 200);
    assert_eq!(v["recovered"], true);
    assert_eq!(v["offset"], 5);
    let got: Vec<(u64, String)> = v["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["offset"].as_u64().unwrap(),
                p["data"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (2, r#"{"px":1.5}"#.to_string()),
            (3, "42".into()),
            (4, "x".into())
        ]
    );
    // A position of another epoch is not recovered: the read starts at the
    // oldest kept.
    let v = curl(&srv, &[], "history?topic=orders&since=00000001:3").1;
    assert_eq!(v["recovered"], false);
    assert_eq!(v["publications"][0]["offset"], 1);
    // A body that is not a batch publishes nothing.
    let (status, v) = curl(&srv, &["-d", "1\n{oops"], "publish?topic=orders");
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().starts_with("line 2"), "{v}");
    assert_eq!(curl(&srv, &[], "position?topic=orders").1["offset"], 5);
    let (status, _) = curl(
        &srv,
        &["-H", "Content-Type: application/json", "-d", "{}"],
        "publish?topic=orders",
    );
    assert_eq!(status, 400);
    // A topic without history: published, no offsets.
    let v = curl(&srv, &["-d", "1\n2\n"], "publish?topic=plain").1;
    assert_eq!(
        (v["count"].as_u64(), v["first"].clone()),
        (Some(2), Value::Null)
    );
    assert_eq!(curl(&srv, &[], "history?topic=plain").0, 404);
});

fn jwt(sub: &str) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(300);
    let claims = json!({"sub": sub, "exp": exp.as_secs(), "topics": {"subscribe": ["*"]}});
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

both_backends!(disconnect_closes_every_websocket_of_a_subject, |backend| {
    let key: PathBuf =
        std::env::temp_dir().join(format!("ringwave-api-{}-{backend}.key", std::process::id()));
    std::fs::write(&key, SECRET).unwrap();
    let srv = start(backend, &["--jwt-key", key.to_str().unwrap()]);
    let open = |sub: &str| {
        let url = format!("ws://{}/feed?token={}", srv.addr, jwt(sub));
        let (mut ws, _) = tungstenite::connect(url).unwrap();
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        }
        ws.send(Message::text(r#"{"op":"subscribe","topic":"orders"}"#))
            .unwrap();
        assert!(ws.read().unwrap().to_text().unwrap().contains("subscribed"));
        ws
    };
    // Enough connections that both workers hold some of alice's.
    let mut alice: Vec<_> = (0..6).map(|_| open("alice")).collect();
    let mut bob = open("bob");
    let (status, v) = curl(&srv, &["-X", "POST"], "disconnect?sub=alice");
    assert_eq!(status, 202, "{v}");
    assert!(v["workers"].as_u64().unwrap() >= 1, "{v}");
    for ws in &mut alice {
        match ws.read() {
            Ok(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 4003, "{f}"),
            other => panic!("not closed with 4003: {other:?}"),
        }
    }
    // Bob's connection still works.
    let v = curl(&srv, &["-d", "\"still here\""], "publish?topic=orders").1;
    assert_eq!(v["count"], 1);
    assert_eq!(bob.read().unwrap(), Message::text("still here"));
    // Counted once each close handshake is done (the clients answer).
    for ws in &mut alice {
        let _ = ws.flush();
    }
    until(|| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "-H"])
            .arg(format!("Authorization: Bearer {}", jwt("ops")))
            .arg(format!("http://{}/metrics", srv.addr))
            .output()
            .unwrap();
        let m = parse_metrics(&String::from_utf8_lossy(&out.stdout));
        match m[r#"ringwave_closes_total{code="4003"}"#] {
            6.0 => Ok(()),
            n => Err(format!("{n} closes with 4003")),
        }
    });
    std::fs::remove_file(key).unwrap();
});
