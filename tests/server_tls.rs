//! TLS on the real server, both backends: clients nobody here wrote (Python
//! `websockets` over wss, tungstenite over rustls, curl, headless Chromium)
//! against certificates made at test time; SNI; certificate reload on
//! SIGHUP; and bad input on the TLS port, each costing only its connection.

mod server;
use server::certs::{localhost, write_atomically, Leaf, TestPki};
use server::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

type Tls = StreamOwned<ClientConnection, TcpStream>;

const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
const HTTP11: &[&[u8]] = &[b"http/1.1"];

/// A finished TLS handshake with `addr`, for `name`.
fn tls_connect_as(addr: SocketAddr, cfg: &Arc<ClientConfig>, name: ServerName<'static>) -> Tls {
    tls_handshake(TcpStream::connect(addr).unwrap(), cfg, name)
}

/// A finished TLS handshake over `tcp`, for `name`.
fn tls_handshake(tcp: TcpStream, cfg: &Arc<ClientConfig>, name: ServerName<'static>) -> Tls {
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = ClientConnection::new(cfg.clone(), name).unwrap();
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).expect("TLS handshake");
    }
    s
}

fn tls_connect(addr: SocketAddr, cfg: &Arc<ClientConfig>) -> Tls {
    tls_connect_as(addr, cfg, localhost())
}

/// The certificate the server presented.
fn presented(s: &Tls) -> Vec<u8> {
    s.conn.peer_certificates().expect("server certificate")[0].to_vec()
}

/// A WebSocket over TLS to `/echo`.
fn wss(addr: SocketAddr, cfg: &Arc<ClientConfig>) -> tungstenite::WebSocket<Tls> {
    wss_to(addr, cfg, "/echo")
}

/// A WebSocket over TLS to `path`.
fn wss_to(addr: SocketAddr, cfg: &Arc<ClientConfig>, path: &str) -> tungstenite::WebSocket<Tls> {
    wss_over(tls_connect(addr, cfg), addr, path)
}

/// A WebSocket over TLS to `path` from a socket whose receive buffer is
/// tiny, so that what the server sends it waits in the server while it does
/// not read.
fn wss_slow(addr: SocketAddr, cfg: &Arc<ClientConfig>, path: &str) -> tungstenite::WebSocket<Tls> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&addr.into()).unwrap();
    wss_over(tls_handshake(s.into(), cfg, localhost()), addr, path)
}

fn wss_over(s: Tls, addr: SocketAddr, path: &str) -> tungstenite::WebSocket<Tls> {
    let url = format!("wss://localhost:{}{path}", addr.port());
    let (ws, resp) = tungstenite::client(url.as_str(), s).expect("upgrade over TLS");
    assert_eq!(resp.status(), 101);
    ws
}

fn echo(ws: &mut tungstenite::WebSocket<Tls>, msg: tungstenite::Message) {
    ws.send(msg.clone()).unwrap();
    loop {
        match ws.read().unwrap() {
            m @ (tungstenite::Message::Text(_) | tungstenite::Message::Binary(_)) => {
                assert_eq!(m, msg);
                return;
            }
            _ => continue,
        }
    }
}

