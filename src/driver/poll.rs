//! The readiness backend: mio (epoll on Linux, kqueue on BSD/macOS),
//! edge-triggered.
//!
//! Reads go into one scratch buffer per worker; the runtime copies only the
//! unparsed tail of a partial frame into the connection. The socket is lent
//! with each read ([`Reply`]), so an echo goes out from the scratch buffer,
//! header and payload in one `sendmsg`, without a copy into the connection. Because readiness is
//! edge-triggered, a socket that was not read to `WouldBlock` (a fairness
//! cap) is remembered and read again on the next turn without waiting.
//!
//! A read that fills less than the scratch buffer has emptied the socket's
//! receive queue, so it is not followed by one more read to hear
//! `WouldBlock` (a wasted system call per message at one message per read):
//! bytes that arrive later wake the socket again, since epoll reports every
//! arrival after the event that was read, edge-triggered or not. The one
//! arrival that does not wake it is a FIN that came before the event was
//! collected; the event then says so (read-closed), and from that event on
//! the socket is read to end of file.

use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token as MioToken};
use slab::Slab;

use super::{AcceptPause, Completion, Driver, Part, Reply, Token, Wake, Waker};

const WAKER: MioToken = MioToken(usize::MAX - 1);
/// Listener `i` is registered as `LISTENERS - i`, far above any socket key.
const LISTENERS: usize = usize::MAX - 2;
/// Most listeners one driver serves.
const MAX_LISTENERS: usize = 64;

/// Which listener a mio token names, if any.
fn listener_of(token: MioToken) -> Option<usize> {
    let i = LISTENERS.checked_sub(token.0)?;
    (i < MAX_LISTENERS).then_some(i)
}

/// Scratch read buffer size.
const SCRATCH: usize = 64 * 1024;
/// Reads per socket per turn before moving on to others.
const READS_PER_TURN: usize = 16;
/// Most slices handed to one `writev`.
const MAX_PARTS: usize = 256;
/// A vectored write of at most this many bytes is copied into one buffer
/// and sent with `send`: below it the copy costs less than `sendmsg`'s own
/// layers (copying in the msghdr, importing the iovecs).
const GATHER_MAX: usize = 4096;

struct Socket {
    stream: TcpStream,
    /// Not read to `WouldBlock` last time.
    more_to_read: bool,
    /// An event said the peer closed or the socket failed: read to the end
    /// (or the error) instead of stopping at a short read.
    hup: bool,
    /// A write returned `WouldBlock`: report `Writable` on the next edge.
    want_write: bool,
    /// The peer closed or the socket failed; reported once.
    dead: bool,
    /// The runtime stopped reading it ([`Driver::pause_reading`]): an edge
    /// only leaves `more_to_read` set, read once it resumes.
    paused: bool,
}

/// One worker's mio driver.
pub struct PollDriver {
    poll: Poll,
    events: Events,
    /// The listeners, in the order the runtime gave them.
    listeners: Vec<TcpListener>,
    sockets: Slab<Socket>,
    scratch: Box<[u8]>,
    /// Where small vectored writes are gathered ([`GATHER_MAX`]).
    gather: Vec<u8>,
    waker: Arc<MioWaker>,
    /// Sockets to read again without waiting for an edge.
    backlog: Vec<usize>,
    /// This turn's events: (token, readable, writable).
    ready: Vec<(usize, bool, bool)>,
    accept_pause: AcceptPause,
}

struct MioWaker(mio::Waker);

impl Wake for MioWaker {
    fn wake(&self) {
        // A failed wake means the poll is gone: the worker is exiting.
        let _ = self.0.wake();
    }
}

impl PollDriver {
    /// Register `stream` for both edges and give it a slot; its first turn
    /// reads it (data may already be there).
    fn insert_socket(
        registry: &Registry,
        sockets: &mut Slab<Socket>,
        mut stream: TcpStream,
    ) -> io::Result<usize> {
        let entry = sockets.vacant_entry();
        let key = entry.key();
        registry.register(
            &mut stream,
            MioToken(key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(Socket {
            stream,
            more_to_read: true,
            hup: false,
            want_write: false,
            dead: false,
            paused: false,
        });
        Ok(key)
    }

    /// A driver serving `listeners` (which it makes non-blocking), or only
    /// adopted connections when there are none.
    pub fn new(listeners: Vec<StdListener>) -> io::Result<Self> {
        let poll = Poll::new()?;
        if listeners.len() > MAX_LISTENERS {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                format!("at most {MAX_LISTENERS} listeners"),
            ));
        }
        let mut registered = Vec::with_capacity(listeners.len());
        for (i, l) in listeners.into_iter().enumerate() {
            l.set_nonblocking(true)?;
            let mut l = TcpListener::from_std(l);
            poll.registry()
                .register(&mut l, MioToken(LISTENERS - i), Interest::READABLE)?;
            registered.push(l);
        }
        let waker = Arc::new(MioWaker(mio::Waker::new(poll.registry(), WAKER)?));
        Ok(PollDriver {
            poll,
            events: Events::with_capacity(1024),
            listeners: registered,
            sockets: Slab::with_capacity(super::descriptors::table_capacity()),
            scratch: vec![0u8; SCRATCH].into_boxed_slice(),
            gather: Vec::with_capacity(GATHER_MAX),
            waker,
            backlog: Vec::new(),
            ready: Vec::with_capacity(1024),
            accept_pause: AcceptPause::default(),
        })
    }

