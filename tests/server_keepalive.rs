//! HTTP/1.1 keep-alive on the plain routes: several requests on one
//! connection, pipelined requests answered in order, `Connection: close`
//! and HTTP/1.0 honoured, refusals closing, the wait for a next request
//! bounded by the handshake timeout, a request limit per connection, and a
//! client that pipelines without reading held to one answer.

mod server;
use server::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

/// A client reading whole responses (head and `Content-Length` body) off
/// one connection.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

/// One response: status, head, body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn closes(&self) -> bool {
        self.head
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n")
    }
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Conn { s, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    /// More bytes; false at EOF. A read timeout fails the test.
    fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 65536];
        match self.s.read(&mut tmp) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => false,
            Err(e) => panic!("no answer and no end: {e}"),
        }
    }

    /// The next whole response.
    fn answer(&mut self) -> Answer {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(self.fill(), "EOF before a head: {:?}", self.text());
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("no Content-Length: {head}"));
        while self.buf.len() < end + len {
            assert!(self.fill(), "EOF in a body");
        }
        let body = String::from_utf8_lossy(&self.buf[end..end + len]).into_owned();
        self.buf.drain(..end + len);
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        Answer { status, head, body }
    }

    /// The server closes the connection, with nothing more said.
    fn expect_eof(&mut self) {
        assert!(!self.fill() && self.buf.is_empty(), "{:?}", self.text());
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }
}

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

