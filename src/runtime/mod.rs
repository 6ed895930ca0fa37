//! Thread-per-core runtime: one worker per core, each pinned, each with its
//! own `SO_REUSEPORT` listener (the kernel spreads connections), its own
//! driver, connection table, timer wheel and [`mailbox`].
//!
//! - `worker`: the thread, the only part that reads the clock;
//! - `core`: the connection table and what completions do to it, with time
//!   passed in; `http1` (requests, keep-alive), `delivery`, `flush`,
//!   `deadlines` and `drain` are its other parts, one concern each;
//! - `session`: the sessions a connection goes through;
//! - [`app`]: what the loop asks of the application above it;
//! - [`ws`]: the connection handle applications get;
//! - `publisher`: [`Publisher`], publishing from other threads through the
//!   mailboxes;
//! - [`uplink`]: what a bridge to other nodes (a broker) is handed.

mod admission;
pub mod app;
mod clients;
mod clock;
mod connections;
mod core;
mod deadlines;
mod delivery;
mod drain;
mod flush;
mod h2;
mod http1;
pub mod identity;
mod live;
pub mod mailbox;
mod peers;
mod publisher;
mod reply;
mod session;
#[cfg(test)]
mod tests;
pub mod timer;
pub mod tls;
pub mod uplink;
mod worker;
pub mod ws;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::JoinHandle;

use socket2::{Domain, Protocol, Socket, Type};

/// The loop core, for the whole-loop fuzz target (`server::fuzzing`).
#[cfg(fuzzing)]
pub(crate) use self::clock::Epoch;
#[cfg(fuzzing)]
pub(crate) use self::core::Core;
use crate::driver::{self, affinity, Chosen};
use crate::metrics::Stats;
use app::{App, Live, Settings};
use mailbox::{Control, Mailbox};
pub use publisher::{PublishError, Publisher};

/// Mailbox capacity per worker: enough for bursts of publishes; beyond it a
/// publisher waits (back-pressure), nothing is dropped.
const MAILBOX_CAPACITY: usize = 65_536;

/// The position of the TLS listener in each worker's driver (the plaintext
/// one is 0): connections it accepts go through [`tls`].
pub(crate) const TLS_LISTENER: usize = 1;

/// What every worker can reach of the others, set once all have started.
pub(crate) struct Shared {
    pub mailboxes: Arc<[Arc<Mailbox>]>,
    pub stats: Vec<Arc<Stats>>,
    /// Connections open in the process (for `--max-connections`); changed
    /// on accept and close only.
    pub connections: AtomicUsize,
    /// The TLS listener's certificates (for the reload counts in /metrics).
    pub tls: Option<Arc<tls::Certificates>>,
    /// The bridge to other nodes (for its counts in /metrics).
    pub uplink: Option<Arc<dyn uplink::Uplink>>,
    /// The topics' history (for its sizes in /metrics).
    pub history: Option<Arc<crate::pubsub::history::History>>,
    /// What each client address holds, for the limits per address.
    pub clients: clients::Clients,
}

/// A running server.
pub struct Running {
    workers: Vec<JoinHandle<()>>,
    mailboxes: Arc<[Arc<Mailbox>]>,
    local_addr: SocketAddr,
    /// `EngineConfig::also_listen`, bound.
    also_addrs: Vec<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    tls_certs: Option<Arc<tls::Certificates>>,
    uplink: Option<Arc<dyn uplink::Uplink>>,
    history: Option<Arc<crate::pubsub::history::History>>,
    backend: Chosen,
    backend_reason: String,
}

