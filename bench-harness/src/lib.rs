//! ringwave's load generator: WebSocket clients driven by ringwave's own
//! client-role protocol (`ringwave::proto::Conn` in `Role::Client`) over
//! ringwave's own drivers (io_uring by default, mio as the fallback), one
//! thread, one submission per loop turn, so generating load costs no more
//! than serving it.
//!
//! [`Engine`] owns the connections and reports what happened on each
//! ([`Happened`]); the scenarios in `ringwave-bench` decide what to send.

pub mod report;
pub mod stats;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::RngCore;
use ringwave::driver::{Backend, Completion, Driver, Token};
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
    Handshake(Box<ClientHandshake>, Vec<u8>),
    Open(Box<Conn>),
    Closed,
}

struct Client {
    token: Token,
    phase: Phase,
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

/// Everything but the driver, so completions can be handled while the
/// driver is borrowed.
struct State {
    clients: Vec<Client>,
    /// Driver token index -> client index.
    by_token: Vec<usize>,
    open: usize,
    dirty: Vec<usize>,
}

/// A set of client connections on one of ringwave's drivers (io_uring or
/// mio): the same batching the server gets, one submission per loop turn.
pub struct Engine {
    driver: Box<dyn Driver>,
    state: State,
    target: Target,
    rng: rand::rngs::ThreadRng,
    /// Source addresses to spread connections over (127.0.0.1 .. 127.0.0.N).
    sources: u8,
}

impl Engine {
    /// An engine for `target` on `backend`, spreading its connections over
    /// `sources` loopback source addresses when the target is on loopback.
    pub fn new(target: Target, sources: u8, backend: Backend) -> io::Result<Engine> {
        let (chosen, _) = ringwave::driver::select(backend)?;
        Ok(Engine {
            driver: ringwave::driver::build(chosen, Vec::new())?,
            state: State {
                clients: Vec::new(),
                by_token: Vec::new(),
                open: 0,
                dirty: Vec::new(),
            },
            target,
            rng: rand::rng(),
            sources: sources.max(1),
        })
    }

    /// Connections with a completed handshake that are still open.
    pub fn open(&self) -> usize {
        self.state.open
    }

    /// All connections started.
    pub fn started(&self) -> usize {
        self.state.clients.len()
    }

