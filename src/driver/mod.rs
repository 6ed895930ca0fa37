//! I/O drivers: the runtime's only contact with the kernel.
//!
//! A driver owns the listener and every connection's socket and speaks
//! completions ([`Completion`]): accepted, bytes arrived, the socket can take
//! more, the peer is gone, woken. Two backends implement [`Driver`]:
//!
//! - [`uring`]: io_uring with multishot accept, multishot recv from a provided
//!   buffer ring (an idle connection holds no read buffer) and sends from
//!   registered buffers, or by reference for shared bytes ([`Part::shared`]);
//! - [`poll`]: mio (epoll), edge-triggered, one scratch read buffer per
//!   worker.
//!
//! [`select`] probes io_uring and picks a backend for `--backend auto`.

pub mod affinity;
pub mod descriptors;
pub mod poll;
pub mod uring;

use std::fmt;
use std::io::{self, IoSlice};
use std::net::TcpListener;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connection as the driver knows it: an index into the driver's table.
/// The driver never reports an index again after [`Driver::close`] until it
/// reports it in a new [`Completion::Accepted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(pub u32);

impl Token {
    /// The index, for tables parallel to the driver's.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What a driver reports.
#[derive(Debug)]
pub enum Completion<'a> {
    /// A new connection, with the peer's address when known, and the
    /// position of the listener that accepted it in the list the driver was
    /// built with.
    Accepted(Token, Option<std::net::SocketAddr>, usize),
    /// Bytes arrived. The buffer belongs to the driver and is valid only
    /// during the call; it may be modified (unmasked) in place. A driver
    /// that can also write to the socket during the call lends it as a
    /// [`Reply`], so an answer can go out from where its bytes lie.
    Data(Token, &'a mut [u8], Option<&'a mut dyn Reply>),
    /// The socket can take more bytes: call [`Driver::send`] again.
    Writable(Token),
    /// The peer closed or the socket failed. The caller must still call
    /// [`Driver::close`].
    Closed(Token),
    /// Another thread called `Waker::wake`.
    Woken,
}

/// The socket of a [`Completion::Data`], lent with its bytes: what it sends
/// goes out during the call, so its parts may lie in the lent buffer (an
/// echo's payload, unmasked in place) instead of being copied first.
pub trait Reply {
    /// Send `parts`, in order, as the connection's next bytes: only when the
    /// driver holds none of its earlier bytes (see [`Driver::send_ready`]).
    /// Returns how many were taken: 0 when it cannot take them now (the
    /// socket is full, or a send of the connection's is still in flight; a
    /// [`Completion::Writable`] follows either). The caller sends the rest
    /// the usual way, after the call.
    ///
    /// A part that lies in the lent buffer may be sent from there after the
    /// call returns (io_uring keeps the buffer until its send completes): the
    /// caller leaves the buffer as it is once it has replied from it.
    fn reply(&mut self, parts: &[IoSlice<'_>]) -> io::Result<usize>;
}

/// Where `part` lies in the memory at addresses `at` (a lent buffer's, as
/// `as_ptr_range` gives them): its offsets there, when it is not empty and
/// lies wholly inside.
pub(crate) fn offsets_in(at: &Range<usize>, part: &[u8]) -> Option<Range<usize>> {
    let start = part.as_ptr() as usize;
    let end = start.checked_add(part.len())?;
    (start >= at.start && end <= at.end && !part.is_empty())
        .then(|| start - at.start..end - at.start)
}

impl fmt::Debug for dyn Reply + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reply")
    }
}

/// Wakes a worker blocked in [`Driver::turn`] from another thread.
pub trait Wake: Send + Sync {
    /// Make the worker's current or next `turn` return soon.
    fn wake(&self);
}

/// A shareable waker.
pub type Waker = Arc<dyn Wake>;

