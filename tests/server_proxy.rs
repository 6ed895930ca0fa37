//! The client's address as `on_upgrade` sees it: the TCP peer's, or behind a
//! trusted proxy the one a PROXY protocol v2 header or `X-Forwarded-For`
//! names; on both backends, in process.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use ringwave::driver::Backend;

mod server;
use ringwave::proto::proxy;
use ringwave::server::Request;
use ringwave::server::{Handler, Msg, Server, Upgrade, Ws};

/// Greets each connection with the client address its upgrade carried.
#[derive(Default)]
struct WhoAmI {
    last: Option<(Option<SocketAddr>, Option<IpAddr>)>,
}

impl Handler for WhoAmI {
    fn on_upgrade(&mut self, req: &Request<'_>) -> Upgrade {
        self.last = Some((req.peer_addr(), req.client_ip()));
        Upgrade::Accept { protocol: None }
    }

    fn on_open(&mut self, ws: &mut Ws<'_>) {
        let (peer, ip) = self.last.take().expect("on_upgrade came first");
        let peer = peer.map_or("none".to_string(), |p| p.ip().to_string());
        let ip = ip.map_or("none".to_string(), |i| i.to_string());
        let _ = ws.send_text(&format!("{peer} {ip}"));
    }

    fn on_message(&mut self, _ws: &mut Ws<'_>, _msg: Msg<'_>) {}
}

const REQUEST: &str = "GET /who HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

/// Send `preamble`, the request with `extra` headers; return the status
/// line and the first text message (if upgraded).
fn ask(addr: SocketAddr, preamble: &[u8], extra: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = preamble.to_vec();
    req.extend_from_slice(format!("{REQUEST}{extra}\r\n").as_bytes());
    // Byte by byte: the header and the request may arrive in any pieces.
    for b in req {
        s.write_all(&[b]).unwrap();
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let mut failed = None;
    loop {
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                failed = Some(e);
                0
            }
        };
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let body = &got[i + 4..];
            if !got.starts_with(b"HTTP/1.1 101")
                || (body.len() >= 2 && body.len() >= 2 + body[1] as usize)
            {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let mut status = text.lines().next().unwrap_or("").to_string();
    if status.is_empty() {
        // Nothing came back: say how the stream ended.
        status = match failed {
            Some(e) => format!("(read failed: {e})"),
            None => "(closed without a response)".to_string(),
        };
    }
    let msg = match got.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) if got.starts_with(b"HTTP/1.1 101") => {
            String::from_utf8_lossy(&got[i + 6..]).into_owned()
        }
        _ => String::new(),
    };
    (status, msg)
}

fn run(backend: Backend, trust: bool) -> SocketAddr {
    let server = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .threads(1)
        .backend(backend)
        .trust_proxy(trust)
        .serve(WhoAmI::default)
        .unwrap();
    let addr = server.local_addr();
    std::mem::forget(server); // serves until the test process exits
    addr
}

fn client_addresses(backend: Backend) {
    let header = proxy::encode_v2(
        "203.0.113.7:4242".parse().unwrap(),
        "10.0.0.1:443".parse().unwrap(),
    );
    // Not trusted: the TCP peer, whatever the request claims.
    let addr = run(backend, false);
    let (st, msg) = ask(addr, b"", "X-Forwarded-For: 198.51.100.9\r\n");
    assert!(st.starts_with("HTTP/1.1 101"), "{st}");
    assert_eq!(msg, "127.0.0.1 127.0.0.1", "status: {st:?}");
    let (st, _) = ask(addr, &header, "");
    assert!(
        st.starts_with("HTTP/1.1 400"),
        "a PROXY header is not HTTP: {st}"
    );

    // Trusted: the PROXY header first, then the proxy's X-Forwarded-For
    // entry, then the TCP peer.
    let addr = run(backend, true);
    let (st, msg) = ask(addr, &header, "X-Forwarded-For: 198.51.100.9\r\n");
    assert_eq!(msg, "127.0.0.1 203.0.113.7", "status: {st:?}");
    let (st, msg) = ask(addr, b"", "X-Forwarded-For: 6.6.6.6, 198.51.100.9\r\n");
    assert_eq!(msg, "127.0.0.1 198.51.100.9", "status: {st:?}");
    let (st, msg) = ask(addr, b"", "");
    assert_eq!(msg, "127.0.0.1 127.0.0.1", "status: {st:?}");
    let v6 = proxy::encode_v2(
        "[2001:db8::1]:5555".parse().unwrap(),
        "[2001:db8::2]:443".parse().unwrap(),
    );
    let (st, msg) = ask(addr, &v6, "");
    assert_eq!(msg, "127.0.0.1 2001:db8::1", "status: {st:?}");
    // A malformed header costs that connection only.
    let mut bad = proxy::SIGNATURE.to_vec();
    bad.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
    let (st, _) = ask(addr, &bad, "");
    assert!(st.starts_with("HTTP/1.1 400"), "{st}");
    let (st, _) = ask(addr, b"", "");
    assert!(st.starts_with("HTTP/1.1 101"), "{st}");
}

both_backends!(client_addresses_on, |b: &str| client_addresses(
    b.parse::<Backend>().unwrap()
));
