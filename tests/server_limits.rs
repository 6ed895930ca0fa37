//! Running out of file descriptors: the server keeps serving the connections
//! it has, logs once, and accepts again once descriptors free up.

mod server;
use server::*;
use std::time::{Duration, Instant};

both_backends!(accept_survives_fd_exhaustion, |backend| {
    // A server limited to 64 descriptors: the 100 clients cannot all be
    // accepted at once.
    let srv = TestServer::start_with_nofile(backend, Some(64), &["--threads", "1"]);
    let mut served: Vec<RawClient> = Vec::new();
    let mut waiting: Vec<std::net::TcpStream> = Vec::new();
    for i in 0..100 {
        // Connecting succeeds (the kernel's backlog); the upgrade only
        // completes for those the server could accept.
        let s = std::net::TcpStream::connect(srv.addr).unwrap();
        if i < 40 {
            let mut c = RawClient::from_stream(s);
            c.send(REQUEST.as_bytes());
            assert!(c.read_http_head().starts_with("HTTP/1.1 101"), "client {i}");
            served.push(c);
        } else {
            waiting.push(s);
        }
    }
    // The server could not accept all 100 clients (it holds about its limit
    // of descriptors): the last ones wait in the kernel's backlog.
    let fds = open_fds(srv.pid());
    assert!(fds > 40 && fds < 70, "server has {fds} descriptors open");
    // The served connections keep working while accept fails.
    let start = Instant::now();
    for c in served.iter_mut() {
        c.send(&frame(0x81, b"still"));
        assert_eq!(c.read_frame(), Some((0x1, b"still".to_vec())));
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    // Not spinning: the server's CPU time stays small while it cannot accept.
    let cpu = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let before = cpu(srv.pid());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu(srv.pid()) - before;
    assert!(
        used < 50,
        "server used {used} ticks of CPU in 1 s while out of descriptors"
    );
    // Free descriptors: the waiting clients get served.
    drop(served);
    let mut ok = 0;
    for s in waiting.into_iter().take(30) {
        let mut c = RawClient::from_stream(s);
        c.send(REQUEST.as_bytes());
        if c.read_http_head().starts_with("HTTP/1.1 101") {
            ok += 1;
        }
    }
    assert_eq!(
        ok, 30,
        "connections waiting in the backlog are accepted once descriptors free up"
    );
});
