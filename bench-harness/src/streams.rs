//! Fan-out to stream subscribers, over HTTP/1.1 (a connection each) or over
//! HTTP/2 (many streams per connection, prior knowledge). A subscriber is
//! either a Server-Sent Events stream (`GET /sse/<topic>`) or a WebSocket on
//! `/feed` that subscribes to the topic (over HTTP/2 an RFC 8441 extended
//! CONNECT, its WebSocket frames in the stream's DATA). One publisher posts
//! `rate` publications per second over one HTTP/2 connection (`POST
//! /publish/<topic>`, so the server must allow client publishing), each
//! stamped with its send time; latency from publish to each receipt.
//!
//! The generator is tokio on one thread (every connection a local task),
//! the same for both protocols and both kinds, so the comparison is the
//! server's.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ringwave::proto::h2::{self, flag, kind, setting, Frame};
use ringwave::proto::ws::frame::{self, FrameHeader};
use ringwave::proto::OpCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::stats::{latency_histogram, Percentiles};

/// What a subscriber is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `GET /sse/<topic>`.
    Sse,
    /// A WebSocket on `/feed`, subscribed with `{"op":"subscribe"}`.
    Ws,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub addr: SocketAddr,
    pub kind: Kind,
    pub topic: String,
    pub subscribers: usize,
    /// Streams per HTTP/2 connection; 0 for HTTP/1.1.
    pub streams_per_conn: usize,
    pub rate: f64,
    pub size: usize,
    pub warmup: f64,
    pub duration: f64,
}

/// What a run measured (CPU is the caller's to measure around it).
#[derive(Debug, Clone)]
pub struct StreamResult {
    /// Events that arrived during the measured window.
    pub delivered: u64,
    /// Latency of the publications sent in the window.
    pub latency: Percentiles,
    /// Publications sent in the window times subscribers, less those
    /// received.
    pub missing: u64,
}

struct Shared {
    epoch: Instant,
    hist: Histogram<u64>,
    warm_ns: u64,
    end_ns: u64,
    delivered: u64,
    received: u64,
    subscribed: usize,
}

type State = Rc<RefCell<Shared>>;

