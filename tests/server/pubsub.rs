//! Pub/sub helpers: /feed clients (a tungstenite one, a raw one with a tiny
//! receive buffer that falls behind), publications numbered and padded to
//! about 1 KiB, and filling a slow subscriber past its limit.

use std::net::{SocketAddr, TcpStream};

use socket2::{Domain, Socket, Type};
use tungstenite::{Message, WebSocket};

use super::{frame, metrics, RawClient};

pub type Ws = WebSocket<TcpStream>;

pub const PAD: usize = 1000;

pub fn sub_json(op: &str, topic: &str) -> String {
    format!(r#"{{"op":"{op}","topic":"{topic}"}}"#)
}

pub fn pub_json(topic: &str, key: Option<&str>, data: &str) -> String {
    match key {
        Some(k) => format!(r#"{{"op":"publish","topic":"{topic}","key":"{k}","data":"{data}"}}"#),
        None => format!(r#"{{"op":"publish","topic":"{topic}","data":"{data}"}}"#),
    }
}

/// A tungstenite client on /feed.
pub fn feed(addr: SocketAddr) -> Ws {
    super::feed_client(addr)
}

pub fn next_text(ws: &mut Ws) -> String {
    loop {
        match ws.read().unwrap() {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

pub fn subscribe(ws: &mut Ws, topic: &str) {
    ws.send(Message::text(sub_json("subscribe", topic)))
        .unwrap();
    let ack = next_text(ws);
    assert_eq!(
        ack,
        format!(r#"{{"event":"subscribed","topic":"{topic}"}}"#)
    );
}

/// A raw /feed client whose receive buffer is tiny, so the server's queue
/// fills as soon as it stops reading.
pub fn slow_feed(addr: SocketAddr) -> RawClient {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&addr.into()).unwrap();
    RawClient::upgrade(RawClient::from_stream(s.into()), "/feed")
}

pub fn raw_text(c: &mut RawClient) -> String {
    loop {
        let (op, p) = c.read_frame().expect("frame");
        match op {
            0x1 => return String::from_utf8(p).unwrap(),
            0x9 | 0xA => {}
            other => panic!(
                "unexpected opcode {other:#x}: {:?}",
                String::from_utf8_lossy(&p)
            ),
        }
    }
}

pub fn raw_subscribe(c: &mut RawClient, topic: &str) {
    c.send(&frame(0x81, sub_json("subscribe", topic).as_bytes()));
    assert!(raw_text(c).contains("subscribed"));
}

/// A publisher on /feed.
pub fn publisher(addr: SocketAddr) -> RawClient {
    RawClient::upgrade(RawClient::tcp(addr), "/feed")
}

/// Message `i` of the slow-consumer tests: a sequence number and padding to
/// about 1 KiB.
pub fn numbered(i: usize) -> String {
    format!("{i:06}:{}", "x".repeat(PAD))
}

pub fn seq(text: &str) -> usize {
    text.split(':')
        .find_map(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no number in {text:.40}"))
}

/// Fill a slow subscriber: publish numbered messages (keys alternate A/B
/// when `keyed`) in batches well under the limit, checking that the fast
/// subscriber gets each batch, in order, while the slow one is not reading,
/// until the policy's `metric` moves: the kernel's autotuned socket buffers
/// (up to `tcp_wmem`'s 4 MiB) take a varying share first. Returns how many
/// were published.
pub fn publish_past_the_limit(
    addr: SocketAddr,
    p: &mut RawClient,
    fast: &mut Ws,
    metric: &str,
    keyed: bool,
) -> usize {
    const BATCH: usize = 16;
    // Well past what the kernel can buffer for the slow client.
    const MOST: usize = 20_000;
    let mut n = 0;
    while n < MOST {
        for i in n..n + BATCH {
            let key = keyed.then_some(if i.is_multiple_of(2) { "A" } else { "B" });
            p.send(&frame(0x81, pub_json("t", key, &numbered(i)).as_bytes()));
        }
        for i in n..n + BATCH {
            assert_eq!(seq(&next_text(fast)), i, "fast subscriber");
        }
        n += BATCH;
        if n.is_multiple_of(256) && metrics(addr).get(metric).copied().unwrap_or(0.0) >= 1.0 {
            return n;
        }
    }
    panic!("{metric} did not move after {MOST} publications of ~1 KiB");
}