impl Running {
    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Every plaintext address served: [`Running::local_addr`], then those
    /// of `EngineConfig::also_listen`.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        std::iter::once(self.local_addr)
            .chain(self.also_addrs.iter().copied())
            .collect()
    }

    /// The TLS listener's bound address, if one was configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Read the TLS certificate and key files again: new handshakes use the
    /// new certificates, open connections keep theirs. On an error (a file
    /// unreadable, a key that does not fit its certificate) the old ones stay
    /// in use and the error is returned.
    pub fn reload_tls(&self) -> io::Result<()> {
        match &self.tls_certs {
            Some(c) => c.reload(),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no TLS listener configured",
            )),
        }
    }

    /// A handle that reloads the TLS certificates from another thread (a
    /// signal handler thread); `None` without a TLS listener.
    pub fn tls_certificates(&self) -> Option<Arc<tls::Certificates>> {
        self.tls_certs.clone()
    }

    /// The backend in use.
    pub fn backend(&self) -> Chosen {
        self.backend
    }

    /// Why that backend was chosen.
    pub fn backend_reason(&self) -> &str {
        &self.backend_reason
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Ask every worker to stop accepting, close its connections with 1001 and
    /// exit (after the grace period at the latest).
    pub fn shutdown(&self) {
        for m in self.mailboxes.iter() {
            if m.send(Control::Shutdown).is_err() {
                tracing::warn!(
                    "a worker's mailbox is full; shutdown will be retried by the caller"
                );
            }
        }
    }

    /// On the first SIGTERM or SIGINT, [`Running::shutdown`]: every
    /// connection told to go (1001, spread over `EngineConfig::drain`) and
    /// the workers out after the grace period, so that [`Running::join`]
    /// returns. What a service run by systemd or a container wants; without
    /// it the default action of SIGTERM ends the process with no close at
    /// all. A thread of its own waits for the signal.
    pub fn shutdown_on_signals(&self) -> io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
        let handle = self.shutdown_handle();
        std::thread::Builder::new()
            .name("ringwave-signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    tracing::info!("signal {sig}: closing connections with 1001");
                    handle.shutdown();
                }
            })?;
        Ok(())
    }

    /// On each SIGHUP, on a thread of its own: the TLS certificates read
    /// again ([`Running::reload_tls`], what fails to load leaves the old
    /// ones in use, logged either way), then `reload` called, which may
    /// change settings through a [`Running::reconfigure_handle`] and read
    /// JWT keys again ([`JwtKeys::reload`]). Without it, SIGHUP's default
    /// action ends the process.
    ///
    /// [`JwtKeys::reload`]: crate::server::JwtKeys::reload
    pub fn reload_on_sighup(&self, mut reload: impl FnMut() + Send + 'static) -> io::Result<()> {
        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
        let certs = self.tls_certs.clone();
        std::thread::Builder::new()
            .name("ringwave-sighup".into())
            .spawn(move || {
                for _ in signals.forever() {
                    match certs.as_deref().map(tls::Certificates::reload) {
                        Some(Ok(())) => tracing::info!("SIGHUP: TLS certificates reloaded"),
                        Some(Err(e)) => tracing::error!(
                            "SIGHUP: TLS certificates not reloaded, the old ones stay in use: {e}"
                        ),
                        None => {}
                    }
                    reload();
                }
            })?;
        Ok(())
    }

    /// A handle that publishes to every worker from any thread (and to the
    /// other nodes, with an uplink).
    pub fn publisher(&self) -> Publisher {
        Publisher::new(
            self.mailboxes.clone(),
            self.uplink.clone(),
            self.history.clone(),
        )
    }

    /// Change the limits and slow-consumer policies while the server runs,
    /// and the amounts of history its topics keep (what [`Live`] says
    /// about when each takes effect). Every worker takes the change at its
    /// next turn; no connection is dropped. From another thread:
    /// [`Running::reconfigure_handle`].
    pub fn reconfigure(&self, live: Live) -> io::Result<()> {
        self.reconfigure_handle().reconfigure(live)
    }

    /// A handle that reconfigures from another thread (a SIGHUP handler).
    pub fn reconfigure_handle(&self) -> ReconfigureHandle {
        ReconfigureHandle {
            mailboxes: self.mailboxes.clone(),
            history: self.history.clone(),
        }
    }

    /// A handle that can request shutdown from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            mailboxes: self.mailboxes.clone(),
        }
    }

    /// Wait for every worker to exit (then let go of the uplink).
    pub fn join(self) -> io::Result<()> {
        let mut result = Ok(());
        for w in self.workers {
            if w.join().is_err() {
                result = Err(io::Error::other("a worker panicked"));
            }
        }
        if let Some(u) = &self.uplink {
            u.close();
        }
        result
    }
}

/// Requests shutdown from any thread (a signal handler thread, a test).
#[derive(Clone)]
pub struct ShutdownHandle {
    mailboxes: Arc<[Arc<Mailbox>]>,
}

impl ShutdownHandle {
    /// See [`Running::shutdown`].
    pub fn shutdown(&self) {
        for m in self.mailboxes.iter() {
            let _ = m.send(Control::Shutdown);
        }
    }
}

/// Reconfigures a running server from any thread ([`Running::reconfigure`]).
#[derive(Clone)]
pub struct ReconfigureHandle {
    mailboxes: Arc<[Arc<Mailbox>]>,
    history: Option<Arc<crate::pubsub::history::History>>,
}