/// An HPACK string literal, no Huffman (lengths below 127).
fn literal(out: &mut Vec<u8>, s: &str) {
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

/// A request head as HPACK without the dynamic table: static entries and
/// literals without indexing (RFC 7541 §6.2.2).
fn request_block(post: bool, path: &str, content_length: Option<usize>) -> Vec<u8> {
    let mut b = vec![if post { 0x83 } else { 0x82 }, 0x86]; // :method, :scheme http
    b.push(0x04); // :path, literal value
    literal(&mut b, path);
    b.push(0x01); // :authority
    literal(&mut b, "bench");
    if let Some(n) = content_length {
        b.extend_from_slice(&[0x0f, 0x0d]); // content-length (static 28)
        literal(&mut b, &n.to_string());
    }
    b
}

/// An extended CONNECT for a WebSocket on `/feed` (RFC 8441 §4).
fn connect_block() -> Vec<u8> {
    let mut b = vec![0x02]; // :method (static 2), literal value
    literal(&mut b, "CONNECT");
    b.push(0x00); // a new name
    literal(&mut b, ":protocol");
    literal(&mut b, "websocket");
    b.push(0x86); // :scheme http
    b.push(0x04);
    literal(&mut b, "/feed");
    b.push(0x01);
    literal(&mut b, "bench");
    b.push(0x00);
    literal(&mut b, "sec-websocket-version");
    literal(&mut b, "13");
    b
}

/// The masked text frame that subscribes a `/feed` WebSocket to `topic`.
fn subscribe_frame(topic: &str) -> Vec<u8> {
    let mut f = Vec::new();
    let msg = format!(r#"{{"op":"subscribe","topic":"{topic}"}}"#);
    frame::encode_frame(
        &mut f,
        OpCode::Text,
        true,
        false,
        Some([1, 2, 3, 4]),
        msg.as_bytes(),
    );
    f
}

/// One receipt: a payload that starts with its send time in 16 hex digits.
fn record(st: &State, payload: &[u8]) {
    let hex = payload.get(..16).and_then(|h| std::str::from_utf8(h).ok());
    let Some(sent) = hex.and_then(|h| u64::from_str_radix(h, 16).ok()) else {
        return;
    };
    let mut s = st.borrow_mut();
    let now = s.epoch.elapsed().as_nanos() as u64;
    if now >= s.warm_ns && now < s.end_ns {
        s.delivered += 1;
    }
    if sent >= s.warm_ns && sent < s.end_ns {
        s.received += 1;
        let _ = s.hist.record(now.saturating_sub(sent).max(1000));
    }
}

/// Read what arrived for one subscriber, keeping an incomplete rest.
fn receive(kind: Kind, buf: &mut Vec<u8>, st: &State) -> std::io::Result<()> {
    match kind {
        Kind::Sse => events(buf, st),
        Kind::Ws => messages(buf, st)?,
    }
    Ok(())
}

/// Every complete WebSocket frame in `buf` (from the server: unmasked, no
/// extension): the subscription's acknowledgement, or a receipt.
fn messages(buf: &mut Vec<u8>, st: &State) -> std::io::Result<()> {
    let mut start = 0;
    while let Some((h, len)) =
        FrameHeader::decode(&buf[start..]).map_err(|e| std::io::Error::other(format!("{e:?}")))?
    {
        let end = start + len + h.payload_len as usize;
        if buf.len() < end {
            break;
        }
        let payload = &buf[start + len..end];
        // The answer's keys may come in any order (they are sorted when the
        // topic keeps history: `{"epoch":…,"event":"subscribed",…}`).
        let answer = br#""event":"subscribed""#;
        if payload.starts_with(b"{") && payload.windows(answer.len()).any(|w| w == answer) {
            st.borrow_mut().subscribed += 1;
        } else if matches!(h.opcode, OpCode::Text | OpCode::Binary) {
            record(st, payload);
        }
        start = end;
    }
    buf.drain(..start);
    Ok(())
}

/// Every complete event in `buf` (`data: <16 hex send time>...` then a
/// blank line): record it, keep the incomplete rest.
fn events(buf: &mut Vec<u8>, st: &State) {
    let mut start = 0;
    while let Some(i) = buf[start..].windows(2).position(|w| w == b"\n\n") {
        let ev = &buf[start..start + i];
        start += i + 2;
        match ev.windows(6).position(|w| w == b"data: ") {
            Some(p) => record(st, &ev[p + 6..]),
            None if ev.starts_with(b": subscribed") => st.borrow_mut().subscribed += 1,
            None => {}
        }
    }
    buf.drain(..start);
}

async fn h1_subscriber(
    addr: SocketAddr,
    kind: Kind,
    topic: String,
    st: State,
) -> std::io::Result<()> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let head = match kind {
        Kind::Sse => format!("GET /sse/{topic} HTTP/1.1\r\nHost: bench\r\n\r\n"),
        Kind::Ws => "GET /feed HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                     Sec-WebSocket-Version: 13\r\n\r\n"
            .to_string(),
    };
    s.write_all(head.as_bytes()).await?;
    let mut buf = Vec::with_capacity(8192);
    let mut head_done = false;
    let mut chunk = vec![0u8; 16384];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if !head_done {
            let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            buf.drain(..i + 4);
            head_done = true;
            if kind == Kind::Ws {
                s.write_all(&subscribe_frame(&topic)).await?;
            }
        }
        receive(kind, &mut buf, &st)?;
    }
}