    /// Accept every connection waiting on listener `i`.
    fn accept_all(&mut self, i: usize, sink: &mut dyn FnMut(Completion<'_>)) {
        let Some(listener) = self.listeners.get(i) else {
            return;
        };
        if self.accept_pause.active() {
            return;
        }
        loop {
            match listener.accept() {
                Ok((stream, peer)) => {
                    // TCP_NODELAY comes from the listener (runtime::bind).
                    let key = match Self::insert_socket(
                        self.poll.registry(),
                        &mut self.sockets,
                        stream,
                    ) {
                        Ok(key) => key,
                        Err(e) => {
                            tracing::warn!("cannot register accepted socket: {e}");
                            continue;
                        }
                    };
                    self.accept_pause.succeeded();
                    sink(Completion::Accepted(Token(key as u32), Some(peer), i));
                    // Data may already be there; read it this turn.
                    self.backlog.push(key);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if self.accept_pause.failed(&e, self.sockets.len()) => break,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    break;
                }
            }
        }
    }

    fn read_socket(&mut self, key: usize, sink: &mut dyn FnMut(Completion<'_>)) {
        for _ in 0..READS_PER_TURN {
            let Some(sock) = self.sockets.get_mut(key) else {
                return;
            };
            if sock.dead {
                return;
            }
            if sock.paused {
                sock.more_to_read = true;
                return;
            }
            match sock.stream.read(&mut self.scratch) {
                Ok(0) => {
                    sock.dead = true;
                    sock.more_to_read = false;
                    sink(Completion::Closed(Token(key as u32)));
                    return;
                }
                Ok(n) => {
                    let mut lent = Lent(&mut *sock, &mut self.gather);
                    sink(Completion::Data(
                        Token(key as u32),
                        &mut self.scratch[..n],
                        Some(&mut lent),
                    ));
                    if n < self.scratch.len() && !sock.hup {
                        sock.more_to_read = false;
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    sock.more_to_read = false;
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    sock.dead = true;
                    sock.more_to_read = false;
                    sink(Completion::Closed(Token(key as u32)));
                    return;
                }
            }
        }
        // Fairness cap reached with data possibly left: come back next turn.
        if let Some(sock) = self.sockets.get_mut(key) {
            sock.more_to_read = true;
            self.backlog.push(key);
        }
    }

    /// Run one non-blocking write on `token`'s socket (`write` gets the
    /// gather buffer too): the bytes taken, or 0 (and a `Writable` to come)
    /// when the socket is full.
    fn write_with(
        &mut self,
        token: Token,
        mut write: impl FnMut(&mut TcpStream, &mut Vec<u8>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let gather = &mut self.gather;
        match self.sockets.get_mut(token.index()) {
            Some(sock) => sock.write_with(|stream| write(stream, gather)),
            None => Err(io::Error::new(
                ErrorKind::NotConnected,
                "unknown connection",
            )),
        }
    }
}

impl Socket {
    /// One non-blocking write: the bytes taken, or 0 (and a `Writable` to
    /// come) when the socket is full.
    fn write_with(
        &mut self,
        mut write: impl FnMut(&mut TcpStream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        loop {
            match write(&mut self.stream) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.want_write = true;
                    return Ok(0);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// A vectored write as `sendmsg`, not `writev` (what `write_vectored`
/// calls): the socket's own call skips the file layer (`vfs_writev`,
/// `rw_verify_area`, `fdget_pos`, `sock_write_iter`). In `perf` of a
/// 10x16 KiB echo the syscall's own layers took 3.3% of the server's
/// samples as `writev`, 2.6% as `sendmsg`.
///
/// One slice, or a few adding up to at most [`GATHER_MAX`] bytes (an echo's
/// header and payload), goes out with `send` instead, gathered in `gather`:
/// in `perf` of a 100x20 B echo, `sendmsg`'s own layers took 7.1% of the
/// server's samples, `send`'s 5.1%.
fn send_vectored(
    stream: &TcpStream,
    parts: &[IoSlice<'_>],
    gather: &mut Vec<u8>,
) -> io::Result<usize> {
    let sock = socket2::SockRef::from(stream);
    if let [one] = parts {
        return sock.send(one);
    }
    if parts.iter().map(|p| p.len()).sum::<usize>() <= GATHER_MAX {
        gather.clear();
        for p in parts {
            gather.extend_from_slice(p);
        }
        return sock.send(gather);
    }
    sock.send_vectored(parts)
}

/// A socket lent with the bytes just read from it: writes go out at once,
/// while the scratch buffer still holds them.
struct Lent<'a>(&'a mut Socket, &'a mut Vec<u8>);

impl Reply for Lent<'_> {
    fn reply(&mut self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        let parts = &parts[..parts.len().min(MAX_PARTS)];
        let gather = &mut *self.1;
        self.0
            .write_with(|stream| send_vectored(stream, parts, gather))
    }
}

impl Driver for PollDriver {
    fn turn(
        &mut self,
        timeout: Option<Duration>,
        sink: &mut dyn FnMut(Completion<'_>),
    ) -> io::Result<()> {
        let mut timeout = if self.backlog.is_empty() {
            timeout
        } else {
            Some(Duration::ZERO)
        };
        timeout = self.accept_pause.bound(timeout);
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        // Reused across turns: no allocation per loop turn.
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        for ev in self.events.iter() {
            let closed = ev.is_read_closed() || ev.is_error();
            if closed {
                if let Some(s) = self.sockets.get_mut(ev.token().0) {
                    s.hup = true;
                }
            }
            ready.push((ev.token().0, ev.is_readable() || closed, ev.is_writable()));
        }
        if self.accept_pause.pending() {
            for i in 0..self.listeners.len() {
                self.accept_all(i, sink);
            }
        }
        let backlog = std::mem::take(&mut self.backlog);
        for key in backlog {
            if self.sockets.get(key).is_some_and(|s| s.more_to_read) {
                self.read_socket(key, sink);
            }
        }
        for &(key, readable, writable) in &ready {
            if let Some(i) = listener_of(MioToken(key)) {
                self.accept_all(i, sink);
                continue;
            }
            match MioToken(key) {
                WAKER => sink(Completion::Woken),
                _ => {
                    if writable {
                        if let Some(s) = self.sockets.get_mut(key) {
                            if s.want_write && !s.dead {
                                s.want_write = false;
                                sink(Completion::Writable(Token(key as u32)));
                            }
                        }
                    }
                    if readable {
                        self.read_socket(key, sink);
                    }
                }
            }
        }
        self.ready = ready;
        Ok(())
    }

    fn pause_reading(&mut self, token: Token, paused: bool) {
        let Some(sock) = self.sockets.get_mut(token.index()) else {
            return;
        };
        sock.paused = paused;
        if !paused && sock.more_to_read {
            // No new edge may come for what arrived meanwhile.
            self.backlog.push(token.index());
        }
    }

    fn send(&mut self, token: Token, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        self.write_with(token, |stream, _| stream.write(data))
    }

    fn send_vectored(&mut self, token: Token, parts: &[Part<'_>]) -> io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); MAX_PARTS];
        let mut count = 0;
        for part in parts
            .iter()
            .filter(|p| !p.bytes().is_empty())
            .take(MAX_PARTS)
        {
            slices[count] = IoSlice::new(part.bytes());
            count += 1;
        }
        if count == 0 {
            return Ok(0);
        }
        self.write_with(token, |stream, gather| {
            send_vectored(stream, &slices[..count], gather)
        })
    }

    fn adopt(&mut self, stream: std::net::TcpStream) -> io::Result<Token> {
        stream.set_nonblocking(true)?;
        let stream = TcpStream::from_std(stream);
        let key = Self::insert_socket(self.poll.registry(), &mut self.sockets, stream)?;
        self.backlog.push(key);
        Ok(Token(key as u32))
    }

    fn shutdown_write(&mut self, token: Token) {
        if let Some(sock) = self.sockets.get(token.index()) {
            let _ = sock.stream.shutdown(std::net::Shutdown::Write);
        }
    }

    fn close(&mut self, token: Token) {
        if self.sockets.contains(token.index()) {
            let mut sock = self.sockets.remove(token.index());
            let _ = self.poll.registry().deregister(&mut sock.stream);
            self.backlog.retain(|&k| k != token.index());
        }
    }

    fn stop_accepting(&mut self) {
        for mut l in std::mem::take(&mut self.listeners) {
            let _ = self.poll.registry().deregister(&mut l);
        }
    }

    fn waker(&self) -> Waker {
        self.waker.clone()
    }
}