impl ReconfigureHandle {
    /// See [`Running::reconfigure`]. A worker whose mailbox stays full
    /// for a second (it is far behind on publications) is an error: the
    /// workers before it have the change, it and those after do not.
    pub fn reconfigure(&self, live: Live) -> io::Result<()> {
        if let (Some(h), Some(config)) = (&self.history, &live.history) {
            h.set_retention(config);
        }
        let live = Arc::new(live);
        for (i, m) in self.mailboxes.iter().enumerate() {
            let mut msg = Control::Reconfigure(live.clone());
            let mut tries = 0;
            loop {
                match m.send(msg) {
                    Ok(()) | Err(mailbox::Refused::Closed(_)) => break,
                    Err(mailbox::Refused::Full(back)) if tries < 1000 => {
                        msg = back;
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    Err(mailbox::Refused::Full(_)) => {
                        return Err(io::Error::other(format!(
                        "worker {i}'s mailbox stayed full: workers from {i} on keep their settings"
                    )))
                    }
                }
            }
        }
        Ok(())
    }
}

/// How long the kernel holds a connection that has not sent its first
/// bytes before handing it over anyway (then the handshake timeout runs).
const DEFER_ACCEPT_SECS: u32 = 5;

/// Claim `addr` for this server: refused when another socket already
/// listens there (another process, or another server in this one), which
/// SO_REUSEPORT would otherwise let the workers share without a word. A
/// socket without SO_REUSEPORT binds only where nothing listens; it is
/// closed at once and the workers' listeners bind to the address it got (a
/// port 0 is chosen here).
///
/// A restart may find the address still held for a moment by the server
/// it replaces: an io_uring ring, and the listener it holds, is torn down
/// after its process has exited, once its pending operations are
/// cancelled. So an address in use is tried again every 50 ms for up to
/// 2 s before it is refused.
fn claim(addr: SocketAddr) -> io::Result<SocketAddr> {
    const TRIES: u32 = 40;
    for _ in 1..TRIES {
        match claim_once(addr) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            done => return done,
        }
    }
    claim_once(addr)
}

fn claim_once(addr: SocketAddr) -> io::Result<SocketAddr> {
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Connections of a previous run in TIME_WAIT do not stand in the way.
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into()).map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => io::Error::new(
            e.kind(),
            "another process (or server) is already listening there",
        ),
        _ => e,
    })?;
    probe
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an IP address"))
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux: one
    // setsockopt here instead of one per connection.
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    // Accept a connection with its first bytes (see `defer_accept`): one
    // wake-up per connection instead of two. Best effort: without it
    // connections are accepted as they complete the TCP handshake.
    if let Err(e) = driver::descriptors::defer_accept(socket.as_fd(), DEFER_ACCEPT_SECS) {
        tracing::debug!("TCP_DEFER_ACCEPT not set: {e}");
    }
    Ok(socket.into())
}

/// Descriptor slots reserved at startup when no connection limit is set.
const DEFAULT_DESCRIPTOR_SLOTS: usize = 65_536;