/// The client preface with windows that never close within a run.
fn h2_hello() -> Vec<u8> {
    let mut b = h2::PREFACE.to_vec();
    h2::encode_settings(
        &mut b,
        &[
            (setting::INITIAL_WINDOW_SIZE, h2::MAX_WINDOW),
            (setting::ENABLE_PUSH, 0),
        ],
    );
    h2::encode_window_update(&mut b, 0, h2::MAX_WINDOW - 65_535);
    b
}

async fn h2_subscribers(
    addr: SocketAddr,
    sub: Kind,
    topic: String,
    streams: usize,
    st: State,
) -> std::io::Result<()> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let mut out = h2_hello();
    let (block, flags) = match sub {
        Kind::Sse => (
            request_block(false, &format!("/sse/{topic}"), None),
            flag::END_HEADERS | flag::END_STREAM,
        ),
        Kind::Ws => (connect_block(), flag::END_HEADERS),
    };
    let subscribe = subscribe_frame(&topic);
    for i in 0..streams {
        h2::encode_frame(&mut out, kind::HEADERS, flags, 2 * i as u32 + 1, &block);
    }
    s.write_all(&out).await?;
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); streams];
    let mut inbuf = Vec::with_capacity(65536);
    let mut chunk = vec![0u8; 65536];
    let mut consumed: u64 = 0;
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        inbuf.extend_from_slice(&chunk[..n]);
        let mut pos = 0;
        let mut reply = Vec::new();
        while let Some((f, used)) = h2::decode(&inbuf[pos..], h2::MAX_MAX_FRAME_SIZE)
            .map_err(|e| std::io::Error::other(e.to_string()))?
        {
            pos += used;
            match f {
                Frame::Data {
                    stream,
                    data,
                    flow_len,
                    ..
                } => {
                    consumed += flow_len as u64;
                    let i = (stream as usize - 1) / 2;
                    if let Some(b) = bufs.get_mut(i) {
                        b.extend_from_slice(data);
                        receive(sub, b, &st)?;
                    }
                }
                // The WebSocket is open (RFC 8441 §5): subscribe.
                Frame::Headers { stream, .. } if sub == Kind::Ws => {
                    h2::encode_frame(&mut reply, kind::DATA, 0, stream, &subscribe);
                }
                Frame::Settings { ack: false, .. } => {
                    h2::encode_frame(&mut reply, kind::SETTINGS, flag::ACK, 0, &[]);
                }
                Frame::Ping { ack: false, data } => {
                    h2::encode_frame(&mut reply, kind::PING, flag::ACK, 0, &data);
                }
                Frame::GoAway { .. } => return Ok(()),
                _ => {}
            }
        }
        inbuf.drain(..pos);
        if consumed > 1 << 30 {
            h2::encode_window_update(&mut reply, 0, consumed as u32);
            consumed = 0;
        }
        if !reply.is_empty() {
            s.write_all(&reply).await?;
        }
    }
}

