//! ringwave's load generator: WebSocket clients driven by ringwave's own
//! client-role protocol (`ringwave::proto::Conn` in `Role::Client`) over a
//! single-threaded mio loop, so generating load costs less than serving it.
//!
//! [`Engine`] owns the connections and reports what happened on each
//! ([`Happened`]); the scenarios in `ringwave-bench` decide what to send.

pub mod report;
pub mod stats;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rand::RngCore;
use ringwave::proto::handshake::ClientHandshake;
use ringwave::proto::{Conn, Event, Limits, MessageKind};
use socket2::{Domain, Protocol, Socket, Type};

/// Where to connect: from a `ws://host:port/path` URL.
#[derive(Debug, Clone)]
pub struct Target {
    /// Server address.
    pub addr: SocketAddr,
    /// Host header value.
    pub host: String,
    /// Request path.
    pub path: String,
}

impl Target {
    /// Parse `ws://HOST:PORT/PATH` (HOST an IP address or `localhost`).
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("{url}: only ws:// URLs are supported"))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = hostport
            .rsplit_once(':')
            .ok_or_else(|| format!("{url}: missing port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{url}: bad port {port:?}"))?;
        let ip: IpAddr = if host == "localhost" {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host.parse()
                .map_err(|_| format!("{url}: host must be an IP address or localhost"))?
        };
        Ok(Target {
            addr: SocketAddr::new(ip, port),
            host: hostport.to_string(),
            path: path.to_string(),
        })
    }
}

enum Phase {
    Handshake(Box<ClientHandshake>),
    Open(Box<Conn>),
    Closed,
}

struct Client {
    stream: TcpStream,
    phase: Phase,
    /// Handshake request bytes not yet written.
    pending: Vec<u8>,
    started: Instant,
}

/// Something that happened to a connection during [`Engine::poll`].
#[derive(Debug, Clone, PartialEq)]
pub enum Happened {
    /// The handshake completed after this long.
    Opened(usize, Duration),
    /// A whole message arrived; its first 8 bytes (if any) as a u64.
    Message(usize, usize, u64),
    /// The connection failed or closed.
    Closed(usize, String),
}

/// A set of client connections on one mio loop.
pub struct Engine {
    poll: Poll,
    events: Events,
    clients: Vec<Client>,
    scratch: Vec<u8>,
    target: Target,
    rng: rand::rngs::ThreadRng,
    /// Source addresses to spread connections over (127.0.0.1 .. 127.0.0.N).
    sources: u8,
    open: usize,
    dirty: Vec<usize>,
}

impl Engine {
    /// An engine for `target`, spreading its connections over `sources`
    /// loopback source addresses when the target is on loopback.
    pub fn new(target: Target, sources: u8) -> io::Result<Engine> {
        Ok(Engine {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            clients: Vec::new(),
            scratch: vec![0; 256 * 1024],
            target,
            rng: rand::rng(),
            sources: sources.max(1),
            open: 0,
            dirty: Vec::new(),
        })
    }

    /// Connections with a completed handshake that are still open.
    pub fn open(&self) -> usize {
        self.open
    }

    /// All connections started.
    pub fn started(&self) -> usize {
        self.clients.len()
    }

