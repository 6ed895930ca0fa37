//! A reconnect storm against a topic with history: `subscribers` `/feed`
//! WebSockets subscribe with `"meta": true` and read up to a common
//! position; they all disconnect; `missed` publications are made; then they
//! all reconnect at once with `"since"` their last position. Each must be
//! answered `recovered: true` and receive exactly the missed offsets, in
//! order. Measured: time from the storm's start until each subscriber has
//! caught up (percentiles, and the last), and the server's CPU over it (the
//! caller's, around `on_storm`).
//!
//! The generator is tokio on one thread, like the stream fan-outs.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ringwave::proto::ws::frame::{self, FrameHeader};
use ringwave::proto::OpCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::stats::{latency_histogram, Percentiles};

/// What to run.
#[derive(Debug, Clone)]
pub struct RecoverConfig {
    pub addr: SocketAddr,
    pub topic: String,
    pub subscribers: usize,
    /// Publications made while everyone is away.
    pub missed: u64,
    /// Payload bytes of each.
    pub size: usize,
}

/// What the storm measured.
#[derive(Debug, Clone)]
pub struct RecoverResult {
    /// Time from the storm's start to each subscriber caught up.
    pub latency: Percentiles,
    /// Until the last one.
    pub total: Duration,
    /// Subscribers answered `recovered: true`.
    pub recovered: usize,
    /// Replays that were not exactly the missed offsets in order.
    pub wrong: usize,
}

/// A `/feed` WebSocket.
struct Feed {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Feed {
    async fn open(addr: SocketAddr) -> std::io::Result<Feed> {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        s.write_all(
            b"GET /feed HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await?;
        let mut f = Feed {
            s,
            buf: Vec::with_capacity(4096),
        };
        loop {
            if let Some(i) = f.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                if !f.buf.starts_with(b"HTTP/1.1 101") {
                    return Err(std::io::Error::other("upgrade refused"));
                }
                f.buf.drain(..i + 4);
                return Ok(f);
            }
            f.fill().await?;
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 16384];
        let n = self.s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn send(&mut self, v: &Value) -> std::io::Result<()> {
        let mut f = Vec::new();
        let text = v.to_string();
        frame::encode_frame(
            &mut f,
            OpCode::Text,
            true,
            false,
            Some([7, 7, 7, 7]),
            text.as_bytes(),
        );
        self.s.write_all(&f).await
    }

    /// The next text message, as JSON.
    async fn next(&mut self) -> std::io::Result<Value> {
        loop {
            if let Some((h, len)) = FrameHeader::decode(&self.buf)
                .map_err(|e| std::io::Error::other(format!("{e:?}")))?
            {
                let end = len + h.payload_len as usize;
                if self.buf.len() >= end {
                    let v = serde_json::from_slice(&self.buf[len..end]).unwrap_or(Value::Null);
                    self.buf.drain(..end);
                    if h.opcode == OpCode::Text {
                        return Ok(v);
                    }
                    continue;
                }
            }
            self.fill().await?;
        }
    }

    /// Subscribe (from `since`, with meta) and return the answer.
    async fn subscribe(
        &mut self,
        topic: &str,
        since: Option<(&str, u64)>,
    ) -> std::io::Result<Value> {
        let mut req = json!({"op": "subscribe", "topic": topic, "meta": true});
        if let Some((epoch, offset)) = since {
            req["since"] = json!({"epoch": epoch, "offset": offset});
        }
        self.send(&req).await?;
        loop {
            let v = self.next().await?;
            if v["event"] == "subscribed" {
                return Ok(v);
            }
        }
    }

    /// Read publications until `offset`; returns the offsets seen.
    async fn until(&mut self, offset: u64) -> std::io::Result<Vec<u64>> {
        let mut seen = Vec::new();
        while seen.last().is_none_or(|&o| o < offset) {
            let v = self.next().await?;
            if let Some(o) = v["offset"].as_u64() {
                seen.push(o);
            }
        }
        Ok(seen)
    }
}

fn io(e: std::io::Error) -> String {
    e.to_string()
}

/// Run the storm; `on_storm(true)` is called as it starts and
/// `on_storm(false)` when the last subscriber caught up.
pub fn run(cfg: &RecoverConfig, mut on_storm: impl FnMut(bool)) -> Result<RecoverResult, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let bound = Duration::from_secs(120);
        let mut publisher = Feed::open(cfg.addr).await.map_err(io)?;
        let mut watcher = Feed::open(cfg.addr).await.map_err(io)?;
        let w = watcher.subscribe(&cfg.topic, None).await.map_err(io)?;
        let epoch = w["epoch"]
            .as_str()
            .ok_or("the topic keeps no history: start the server with --history TOPIC=COUNT")?
            .to_string();
        let start = w["offset"].as_u64().unwrap_or(0);
        // Everyone subscribed and at one position, `start + 1`.
        let mut subs = Vec::with_capacity(cfg.subscribers);
        for _ in 0..cfg.subscribers {
            let mut f = Feed::open(cfg.addr).await.map_err(io)?;
            f.subscribe(&cfg.topic, None).await.map_err(io)?;
            subs.push(f);
        }
        let pad = "x".repeat(cfg.size);
        let publish =
            |n: u64| json!({"op": "publish", "topic": cfg.topic, "data": format!("{n} {pad}")});
        publisher.send(&publish(0)).await.map_err(io)?;
        let base = start + 1;
        let mut tasks = Vec::new();
        for mut f in subs {
            tasks.push(tokio::task::spawn_local(async move {
                f.until(base).await.map(|_| f)
            }));
        }
        for t in tasks {
            let f = tokio::time::timeout(bound, t)
                .await
                .map_err(|_| "subscribers did not reach the common position")?
                .map_err(|e| e.to_string())?
                .map_err(io)?;
            drop(f);
        }
        // Away: the missed publications, seen through by the watcher.
        for n in 1..=cfg.missed {
            publisher.send(&publish(n)).await.map_err(io)?;
        }
        let last = base + cfg.missed;
        tokio::time::timeout(bound, watcher.until(last))
            .await
            .map_err(|_| "the watcher did not see the missed publications")?
            .map_err(io)?;

        // The storm.
        let hist = Rc::new(RefCell::new(latency_histogram()));
        let t0 = Instant::now();
        on_storm(true);
        let mut tasks = Vec::new();
        for _ in 0..cfg.subscribers {
            let (addr, topic, epoch, hist) =
                (cfg.addr, cfg.topic.clone(), epoch.clone(), hist.clone());
            tasks.push(tokio::task::spawn_local(async move {
                let mut f = Feed::open(addr).await?;
                let r = f.subscribe(&topic, Some((&epoch, base))).await?;
                let seen = f.until(last).await?;
                let ns = t0.elapsed().as_nanos() as u64;
                let _ = hist.borrow_mut().record(ns.max(1000));
                let exact = seen == ((base + 1)..=last).collect::<Vec<_>>();
                Ok::<_, std::io::Error>((r["recovered"] == true, exact))
            }));
        }
        let (mut recovered, mut wrong) = (0, 0);
        for t in tasks {
            let (rec, exact) = tokio::time::timeout(bound, t)
                .await
                .map_err(|_| "a subscriber did not recover within 120 s")?
                .map_err(|e| e.to_string())?
                .map_err(io)?;
            recovered += usize::from(rec);
            wrong += usize::from(!exact);
        }
        let total = t0.elapsed();
        on_storm(false);
        let hist: Histogram<u64> = hist.borrow().clone();
        Ok(RecoverResult {
            latency: Percentiles::from_ns(&hist),
            total,
            recovered,
            wrong,
        })
    })
}