/// The publisher: POST streams on one HTTP/2 connection, on schedule.
async fn publisher(cfg: StreamConfig, st: State) -> std::io::Result<u64> {
    let mut s = TcpStream::connect(cfg.addr).await?;
    s.set_nodelay(true)?;
    s.write_all(&h2_hello()).await?;
    let (mut rd, mut wr) = s.into_split();
    // Read and drop the answers (202s, SETTINGS); acknowledge SETTINGS.
    tokio::task::spawn_local(async move {
        let mut chunk = vec![0u8; 65536];
        while matches!(rd.read(&mut chunk).await, Ok(n) if n > 0) {}
    });
    let mut ack = Vec::new();
    h2::encode_frame(&mut ack, kind::SETTINGS, flag::ACK, 0, &[]);
    wr.write_all(&ack).await?;
    let epoch = st.borrow().epoch;
    let (warm_ns, end_ns) = (st.borrow().warm_ns, st.borrow().end_ns);
    let interval = 1e9 / cfg.rate;
    let pad = "x".repeat(cfg.size.saturating_sub(16));
    let mut k: u64 = 0;
    let mut stream: u32 = 1;
    let mut measured = 0;
    let mut out = Vec::new();
    loop {
        let now = epoch.elapsed().as_nanos() as u64;
        out.clear();
        loop {
            let due = (k as f64 * interval) as u64;
            if due > now || due >= end_ns {
                break;
            }
            let body = format!("{due:016x}{pad}");
            let block = request_block(true, &format!("/publish/{}", cfg.topic), Some(body.len()));
            h2::encode_frame(&mut out, kind::HEADERS, flag::END_HEADERS, stream, &block);
            h2::encode_frame(
                &mut out,
                kind::DATA,
                flag::END_STREAM,
                stream,
                body.as_bytes(),
            );
            stream += 2;
            k += 1;
            if due >= warm_ns {
                measured += 1;
            }
        }
        if !out.is_empty() {
            wr.write_all(&out).await?;
        }
        if (k as f64 * interval) as u64 >= end_ns {
            return Ok(measured);
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Run the fan-out; `on_window` is called when the measured window starts
/// and when it ends (to measure the server's CPU over it).
pub fn run(cfg: &StreamConfig, mut on_window: impl FnMut(bool)) -> Result<StreamResult, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    let st: State = Rc::new(RefCell::new(Shared {
        epoch: Instant::now(),
        hist: latency_histogram(),
        warm_ns: u64::MAX,
        end_ns: u64::MAX,
        delivered: 0,
        received: 0,
        subscribed: 0,
    }));
    local.block_on(&rt, async {
        if cfg.streams_per_conn == 0 {
            for _ in 0..cfg.subscribers {
                let st = st.clone();
                let topic = cfg.topic.clone();
                let (addr, kind) = (cfg.addr, cfg.kind);
                tokio::task::spawn_local(async move {
                    if let Err(e) = h1_subscriber(addr, kind, topic, st).await {
                        eprintln!("subscriber: {e}");
                    }
                });
            }
        } else {
            let mut left = cfg.subscribers;
            while left > 0 {
                let n = left.min(cfg.streams_per_conn);
                left -= n;
                let st = st.clone();
                let topic = cfg.topic.clone();
                let (addr, kind) = (cfg.addr, cfg.kind);
                tokio::task::spawn_local(async move {
                    if let Err(e) = h2_subscribers(addr, kind, topic, n, st).await {
                        eprintln!("subscriber connection: {e}");
                    }
                });
            }
        }
        // Every stream subscribed (bounded).
        let deadline = Instant::now() + Duration::from_secs(120);
        while st.borrow().subscribed < cfg.subscribers {
            if Instant::now() > deadline {
                return Err(format!(
                    "only {} of {} subscribed",
                    st.borrow().subscribed,
                    cfg.subscribers
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        {
            let mut s = st.borrow_mut();
            s.epoch = Instant::now();
            s.warm_ns = (cfg.warmup * 1e9) as u64;
            s.end_ns = s.warm_ns + (cfg.duration * 1e9) as u64;
        }
        let p = tokio::task::spawn_local(publisher(cfg.clone(), st.clone()));
        let epoch = st.borrow().epoch;
        tokio::time::sleep_until((epoch + Duration::from_secs_f64(cfg.warmup)).into()).await;
        on_window(true);
        tokio::time::sleep_until(
            (epoch + Duration::from_secs_f64(cfg.warmup + cfg.duration)).into(),
        )
        .await;
        on_window(false);
        let measured = p
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let expected = measured * cfg.subscribers as u64;
        // Let what is in flight arrive (bounded).
        let drain = Instant::now() + Duration::from_secs(3);
        while st.borrow().received < expected && Instant::now() < drain {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let s = st.borrow();
        Ok(StreamResult {
            delivered: s.delivered,
            latency: Percentiles::from_ns(&s.hist),
            missing: expected.saturating_sub(s.received),
        })
    })
}
