//! Accepting: how each listener's accepts are armed, and where an accepted
//! socket goes, a descriptor of the process or a slot of the ring's fixed
//! file table (a **direct descriptor**).
//!
//! With regular descriptors each listener runs one multishot accept and the
//! peer's address comes from `getpeername`. A direct descriptor lives only in
//! the ring's table, outside the process's descriptor table and its
//! open-file limit, and no system call other than io_uring's can name it; so
//! with direct descriptors each listener keeps [`DIRECT_ACCEPTS`] single-shot
//! accepts armed, each writing the peer's address into a buffer of its own
//! ([`AcceptSlot`]), and every later operation on the socket names the slot
//! ([`Sock::target`]).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use io_uring::{opcode, squeue, types, IoUring};
use socket2::{SockAddr, SockAddrStorage};

/// Single-shot accepts kept armed per listener with direct descriptors.
pub(super) const DIRECT_ACCEPTS: usize = 16;

/// The environment variable that forces regular descriptors on io_uring.
pub const NO_DIRECT_ENV: &str = "RINGWAVE_URING_NO_DIRECT";

/// A connection's socket.
#[derive(Debug)]
pub(super) enum Sock {
    /// A descriptor of the process.
    Fd(OwnedFd),
    /// Slot `i` of the ring's fixed file table.
    Fixed(u32),
}

impl Sock {
    /// What an SQE names the socket by: the descriptor, or the slot with
    /// `FIXED_FILE` set (add the flags to the built entry).
    pub(super) fn target(&self) -> (types::Fd, squeue::Flags) {
        match self {
            Sock::Fd(fd) => (types::Fd(fd.as_raw_fd()), squeue::Flags::empty()),
            Sock::Fixed(i) => (types::Fd(*i as i32), squeue::Flags::FIXED_FILE),
        }
    }
}

/// One armed accept's address buffer. The kernel writes into it until the
/// accept completes: kept in a boxed slice the driver holds until after the
/// ring is dropped.
pub(super) struct AcceptSlot {
    addr: SockAddrStorage,
    len: libc::socklen_t,
    pub armed: bool,
}

impl AcceptSlot {
    pub(super) fn new() -> AcceptSlot {
        AcceptSlot {
            addr: SockAddrStorage::zeroed(),
            len: 0,
            armed: false,
        }
    }

    /// A single-shot accept on `listener` into a free fixed-file slot,
    /// writing the peer's address here.
    pub(super) fn direct_accept(&mut self, listener: types::Fd) -> squeue::Entry {
        self.len = self.addr.size_of();
        let addr = &mut self.addr as *mut SockAddrStorage as *mut libc::sockaddr;
        // SOCK_CLOEXEC does not apply (the kernel refuses it with a fixed
        // slot): a direct descriptor is never in the process's table.
        opcode::Accept::new(listener, addr, &mut self.len)
            .file_index(Some(types::DestinationSlot::auto_target()))
            .build()
    }

    /// The peer's address the completed accept wrote.
    pub(super) fn peer(&mut self) -> Option<SocketAddr> {
        let storage = std::mem::replace(&mut self.addr, SockAddrStorage::zeroed());
        // SAFETY: the kernel wrote a socket address of `len` bytes (at most
        // the storage's size, which it was told) into the storage when the
        // accept completed, and `len` is what it reported.
        let addr = unsafe { SockAddr::new(storage, self.len) };
        addr.as_socket()
    }
}

/// Whether to accept into direct descriptors, and why not when not: set up
/// the ring's sparse fixed file table, as large as the open-file limit
/// allows (the kernel's bound for one ring's table).
pub(super) fn setup_direct(ring: &IoUring) -> Result<u32, String> {
    if std::env::var_os(NO_DIRECT_ENV).is_some_and(|v| v != "0") {
        return Err(format!("{NO_DIRECT_ENV} is set"));
    }
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("cannot probe the ring: {e}"))?;
    for (code, name) in [
        (opcode::Accept::CODE, "ACCEPT"),
        (opcode::Close::CODE, "CLOSE"),
        (opcode::Shutdown::CODE, "SHUTDOWN"),
    ] {
        if !probe.is_supported(code) {
            return Err(format!("the kernel lacks IORING_OP_{name}"));
        }
    }
    let size = table_size().map_err(|e| format!("cannot read the open-file limit: {e}"))?;
    ring.submitter()
        .register_files_sparse(size)
        .map_err(|e| format!("cannot register a fixed file table of {size}: {e}"))?;
    Ok(size)
}

/// The fixed file table's size: the soft open-file limit (what the kernel
/// allows one ring), at most the kernel's 2^20.
fn table_size() -> io::Result<u32> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live rlimit owned by this frame; getrlimit writes it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur.min(1 << 20) as u32)
}
