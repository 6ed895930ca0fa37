//! The pub/sub library API in process, on both backends: a handler that
//! subscribes in `on_open` and publishes from `on_message` (a chat room), and
//! a `Publisher` used from a thread outside the workers.

use std::net::TcpStream;
use std::time::Duration;

use ringwave::driver::Backend;

mod server;
use ringwave::server::{Handler, Msg, Server, Ws};
use tungstenite::{Message, WebSocket};

/// Every connection joins "room"; whatever one sends is published to all.
struct Room;

impl Handler for Room {
    fn on_open(&mut self, ws: &mut Ws<'_>) {
        assert_eq!(ws.subscribe("room"), Ok(true));
        assert_eq!(ws.subscribe("room"), Ok(false));
        assert_eq!(ws.subscriptions().collect::<Vec<_>>(), ["room"]);
    }

    fn on_message(&mut self, ws: &mut Ws<'_>, msg: Msg<'_>) {
        ws.publish("room", msg.kind(), msg.as_bytes());
    }
}

fn client(addr: std::net::SocketAddr) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    tungstenite::client(format!("ws://{addr}/room"), stream)
        .unwrap()
        .0
}

fn text(ws: &mut WebSocket<TcpStream>) -> String {
    loop {
        match ws.read().unwrap() {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn room(backend: Backend) {
    let server = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .threads(2)
        .backend(backend)
        .serve(|| Room)
        .unwrap();
    let addr = server.local_addr();
    let mut clients: Vec<_> = (0..8).map(|_| client(addr)).collect();
    // A message from one client reaches all (itself included), whichever
    // worker each is on. Wait for the first client's own copy so every
    // subscription (made in on_open, before the handshake reply) is in place.
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(Message::text(format!("hello {i}"))).unwrap();
        // Other clients' greetings may come first: order is kept per
        // publisher, not across publishers on different workers.
        while text(c) != format!("hello {i}") {}
    }
    let publisher = server.publisher();
    let t = std::thread::spawn(move || {
        for i in 0..200 {
            publisher
                .publish_text("room", &format!("news {i}"))
                .unwrap();
        }
    });
    // Each client saw the other clients' greetings from their own send on;
    // skip those, then the publisher's messages arrive in order.
    for c in clients.iter_mut() {
        let mut next = 0;
        while next < 200 {
            let m = text(c);
            if let Some(n) = m.strip_prefix("news ") {
                assert_eq!(n.parse::<usize>().unwrap(), next);
                next += 1;
            } else {
                assert!(m.starts_with("hello "), "{m}");
            }
        }
    }
    t.join().unwrap();
    let publisher = server.publisher();
    server.shutdown();
    server.join().unwrap();
    // After shutdown, publishing fails instead of blocking or vanishing.
    assert!(publisher.publish_text("room", "late").is_err());
}

both_backends!(room_on, |b: &str| room(b.parse::<Backend>().unwrap()));
