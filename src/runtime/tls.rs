//! TLS as a layer of the connection pipeline: driver bytes, then TLS, then
//! the HTTP and WebSocket sessions, which see only plaintext.
//!
//! rustls runs without I/O of its own: ciphertext from the driver's buffer
//! goes in with `read_tls` over a byte slice, plaintext comes out of its
//! reader into a scratch buffer the sessions parse, and the sessions'
//! output is encrypted at flush time into [`TlsLayer::output`], which leaves
//! through the driver's ordinary send path (registered or pooled buffers on
//! io_uring). No thread, no async runtime.
//!
//! [`Certificates`] is the server's certificate resolver: one or more
//! certificate/key pairs, chosen by SNI, swapped whole by
//! [`Certificates::reload`] so new handshakes see new files while open
//! connections keep theirs.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A certificate chain and its private key, as PEM files: the chain's first
/// certificate is the server's, the key PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate chain, server certificate first.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// The certificates a TLS listener presents. The first pair is the default;
/// with several, a client's SNI name picks the first pair whose certificate
/// is valid for it.
#[derive(Debug)]
pub struct Certificates {
    files: Vec<CertFiles>,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<Vec<Arc<CertifiedKey>>>>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

impl Certificates {
    /// Load every pair; any unreadable file or mismatched key is an error
    /// naming the file.
    pub fn load(files: Vec<CertFiles>) -> io::Result<Certificates> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let keys = load_all(&files, &provider)?;
        Ok(Certificates {
            files,
            provider,
            current: RwLock::new(Arc::new(keys)),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        })
    }

    /// Read the files again. New handshakes use what was read; open
    /// connections keep their session. On an error nothing changes and the
    /// error is returned (the old certificates stay in use).
    pub fn reload(&self) -> io::Result<()> {
        let keys = match load_all(&self.files, &self.provider) {
            Ok(k) => k,
            Err(e) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        *current = Arc::new(keys);
        self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Reloads that took effect and reloads that failed, so far.
    pub fn reloads(&self) -> (u64, u64) {
        (
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed),
        )
    }

    fn keys(&self) -> Arc<Vec<Arc<CertifiedKey>>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn load_all(files: &[CertFiles], provider: &CryptoProvider) -> io::Result<Vec<Arc<CertifiedKey>>> {
    if files.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no certificate given",
        ));
    }
    files.iter().map(|f| load_pair(f, provider)).collect()
}

fn load_pair(f: &CertFiles, provider: &CryptoProvider) -> io::Result<Arc<CertifiedKey>> {
    let bad = |what: &str, path: &PathBuf, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} {}: {e}", path.display()),
        )
    };
    let chain = CertificateDer::pem_file_iter(&f.cert)
        .map_err(|e| bad("cannot read certificate file", &f.cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("bad certificate in", &f.cert, &e))?;
    if chain.is_empty() {
        return Err(bad("no certificate in", &f.cert, &"no CERTIFICATE block"));
    }
    let key = PrivateKeyDer::from_pem_file(&f.key)
        .map_err(|e| bad("cannot read private key from", &f.key, &e))?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| bad("unusable private key in", &f.key, &e))?;
    let ck = CertifiedKey::new(chain, key);
    match ck.keys_match() {
        // A key type whose public half rustls cannot derive: not checkable.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(bad(
                "the private key does not belong to the certificate:",
                &f.key,
                &format!("certificate {}", f.cert.display()),
            ))
        }
    }
    Ok(Arc::new(ck))
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let keys = self.keys();
        if keys.len() > 1 {
            if let Some(name) = hello
                .server_name()
                .and_then(|n| ServerName::try_from(n).ok())
            {
                let fits = keys.iter().find(|k| {
                    k.end_entity_cert().is_ok_and(|der| {
                        webpki::EndEntityCert::try_from(der)
                            .is_ok_and(|c| c.verify_is_valid_for_subject_name(&name).is_ok())
                    })
                });
                if let Some(k) = fits {
                    return Some(k.clone());
                }
            }
        }
        keys.first().cloned()
    }
}

/// A TLS listener's settings: where it listens and what it presents.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Address of the TLS listener.
    pub listen: SocketAddr,
    /// What it presents (reloadable).
    pub certs: Arc<Certificates>,
    pub(crate) config: Arc<ServerConfig>,
}

impl TlsSettings {
    /// TLS 1.3 and 1.2 with the ring provider's cipher suites, ALPN
    /// `http/1.1`, serving `certs` on `listen`.
    pub fn new(listen: SocketAddr, certs: Arc<Certificates>) -> io::Result<TlsSettings> {
        let config = ServerConfig::builder_with_provider(certs.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| io::Error::other(format!("TLS setup: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        let mut config = config;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsSettings {
            listen,
            certs,
            config: Arc::new(config),
        })
    }
}

/// Plaintext read out of rustls at a time.
const PLAIN_CHUNK: usize = 16 * 1024;

/// Answer to a plaintext HTTP request on the TLS port.
const PLAINTEXT_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 53\r\nConnection: close\r\n\r\nThis is a TLS port: use https:// or wss:// instead.\r\n";

/// One connection's TLS state and its encrypted output not yet sent. The
/// loop drives it; it is public so that fuzzers and tests can drive the
/// server side of TLS without a socket.
pub struct TlsLayer {
    conn: ServerConnection,
    /// Ciphertext (or, after a plaintext request, the plain 400) to send;
    /// `out[sent..]` is unsent. Released when empty.
    out: Vec<u8>,
    sent: usize,
    /// The handshake completed (counted once).
    handshaken: bool,
    /// A fatal error: nothing more is read or encrypted.
    failed: bool,
    /// close_notify queued.
    notified: bool,
}

impl TlsLayer {
    /// A server connection with the listener's settings.
    pub fn for_settings(tls: &TlsSettings) -> Option<TlsLayer> {
        TlsLayer::new(&tls.config)
    }

