//! Test certificates made at test time (rcgen): a CA, and leaf certificates
//! for `localhost` and 127.0.0.1 signed by it, written as PEM files into a
//! directory of the test's own; and rustls client settings trusting the CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SerialNumber,
    SignatureAlgorithm,
};
use rustls::pki_types::{CertificateDer, ServerName};

/// A CA and the directory its files go to.
pub struct TestPki {
    pub dir: PathBuf,
    /// The CA certificate (PEM), for clients to trust.
    pub ca_file: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate written to disk.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate as a client receives it.
    pub der: CertificateDer<'static>,
    /// SHA-256 of its SubjectPublicKeyInfo, base64 (Chromium's
    /// `--ignore-certificate-errors-spki-list`).
    pub spki_sha256: String,
}

impl TestPki {
    /// A new CA, its files in a fresh directory named after `tag`.
    pub fn new(tag: &str) -> TestPki {
        let dir = std::env::temp_dir().join(format!("ringwave-tls-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "ringwave test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        TestPki { dir, ca_file, ca }
    }

    /// A leaf for `names` with `serial`, an ECDSA P-256 key, written to
    /// `<file>.crt` and `<file>.key`.
    pub fn leaf(&self, file: &str, names: &[&str], serial: u64) -> Leaf {
        self.leaf_with(file, names, serial, &rcgen::PKCS_ECDSA_P256_SHA256)
    }

    /// A leaf with a key of algorithm `alg`.
    pub fn leaf_with(
        &self,
        file: &str,
        names: &[&str],
        serial: u64,
        alg: &'static SignatureAlgorithm,
    ) -> Leaf {
        let key = KeyPair::generate_for(alg).unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.serial_number = Some(SerialNumber::from(serial));
        params
            .distinguished_name
            .push(DnType::CommonName, format!("ringwave test {file} {serial}"));
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let cert_path = self.dir.join(format!("{file}.crt"));
        let key_path = self.dir.join(format!("{file}.key"));
        write_atomically(&cert_path, cert.pem().as_bytes());
        write_atomically(&key_path, key.serialize_pem().as_bytes());
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            &rcgen::PublicKeyData::subject_public_key_info(&key),
        );
        use base64::Engine as _;
        Leaf {
            cert: cert_path,
            key: key_path,
            der: cert.der().clone(),
            spki_sha256: base64::engine::general_purpose::STANDARD.encode(digest.as_ref()),
        }
    }

    /// rustls client settings trusting this CA, with `versions` and ALPN
    /// `alpn`.
    pub fn client_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        Arc::new(cfg)
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Replace `path` in one step (a reload never sees half a file).
pub fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `localhost` as a rustls server name.
pub fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}
