//! Peer echo server: tokio-tungstenite on a current-thread tokio runtime (one
//! worker thread), echoing every text and binary message.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        println!(
            "tokio-tungstenite listening on ws://{}",
            listener.local_addr()?
        );
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut cfg = WebSocketConfig::default();
                cfg.max_message_size = Some(64 << 20);
                cfg.max_frame_size = Some(64 << 20);
                let Ok(mut ws) =
                    tokio_tungstenite::accept_async_with_config(stream, Some(cfg)).await
                else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let echo = matches!(msg, Message::Text(_) | Message::Binary(_));
                    if msg.is_close() || (echo && ws.send(msg).await.is_err()) {
                        break;
                    }
                }
            });
        }
    })
}