/// Raise the soft descriptor limit and grow the descriptor table once, now,
/// instead of in the middle of a connection storm (see
/// [`driver::descriptors`]). Failure only costs those stalls later, so it is
/// logged, not returned.
fn reserve_descriptors(listener: &TcpListener, max_connections: usize) {
    match driver::descriptors::raise_limit() {
        Ok((before, after)) if after > before => {
            tracing::info!("descriptor limit raised from {before} to {after}");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot raise the descriptor limit: {e}"),
    }
    // Connections plus the listeners, rings and eventfds beside them.
    let slots = if max_connections > 0 {
        max_connections.saturating_add(256)
    } else {
        DEFAULT_DESCRIPTOR_SLOTS
    };
    match driver::descriptors::reserve(listener.as_fd(), slots) {
        Ok(n) => tracing::debug!("descriptor table sized for {n} descriptors"),
        Err(e) => tracing::warn!("cannot grow the descriptor table: {e}"),
    }
}

/// Bind, spawn the workers, and return once every worker serves.
pub fn start<A, F>(cfg: Settings, factory: F) -> io::Result<Running>
where
    A: App,
    F: Fn() -> A + Send + Sync + 'static,
{
    let (backend, backend_reason) = driver::select(cfg.backend)?;
    let threads = cfg.threads.max(1);
    let first = claim(cfg.listen)
        .and_then(bind)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", cfg.listen)))?;
    let local_addr = first.local_addr()?;
    reserve_descriptors(&first, cfg.max_connections);
    let tls_first = match &cfg.tls {
        Some(t) => Some(claim(t.listen).and_then(bind).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen (TLS) on {}: {e}", t.listen),
            )
        })?),
        None => None,
    };
    let tls_addr = tls_first.as_ref().map(|l| l.local_addr()).transpose()?;
    // The other plaintext addresses, on the first one's port when theirs
    // is 0.
    let mut also = Vec::with_capacity(cfg.also_listen.len());
    for a in &cfg.also_listen {
        let mut addr = *a;
        if addr.port() == 0 {
            addr.set_port(local_addr.port());
        }
        let l = claim(addr)
            .and_then(bind)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        also.push(l);
    }
    let also_addrs: Vec<SocketAddr> = also
        .iter()
        .map(|l| l.local_addr())
        .collect::<io::Result<_>>()?;
    // Each worker's listeners: the plaintext one, then the TLS one
    // (TLS_LISTENER), then the other plaintext ones.
    let mut listeners = vec![vec![first]];
    listeners[0].extend(tls_first);
    listeners[0].extend(also);
    for _ in 1..threads {
        let mut mine = vec![bind(local_addr)?];
        if let Some(a) = tls_addr {
            mine.push(bind(a)?);
        }
        for a in &also_addrs {
            mine.push(bind(*a)?);
        }
        listeners.push(mine);
    }
    let tls_certs = cfg.tls.as_ref().map(|t| t.certs.clone());
    let per_ip = (cfg.max_connections_per_ip, cfg.new_connections_per_ip);
    let uplink = cfg.uplink.clone();
    let history = cfg.history.clone();
    // Worker i runs on the i-th CPU this process may use, so `taskset` decides
    // where a server runs.
    let cpus = affinity::allowed_cpus();
    let cfg = Arc::new(cfg);
    let factory = Arc::new(factory);
    let shared: Arc<OnceLock<Shared>> = Arc::new(OnceLock::new());
    type Ready = io::Result<(usize, Arc<Mailbox>, Arc<Stats>)>;
    let (ready_tx, ready_rx) = mpsc::channel::<Ready>();
    let mut workers = Vec::with_capacity(threads);
    for (i, listener) in listeners.into_iter().enumerate() {
        let cfg = cfg.clone();
        let factory = factory.clone();
        let ready = ready_tx.clone();
        let cpus = cpus.clone();
        let shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("ringwave-worker-{i}"))
            .spawn(move || {
                if cfg.pin_threads && !cpus.is_empty() {
                    affinity::pin_to_cpu(cpus[i % cpus.len()]);
                }
                // The driver is built on its own thread: an io_uring set up
                // with SINGLE_ISSUER belongs to the thread that created it.
                let driver = match driver::build(backend, listener) {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let mailbox = Arc::new(Mailbox::new(MAILBOX_CAPACITY, driver.waker()));
                let stats = Arc::new(Stats::default());
                let _ = ready.send(Ok((i, mailbox.clone(), stats.clone())));
                drop(ready);
                worker::run(i as u16, driver, factory(), cfg, mailbox, shared, stats);
            })?;
        workers.push(handle);
    }
    drop(ready_tx);
    let mut mailboxes: Vec<Option<Arc<Mailbox>>> = vec![None; threads];
    let mut stats: Vec<Option<Arc<Stats>>> = vec![None; threads];
    for _ in 0..threads {
        match ready_rx.recv() {
            Ok(Ok((i, m, s))) => {
                mailboxes[i] = Some(m);
                stats[i] = Some(s);
            }
            Ok(Err(e)) => {
                let started: Vec<Arc<Mailbox>> = mailboxes.iter().flatten().cloned().collect();
                for m in &started {
                    let _ = m.send(Control::Shutdown);
                }
                return Err(io::Error::new(
                    e.kind(),
                    format!("worker setup failed ({backend}): {e}"),
                ));
            }
            Err(_) => return Err(io::Error::other("a worker exited during setup")),
        }
    }
    let mailboxes: Arc<[Arc<Mailbox>]> = mailboxes.into_iter().flatten().collect();
    let _ = shared.set(Shared {
        mailboxes: mailboxes.clone(),
        stats: stats.into_iter().flatten().collect(),
        connections: AtomicUsize::new(0),
        tls: tls_certs.clone(),
        uplink: uplink.clone(),
        history: history.clone(),
        clients: clients::Clients::new(per_ip.0, per_ip.1),
    });
    Ok(Running {
        workers,
        mailboxes,
        local_addr,
        also_addrs,
        tls_addr,
        tls_certs,
        uplink,
        history,
        backend,
        backend_reason,
    })
}
