//! The server side of TLS fed arbitrary bytes in pieces of arbitrary size
//! (the first byte): never panics; plaintext that comes out is echoed back
//! encrypted, as the loop would, and the output is drained after each piece.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ringwave::runtime::tls::{CertFiles, Certificates, TlsLayer, TlsSettings};

/// A self-signed certificate made once per fuzzing process, loaded through
/// the server's own loader.
fn settings() -> &'static TlsSettings {
    static TLS: OnceLock<TlsSettings> = OnceLock::new();
    TLS.get_or_init(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = std::env::temp_dir().join(format!("ringwave-fuzz-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = CertFiles { cert: dir.join("c.pem"), key: dir.join("k.pem") };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        let certs = std::sync::Arc::new(Certificates::load(vec![files]).unwrap());
        TlsSettings::new("127.0.0.1:0".parse().unwrap(), certs, true).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut layer = TlsLayer::for_settings(settings()).unwrap();
    let mut plain = Vec::new();
    for piece in rest.chunks(step) {
        plain.clear();
        let mut piece = piece.to_vec();
        if layer.read(&mut piece, &mut plain).is_err() {
            break;
        }
        if !plain.is_empty() {
            let mut at = 0;
            while at < plain.len() {
                let n = layer.write(&plain[at..]);
                if n == 0 {
                    break;
                }
                at += n;
            }
        }
        let out = layer.output().len();
        layer.advance(out);
    }
    layer.close_notify();
    let out = layer.output().len();
    layer.advance(out);
    assert!(layer.output().is_empty());
});