    /// Start one more connection (the TCP connect itself is immediate on
    /// loopback); returns its index.
    pub fn connect(&mut self) -> io::Result<usize> {
        let i = self.state.clients.len();
        let socket = Socket::new(
            Domain::for_address(self.target.addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        socket.set_tcp_nodelay(true)?;
        if self.sources > 1 && self.target.addr.ip().is_loopback() && self.target.addr.is_ipv4() {
            let src = Ipv4Addr::new(127, 0, 0, 1 + (i % self.sources as usize) as u8);
            socket.bind(&SocketAddr::new(IpAddr::V4(src), 0).into())?;
        }
        let started = Instant::now();
        socket.connect(&self.target.addr.into())?;
        let token = self.driver.adopt(socket.into())?;
        let mut nonce = [0u8; 16];
        self.rng.fill_bytes(&mut nonce);
        let hs = ClientHandshake::new(nonce, &[], None, &Limits::default());
        let request = hs.request(&self.target.host, &self.target.path);
        let st = &mut self.state;
        if st.by_token.len() <= token.index() {
            st.by_token.resize(token.index() + 1, usize::MAX);
        }
        st.by_token[token.index()] = i;
        st.clients.push(Client {
            token,
            phase: Phase::Handshake(Box::new(hs), request),
            started,
        });
        st.dirty.push(i);
        Ok(i)
    }

    /// Queue a message on connection `i` (written at the next `poll`).
    pub fn send(&mut self, i: usize, kind: MessageKind, payload: &[u8]) -> bool {
        let Some(Client {
            phase: Phase::Open(conn),
            ..
        }) = self.state.clients.get_mut(i)
        else {
            return false;
        };
        if conn.send(kind, payload).is_err() {
            return false;
        }
        self.state.dirty.push(i);
        true
    }

    /// Whether connection `i` is open.
    pub fn is_open(&self, i: usize) -> bool {
        matches!(
            self.state.clients.get(i),
            Some(Client {
                phase: Phase::Open(_),
                ..
            })
        )
    }

    /// Bytes queued on connection `i` and not yet taken by the socket.
    pub fn backlog(&self, i: usize) -> usize {
        match self.state.clients.get(i) {
            Some(Client {
                phase: Phase::Open(c),
                ..
            }) => c.buffered_output(),
            _ => 0,
        }
    }

    /// Close every connection (a close frame, then TCP).
    pub fn close_all(&mut self) {
        for c in &mut self.state.clients {
            if let Phase::Open(conn) = &mut c.phase {
                let _ = conn.close(ringwave::proto::CloseCode::NORMAL, "");
                let _ = self.driver.send(c.token, conn.output());
            }
            if !matches!(c.phase, Phase::Closed) {
                self.driver.close(c.token);
            }
            c.phase = Phase::Closed;
        }
        self.state.open = 0;
    }

    fn flush(&mut self, out: &mut Vec<Happened>) {
        let dirty = std::mem::take(&mut self.state.dirty);
        for &i in &dirty {
            let c = &mut self.state.clients[i];
            loop {
                let bytes: &[u8] = match &c.phase {
                    Phase::Handshake(_, req) => req,
                    Phase::Open(conn) => conn.output(),
                    Phase::Closed => break,
                };
                if bytes.is_empty() {
                    break;
                }
                match self.driver.send(c.token, bytes) {
                    Ok(0) => break,
                    Ok(n) => match &mut c.phase {
                        Phase::Handshake(_, req) => {
                            req.drain(..n);
                        }
                        Phase::Open(conn) => conn.advance_output(n),
                        Phase::Closed => {}
                    },
                    Err(e) => {
                        if matches!(c.phase, Phase::Open(_)) {
                            self.state.open -= 1;
                        }
                        c.phase = Phase::Closed;
                        self.driver.close(c.token);
                        out.push(Happened::Closed(i, e.to_string()));
                        break;
                    }
                }
            }
        }
        let mut dirty = dirty;
        dirty.clear();
        if self.state.dirty.is_empty() {
            self.state.dirty = dirty;
        }
    }

    /// Write everything queued, wait up to `timeout` for I/O, and append what
    /// happened to `out`.
    pub fn poll(&mut self, timeout: Duration, out: &mut Vec<Happened>) -> io::Result<()> {
        self.flush(out);
        let st = &mut self.state;
        let mut dead = Vec::new();
        self.driver.turn(Some(timeout), &mut |c| match c {
            Completion::Data(t, buf) => st.data(t, buf, out, &mut dead),
            Completion::Writable(t) => {
                if let Some(&i) = st.by_token.get(t.index()) {
                    if i != usize::MAX {
                        st.dirty.push(i);
                    }
                }
            }
            Completion::Closed(t) => {
                if let Some(&i) = st.by_token.get(t.index()) {
                    if i != usize::MAX {
                        st.close(i, "server closed the connection".into(), out);
                        dead.push(t);
                    }
                }
            }
            Completion::Accepted(..) | Completion::Woken => {}
        })?;
        for t in dead {
            self.driver.close(t);
            if let Some(slot) = self.state.by_token.get_mut(t.index()) {
                *slot = usize::MAX;
            }
        }
        Ok(())
    }
}

impl State {
    fn close(&mut self, i: usize, why: String, out: &mut Vec<Happened>) {
        let c = &mut self.clients[i];
        if matches!(c.phase, Phase::Closed) {
            return;
        }
        if matches!(c.phase, Phase::Open(_)) {
            self.open -= 1;
        }
        c.phase = Phase::Closed;
        out.push(Happened::Closed(i, why));
    }

    fn data(&mut self, t: Token, buf: &mut [u8], out: &mut Vec<Happened>, dead: &mut Vec<Token>) {
        let Some(&i) = self.by_token.get(t.index()) else {
            return;
        };
        if i == usize::MAX {
            return;
        }
        let c = &mut self.clients[i];
        let mut rest_owned;
        let mut data: &mut [u8] = buf;
        if let Phase::Handshake(hs, _) = &mut c.phase {
            match hs.read(data) {
                Ok(None) => return,
                Ok(Some(acc)) => {
                    c.phase = Phase::Open(Box::new(Conn::new(
                        ringwave::proto::Role::Client,
                        Limits::default(),
                        None,
                    )));
                    self.open += 1;
                    out.push(Happened::Opened(i, c.started.elapsed()));
                    rest_owned = acc.rest;
                    data = &mut rest_owned[..];
                }
                Err(e) => {
                    self.close(i, format!("handshake failed: {e}"), out);
                    dead.push(t);
                    return;
                }
            }
        }
        let Phase::Open(conn) = &mut c.phase else {
            return;
        };
        let mut pos = 0;
        let mut failed = None;
        while pos < data.len() {
            match conn.read(&mut data[pos..]) {
                Ok((used, ev)) => {
                    pos += used;
                    match ev {
                        Some(Event::Text(t)) => {
                            out.push(Happened::Message(i, t.len(), text_stamp(t)))
                        }
                        Some(Event::Binary(b)) => out.push(Happened::Message(i, b.len(), stamp(b))),
                        Some(Event::Close { .. }) => failed = Some("server sent close".to_string()),
                        Some(_) => {}
                        None => break,
                    }
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        if !conn.output().is_empty() {
            self.dirty.push(i);
        }
        if let Some(why) = failed {
            self.close(i, why, out);
        }
    }
}

/// The first 8 bytes of a payload as a little-endian u64 (send timestamps).
pub fn stamp(payload: &[u8]) -> u64 {
    payload.get(..8).map_or(0, |b| {
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    })
}

/// A text payload's send timestamp: its first 16 characters as hex (the
/// fanout scenario's publications); 0 when they are not hex digits.
pub fn text_stamp(payload: &str) -> u64 {
    payload
        .get(..16)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or(0)
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