/// GET `path` over TLS; returns (status, body). The body's end is the
/// server's close_notify: an unclean end fails the read.
fn https_get(addr: SocketAddr, cfg: &Arc<ClientConfig>, path: &str) -> (u16, String) {
    let mut s = tls_connect(addr, cfg);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .expect("response ended by close_notify");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn start(backend: &str, leaf: &Leaf, args: &[&str]) -> TestServer {
    TestServer::start_tls(backend, &leaf.cert, &leaf.key, args)
}

both_backends!(python_websockets_over_wss, |backend| {
    let pki = TestPki::new(&format!("py-{backend}"));
    let leaf = pki.leaf("server", &["localhost", "127.0.0.1"], 1);
    let srv = start(backend, &leaf, &["--deflate"]);
    let url = format!("wss://localhost:{}/echo", srv.tls().port());
    run_python(
        "wss_clients.py",
        &[&url, pki.ca_file.to_str().unwrap()],
        &[],
    );
});

both_backends!(tungstenite_over_rustls_tls13_and_tls12, |backend| {
    let pki = TestPki::new(&format!("tung-{backend}"));
    let leaf = pki.leaf("server", &["localhost"], 1);
    let srv = start(backend, &leaf, &[]);
    for (versions, want) in [
        (TLS13, rustls::ProtocolVersion::TLSv1_3),
        (TLS12, rustls::ProtocolVersion::TLSv1_2),
    ] {
        let cfg = pki.client_config(versions, HTTP11);
        let mut ws = wss(srv.tls(), &cfg);
        assert_eq!(ws.get_ref().conn.protocol_version(), Some(want));
        assert_eq!(ws.get_ref().conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(presented(ws.get_ref()), leaf.der.to_vec());
        echo(&mut ws, tungstenite::Message::text("hello over TLS"));
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        echo(&mut ws, tungstenite::Message::binary(big));
        ws.close(None).unwrap();
        // The close handshake, then the server's close_notify and FIN.
        loop {
            match ws.read() {
                Ok(_) => continue,
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => panic!("unclean end: {e}"),
            }
        }
        let (status, body) = https_get(srv.tls(), &cfg, "/healthz");
        assert_eq!((status, body.trim()), (200, "ok"));
    }
    // The plaintext listener serves beside it, and counts the handshakes.
    let m = metrics(srv.addr);
    assert!(m["ringwave_tls_handshakes_total"] >= 4.0, "{m:?}");
});

both_backends!(sni_picks_the_certificate, |backend| {
    let pki = TestPki::new(&format!("sni-{backend}"));
    let default = pki.leaf("default", &["localhost"], 1);
    let feed = pki.leaf("feed", &["feed.test"], 2);
    let (dc, dk) = (
        default.cert.to_str().unwrap(),
        default.key.to_str().unwrap(),
    );
    let (fc, fk) = (feed.cert.to_str().unwrap(), feed.key.to_str().unwrap());
    let srv = TestServer::start(
        backend,
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            dc,
            "--tls-key",
            dk,
            "--tls-cert",
            fc,
            "--tls-key",
            fk,
        ],
    );
    let cfg = pki.client_config(TLS13, HTTP11);
    let s = tls_connect_as(srv.tls(), &cfg, ServerName::try_from("feed.test").unwrap());
    assert_eq!(presented(&s), feed.der.to_vec());
    let s = tls_connect(srv.tls(), &cfg);
    assert_eq!(presented(&s), default.der.to_vec());
});

both_backends!(curl_streams_sse_over_https_with_alpn_http11, |backend| {
    let pki = TestPki::new(&format!("curl-{backend}"));
    let leaf = pki.leaf("server", &["localhost"], 1);
    let srv = start(backend, &leaf, &["--feed-sim", "5:200"]);
    let port = srv.tls().port();
    let (got, trace) = curl_sse(&[
        "--http1.1",
        "--cacert",
        pki.ca_file.to_str().unwrap(),
        "--resolve",
        &format!("localhost:{port}:127.0.0.1"),
        &format!("https://localhost:{port}/sse/ticks"),
    ]);
    let alpn = trace
        .lines()
        .find(|l| l.contains("ALPN") && l.contains("accepted"))
        .unwrap_or_else(|| panic!("no ALPN line in curl's trace:\n{trace}"));
    assert!(alpn.contains("http/1.1"), "{alpn}");
    assert!(got.contains("\ndata: {\"type\":\"tick\""), "{got}");
});

/// The next text message (pings and pongs skipped).
fn next_text(ws: &mut tungstenite::WebSocket<Tls>) -> String {
    loop {
        match ws.read().expect("a message") {
            tungstenite::Message::Text(t) => return t.to_string(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Publication `i` of the TLS fan-out test: its number, then padding of a
/// length that mixes publications smaller and larger than a TLS record. The
/// 4 MB of the first 800 fill the kernel's send buffer towards a slow
/// subscriber, so the rest waits in the server's queue.
fn tls_publication(i: usize) -> String {
    let pad = match i {
        800..900 => 3_500,
        _ if i.is_multiple_of(4) => 20_000,
        _ if i % 10 == 3 => 5_000,
        _ => i % 97,
    };
    format!(
        "{i:05}:{}",
        char::from(b'a' + (i % 26) as u8).to_string().repeat(pad)
    )
}

both_backends!(
    feed_over_tls_delivers_every_publication_in_order,
    |backend| {
        let pki = TestPki::new(&format!("feed-{backend}"));
        let leaf = pki.leaf("server", &["localhost"], 1);
        // Room for every publication in each queue: no slow-consumer policy acts.
        let mut srv = start(
            backend,
            &leaf,
            &[
                "--feed-sim",
                "off",
                "--allow-client-publish",
                "--max-buffered",
                "67108864",
            ],
        );
        let cfg = pki.client_config(TLS13, HTTP11);
        const SUBSCRIBERS: usize = 8;
        const N: usize = 1_000;
        let mut subs: Vec<_> = (0..SUBSCRIBERS)
            .map(|i| {
                let mut ws = if i < SUBSCRIBERS / 2 {
                    wss_to(srv.tls(), &cfg, "/feed")
                } else {
                    wss_slow(srv.tls(), &cfg, "/feed")
                };
                ws.send(tungstenite::Message::text(
                    r#"{"op":"subscribe","topic":"t"}"#,
                ))
                .unwrap();
                assert_eq!(next_text(&mut ws), r#"{"event":"subscribed","topic":"t"}"#);
                ws
            })
            .collect();
        let mut publisher = wss_to(srv.tls(), &cfg, "/feed");
        let read_all = |mut ws: tungstenite::WebSocket<Tls>| {
            std::thread::spawn(move || {
                for i in 0..N {
                    let got = next_text(&mut ws);
                    let want = tls_publication(i);
                    assert!(
                        got == want,
                        "publication {i}: got {:.40} ({} bytes)",
                        got,
                        got.len()
                    );
                }
            })
        };
        // Half the subscribers read while the publisher sends, so
        // publications queue behind sends in flight; the other half start
        // only once the first half has everything, with tiny receive
        // buffers, so their feed waits in the server and goes out gathered
        // into large writes.
        let late = subs.split_off(SUBSCRIBERS / 2);
        let early: Vec<_> = subs.into_iter().map(read_all).collect();
        for i in 0..N {
            let data = tls_publication(i);
            publisher
                .send(tungstenite::Message::text(format!(
                    r#"{{"op":"publish","topic":"t","data":"{data}"}}"#
                )))
                .unwrap();
        }
        for r in early {
            r.join()
                .expect("an early subscriber got every publication in order");
        }
        let late: Vec<_> = late.into_iter().map(read_all).collect();
        for r in late {
            r.join()
                .expect("a late subscriber got every publication in order");
        }
        assert!(srv.alive());
    }
);

both_backends!(
    sighup_reloads_the_certificate_and_keeps_connections,
    |backend| {
        let pki = TestPki::new(&format!("hup-{backend}"));
        let first = pki.leaf("server", &["localhost"], 1);
        let mut srv = start(backend, &first, &[]);
        let cfg = pki.client_config(TLS13, HTTP11);
        let mut open = wss(srv.tls(), &cfg);
        assert_eq!(presented(open.get_ref()), first.der.to_vec());
        // A full handshake each time: a resumed session keeps the certificate
        // it was made with.
        let fresh = || tls_connect(srv.tls(), &pki.client_config(TLS13, HTTP11));

        // New files under the same names, then SIGHUP.
        let second = pki.leaf("server", &["localhost"], 2);
        srv.signal("HUP");
        wait_metric(
            srv.addr,
            "ringwave_tls_certificate_reloads_total{result=\"ok\"}",
            |v| v == 1.0,
        );
        assert_eq!(presented(&fresh()), second.der.to_vec());
        echo(&mut open, tungstenite::Message::text("still here"));

        // A broken key file: logged, the second certificate stays.
        write_atomically(
            &second.key,
            b"-----BEGIN PRIVATE KEY-----\nbm9wZQ==\n-----END PRIVATE KEY-----\n",
        );
        srv.signal("HUP");
        wait_metric(
            srv.addr,
            "ringwave_tls_certificate_reloads_total{result=\"failed\"}",
            |v| v == 1.0,
        );
        assert_eq!(presented(&fresh()), second.der.to_vec());

        // A key that belongs to another certificate: the same.
        let other = pki.leaf("other", &["localhost"], 3);
        std::fs::copy(&other.key, &second.key).unwrap();
        srv.signal("HUP");
        wait_metric(
            srv.addr,
            "ringwave_tls_certificate_reloads_total{result=\"failed\"}",
            |v| v == 2.0,
        );
        assert_eq!(presented(&fresh()), second.der.to_vec());
        echo(&mut open, tungstenite::Message::text("and still here"));
        assert!(srv.alive());
    }
);

/// Read until the server closes (or resets) the connection; what came.
fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("server did not close: {e} (after {got:?})"),
        }
    }
}

fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// The first flight of a real client: a TLS 1.3 ClientHello.
fn client_hello(cfg: &Arc<ClientConfig>) -> Vec<u8> {
    let mut c = ClientConnection::new(cfg.clone(), localhost()).unwrap();
    let mut out = Vec::new();
    c.write_tls(&mut out).unwrap();
    out
}

/// Ask for a TLS 1.2 renegotiation with openssl s_client once its handshake
/// is done; returns what it printed.
fn renegotiate(addr: SocketAddr, ca: &std::path::Path) -> String {
    use std::io::BufRead;
    let mut c = Command::new("timeout")
        .args([
            "10",
            "openssl",
            "s_client",
            "-tls1_2",
            "-servername",
            "localhost",
        ])
        .args(["-connect", &addr.to_string(), "-CAfile"])
        .arg(ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl (scripts/test.sh installs it)");
    let mut stdin = c.stdin.take().unwrap();
    let mut out = std::io::BufReader::new(c.stdout.take().unwrap());
    let mut text = String::new();
    // s_client prints the session once the handshake is done.
    while !text.contains("Verify return code") {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        text.push_str(&line);
    }
    // (stdin stays open: its end would close the connection.)
    stdin.write_all(b"R\n").unwrap();
    out.read_to_string(&mut text).unwrap();
    c.stderr.take().unwrap().read_to_string(&mut text).unwrap();
    let _ = c.wait();
    text
}

/// A ClientHello as a TLS 1.0 client sends it: version 3.1, no
/// supported_versions extension, only TLS_RSA_WITH_AES_128_CBC_SHA.
fn tls10_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x01];
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x02, 0x00, 0x2f]); // one cipher suite
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut hs = vec![0x01, 0, 0, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01, 0, hs.len() as u8];
    rec.extend_from_slice(&hs);
    rec
}

