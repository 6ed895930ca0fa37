//! What a peer's request bytes can make the server do and hold: one reading
//! of an HTTP/1.1 head (where httparse says it ends), `Content-Length`
//! strictly digits, bodies that grow with what arrives rather than with
//! what was declared, `Expect: 100-continue` answered, and pongs to a
//! flood of pings bounded. HTTP/2 bodies
//! that do not match their `content-length` are checked by
//! `tests/python/h2_clients.py` (run from `server_http2.rs`).

mod server;
use server::*;
use std::net::{SocketAddr, TcpStream};
use tungstenite::{Message, WebSocket};

/// A `/feed` subscriber of topic `t`.
fn subscriber(addr: SocketAddr) -> WebSocket<TcpStream> {
    let mut ws = feed_client(addr);
    ws.send(Message::text(r#"{"op":"subscribe","topic":"t"}"#))
        .unwrap();
    let got = next_text(&mut ws);
    assert!(got.contains("subscribed"), "{got}");
    ws
}

fn next_text(ws: &mut WebSocket<TcpStream>) -> String {
    loop {
        match ws.read().unwrap() {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn post(addr: SocketAddr, headers: &str, body: &str) -> (u16, String) {
    http_request(
        addr,
        format!("POST /publish/t HTTP/1.1\r\nHost: x\r\n{headers}\r\n{body}").as_bytes(),
    )
}

fn server(backend: &str) -> TestServer {
    TestServer::start(backend, &["--feed-sim", "off", "--allow-client-publish"])
}

both_backends!(content_length_is_digits_sent_once, |backend| {
    let srv = server(backend);
    let mut ws = subscriber(srv.addr);
    for bad in [
        "+4",
        "04",
        "4 4",
        "0x4",
        "4.0",
        "-4",
        "\u{b}4",
        "99999999999999999999999",
    ] {
        let (st, body) = post(srv.addr, &format!("Content-Length: {bad}\r\n"), "test");
        assert_eq!(st, 400, "Content-Length {bad:?}: {body}");
    }
    let (st, body) = post(
        srv.addr,
        "Content-Length: 4\r\nContent-Length: 4\r\n",
        "test",
    );
    assert_eq!(st, 400, "twice: {body}");
    // Whitespace around a field value is not part of it (RFC 9110 §5.5):
    // httparse leaves it out, as every conforming reader does.
    let (st, body) = post(srv.addr, "Content-Length:\t4\t\r\n", "good");
    assert_eq!(st, 202, "{body}");
    // Nothing of the refused requests was published before it.
    assert_eq!(next_text(&mut ws), "good");
});

both_backends!(the_head_ends_where_the_parser_says, |backend| {
    let srv = server(backend);
    let mut ws = subscriber(srv.addr);
    // A blank line of bare LF ends the head for httparse: the body is PPPP,
    // and what follows is not a body of this request.
    let (st, body) = http_request(
        srv.addr,
        b"POST /publish/t HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\nPPPP\r\n\r\nQQQQ",
    );
    assert_eq!(st, 202, "{body}");
    let (st, body) = post(srv.addr, "Content-Length: 4\r\n", "last");
    assert_eq!(st, 202, "{body}");
    assert_eq!(next_text(&mut ws), "PPPP");
    assert_eq!(next_text(&mut ws), "last", "QQQQ was never a body");
    // A head with bare LFs throughout is read the same way.
    let (st, body) = http_request(srv.addr, b"GET /healthz HTTP/1.1\nHost: x\n\n");
    assert_eq!((st, body.as_str()), (200, "ok\n"));
});

both_backends!(expect_100_continue_is_answered, |backend| {
    let srv = server(backend);
    let mut ws = subscriber(srv.addr);
    let mut c = RawClient::tcp(srv.addr);
    c.send(
        b"POST /publish/t HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    let head = c.read_http_head();
    assert_eq!(head, "HTTP/1.1 100 Continue\r\n\r\n");
    c.send(b"hello");
    let head = c.read_http_head();
    assert!(head.starts_with("HTTP/1.1 202 Accepted\r\n"), "{head}");
    assert_eq!(next_text(&mut ws), "hello");
    // curl waits for the 100 before it sends the body (a minute here, so a
    // server that never answers fails on the timeout below, not by luck).
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "30", "--expect100-timeout", "60"])
        .args(["-H", "Expect: 100-continue", "--data", "via curl"])
        .arg(format!("http://{}/publish/t", srv.addr))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "published\n");
    assert_eq!(next_text(&mut ws), "via curl");
});

both_backends!(declared_bodies_reserve_nothing, |backend| {
    // 100 heads declaring 16 MiB each (the default --max-message), and no
    // body: the server held 1.6 GiB of address space for them when it
    // reserved what was declared; it now holds what arrived.
    let srv = server(backend);
    let before = vm_size_kib(srv.pid());
    let mut clients = Vec::new();
    for _ in 0..100 {
        let mut c = RawClient::tcp(srv.addr);
        c.send(
            b"POST /publish/t HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 16777216\r\n\r\n",
        );
        clients.push(c);
    }
    // Each 100 Continue says its head was read and its body session made.
    for c in &mut clients {
        assert_eq!(c.read_http_head(), "HTTP/1.1 100 Continue\r\n\r\n");
    }
    let grown_mib = vm_size_kib(srv.pid()).saturating_sub(before) / 1024;
    eprintln!("{backend}: address space grew by {grown_mib} MiB for 100 declared bodies");
    assert!(grown_mib < 256, "address space grew by {grown_mib} MiB");
});

both_backends!(
    a_ping_flood_from_a_client_that_never_reads_queues_one_pong,
    |backend| {
        // 1,000,000 pings of 125 bytes (131 MB) from a client that reads
        // nothing: each pong used to be queued (RSS grew by about the pongs'
        // 127 MB); now an unsent pong is replaced by the next.
        let srv = server(backend);
        let mut c = RawClient::connect(srv.addr);
        let before = metrics(srv.addr)["ringwave_bytes_in_total"];
        let rss_before = rss_kib(srv.pid());
        let burst: Vec<u8> = (0..1000).flat_map(|_| frame(0x89, &[7; 125])).collect();
        for _ in 0..1000 {
            c.send(&burst);
        }
        let sent = (burst.len() * 1000) as f64;
        // Every ping was read (and answered) once the server counted its bytes.
        wait_metric(srv.addr, "ringwave_bytes_in_total", |v| v >= before + sent);
        let grown_mib = rss_kib(srv.pid()).saturating_sub(rss_before) / 1024;
        eprintln!("{backend}: RSS grew by {grown_mib} MiB over 1,000,000 pings");
        assert!(grown_mib < 32, "RSS grew by {grown_mib} MiB");
    }
);

both_backends!(
    a_feed_client_that_does_not_read_its_answers_is_told_and_closed,
    |backend| {
        // 100,000 requests pipelined by a client that reads nothing: its
        // answers pass --max-buffered; it used to lose the rest without a word.
        let srv = TestServer::start(backend, &["--feed-sim", "off", "--max-buffered", "65536"]);
        let mut c = RawClient::upgrade(RawClient::tcp(srv.addr), "/feed");
        let burst: Vec<u8> = (0..100_000)
            .flat_map(|_| frame(0x81, br#"{"op":"nope"}"#))
            .collect();
        c.send(&burst);
        let mut answers = 0;
        let code = loop {
            match c.read_frame() {
                Some((0x1, _)) => answers += 1,
                Some((0x8, p)) => break u16::from_be_bytes([p[0], p[1]]),
                Some(_) => {}
                None => panic!("no close after {answers} answers"),
            }
        };
        assert_eq!(code, 1008, "after {answers} answers");
        assert!(answers < 100_000, "{answers} answers");
    }
);

both_backends!(
    a_client_that_does_not_read_its_pongs_is_no_longer_read,
    |backend| {
        // With --max-buffered below the pong backlog, the pongs to a ping
        // flood from a client that reads nothing pass the limit: the server
        // stops reading it, and what the client sends stays in the kernel.
        // (Before, the server read all 512 MiB.)
        use std::io::{ErrorKind, Write};
        const LIMIT: usize = 512 << 20;
        let srv = TestServer::start(backend, &["--feed-sim", "off", "--max-buffered", "8192"]);
        // A small receive buffer, set before connecting (no autotuning to
        // 32 MiB): the server's socket fills after a few MiB of pongs, and
        // its unsent pongs pass the limit.
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(8192).unwrap();
        sock.connect(&srv.addr.into()).unwrap();
        let c = RawClient::upgrade(RawClient::from_stream(sock.into()), "/raw");
        let before = metrics(srv.addr)["ringwave_bytes_in_total"];
        let mut s = c.stream.try_clone().unwrap();
        s.set_nonblocking(true).unwrap();
        let burst: Vec<u8> = (0..1000).flat_map(|_| frame(0x89, &[7; 125])).collect();
        let (mut sent, mut last, mut still) = (0, -1.0, 0);
        let read = eventually(|| {
            loop {
                // Whole frames: a write the socket took in part goes on
                // where it stopped.
                match s.write(&burst[sent % burst.len()..]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("write: {e}"),
                }
                assert!(sent < LIMIT, "the server read {sent} bytes of pings");
            }
            // (Each scrape's own request adds to the count.)
            let now = metrics(srv.addr)["ringwave_bytes_in_total"] - before;
            still = if now - last < 1024.0 { still + 1 } else { 0 };
            last = now;
            match still {
                3.. => Ok(now),
                _ => Err(format!("the server is still reading: {now} bytes")),
            }
        });
        eprintln!("{backend}: read {read} of the {sent} bytes sent, then stopped");
        // What the socket buffers took in pongs (about 4 MiB), times the
        // pings read per pong written while the output was under the limit.
        assert!(read < (LIMIT / 2) as f64, "read {read} bytes");
        // Others are served meanwhile.
        assert_eq!(http_get(srv.addr, "/healthz").0, 200);
    }
);