/// One worker's I/O backend.
pub trait Driver {
    /// Wait up to `timeout` (or not at all with `Some(ZERO)`) for I/O and
    /// report every completion to `sink`.
    fn turn(
        &mut self,
        timeout: Option<Duration>,
        sink: &mut dyn FnMut(Completion<'_>),
    ) -> io::Result<()>;

    /// Take bytes to send on `token`. Returns how many were taken (written,
    /// or copied into a kernel-owned buffer); 0 means "not now": a
    /// [`Completion::Writable`] follows when it can take more.
    fn send(&mut self, token: Token, data: &[u8]) -> io::Result<usize>;

    /// Whether a send on `token` could take bytes now (false while the
    /// driver still holds an earlier send for it), so callers can skip
    /// preparing one. A hint: `send` decides.
    fn send_ready(&self, _token: Token) -> bool {
        true
    }

    /// Take the bytes `buf[from..]` to send on `token`, with the same rules
    /// as [`Driver::send`], except that the driver may take `buf` itself
    /// instead of copying from it, leaving an empty vector in its place (so
    /// the caller's bookkeeping of `from` plus what was taken still holds).
    /// For output that the caller would otherwise drop once it is sent.
    fn send_owned(&mut self, token: Token, buf: &mut Vec<u8>, from: usize) -> io::Result<usize> {
        match buf.get(from..) {
            Some(rest) => self.send(token, rest),
            None => Ok(0),
        }
    }

    /// Bytes of callers' buffers ([`Driver::send_owned`]) the driver holds
    /// in sends that have not completed: memory a caller may want to bound
    /// by preparing smaller sends while it is high.
    fn send_backlog(&self) -> usize {
        0
    }

    /// An empty buffer to fill with output for [`Driver::send_owned`]: one
    /// the driver took over earlier and has done with, kept so that a
    /// busy worker does not allocate (and fault in) a fresh buffer for
    /// every send, or a new vector.
    fn spare_buffer(&mut self) -> Vec<u8> {
        Vec::new()
    }

    /// Take bytes from `parts`, in order, as one send (a connection's own
    /// frames followed by shared publish frames). Returns how many bytes were
    /// taken in total; the same rules as [`Driver::send`]. A driver may keep
    /// a [`Part::shared`] part's owner instead of copying its bytes.
    fn send_vectored(&mut self, token: Token, parts: &[Part<'_>]) -> io::Result<usize> {
        match parts.iter().find(|p| !p.bytes().is_empty()) {
            Some(first) => self.send(token, first.bytes()),
            None => Ok(0),
        }
    }

    /// Take over an already connected socket (a client's outgoing
    /// connection); reads start at once. No `Accepted` is reported for it.
    fn adopt(&mut self, stream: std::net::TcpStream) -> io::Result<Token>;

    /// Half-close: send FIN after the bytes already taken, keep reading.
    /// Used for a lingering close after failing a connection, so a peer still
    /// sending does not get a reset that could destroy our close frame.
    fn shutdown_write(&mut self, token: Token);

    /// Close the connection. No completion for `token` follows.
    fn close(&mut self, token: Token);

    /// Stop (`true`) or resume reading `token`. While stopped, what the peer
    /// sends stays in the kernel (its TCP window closes), so a peer that
    /// does not read the answers its requests ask for cannot make the server
    /// hold more of them. A few bytes already on their way may still be
    /// reported. Default: no effect.
    fn pause_reading(&mut self, _token: Token, _paused: bool) {}

    /// Stop accepting new connections (shutdown); close the listener.
    fn stop_accepting(&mut self);

    /// A handle that wakes this worker from other threads.
    fn waker(&self) -> Waker;
}

/// Something that keeps shared, immutable bytes alive: a driver that sends
/// them without copying holds one of these until the kernel is done.
pub trait Keep {
    /// Another reference to the owner.
    fn keep(&self) -> Arc<dyn Send + Sync>;
}

impl<T: Send + Sync + 'static> Keep for Arc<T> {
    fn keep(&self) -> Arc<dyn Send + Sync> {
        self.clone()
    }
}

/// One piece of a [`Driver::send_vectored`]: bytes to copy, or bytes inside
/// a shared owner that the driver may reference until its send completes.
#[derive(Clone, Copy)]
pub struct Part<'a> {
    bytes: &'a [u8],
    owner: Option<&'a dyn Keep>,
}

impl<'a> Part<'a> {
    /// Bytes the driver copies (or writes at once) before `send_vectored`
    /// returns.
    pub fn borrowed(bytes: &'a [u8]) -> Part<'a> {
        Part { bytes, owner: None }
    }

    /// Bytes owned by `owner`, which the driver may reference after
    /// `send_vectored` returns, holding a [`Keep::keep`] reference meanwhile.
    ///
    /// # Safety
    ///
    /// `bytes` must lie in memory that `owner` owns and that is neither
    /// written, moved nor freed while any reference to the owner lives.
    pub unsafe fn shared(bytes: &'a [u8], owner: &'a dyn Keep) -> Part<'a> {
        Part {
            bytes,
            owner: Some(owner),
        }
    }