    pub(super) fn new(config: &Arc<ServerConfig>) -> Option<TlsLayer> {
        let conn = ServerConnection::new(config.clone()).ok()?;
        Some(TlsLayer {
            conn,
            out: Vec::new(),
            sent: 0,
            handshaken: false,
            failed: false,
            notified: false,
        })
    }

    /// Take ciphertext from the peer; plaintext is appended to `plain`.
    /// `Ok(true)` when the handshake completed with these bytes. `Err` with a
    /// reason from [`crate::metrics::TLS_FAILURES`] when the connection must
    /// end; the alert (or the plain 400) is then in [`Self::output`].
    pub fn read(&mut self, mut data: &[u8], plain: &mut Vec<u8>) -> Result<bool, &'static str> {
        if self.failed {
            return Ok(false);
        }
        if !self.handshaken && self.conn.is_handshaking() && looks_like_http(data) {
            self.failed = true;
            self.out.clear();
            self.sent = 0;
            self.out.extend_from_slice(PLAINTEXT_ANSWER);
            return Err("plaintext_http");
        }
        while !data.is_empty() {
            match self.conn.read_tls(&mut data) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => return Err(self.fail("bad_record")),
            }
            if let Err(e) = self.conn.process_new_packets() {
                self.flush_records();
                return Err(self.fail(reason(&e)));
            }
            self.drain_plaintext(plain);
        }
        self.flush_records();
        let done = !self.handshaken && !self.conn.is_handshaking();
        if done {
            self.handshaken = true;
        }
        Ok(done)
    }

    fn fail(&mut self, reason: &'static str) -> &'static str {
        self.failed = true;
        reason
    }

    fn drain_plaintext(&mut self, plain: &mut Vec<u8>) {
        loop {
            let len = plain.len();
            plain.resize(len + PLAIN_CHUNK, 0);
            match self.conn.reader().read(&mut plain[len..]) {
                Ok(n) => {
                    plain.truncate(len + n);
                    if n == 0 {
                        return; // close_notify: the TCP close follows
                    }
                }
                Err(_) => {
                    // WouldBlock: nothing more for now (or an unclean end,
                    // reported by the driver as a close).
                    plain.truncate(len);
                    return;
                }
            }
        }
    }

    /// Move rustls's pending records into `out`.
    fn flush_records(&mut self) {
        while self.conn.wants_write() {
            if self.sent == self.out.len() {
                self.out.clear();
                self.sent = 0;
            }
            match self.conn.write_tls(&mut self.out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// Whether application bytes may be encrypted now.
    pub fn can_encrypt(&self) -> bool {
        self.handshaken && !self.failed && !self.notified
    }

    /// Still in the handshake (and not failed).
    pub fn handshaking(&self) -> bool {
        !self.handshaken && !self.failed
    }

    /// Encrypt as much of `plain` as rustls takes now; returns how much.
    pub fn write(&mut self, plain: &[u8]) -> usize {
        if !self.can_encrypt() {
            return 0;
        }
        let n = self.conn.writer().write(plain).unwrap_or(0);
        self.flush_records();
        n
    }

    /// Queue close_notify (once), after everything encrypted so far.
    pub fn close_notify(&mut self) {
        if self.handshaken && !self.failed && !self.notified {
            self.notified = true;
            self.conn.send_close_notify();
            self.flush_records();
        }
    }

    /// Bytes to send.
    #[inline]
    pub fn output(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    /// `n` bytes of [`Self::output`] were taken by the driver.
    pub fn advance(&mut self, n: usize) {
        self.sent += n;
        if self.sent >= self.out.len() {
            // Idle connections hold no output buffer.
            self.out = Vec::new();
            self.sent = 0;
        }
    }
}

/// Whether bytes at the start of a TLS connection are an HTTP request (a
/// TLS record starts with its content type, 20-24; a request with a method
/// in capitals).
fn looks_like_http(data: &[u8]) -> bool {
    data.first().is_some_and(|b| b.is_ascii_uppercase())
}

/// The metrics reason for a rustls error.
fn reason(e: &rustls::Error) -> &'static str {
    use rustls::Error as E;
    match e {
        E::InvalidMessage(_) | E::DecryptError => "bad_record",
        E::PeerIncompatible(_) | E::NoApplicationProtocol | E::NoCertificatesPresented => {
            "incompatible"
        }
        E::PeerMisbehaved(_)
        | E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. } => "misbehaved",
        E::AlertReceived(_) => "alert",
        _ => "other",
    }
}
