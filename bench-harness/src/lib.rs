//! ringwave's load generator: WebSocket clients driven by ringwave's own
//! client-role protocol (`ringwave::proto::Conn` in `Role::Client`) over
//! ringwave's own drivers (io_uring by default, mio as the fallback), one
//! thread, one submission per loop turn, so generating load costs no more
//! than serving it.
//!
//! [`Engine`] owns the connections and reports what happened on each
//! ([`Happened`]); the scenarios in `ringwave-bench` decide what to send.
//! For `wss://` targets each connection runs a rustls client between the
//! driver and the WebSocket protocol, without I/O of its own, as the server
//! does.

pub mod hold;
pub mod recover;
pub mod report;
pub mod stats;
pub mod streams;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use ringwave::driver::{Backend, Completion, Driver, Token};
use ringwave::proto::ws::handshake::ClientHandshake;
use ringwave::proto::{Conn, Event, Limits, MessageKind};
use socket2::{Domain, Protocol, Socket, Type};

/// Where to connect: from a `ws://` or `wss://host:port/path` URL.
#[derive(Debug, Clone)]
pub struct Target {
    /// Server address.
    pub addr: SocketAddr,
    /// Host header value.
    pub host: String,
    /// Request path.
    pub path: String,
    /// For `wss://`: the client settings (see [`Target::with_tls`]) and the
    /// name the certificate is checked against.
    pub tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    /// The URL said `wss://`.
    pub wants_tls: bool,
}

impl Target {
    /// Parse `ws://HOST:PORT/PATH` or `wss://...` (HOST an IP address or
    /// `localhost`). A `wss://` target needs [`Target::with_tls`] next.
    pub fn parse(url: &str) -> Result<Target, String> {
        let (rest, wants_tls) = match url.strip_prefix("wss://") {
            Some(r) => (r, true),
            None => (
                url.strip_prefix("ws://")
                    .ok_or_else(|| format!("{url}: only ws:// and wss:// URLs are supported"))?,
                false,
            ),
        };
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
            tls: None,
            wants_tls,
        })
    }

    /// For a `wss://` target: trust the CA certificates in `ca` (PEM), or
    /// with `insecure` any certificate. A `ws://` target is returned as is.
    pub fn with_tls(mut self, ca: Option<&Path>, insecure: bool) -> Result<Target, String> {
        if !self.wants_tls {
            return Ok(self);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?;
        let mut cfg = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            let ca = ca.ok_or("a wss:// URL needs --ca FILE (or --insecure)")?;
            let mut roots = rustls::RootCertStore::empty();
            use rustls::pki_types::pem::PemObject;
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            for c in certs {
                roots
                    .add(c.map_err(|e| format!("{}: {e}", ca.display()))?)
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        // A benchmark's connections are new clients: full handshakes.
        cfg.resumption = rustls::client::Resumption::disabled();
        let name = self
            .host
            .rsplit_once(':')
            .map_or(self.host.as_str(), |(h, _)| h);
        let name = rustls::pki_types::ServerName::try_from(name.to_string())
            .map_err(|e| format!("{name}: {e}"))?;
        self.tls = Some((Arc::new(cfg), name));
        Ok(self)
    }
}

/// `--insecure`: every certificate is accepted (signatures are still
/// checked, so the handshake costs what a verified one does, bar the chain).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A connection's TLS client and the ciphertext it has not sent yet.
struct TlsClient {
    conn: rustls::ClientConnection,
    out: Vec<u8>,
}

impl TlsClient {
    /// Move rustls's pending records into `out`.
    fn flush_records(&mut self) {
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut self.out).is_err() {
                break;
            }
        }
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
    /// The handshake completed (the connection may have closed since).
    opened: bool,
    started: Instant,
    tls: Option<Box<TlsClient>>,
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
    /// The server pinged (the pong is queued already).
    Pinged(usize),
}

/// Everything but the driver, so completions can be handled while the
/// driver is borrowed.
struct State {
    clients: Vec<Client>,
    /// Driver token index -> client index.
    by_token: Vec<usize>,
    open: usize,
    dirty: Vec<usize>,
    /// Plaintext out of a TLS read.
    plain: Vec<u8>,
}

