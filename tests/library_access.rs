//! What a library application sees of who its clients are, and its own say
//! on subscriptions: `Ws::identity` (from the upgrade's token, and from a
//! token the feed takes in band), and `Config::subscribe_guard` on the feed
//! and on event streams. Tokens are made by `jsonwebtoken`.

mod server;
use server::*;

use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, EncodingKey, Header};
use ringwave::server::{
    Config, EngineConfig, Handler, JwtConfig, JwtKeys, Msg, Server, SubscribeGuard, Ws,
};
use serde_json::{json, Value};
use tungstenite::Message;

const SECRET: &[u8] = b"a library test secret of 32 bytes or more";

/// Tells each client who its token names, on open and in answer to any
/// message.
struct WhoAmI;

fn who(ws: &Ws<'_>) -> String {
    match ws.identity() {
        Some(id) => id.subject().unwrap_or("(no sub)").to_string(),
        None => "nobody".to_string(),
    }
}

impl Handler for WhoAmI {
    fn on_open(&mut self, ws: &mut Ws<'_>) {
        let me = who(ws);
        ws.send_text(&me);
    }

    fn on_message(&mut self, ws: &mut Ws<'_>, _msg: Msg<'_>) {
        let me = who(ws);
        ws.send_text(&me);
    }
}

fn token(sub: &str, subscribe: &[&str]) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(300);
    let claims = json!({"sub": sub, "exp": exp.as_secs(), "topics": {"subscribe": subscribe}});
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

/// A library server with the built-in routes, verifying tokens with the
/// secret, and a guard that refuses every topic under `halted.`.
fn library_server(backend: &str) -> ringwave::runtime::Running {
    let dir = std::env::temp_dir().join(format!("ringwave-library-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // One file per server: the tests run in parallel, and a file rewritten
    // while another server reads it would read empty.
    static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let key = dir.join(format!("{backend}-{n}.secret"));
    std::fs::write(&key, SECRET).unwrap();
    let keys = JwtKeys::load(JwtConfig::new(vec![key])).expect("keys");
    Server::builder()
        .config(Config {
            engine: EngineConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                threads: 1,
                pin_threads: false,
                backend: backend.parse().unwrap(),
                ..EngineConfig::default()
            },
            jwt: Some(keys),
            subscribe_guard: Some(SubscribeGuard::new(|who, topic| {
                match topic.strip_prefix("halted.") {
                    Some(symbol) => Err(format!(
                        "trading in {symbol} is halted (asked by {})",
                        who.and_then(|w| w.subject()).unwrap_or("nobody")
                    )),
                    None => Ok(()),
                }
            })),
            ..Config::default()
        })
        .builtins()
        .serve(|| WhoAmI)
        .expect("serve")
}

fn ws(addr: std::net::SocketAddr, path: &str) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    tungstenite::client(format!("ws://{addr}{path}"), stream)
        .unwrap()
        .0
}

fn text(ws: &mut tungstenite::WebSocket<TcpStream>) -> String {
    loop {
        match ws.read().expect("a message") {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Send a feed request and read its answer as JSON.
fn ask(ws: &mut tungstenite::WebSocket<TcpStream>, req: Value) -> Value {
    ws.send(Message::text(req.to_string())).unwrap();
    serde_json::from_str(&text(ws)).unwrap()
}

/// The status line and head of `GET path`, without waiting for the body
/// (an event stream does not end).
fn head(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut c = RawClient::tcp(addr);
    c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    let head = c.read_http_head();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if status == 200 {
        String::new()
    } else {
        String::from_utf8_lossy(&c.read_body(&head)).into_owned()
    };
    (status, format!("{head}{body}"))
}

both_backends!(a_handler_sees_who_the_token_names, |backend| {
    let server = library_server(backend);
    let addr = server.local_addr();
    let t = token("alice", &["ticks.*"]);
    let mut c = ws(addr, &format!("/me?token={t}"));
    assert_eq!(text(&mut c), "alice", "on open");
    c.send(Message::text("who?")).unwrap();
    assert_eq!(text(&mut c), "alice", "on a message");
    // Another client, another identity: nothing is shared between them.
    let mut other = ws(addr, &format!("/me?token={}", token("bob", &[])));
    assert_eq!(text(&mut other), "bob");
    std::mem::forget(server);
});

both_backends!(the_feed_asks_the_guard_after_the_claims, |backend| {
    let server = library_server(backend);
    let addr = server.local_addr();
    let t = token("alice", &["ticks.*", "halted.*"]);
    let mut c = ws(addr, &format!("/feed?token={t}"));
    let ok = ask(&mut c, json!({"op": "subscribe", "topic": "ticks.AAPL"}));
    assert_eq!(ok["event"], "subscribed", "{ok}");
    // Within the claims, refused by the application, with its reason.
    let halted = ask(&mut c, json!({"op": "subscribe", "topic": "halted.XYZ"}));
    assert_eq!(halted["event"], "error", "{halted}");
    assert_eq!(halted["topic"], "halted.XYZ", "{halted}");
    assert_eq!(
        halted["error"], "trading in XYZ is halted (asked by alice)",
        "{halted}"
    );
    // Outside the claims: the claims refuse it before the guard is asked.
    let other = ask(&mut c, json!({"op": "subscribe", "topic": "fx.EURUSD"}));
    assert_eq!(other["event"], "error", "{other}");
    assert!(
        other["error"].as_str().unwrap().contains("not entitled"),
        "{other}"
    );
    std::mem::forget(server);
});

both_backends!(a_token_sent_in_band_becomes_the_identity, |backend| {
    let server = library_server(backend);
    let addr = server.local_addr();
    let mut c = ws(addr, "/feed");
    let t = token("carol", &["ticks.*"]);
    let auth = ask(&mut c, json!({"op": "auth", "token": t}));
    assert_eq!(auth["event"], "authenticated", "{auth}");
    assert_eq!(auth["sub"], "carol", "{auth}");
    // Its claims now decide, and the guard sees its subject.
    let ok = ask(&mut c, json!({"op": "subscribe", "topic": "ticks.MSFT"}));
    assert_eq!(ok["event"], "subscribed", "{ok}");
    let no = ask(&mut c, json!({"op": "subscribe", "topic": "fx.USDJPY"}));
    assert!(
        no["error"].as_str().unwrap().contains("not entitled"),
        "{no}"
    );
    std::mem::forget(server);
});

both_backends!(event_streams_ask_the_guard_too, |backend| {
    let server = library_server(backend);
    let addr = server.local_addr();
    let t = token("dave", &["ticks.*", "halted.*"]);
    let (status, _) = head(addr, &format!("/sse/ticks.AAPL?token={t}"));
    assert_eq!(status, 200);
    let (status, text) = head(addr, &format!("/sse/halted.XYZ?token={t}"));
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("trading in XYZ is halted (asked by dave)"),
        "{text}"
    );
    let (status, text) = head(addr, &format!("/sse/fx.EURUSD?token={t}"));
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("not entitled"), "{text}");
    std::mem::forget(server);
});