both_backends!(bad_tls_input_costs_only_its_connection, |backend| {
    let pki = TestPki::new(&format!("bad-{backend}"));
    let leaf = pki.leaf("server", &["localhost"], 1);
    let mut srv = start(
        backend,
        &leaf,
        &["--handshake-timeout", "1", "--threads", "1"],
    );
    let cfg = pki.client_config(TLS13, HTTP11);
    let mut bystander = wss(srv.tls(), &cfg);
    echo(&mut bystander, tungstenite::Message::text("warm up"));
    let fds = open_fds(srv.pid());
    let rss = rss_kib(srv.pid());
    let failures = |reason: &str| {
        metrics(srv.addr)
            .get(&format!(
                "ringwave_tls_handshake_failures_total{{reason=\"{reason}\"}}"
            ))
            .copied()
            .unwrap_or(-1.0)
    };

    for round in 0..3 {
        let n = round as f64 + 1.0;
        // A plaintext HTTP request: a plain 400 that says why.
        let mut s = raw(srv.tls());
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let got = String::from_utf8_lossy(&until_closed(&mut s)).into_owned();
        assert!(got.starts_with("HTTP/1.1 400"), "{got}");
        assert!(got.contains("TLS port"), "{got}");
        assert_eq!(failures("plaintext_http"), n);

        // Garbage that is not a TLS record: an alert, then the close.
        let mut s = raw(srv.tls());
        s.write_all(&[0x99u8; 64]).unwrap();
        let got = until_closed(&mut s);
        assert_eq!(got.first(), Some(&0x15), "an alert record: {got:?}");
        // An oversized record (length 0x4801 > 2^14 + 2048).
        let mut s = raw(srv.tls());
        let mut rec = vec![0x16, 0x03, 0x03, 0x48, 0x01];
        rec.extend_from_slice(&[0u8; 64]);
        s.write_all(&rec).unwrap();
        until_closed(&mut s);
        assert_eq!(failures("bad_record"), 2.0 * n);

        // No common version or cipher: a TLS 1.0 hello with one RSA suite.
        let mut s = raw(srv.tls());
        s.write_all(&tls10_client_hello()).unwrap();
        let got = until_closed(&mut s);
        assert_eq!(got.first(), Some(&0x15), "an alert record: {got:?}");
        assert_eq!(failures("incompatible"), n);

        // Half a ClientHello, then the client goes away.
        let hello = client_hello(&cfg);
        let mut s = raw(srv.tls());
        s.write_all(&hello[..hello.len() / 2]).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        until_closed(&mut s);
        wait_metric(
            srv.addr,
            "ringwave_tls_handshake_failures_total{reason=\"truncated\"}",
            |v| v == n,
        );

        // A trickle: one byte, then nothing; closed at --handshake-timeout.
        let mut s = raw(srv.tls());
        s.write_all(&hello[..1]).unwrap();
        until_closed(&mut s);
        assert_eq!(failures("timeout"), n);

        // A TLS 1.2 renegotiation (openssl s_client's "R" command, typed
        // once its handshake is done): refused with a no_renegotiation
        // alert, on which the client gives up.
        let text = renegotiate(srv.tls(), &pki.ca_file);
        assert!(text.contains("RENEGOTIATING"), "{text}");
        assert!(text.contains("no renegotiation"), "{text}");
        wait_metric(
            srv.addr,
            "ringwave_tls_handshake_failures_total{reason=\"alert\"}",
            |v| v == n,
        );

        echo(
            &mut bystander,
            tungstenite::Message::text(format!("round {round}")),
        );
    }
    // Everything the bad clients held is given back: the descriptors, and
    // their connections (io_uring's direct descriptors are not in the
    // process's table: the connection count covers them).
    eventually(|| match open_fds(srv.pid()) {
        n if n == fds => Ok(()),
        n => Err(format!(
            "descriptors {fds} -> {n}: {:?}",
            fd_targets(srv.pid())
        )),
    });
    // The bystander and the /metrics request itself stay open.
    wait_metric(srv.addr, "ringwave_connections_open", |v| v == 2.0);
    let grown = rss_kib(srv.pid()).saturating_sub(rss);
    assert!(
        grown < 2048,
        "RSS grew by {grown} KiB over 21 bad connections"
    );
    assert!(srv.alive());
});