/// A set of client connections on one of ringwave's drivers (io_uring or
/// mio): the same batching the server gets, one submission per loop turn.
pub struct Engine {
    driver: Box<dyn Driver>,
    state: State,
    target: Target,
    rng: rand::rngs::ThreadRng,
    /// Source addresses to spread connections over: `source_base` and the
    /// `sources - 1` after it (127.0.0.1 .. 127.0.0.N unless set).
    sources: u8,
    source_base: Ipv4Addr,
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
                plain: Vec::new(),
            },
            target,
            rng: rand::rng(),
            sources: sources.max(1),
            source_base: Ipv4Addr::new(127, 0, 0, 1),
        })
    }

    /// Bind every connection to a source address from `base` on (with
    /// `sources` addresses, the next ones too), for a loopback target: each
    /// address has its own range of ephemeral ports.
    pub fn set_source_base(&mut self, base: Ipv4Addr) {
        self.source_base = base;
    }

    /// Connect to `target` from now on (connections already started stay
    /// where they are): to spread one run over several servers.
    pub fn set_target(&mut self, target: Target) {
        self.target = target;
    }

    /// Whether connection `i` has completed its handshake at some point
    /// (open now, or lost after).
    pub fn was_opened(&self, i: usize) -> bool {
        self.state.clients.get(i).is_some_and(|c| c.opened)
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
        let tls = match &self.target.tls {
            Some((cfg, name)) => {
                let conn = rustls::ClientConnection::new(cfg.clone(), name.clone())
                    .map_err(io::Error::other)?;
                Some(Box::new(TlsClient {
                    conn,
                    out: Vec::new(),
                }))
            }
            None if self.target.wants_tls => {
                return Err(io::Error::other("wss:// target without TLS settings"))
            }
            None => None,
        };
        let socket = Socket::new(
            Domain::for_address(self.target.addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        socket.set_tcp_nodelay(true)?;
        let spread = self.sources > 1 || self.source_base != Ipv4Addr::new(127, 0, 0, 1);
        if spread && self.target.addr.ip().is_loopback() && self.target.addr.is_ipv4() {
            let src = u32::from(self.source_base).wrapping_add((i % self.sources as usize) as u32);
            // The port is chosen at connect, unique for the 4-tuple: a
            // bind to port 0 would search the address's whole port range
            // for one no socket uses, slower with every connection.
            let on: libc::c_int = 1;
            // SAFETY: setsockopt reads one c_int from a live local for a
            // socket this function owns.
            unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    &on as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
            socket.bind(&SocketAddr::new(IpAddr::V4(Ipv4Addr::from(src)), 0).into())?;
        }
        let started = Instant::now();
        // Non-blocking: a SYN the server's full queue drops is retried by
        // the kernel (1 s, 3 s, ...) without stalling every other
        // connection; the request is sent once the socket is writable.
        socket.set_nonblocking(true)?;
        match socket.connect(&self.target.addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
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
            opened: false,
            started,
            tls,
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
                match &mut c.tls {
                    Some(tls) => {
                        let _ = tls.conn.writer().write_all(conn.output());
                        tls.conn.send_close_notify();
                        tls.flush_records();
                        let _ = self.driver.send(c.token, &tls.out);
                    }
                    None => {
                        let _ = self.driver.send(c.token, conn.output());
                    }
                }
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
            if let Some(tls) = c.tls.as_deref_mut() {
                // Plaintext into rustls (it holds the request until its
                // handshake is done), then the ciphertext to the socket.
                let bytes: &[u8] = match &c.phase {
                    Phase::Handshake(_, req) => req,
                    Phase::Open(conn) => conn.output(),
                    Phase::Closed => &[],
                };
                let n = if bytes.is_empty() {
                    0
                } else {
                    tls.conn.writer().write(bytes).unwrap_or(0)
                };
                match &mut c.phase {
                    Phase::Handshake(_, req) => {
                        req.drain(..n);
                    }
                    Phase::Open(conn) => conn.advance_output(n),
                    Phase::Closed => {}
                }
                tls.flush_records();
                while !tls.out.is_empty() && !matches!(c.phase, Phase::Closed) {
                    match self.driver.send(c.token, &tls.out) {
                        Ok(0) => break,
                        Ok(n) => {
                            tls.out.drain(..n);
                        }
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
                continue;
            }
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
            Completion::Data(t, buf, _) => st.data(t, buf, out, &mut dead),
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
        let mut plain = std::mem::take(&mut self.plain);
        let mut data: &mut [u8] = buf;
        if let Some(tls) = c.tls.as_deref_mut() {
            plain.clear();
            let mut input: &[u8] = data;
            while !input.is_empty() {
                let read = tls.conn.read_tls(&mut input);
                if let Err(e) = read
                    .map_err(|e| e.to_string())
                    .and_then(|_| tls.conn.process_new_packets().map_err(|e| e.to_string()))
                {
                    self.plain = plain;
                    self.close(i, format!("TLS: {e}"), out);
                    dead.push(t);
                    return;
                }
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    match tls.conn.reader().read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => plain.extend_from_slice(&chunk[..n]),
                    }
                }
            }
            if tls.conn.wants_write() || !tls.out.is_empty() {
                self.dirty.push(i);
            }
            data = &mut plain[..];
        }
        self.data_plain(i, t, data, out, dead);
        self.plain = plain;
    }

    fn data_plain(
        &mut self,
        i: usize,
        t: Token,
        data: &mut [u8],
        out: &mut Vec<Happened>,
        dead: &mut Vec<Token>,
    ) {
        let c = &mut self.clients[i];
        let mut rest_owned;
        let mut data: &mut [u8] = data;
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
                    c.opened = true;
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
                        Some(Event::Ping(_)) => out.push(Happened::Pinged(i)),
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

/// A process's RSS once it holds still: sampled every 0.5 s until four
/// samples in a row agree (2 s), at most `max`. A server that gives pool
/// memory back a moment after traffic stops (ringwave's io_uring pools, a
/// second or two) is measured after it has, before as after a load.
pub fn settled_rss(pid: u32, max: std::time::Duration) -> Option<u64> {
    let start = std::time::Instant::now();
    let mut last = process_rss(pid)?;
    let mut same = 0;
    while same < 4 && start.elapsed() < max {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let now = process_rss(pid)?;
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    Some(last)
}

/// This process's own CPU time in nanoseconds.
pub fn self_cpu_ns() -> u64 {
    process_cpu_ns(std::process::id()).unwrap_or(0)
}

/// This process's soft limit on open descriptors.
pub fn descriptor_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 1024;
    }
    r.rlim_cur
}
