//! TLS as a layer of the connection pipeline: driver bytes, then TLS, then
//! the HTTP and WebSocket sessions, which see only plaintext.
//!
//! rustls runs without I/O of its own (its unbuffered API): records are
//! parsed in the driver's receive buffer, their plaintext goes into a
//! scratch buffer the sessions parse, and the sessions' output is encrypted
//! at flush time straight into [`TlsLayer::output`], which leaves through
//! the driver's ordinary send path (registered or pooled buffers on
//! io_uring). No thread, no async runtime.
//!
//! [`Certificates`] is the server's certificate resolver: one or more
//! certificate/key pairs, chosen by SNI, swapped whole by
//! [`Certificates::reload`] so new handshakes see new files while open
//! connections keep theirs.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::sign::CertifiedKey;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, UnbufferedStatus,
};
use rustls::ServerConfig;
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
        // rustls 0.23.48 deprecates the ring provider for its lack of
        // post-quantum key exchange; aws-lc-rs, which has it, needs a C
        // and CMake build. ring stays until that trade is made on purpose,
        // and the notice is not passed on to every crate that builds us.
        #[allow(deprecated)]
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
    /// TLS 1.3 and 1.2 with the ring provider's cipher suites, ALPN `h2`
    /// (when `http2`) and `http/1.1`, serving `certs` on `listen`.
    pub fn new(
        listen: SocketAddr,
        certs: Arc<Certificates>,
        http2: bool,
    ) -> io::Result<TlsSettings> {
        let mut config = ServerConfig::builder_with_provider(certs.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| io::Error::other(format!("TLS setup: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        if http2 {
            config.alpn_protocols.insert(0, b"h2".to_vec());
        }
        Ok(TlsSettings {
            listen,
            certs,
            config: Arc::new(config),
        })
    }
}

/// Plaintext encrypted per call: a bound on the ciphertext one call adds.
const ENCRYPT_CHUNK: usize = 64 * 1024;
/// Bytes a record adds to its plaintext, at most (TLS 1.2 CBC-free suites
/// and TLS 1.3: header, explicit nonce or content type, tag).
const RECORD_OVERHEAD: usize = 64;

/// Answer to a plaintext HTTP request on the TLS port.
const PLAINTEXT_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 53\r\nConnection: close\r\n\r\nThis is a TLS port: use https:// or wss:// instead.\r\n";

/// One connection's TLS state and its encrypted output not yet sent. The
/// loop drives it; it is public so that fuzzers and tests can drive the
/// server side of TLS without a socket.
///
/// rustls's unbuffered API: records are parsed where they lie, in the
/// driver's receive buffer, and ciphertext is written straight into
/// `out`. The layer keeps received bytes only while a record is incomplete,
/// and output only until the driver has taken it, so an idle connection
/// holds rustls's session state and no buffer.
pub struct TlsLayer {
    conn: UnbufferedServerConnection,
    /// The start of a record that has not arrived whole.
    incoming: Vec<u8>,
    /// Ciphertext (or, after a plaintext request, the plain 400) to send;
    /// `out[sent..]` is unsent.
    out: Vec<u8>,
    sent: usize,
    /// The handshake completed (counted once).
    handshaken: bool,
    /// A fatal error: nothing more is read or encrypted.
    failed: bool,
    /// close_notify queued.
    notified: bool,
    /// The output's length when the worker last counted it
    /// ([`Self::recount`]).
    counted: usize,
}

/// Append what `f` writes to `out`: `room` bytes are offered first, then
/// as many as rustls says it needs.
fn append<E>(
    out: &mut Vec<u8>,
    mut room: usize,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, E>,
    required: impl Fn(&E) -> Option<usize>,
) -> Result<(), E> {
    loop {
        let start = out.len();
        out.resize(start + room, 0);
        match f(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(e) => {
                out.truncate(start);
                match required(&e) {
                    Some(need) if need > room => room = need,
                    _ => return Err(e),
                }
            }
        }
    }
}

/// Append the handshake or alert record rustls hands out to `out`.
fn encode(
    out: &mut Vec<u8>,
    e: &mut EncodeTlsData<'_, ServerConnectionData>,
) -> Result<(), EncodeError> {
    let room = |e: &EncodeError| match e {
        EncodeError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    };
    append(out, 4096, |b| e.encode(b), room)
}

fn encrypt_room(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

impl TlsLayer {
    /// A server connection with the listener's settings.
    pub fn for_settings(tls: &TlsSettings) -> Option<TlsLayer> {
        TlsLayer::new(&tls.config)
    }

    pub(super) fn new(config: &Arc<ServerConfig>) -> Option<TlsLayer> {
        let conn = UnbufferedServerConnection::new(config.clone()).ok()?;
        Some(TlsLayer {
            conn,
            incoming: Vec::new(),
            out: Vec::new(),
            sent: 0,
            handshaken: false,
            failed: false,
            notified: false,
            counted: 0,
        })
    }

    /// Take ciphertext from the peer (parsed in place; the buffer's contents
    /// are spent); plaintext is appended to `plain`. `Ok(true)` when the
    /// handshake completed with these bytes. `Err` with a reason from
    /// [`crate::metrics::TLS_FAILURES`] when the connection must end; the
    /// alert (or the plain 400) is then in [`Self::output`].
    pub fn read(&mut self, data: &mut [u8], plain: &mut Vec<u8>) -> Result<bool, &'static str> {
        if self.failed {
            return Ok(false);
        }
        if !self.handshaken && self.incoming.is_empty() && looks_like_http(data) {
            self.failed = true;
            self.out.clear();
            self.sent = 0;
            self.out.extend_from_slice(PLAINTEXT_ANSWER);
            return Err("plaintext_http");
        }
        // A panic in the TLS stack (a bug there) costs this connection, not
        // the worker.
        let result = guarded(|| self.read_records(data, plain))
            .unwrap_or_else(|| Err(rustls::Error::General("the TLS stack panicked".into())));
        if let Err(e) = result {
            self.failed = true;
            let _ = guarded(|| self.flush_alert());
            self.incoming = Vec::new();
            return Err(reason(&e));
        }
        if self.incoming.is_empty() && self.incoming.capacity() > 0 {
            self.incoming = Vec::new();
        }
        let done = !self.handshaken && !self.conn.is_handshaking();
        if done {
            self.handshaken = true;
        }
        Ok(done)
    }

    /// Parse `data` after any kept incomplete record, and keep what is left
    /// unconsumed (rustls may hold offsets into those bytes: they are passed
    /// again, in place, on the next call).
    fn read_records(&mut self, data: &mut [u8], plain: &mut Vec<u8>) -> Result<(), rustls::Error> {
        // Kept on failure too: the alert is encoded with those bytes given.
        if self.incoming.is_empty() {
            // The common case: records parsed in the driver's buffer, and
            // only an incomplete tail kept.
            let (used, r) = self.process(data, plain);
            self.incoming
                .extend_from_slice(&data[used.min(data.len())..]);
            r
        } else {
            let mut incoming = std::mem::take(&mut self.incoming);
            incoming.extend_from_slice(data);
            let (used, r) = self.process(&mut incoming, plain);
            incoming.drain(..used.min(incoming.len()));
            self.incoming = incoming;
            r
        }
    }

    /// Run rustls over `buf` until it needs more bytes; returns how many
    /// bytes it consumed (whole records; also when it fails) and how it
    /// ended.
    fn process(
        &mut self,
        buf: &mut [u8],
        plain: &mut Vec<u8>,
    ) -> (usize, Result<(), rustls::Error>) {
        let mut used = 0;
        loop {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut buf[used..]);
            let state = match state {
                Ok(s) => s,
                Err(e) => return (used + discard, Err(e)),
            };
            let more = match state {
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(record) = r.next_record() {
                        match record {
                            Ok(record) => plain.extend_from_slice(record.payload),
                            Err(e) => return (used + discard, Err(e)),
                        }
                    }
                    true
                }
                ConnectionState::EncodeTlsData(mut e) => {
                    if let Err(e) = encode(&mut self.out, &mut e) {
                        return (used + discard, Err(rustls::Error::General(e.to_string())));
                    }
                    true
                }
                // `out` holds the records: the flush sends them.
                ConnectionState::TransmitTlsData(t) => {
                    t.done();
                    true
                }
                // The peer's close_notify: its TCP close follows.
                ConnectionState::PeerClosed => true,
                // Need more bytes, or caught up.
                _ => false,
            };
            used += discard;
            if !more {
                return (used, Ok(()));
            }
        }
    }

    /// After a fatal error: move the alert rustls queued into `out`. Only
    /// while records are queued: rustls hands those out before it looks at
    /// the input again, which would fail (and alert) a second time.
    fn flush_alert(&mut self) {
        for _ in 0..8 {
            if !self.conn.wants_write() {
                return;
            }
            let UnbufferedStatus { state, .. } =
                self.conn.process_tls_records(&mut self.incoming[..]);
            match state {
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    if encode(&mut self.out, &mut e).is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
    }

    /// Whether application bytes may be encrypted now.
    pub fn can_encrypt(&self) -> bool {
        self.handshaken && !self.failed && !self.notified
    }

    /// The client chose HTTP/2 by ALPN: its first bytes must be the
    /// HTTP/2 preface (RFC 9113 §3.3), whatever they are.
    pub fn alpn_h2(&self) -> bool {
        self.conn.alpn_protocol() == Some(b"h2")
    }

    /// Still in the handshake (and not failed).
    pub fn handshaking(&self) -> bool {
        !self.handshaken && !self.failed
    }

    /// Encrypt as much of `plain` as it takes now (up to 64 KiB); returns
    /// how much.
    pub fn write(&mut self, plain: &[u8]) -> usize {
        let encrypted = self.encrypt(plain);
        if self.out.is_empty() {
            // Nothing encrypted: an idle connection holds no buffer, not
            // even one given to it ([`Self::provide`]).
            self.out = Vec::new();
        }
        encrypted
    }

    fn encrypt(&mut self, plain: &[u8]) -> usize {
        if !self.can_encrypt() || plain.is_empty() {
            return 0;
        }
        let plain = &plain[..plain.len().min(ENCRYPT_CHUNK)];
        self.compact_out();
        let mut encrypted = 0;
        let ran = guarded(|| {
            self.with_write_traffic(|w, out| {
                // The plaintext plus each record's header, tag and type.
                let room = plain.len() + (plain.len() / 16384 + 1) * RECORD_OVERHEAD;
                if append(out, room, |b| w.encrypt(plain, b), encrypt_room).is_ok() {
                    encrypted = plain.len();
                }
            })
        });
        if ran.is_none() {
            self.failed = true;
        }
        encrypted
    }

    /// Bring `held` (the worker's count of unsent ciphertext over its
    /// connections) up to date with this layer's output.
    pub(super) fn recount(&mut self, held: &mut usize) {
        let now = self.output().len();
        *held = held.saturating_sub(self.counted) + now;
        self.counted = now;
    }

    /// What [`Self::recount`] last added to the worker's count: to take
    /// off when the connection goes.
    pub(super) fn counted(&self) -> usize {
        self.counted
    }

    /// Take `buf` (empty, with capacity) as the output buffer when the
    /// layer holds none, so the next [`Self::write`] encrypts into memory
    /// already in use rather than a fresh allocation.
    pub(super) fn provide(&mut self, buf: Vec<u8>) {
        if self.out.capacity() == 0 && self.sent == 0 {
            self.out = buf;
            self.out.clear();
        }
    }

    /// Queue close_notify (once), after everything encrypted so far.
    pub fn close_notify(&mut self) {
        if self.handshaken && !self.failed && !self.notified {
            self.notified = true;
            self.compact_out();
            self.with_write_traffic(|w, out| {
                let _ = append(
                    out,
                    2 * RECORD_OVERHEAD,
                    |b| w.queue_close_notify(b),
                    encrypt_room,
                );
            });
        }
    }

    /// Reach the write state (encoding whatever records rustls has queued
    /// first) and call `f` in it. rustls is given the kept incomplete record,
    /// never an empty buffer in its place: it may hold offsets into it.
    fn with_write_traffic(
        &mut self,
        mut f: impl FnMut(&mut rustls::unbuffered::WriteTraffic<'_, ServerConnectionData>, &mut Vec<u8>),
    ) {
        for _ in 0..8 {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut self.incoming[..]);
            let go_on = match state {
                Ok(ConnectionState::WriteTraffic(mut w)) => {
                    f(&mut w, &mut self.out);
                    false
                }
                Ok(ConnectionState::EncodeTlsData(mut e)) => encode(&mut self.out, &mut e).is_ok(),
                Ok(ConnectionState::TransmitTlsData(t)) => {
                    t.done();
                    true
                }
                _ => false,
            };
            let discard = discard.min(self.incoming.len());
            self.incoming.drain(..discard);
            if !go_on {
                return;
            }
        }
    }

    /// Drop the sent prefix of `out` before appending to it.
    fn compact_out(&mut self) {
        if self.sent > 0 {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Bytes to send.
    #[inline]
    pub fn output(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    /// Hand the output to `send`, which gets the buffer and the position of
    /// its first unsent byte, may take the buffer whole (leaving an empty
    /// one) and returns how many bytes it took; they count as sent.
    pub fn send_with<E>(
        &mut self,
        send: impl FnOnce(&mut Vec<u8>, usize) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let n = send(&mut self.out, self.sent)?;
        self.advance(n);
        Ok(n)
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

/// Run `f`, turning a panic into `None`: a bug in the TLS stack costs the
/// connection it hit, not the worker. Fuzzing builds let panics through, so
/// the fuzzer sees them.
fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    #[cfg(fuzzing)]
    return Some(f());
    #[cfg(not(fuzzing))]
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
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

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    /// Server settings with a self-signed certificate for `localhost`,
    /// loaded through the server's own loader, and that certificate.
    fn settings() -> (TlsSettings, rustls_pki_types::CertificateDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = std::env::temp_dir().join(format!("ringwave-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = CertFiles {
            cert: dir.join("c.pem"),
            key: dir.join("k.pem"),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        let certs = Arc::new(Certificates::load(vec![files]).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
        let settings = TlsSettings::new("127.0.0.1:0".parse().unwrap(), certs, false).unwrap();
        (settings, cert.der().clone())
    }

    /// A layer with its handshake done against a rustls client, in memory,
    /// and the settings it was made with.
    fn handshaken() -> (TlsLayer, rustls::ClientConnection, TlsSettings) {
        let (settings, cert) = settings();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = "localhost".try_into().unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut layer = TlsLayer::for_settings(&settings).unwrap();
        let mut plain = Vec::new();
        for _ in 0..10 {
            let mut to_server = Vec::new();
            client.write_tls(&mut to_server).unwrap();
            layer.read(&mut to_server, &mut plain).unwrap();
            let out = layer.output().to_vec();
            layer.advance(out.len());
            client.read_tls(&mut &out[..]).unwrap();
            client.process_new_packets().unwrap();
            if !client.is_handshaking() && !layer.handshaking() {
                return (layer, client, settings);
            }
        }
        panic!("no handshake");
    }

    /// What the client reads from `bytes` of the layer's output.
    fn decrypt(client: &mut rustls::ClientConnection, bytes: &[u8]) -> Vec<u8> {
        client.read_tls(&mut &bytes[..]).unwrap();
        client.process_new_packets().unwrap();
        let mut got = Vec::new();
        let _ = client.reader().read_to_end(&mut got);
        got
    }

    #[test]
    fn a_provided_buffer_takes_the_ciphertext_and_the_worker_counts_it_until_sent() {
        let (mut layer, mut client, settings) = handshaken();
        let mut held = 0;
        layer.recount(&mut held);
        assert_eq!(held, 0);

        let buf = Vec::with_capacity(4096);
        let at = buf.as_ptr();
        layer.provide(buf);
        assert_eq!(layer.write(b"hello"), 5);
        assert_eq!(
            layer.output().as_ptr(),
            at,
            "encrypted into the buffer given"
        );
        layer.recount(&mut held);
        let n = layer.output().len();
        assert_eq!(held, n);
        // A buffer given while output waits is not taken.
        layer.provide(Vec::with_capacity(64));
        assert_eq!(layer.output().as_ptr(), at);
        assert_eq!(decrypt(&mut client, layer.output()), b"hello");

        layer.advance(n);
        assert_eq!(held, n, "counted until the next recount");
        layer.recount(&mut held);
        assert_eq!((held, layer.counted()), (0, 0));

        // Given a buffer and nothing to encrypt, a layer keeps none: not
        // with nothing given, nor before its handshake.
        layer.provide(Vec::with_capacity(4096));
        assert_eq!(layer.write(b""), 0);
        assert_eq!(layer.out.capacity(), 0);
        let mut fresh = TlsLayer::for_settings(&settings).unwrap();
        fresh.provide(Vec::with_capacity(4096));
        assert_eq!(fresh.write(b"before the handshake"), 0);
        assert_eq!(fresh.out.capacity(), 0);
    }
}