both_backends!(chromium_loads_the_page_over_https, |backend| {
    let pki = TestPki::new(&format!("chromium-{backend}"));
    let leaf = pki.leaf("server", &["localhost", "127.0.0.1"], 1);
    let srv = start(backend, &leaf, &[]);
    let page = format!("https://127.0.0.1:{}/", srv.tls().port());
    run_python(
        "browser.py",
        &[&page],
        &[("RINGWAVE_SPKI", &leaf.spki_sha256)],
    );
    let m = metrics(srv.addr);
    assert!(m["ringwave_tls_handshakes_total"] >= 1.0);
    // Chromium took ALPN h2: the page, its two WebSockets (RFC 8441) and
    // its EventSource were streams of HTTP/2 connections.
    assert!(m["ringwave_http2_connections_total"] >= 1.0, "{m:?}");
    assert!(
        m[r#"ringwave_http2_streams_total{kind="websocket"}"#] >= 2.0,
        "{m:?}"
    );
    assert!(
        m[r#"ringwave_http2_streams_total{kind="events"}"#] >= 1.0,
        "{m:?}"
    );
    assert!(
        m[r#"ringwave_http2_streams_total{kind="response"}"#] >= 1.0,
        "{m:?}"
    );
});

both_backends!(
    a_ping_flood_over_tls_from_a_client_that_never_reads_stays_bounded,
    |backend| {
        // As tests/server_peer_bytes.rs's flood, over TLS: 1,000,000 pings of
        // 125 bytes from a client that reads nothing.
        let pki = TestPki::new(&format!("pingflood-{backend}"));
        let leaf = pki.leaf("server", &["localhost"], 1);
        let srv = start(backend, &leaf, &[]);
        let cfg = pki.client_config(TLS13, HTTP11);
        let mut ws = wss_slow(srv.tls(), &cfg, "/echo");
        let before = metrics(srv.addr)["ringwave_bytes_in_total"];
        let rss_before = rss_kib(srv.pid());
        for i in 0..1_000_000u32 {
            ws.write(tungstenite::Message::Ping(vec![7u8; 125].into()))
                .unwrap();
            if i % 1000 == 999 {
                ws.flush().unwrap();
            }
        }
        ws.flush().unwrap();
        // Every ping was read once the server counted its bytes (TLS records
        // are a little longer than what they carry).
        let sent = 131.0 * 1_000_000.0;
        wait_metric(srv.addr, "ringwave_bytes_in_total", |v| v >= before + sent);
        let grown_mib = rss_kib(srv.pid()).saturating_sub(rss_before) / 1024;
        eprintln!("{backend}: RSS grew by {grown_mib} MiB over 1,000,000 pings over TLS");
        assert!(grown_mib < 32, "RSS grew by {grown_mib} MiB");
    }
);