    /// The bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The owner, for a part made with [`Part::shared`].
    pub fn owner(&self) -> Option<&'a dyn Keep> {
        self.owner
    }
}

impl fmt::Debug for Part<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Part")
            .field("len", &self.bytes.len())
            .field("shared", &self.owner.is_some())
            .finish()
    }
}

/// Which backend to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// io_uring when the probe passes, else poll.
    Auto,
    /// io_uring, or fail.
    Uring,
    /// mio (epoll/kqueue).
    Poll,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Backend::Auto),
            "uring" | "io_uring" => Ok(Backend::Uring),
            "poll" | "epoll" => Ok(Backend::Poll),
            _ => Err(format!(
                "unknown backend {s:?}: expected auto, uring or poll"
            )),
        }
    }
}

/// The name [`Backend::from_str`](std::str::FromStr) takes back.
impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Auto => "auto",
            Backend::Uring => "uring",
            Backend::Poll => "poll",
        })
    }
}

/// The backend that will actually run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    /// io_uring.
    Uring,
    /// mio.
    Poll,
}

impl fmt::Display for Chosen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Chosen::Uring => "uring",
            Chosen::Poll => "poll",
        })
    }
}

/// Resolve `wanted` to a backend. Returns the choice and why.
pub fn select(wanted: Backend) -> io::Result<(Chosen, String)> {
    match wanted {
        Backend::Poll => Ok((Chosen::Poll, "poll requested".into())),
        Backend::Uring => match uring::probe() {
            Ok(found) => Ok((Chosen::Uring, found)),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("io_uring requested but unusable: {e}"),
            )),
        },
        Backend::Auto => match uring::probe() {
            Ok(found) => Ok((Chosen::Uring, found)),
            Err(e) => Ok((
                Chosen::Poll,
                format!("io_uring unusable ({e}); falling back to poll"),
            )),
        },
    }
}

/// Build the chosen driver for one worker around its listeners (or, with
/// none, for outgoing connections only: see [`Driver::adopt`]). Each
/// [`Completion::Accepted`] names its listener by its position here. Accepted
/// sockets keep the listener's options: set TCP_NODELAY on the listener for
/// connections that should have it.
pub fn build(chosen: Chosen, listeners: Vec<TcpListener>) -> io::Result<Box<dyn Driver>> {
    Ok(match chosen {
        Chosen::Uring => Box::new(uring::UringDriver::new(listeners)?),
        Chosen::Poll => Box::new(poll::PollDriver::new(listeners)?),
    })
}

/// Whether an accept error means "out of descriptors": keep serving, retry
/// later.
fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// How long to wait before accepting again after running out of descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Accepting paused after running out of descriptors: both drivers keep
/// serving their connections, log once per episode, and retry every
/// [`ACCEPT_RETRY`] without spinning.
#[derive(Debug, Default)]
pub(crate) struct AcceptPause {
    until: Option<Instant>,
    logged: bool,
}

impl AcceptPause {
    /// An accept failed with `e` while `open` connections are served. Returns
    /// whether accepting is now paused (descriptor exhaustion).
    pub(crate) fn failed(&mut self, e: &io::Error, open: usize) -> bool {
        if !is_fd_exhaustion(e) {
            return false;
        }
        if !self.logged {
            tracing::warn!(
                "accept failed: {e}; serving the {open} open connections and retrying every {ACCEPT_RETRY:?}"
            );
            self.logged = true;
        }
        self.until = Some(Instant::now() + ACCEPT_RETRY);
        true
    }

    /// An accept succeeded: a later exhaustion is a new episode, logged again.
    pub(crate) fn succeeded(&mut self) {
        self.logged = false;
    }

    /// Whether accepting is paused right now. A pause that ran out is cleared.
    pub(crate) fn active(&mut self) -> bool {
        match self.until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                self.until = None;
                false
            }
            None => false,
        }
    }

    /// Whether a pause is pending (running, or run out and not yet cleared).
    pub(crate) fn pending(&self) -> bool {
        self.until.is_some()
    }

    /// Shorten `timeout` so the turn ends when the pause does.
    pub(crate) fn bound(&self, timeout: Option<Duration>) -> Option<Duration> {
        match self.until {
            Some(t) => {
                let left = t.saturating_duration_since(Instant::now());
                Some(timeout.map_or(left, |x| x.min(left)))
            }
            None => timeout,
        }
    }

    /// Forget the pause (the listener is gone).
    pub(crate) fn clear(&mut self) {
        self.until = None;
    }
}