    /// Start one more connection; returns its index.
    pub fn connect(&mut self) -> io::Result<usize> {
        let i = self.clients.len();
        let socket = Socket::new(
            Domain::for_address(self.target.addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        if self.sources > 1 && self.target.addr.ip().is_loopback() && self.target.addr.is_ipv4() {
            let src = Ipv4Addr::new(127, 0, 0, 1 + (i % self.sources as usize) as u8);
            socket.bind(&SocketAddr::new(IpAddr::V4(src), 0).into())?;
        }
        match socket.connect(&self.target.addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let mut stream = TcpStream::from_std(socket.into());
        self.poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let mut nonce = [0u8; 16];
        self.rng.fill_bytes(&mut nonce);
        let hs = ClientHandshake::new(nonce, &[], None, &Limits::default());
        let pending = hs.request(&self.target.host, &self.target.path);
        self.clients.push(Client {
            stream,
            phase: Phase::Handshake(Box::new(hs)),
            pending,
            started: Instant::now(),
        });
        Ok(i)
    }

    /// Queue a message on connection `i` (written at the end of `poll`).
    pub fn send(&mut self, i: usize, kind: MessageKind, payload: &[u8]) -> bool {
        let Some(Client {
            phase: Phase::Open(conn),
            ..
        }) = self.clients.get_mut(i)
        else {
            return false;
        };
        if conn.send(kind, payload).is_err() {
            return false;
        }
        self.dirty.push(i);
        true
    }

    /// Whether connection `i` is open.
    pub fn is_open(&self, i: usize) -> bool {
        matches!(
            self.clients.get(i),
            Some(Client {
                phase: Phase::Open(_),
                ..
            })
        )
    }

    /// Bytes queued on connection `i` and not yet taken by the socket.
    pub fn backlog(&self, i: usize) -> usize {
        match self.clients.get(i) {
            Some(Client {
                phase: Phase::Open(c),
                ..
            }) => c.buffered_output(),
            _ => 0,
        }
    }

    /// Close every connection (close frame, then TCP).
    pub fn close_all(&mut self) {
        for c in &mut self.clients {
            if let Phase::Open(conn) = &mut c.phase {
                let _ = conn.close(ringwave::proto::CloseCode::NORMAL, "");
                let out = conn.output();
                let _ = c.stream.write(out);
            }
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
            c.phase = Phase::Closed;
        }
        self.open = 0;
    }

    fn flush(&mut self, i: usize, out: &mut Vec<Happened>) {
        let c = &mut self.clients[i];
        if !c.pending.is_empty() {
            match c.stream.write(&c.pending) {
                Ok(n) => {
                    c.pending.drain(..n);
                }
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::NotConnected => {
                }
                Err(e) => {
                    c.phase = Phase::Closed;
                    out.push(Happened::Closed(i, e.to_string()));
                }
            }
            return;
        }
        if let Phase::Open(conn) = &mut c.phase {
            while !conn.output().is_empty() {
                match c.stream.write(conn.output()) {
                    Ok(n) => conn.advance_output(n),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        c.phase = Phase::Closed;
                        self.open -= 1;
                        out.push(Happened::Closed(i, e.to_string()));
                        break;
                    }
                }
            }
        }
    }

    fn read(&mut self, i: usize, out: &mut Vec<Happened>) {
        loop {
            let c = &mut self.clients[i];
            if matches!(c.phase, Phase::Closed) {
                return;
            }
            let n = match c.stream.read(&mut self.scratch) {
                Ok(0) => {
                    if matches!(c.phase, Phase::Open(_)) {
                        self.open -= 1;
                    }
                    c.phase = Phase::Closed;
                    out.push(Happened::Closed(i, "server closed the connection".into()));
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    if matches!(c.phase, Phase::Open(_)) {
                        self.open -= 1;
                    }
                    c.phase = Phase::Closed;
                    out.push(Happened::Closed(i, e.to_string()));
                    return;
                }
            };
            // A short read drained the socket: the next arrival raises a new
            // edge, so skip the read that would only return WouldBlock.
            let drained = n < self.scratch.len();
            let mut data: &mut [u8] = &mut self.scratch[..n];
            let mut rest_owned;
            if let Phase::Handshake(hs) = &mut c.phase {
                match hs.feed(data) {
                    Ok(None) => continue,
                    Ok(Some(acc)) => {
                        let conn =
                            Conn::new(ringwave::proto::Role::Client, Limits::default(), None);
                        c.phase = Phase::Open(Box::new(conn));
                        self.open += 1;
                        out.push(Happened::Opened(i, c.started.elapsed()));
                        rest_owned = acc.rest;
                        data = &mut rest_owned[..];
                    }
                    Err(e) => {
                        c.phase = Phase::Closed;
                        out.push(Happened::Closed(i, format!("handshake failed: {e}")));
                        return;
                    }
                }
            }
            let Phase::Open(conn) = &mut c.phase else {
                return;
            };
            let mut pos = 0;
            while pos < data.len() {
                match conn.read(&mut data[pos..]) {
                    Ok((used, ev)) => {
                        pos += used;
                        match ev {
                            Some(Event::Text(t)) => {
                                out.push(Happened::Message(i, t.len(), stamp(t.as_bytes())))
                            }
                            Some(Event::Binary(b)) => {
                                out.push(Happened::Message(i, b.len(), stamp(b)))
                            }
                            Some(Event::Close { .. }) => {
                                out.push(Happened::Closed(i, "server sent close".into()));
                            }
                            Some(_) => {}
                            None => break,
                        }
                    }
                    Err(e) => {
                        out.push(Happened::Closed(i, e.to_string()));
                        break;
                    }
                }
            }
            if !conn.output().is_empty() {
                self.dirty.push(i);
            }
            if drained {
                return;
            }
        }
    }

    /// Wait up to `timeout` for I/O; append what happened to `out`. Writes
    /// everything queued with [`Engine::send`] first.
    pub fn poll(&mut self, timeout: Duration, out: &mut Vec<Happened>) -> io::Result<()> {
        let dirty = std::mem::take(&mut self.dirty);
        for &i in &dirty {
            self.flush(i, out);
        }
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let ready: Vec<(usize, bool, bool)> = self
            .events
            .iter()
            .map(|e| {
                (
                    e.token().0,
                    e.is_readable() || e.is_read_closed() || e.is_error(),
                    e.is_writable(),
                )
            })
            .collect();
        for (i, readable, writable) in ready {
            if writable {
                self.flush(i, out);
            }
            if readable {
                self.read(i, out);
            }
        }
        Ok(())
    }
}

/// The first 8 bytes of a payload as a little-endian u64 (send timestamps).
pub fn stamp(payload: &[u8]) -> u64 {
    payload.get(..8).map_or(0, |b| {
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    })
}

/// CPU time (user + system) of a process in nanoseconds, from
/// `/proc/PID/stat`.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((utime + stime) * 1_000_000_000 / hz)
}

/// Resident set size of a process in bytes.
pub fn process_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// This process's own CPU time in nanoseconds.
pub fn self_cpu_ns() -> u64 {
    process_cpu_ns(std::process::id()).unwrap_or(0)
}
