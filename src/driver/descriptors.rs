//! The process's descriptor limit and descriptor table.
//!
//! Linux grows a process's descriptor table by doubling it, and when the
//! table is shared by several threads each growth waits for an RCU grace
//! period (`alloc_fd` → `expand_files` → `synchronize_rcu`). The thread that
//! asked for the descriptor (here: the worker in `accept`) sleeps meanwhile,
//! 10-20 ms on the machines we measure on, with every accepted connection
//! waiting behind it. A server that starts with the default 64 slots and
//! accepts 5,000 connections stalls seven times. [`reserve`] grows the table
//! once, at startup, to the size the server may need, and [`raise_limit`]
//! lifts the soft descriptor limit to the hard one first, as servers that
//! hold many connections need.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Raise the soft `RLIMIT_NOFILE` to the hard limit (or to the largest value
/// the kernel takes, `fs.nr_open`, when the hard limit is unlimited).
/// Returns the soft limit before and after.
pub fn raise_limit() -> io::Result<(u64, u64)> {
    let lim = nofile_limit()?;
    let before = lim.rlim_cur;
    let mut target = lim.rlim_max;
    if target == libc::RLIM_INFINITY {
        target = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
    }
    if target <= lim.rlim_cur {
        return Ok((before, before));
    }
    let raised = libc::rlimit {
        rlim_cur: target,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: `raised` is a live rlimit owned by this frame; setrlimit only
    // reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((before, target))
}

/// Grow the descriptor table to hold at least `slots` descriptors (capped at
/// the soft limit), so that later `accept`s never wait for it to grow. Costs
/// the table itself (8 bytes a slot, kernel memory) and at most one grace
/// period now. Returns the number of slots asked for.
pub fn reserve(any: BorrowedFd<'_>, slots: usize) -> io::Result<usize> {
    let limit = usize::try_from(nofile_limit()?.rlim_cur).unwrap_or(usize::MAX);
    let slots = slots.min(limit).max(1);
    // SAFETY: `any` is an open descriptor for the duration of the borrow;
    // F_DUPFD_CLOEXEC only reads it and returns a new descriptor (or -1),
    // which nothing else owns.
    let fd = unsafe {
        libc::fcntl(
            any.as_raw_fd(),
            libc::F_DUPFD_CLOEXEC,
            (slots - 1) as libc::c_int,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by fcntl, is open, and is owned by no
    // one else: wrapping it makes dropping it close it exactly once.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    Ok(slots)
}

/// How many connections one worker's tables are made for: the soft
/// descriptor limit (an io_uring worker's fixed file table is as large), at
/// most 2^20. The tables reserve that much address space at start and so
/// never reallocate: a table that doubles leaves its old copy with the
/// allocator, often still resident, which is memory per connection nobody
/// uses. Untouched, the reserve costs no memory.
pub fn table_capacity() -> usize {
    nofile_limit().map_or(1024, |l| l.rlim_cur.clamp(1024, 1 << 20) as usize)
}

/// `RLIMIT_NOFILE`: the soft and hard descriptor limits.
fn nofile_limit() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live rlimit owned by this frame; getrlimit writes
    // exactly one rlimit into it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim)
}

/// Let the kernel hand `listener` a connection only once its first bytes
/// have arrived (`TCP_DEFER_ACCEPT`, Linux): the accept and the request come
/// in one wake-up instead of two, and a connection that never speaks costs
/// no accept. Every protocol served here starts with the client speaking
/// (HTTP request, TLS ClientHello, HTTP/2 preface). `secs` bounds the wait;
/// after it the kernel hands the connection over anyway.
pub fn defer_accept(listener: BorrowedFd<'_>, secs: u32) -> io::Result<()> {
    let v = secs as libc::c_int;
    // SAFETY: passes a pointer to a live c_int and its size; setsockopt only
    // reads it, and `listener` is an open descriptor for the call's length.
    let r = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// The descriptor table's size as the kernel reports it.
    fn fd_table_size() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    }

    #[test]
    fn reserve_grows_the_table_and_leaves_nothing_open() {
        let _ = raise_limit();
        let want = (nofile_limit().unwrap().rlim_cur as usize).min(6000);
        let file = std::fs::File::open("/dev/null").unwrap();
        let got = reserve(file.as_fd(), want).unwrap();
        assert_eq!(got, want);
        assert!(
            fd_table_size() >= want,
            "FDSize {} < {want}",
            fd_table_size()
        );
        // The descriptor it made at the top of the table is closed again.
        // (Counting open descriptors would race with the tests running
        // beside this one in the process.)
        assert!(
            !std::path::Path::new(&format!("/proc/self/fd/{}", want - 1)).exists(),
            "descriptor {} left open",
            want - 1
        );
    }

    #[test]
    fn a_deferred_listener_accepts_a_connection_with_its_first_bytes() {
        use std::io::{ErrorKind, Read, Write};
        use std::time::{Duration, Instant};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        defer_accept(listener.as_fd(), 5).unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        // On loopback the whole TCP handshake ran inside `connect`: a
        // listener without the option would have the connection queued now.
        let silent = listener.accept().map(|_| ()).map_err(|e| e.kind());
        assert_eq!(
            silent,
            Err(ErrorKind::WouldBlock),
            "accepted before any byte"
        );
        client.write_all(b"GET").unwrap();
        let start = Instant::now();
        let (mut conn, _) = loop {
            match listener.accept() {
                Ok(c) => break c,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(start.elapsed() < Duration::from_secs(5), "never accepted");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        conn.set_nonblocking(false).unwrap();
        let mut got = [0u8; 3];
        conn.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"GET", "accepted with its bytes");
    }

    #[test]
    fn raise_limit_never_lowers() {
        let before = nofile_limit().unwrap().rlim_cur;
        let (was, now) = raise_limit().unwrap();
        assert!(was <= now);
        assert!(now >= before);
    }
}
