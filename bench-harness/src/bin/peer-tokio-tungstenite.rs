//! Peer echo server: tokio-tungstenite on a current-thread tokio runtime (one
//! worker thread), echoing every text and binary message.
//!
//! Usage: peer-tokio-tungstenite [ADDR [CERT.pem KEY.pem]]; with a
//! certificate and key it serves wss:// through tokio-rustls (rustls with the
//! ring provider, as ringwave).

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    let mut cfg = WebSocketConfig::default();
    cfg.max_message_size = Some(64 << 20);
    cfg.max_frame_size = Some(64 << 20);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(cfg)).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        let echo = matches!(msg, Message::Text(_) | Message::Binary(_));
        if msg.is_close() || (echo && ws.send(msg).await.is_err()) {
            break;
        }
    }
}

fn tls_acceptor(cert: &str, key: &str) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| bad(&e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad(&e))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let tls = match (args.get(2), args.get(3)) {
        (Some(c), Some(k)) => Some(tls_acceptor(c, k)?),
        _ => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        println!(
            "tokio-tungstenite listening on {}://{}",
            if tls.is_some() { "wss" } else { "ws" },
            listener.local_addr()?
        );
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(stream).await {
                            echo(s).await;
                        }
                    }
                    None => echo(stream).await,
                }
            });
        }
    })
}