both_backends!(one_connection_serves_several_requests, |backend| {
    let srv = TestServer::start(backend, &["--allow-client-publish"]);
    let mut c = Conn::open(srv.addr);
    for i in 0..5 {
        c.send(HEALTH);
        let a = c.answer();
        assert_eq!((a.status, a.body.as_str()), (200, "ok\n"), "request {i}");
        assert!(!a.closes(), "{}", a.head);
        c.send(
            format!("POST /publish/t HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{i}!")
                .as_bytes(),
        );
        let a = c.answer();
        assert_eq!(a.status, 202, "{}", a.head);
        assert!(!a.closes(), "{}", a.head);
    }
    c.send(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let a = c.answer();
    assert_eq!(a.status, 200);
    assert!(a.closes(), "{}", a.head);
    assert!(a.body.contains("ringwave_connections"), "{}", a.body);
    c.expect_eof();
});

both_backends!(pipelined_requests_are_answered_in_order, |backend| {
    let srv = TestServer::start(backend, &["--allow-client-publish"]);
    let mut ws = feed_client(srv.addr);
    ws.send(tungstenite::Message::text(
        r#"{"op":"subscribe","topic":"p"}"#,
    ))
    .unwrap();
    assert!(ws.read().unwrap().to_text().unwrap().contains("subscribed"));
    // Everything in one write: a body followed at once by the next head,
    // and a HEAD whose answer has a length but no body.
    let mut c = Conn::open(srv.addr);
    c.send(
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /publish/p HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nfirst\
          HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /publish/p HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nsecond\
          GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let statuses: Vec<u16> = (0..5)
        .map(|i| {
            let a = c.answer();
            if i == 2 {
                assert!(a.head.contains("Content-Length: 3"), "{}", a.head);
            }
            a.status
        })
        .collect();
    // The HEAD's answer held no body: the next answer parsed as one.
    assert_eq!(statuses, [200, 202, 200, 202, 404]);
    // The 404 closed the connection: the request after it is not read.
    c.expect_eof();
    for want in ["first", "second"] {
        let m = ws.read().unwrap();
        assert_eq!(m.to_text().unwrap(), want);
    }
});

both_backends!(http_1_0_and_refusals_close, |backend| {
    let srv = TestServer::start(backend, &[]);
    let mut c = Conn::open(srv.addr);
    c.send(b"GET /healthz HTTP/1.0\r\n\r\n");
    assert!(c.answer().closes());
    c.expect_eof();
    let mut c = Conn::open(srv.addr);
    c.send(b"POST /publish/t HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    let a = c.answer();
    assert_eq!(a.status, 403, "publishing is not allowed by default");
    assert!(a.closes());
    c.expect_eof();
});

both_backends!(
    an_idle_connection_is_closed_at_the_handshake_timeout,
    |backend| {
        let srv = TestServer::start(backend, &["--handshake-timeout", "1"]);
        let mut c = Conn::open(srv.addr);
        c.send(HEALTH);
        assert!(!c.answer().closes());
        // Nothing more sent: the server ends the wait (the client's read
        // timeout is 20 s, the server's 1 s).
        c.expect_eof();
        // A wait for a next request that ran out is not a refused handshake.
        let m = metrics(srv.addr);
        assert_eq!(
            m.get(r#"ringwave_rejects_total{reason="timeout"}"#)
                .copied()
                .unwrap_or(0.0),
            0.0
        );
        // Trickling a head does not extend it: the whole head is due by then.
        let mut c = Conn::open(srv.addr);
        c.send(HEALTH);
        assert!(!c.answer().closes());
        for b in b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
            .iter()
            .cycle()
            .take(40)
        {
            if c.s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        c.expect_eof();
    }
);

both_backends!(a_connection_serves_at_most_1000_requests, |backend| {
    let srv = TestServer::start(backend, &[]);
    let mut c = Conn::open(srv.addr);
    for i in 1..=1000 {
        c.send(HEALTH);
        let a = c.answer();
        assert_eq!(a.status, 200);
        assert_eq!(a.closes(), i == 1000, "answer {i}: {}", a.head);
    }
    c.expect_eof();
});

both_backends!(
    a_client_that_pipelines_without_reading_is_held_to_one_answer,
    |backend| {
        let srv = TestServer::start(backend, &["--threads", "1"]);
        let before = rss_kib(srv.pid());
        // Requests for /metrics (a few KiB each) written as fast as the server
        // takes them, answers never read: the server stops reading once its
        // answers back up, so the writes stop too.
        let s = TcpStream::connect(srv.addr).unwrap();
        s.set_nonblocking(true).unwrap();
        let req = b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n".repeat(1000);
        let mut written = 0usize;
        let mut stalled = 0;
        while stalled < 50 && written < 512 << 20 {
            match (&s).write(&req) {
                Ok(n) => {
                    written += n;
                    stalled = 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    stalled += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                // Closed: more than `--max-buffered` of requests ahead
                // of their answers.
                Err(e)
                    if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) =>
                {
                    break
                }
                Err(e) => panic!("{e}"),
            }
        }
        eprintln!("{written} bytes of requests taken");
        assert!(written < 64 << 20, "{written} bytes of requests taken");
        let grown = rss_kib(srv.pid()).saturating_sub(before);
        assert!(grown < 32 << 10, "the server grew by {grown} KiB");
        // Others are served meanwhile.
        assert_eq!(http_get(srv.addr, "/healthz"), (200, "ok\n".into()));
    }
);

both_backends!(curl_reuses_the_connection, |backend| {
    let srv = TestServer::start(backend, &["--allow-client-publish"]);
    let url = format!("http://{}/healthz", srv.addr);
    let publish = format!("http://{}/publish/t", srv.addr);
    let out = Command::new("curl")
        .args(["-sS", "-v", "--max-time", "20", &url, &url])
        .args([
            "--next",
            "-sS",
            "-v",
            "--max-time",
            "20",
            "-d",
            "x",
            &publish,
            &publish,
        ])
        .output()
        .expect("curl (scripts/test.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "ok\nok\npublished\npublished\n");
    // One connection, taken up again for each request after the first.
    assert_eq!(stderr.matches("Connected to").count(), 1, "{stderr}");
    assert_eq!(
        stderr.matches("Re-using existing connection").count(),
        3,
        "{stderr}"
    );
});
