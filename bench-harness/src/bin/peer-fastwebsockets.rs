//! Peer echo server: fastwebsockets on a current-thread tokio runtime (one
//! worker thread). The HTTP upgrade is parsed with httparse; frames are
//! echoed through a FragmentCollector.

use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket};
use ringwave::proto::ws::handshake::accept_key;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn handshake(stream: &mut TcpStream) -> Option<()> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut tmp = [0u8; 1024];
        let n = stream.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if buf.len() > 16 * 1024 {
            return None;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&buf).ok()?;
    let key = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))?
        .value;
    let accept = accept_key(std::str::from_utf8(key).ok()?);
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(resp.as_bytes()).await.ok()
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9003".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        println!(
            "fastwebsockets listening on ws://{}",
            listener.local_addr()?
        );
        loop {
            let (mut stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                if handshake(&mut stream).await.is_none() {
                    return;
                }
                let mut ws = WebSocket::after_handshake(stream, Role::Server);
                ws.set_auto_close(true);
                ws.set_auto_pong(true);
                ws.set_max_message_size(64 << 20);
                let mut ws = FragmentCollector::new(ws);
                while let Ok(frame) = ws.read_frame().await {
                    let echo = matches!(frame.opcode, OpCode::Text | OpCode::Binary);
                    if frame.opcode == OpCode::Close
                        || (echo && ws.write_frame(frame).await.is_err())
                    {
                        break;
                    }
                }
            });
        }
    })
}
