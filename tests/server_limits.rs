//! Running out of file descriptors: the server keeps serving the connections
//! it has, logs once, and accepts again once descriptors free up. And the
//! descriptor limit and table are set up at startup, before any connection.

mod server;
use server::*;
use std::time::{Duration, Instant};

both_backends!(
    descriptor_limit_raised_and_table_grown_at_startup,
    |backend| {
        // Soft limit below the hard one: the server lifts it to the hard one and
        // sizes its table for the 65,536 slots it asks for without a connection
        // limit, capped at that limit, before it accepts anything.
        let srv =
            TestServer::start_with_nofile_limits(backend, Some((1024, 8192)), &["--threads", "1"]);
        assert_eq!(nofile_soft_limit(srv.pid()), 8192);
        let slots = fd_table_size(srv.pid());
        assert!(slots >= 8192, "descriptor table of {slots} slots");
    }
);

both_backends!(descriptor_table_sized_by_max_connections, |backend| {
    // With --max-connections the table holds those connections and 256 more
    // (rounded up to a power of two by the kernel), not the default 65,536.
    let srv = TestServer::start_with_nofile_limits(
        backend,
        Some((8192, 8192)),
        &["--threads", "1", "--max-connections", "1000"],
    );
    let slots = fd_table_size(srv.pid());
    assert!(
        (1256..8192).contains(&slots),
        "descriptor table of {slots} slots"
    );
});

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
    // of descriptors, or with io_uring direct descriptors its fixed file
    // table of that size): the last ones wait in the kernel's backlog.
    let fds = open_fds(srv.pid());
    if uring_direct(backend) {
        assert!(fds < 40, "server has {fds} descriptors open");
    } else {
        assert!(fds > 40 && fds < 70, "server has {fds} descriptors open");
    }
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

#[test]
fn uring_connections_hold_process_descriptors_only_without_direct_ones() {
    let srv = TestServer::start("uring", &["--threads", "1"]);
    let before = open_fds(srv.pid());
    let mut clients: Vec<RawClient> = (0..300)
        .map(|_| {
            let mut c = RawClient::tcp(srv.addr);
            c.send(REQUEST.as_bytes());
            assert!(c.read_http_head().starts_with("HTTP/1.1 101"));
            c
        })
        .collect();
    let grown = open_fds(srv.pid()).saturating_sub(before);
    if uring_direct("uring") {
        // Direct descriptors live in the ring's table, not the process's.
        assert!(grown < 10, "{grown} descriptors for 300 connections");
    } else {
        assert!(grown >= 300, "{grown} descriptors for 300 connections");
    }
    // Every operation works on them: receive, send, and closing.
    for (i, c) in clients.iter_mut().enumerate().step_by(7) {
        let msg = format!("on {i}");
        c.send(&frame(0x81, msg.as_bytes()));
        assert_eq!(c.read_frame(), Some((0x1, msg.into_bytes())));
    }
    for c in clients.iter_mut().take(100) {
        c.send(&frame(0x88, &1000u16.to_be_bytes()));
        assert_eq!(c.read_close_code(), Some(1000));
    }
    drop(clients);
    // The /metrics request itself is the one left.
    wait_metric(srv.addr, "ringwave_connections_open", |v| v == 1.0);
    // With regular descriptors, every one was closed.
    if !uring_direct("uring") {
        let left = open_fds(srv.pid()).saturating_sub(before);
        assert!(left < 10, "{left} descriptors left open");
    }
}

both_backends!(handshake_timeout_closes_a_slow_client, |backend| {
    let srv = TestServer::start(backend, &["--handshake-timeout", "1"]);
    let mut slow = RawClient::tcp(srv.addr);
    slow.send(b"GET / HTTP/1.1\r\nHost: x\r\n"); // never finishes the head
    let start = std::time::Instant::now();
    assert!(slow.read_to_end().is_empty(), "closed without a response");
    let waited = start.elapsed();
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
    // Others are served meanwhile and after.
    let mut c = RawClient::connect(srv.addr);
    c.send(&frame(0x81, b"ok"));
    assert_eq!(c.read_frame(), Some((0x1, b"ok".to_vec())));
});

both_backends!(idle_connection_is_pinged_then_closed_with_1001, |backend| {
    let srv = TestServer::start(backend, &["--ping-interval", "1", "--idle-timeout", "2"]);
    let mut c = RawClient::connect(srv.addr);
    let start = std::time::Instant::now();
    assert_eq!(
        c.read_frame(),
        Some((0x9, b"ringwave".to_vec())),
        "an idle connection is pinged"
    );
    // After the ping interval (checked once a second), not after the 10 s
    // handshake timeout that was pending when the handshake completed.
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "first ping after {waited:?}"
    );
    // No pong: closed with 1001 once silent for the idle timeout.
    assert_eq!(c.read_close_code(), Some(1001));
    // A client that answers stays open past several idle periods.
    let mut c = RawClient::connect(srv.addr);
    for _ in 0..3 {
        let (op, payload) = c.read_frame().expect("ping");
        assert_eq!(op, 0x9);
        c.send(&frame(0x8A, &payload));
    }
    c.send(&frame(0x81, b"alive"));
    assert_eq!(c.read_frame(), Some((0x1, b"alive".to_vec())));
});
