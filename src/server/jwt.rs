//! Identities from signed tokens (JWT, RFC 7519): the keys the server
//! trusts (`--jwt-key`), what a token must carry, and the topics it entitles
//! its holder to.
//!
//! The algorithm is fixed by the key a token is checked with, never by the
//! token: an HMAC secret verifies HS256/384/512 only, an RSA key RS* and PS*,
//! an EC key ES256/ES384, an Ed25519 key EdDSA. `alg: none` is not an
//! algorithm here, and a token signed with HS256 over an RSA key's bytes
//! finds no HMAC key to be checked with. Time comes in as `now` (the
//! worker's clock): `exp` is required, `nbf` honoured, both with a leeway
//! of 2 s by default.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

pub use crate::runtime::identity::Identity;

/// Tokens longer than this are refused without being decoded.
pub const MAX_TOKEN: usize = 8 * 1024;

/// The shortest HMAC secret accepted: the output of SHA-256 (RFC 7518
/// §3.2 asks at least that for HS256).
const MIN_SECRET: usize = 32;

/// Where the keys are and what a token must say besides being signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// Key files: an HMAC secret (the file's bytes, one trailing newline
    /// removed), a PEM public key (RSA, EC P-256/P-384, Ed25519) or a JWKS.
    pub keys: Vec<PathBuf>,
    /// Required `aud`, if any.
    pub audience: Option<String>,
    /// Required `iss`, if any.
    pub issuer: Option<String>,
    /// Clock leeway for `exp` and `nbf`.
    pub leeway: Duration,
}

impl JwtConfig {
    /// Tokens signed with one of `keys`, a leeway of 2 s, no audience or
    /// issuer required.
    pub fn new(keys: Vec<PathBuf>) -> JwtConfig {
        JwtConfig {
            keys,
            audience: None,
            issuer: None,
            leeway: Duration::from_secs(2),
        }
    }
}

/// Why a token was refused (the answer says which, never the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Over [`MAX_TOKEN`] bytes.
    TooLong,
    /// Not three base64url parts of JSON, or an unknown algorithm (`none`).
    Malformed,
    /// No trusted key for its algorithm (and `kid`).
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `aud` missing or not the required one.
    WrongAudience,
    /// `iss` missing or not the required one.
    WrongIssuer,
    /// No `exp`.
    NoExpiry,
    /// `exp` has passed.
    Expired,
    /// `nbf` has not come yet.
    NotYetValid,
}

impl TokenError {
    /// A short reason, for answers, logs and metrics labels.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::TooLong => "too long",
            TokenError::Malformed => "malformed",
            TokenError::UnknownKey => "no key for its algorithm",
            TokenError::BadSignature => "bad signature",
            TokenError::WrongAudience => "wrong audience",
            TokenError::WrongIssuer => "wrong issuer",
            TokenError::NoExpiry => "no exp claim",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not yet valid",
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
    #[serde(default)]
    topics: Topics,
}

#[derive(Deserialize, Default)]
struct Topics {
    #[serde(default)]
    subscribe: Vec<String>,
    #[serde(default)]
    publish: Vec<String>,
}

/// One trusted key, and what `jsonwebtoken` checks with it: the algorithms
/// it verifies and, once the configuration is applied ([`require`]), the
/// audience and issuer. Built when the keys are read, not per token.
struct Key {
    kid: Option<String>,
    key: DecodingKey,
    validation: Validation,
}

impl Key {
    fn new(kid: Option<String>, key: DecodingKey, algorithms: &[Algorithm]) -> Key {
        let mut v = Validation::new(algorithms[0]);
        v.algorithms = algorithms.to_vec();
        // Time is checked on the worker's clock (`JwtKeys::valid_at`).
        v.validate_exp = false;
        v.validate_nbf = false;
        v.leeway = 0;
        v.required_spec_claims.clear();
        v.validate_aud = false;
        Key {
            kid,
            key,
            validation: v,
        }
    }

    /// The token's claims if this key signed it and its audience and issuer
    /// are the required ones (time is checked by the caller, on its clock).
    fn check(&self, token: &str) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind as E;
        match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                E::InvalidSignature => TokenError::BadSignature,
                E::InvalidAudience => TokenError::WrongAudience,
                E::MissingRequiredClaim(c) if c == "aud" => TokenError::WrongAudience,
                E::InvalidIssuer => TokenError::WrongIssuer,
                E::MissingRequiredClaim(c) if c == "iss" => TokenError::WrongIssuer,
                E::InvalidAlgorithm => TokenError::UnknownKey,
                _ => TokenError::Malformed,
            }),
        }
    }
}

/// Require the configured audience and issuer of every token `v` checks.
fn require(v: &mut Validation, config: &JwtConfig) {
    if let Some(aud) = &config.audience {
        v.set_audience(&[aud]);
        v.required_spec_claims.insert("aud".into());
    }
    if let Some(iss) = &config.issuer {
        v.set_issuer(&[iss]);
        v.required_spec_claims.insert("iss".into());
    }
}

const HMAC: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// The keys of one file.
fn load_file(path: &Path) -> Result<Vec<Key>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let at = |why: &str| format!("{}: {why}", path.display());
    let text = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if text.starts_with(b"-----BEGIN") {
        let key = |key, algorithms: &[Algorithm]| Key::new(None, key, algorithms);
        if let Ok(k) = DecodingKey::from_rsa_pem(text) {
            return Ok(vec![key(k, &RSA)]);
        }
        if let Ok(k) = DecodingKey::from_ec_pem(text) {
            return Ok(vec![key(k, &[Algorithm::ES256, Algorithm::ES384])]);
        }
        if let Ok(k) = DecodingKey::from_ed_pem(text) {
            return Ok(vec![key(k, &[Algorithm::EdDSA])]);
        }
        return Err(at(
            "a PEM file but not an RSA, EC (P-256, P-384) or Ed25519 public key",
        ));
    }
    if text.trim_ascii_start().starts_with(b"{") {
        let set: JwkSet =
            serde_json::from_slice(text).map_err(|e| at(&format!("not a JWKS: {e}")))?;
        if set.keys.is_empty() {
            return Err(at("a JWKS without keys"));
        }
        return set
            .keys
            .iter()
            .map(|jwk| {
                let kid = jwk.common.key_id.clone();
                let name = kid.as_deref().unwrap_or("without kid");
                let key =
                    DecodingKey::from_jwk(jwk).map_err(|e| at(&format!("key {name}: {e}")))?;
                let algorithms = jwk_algorithms(jwk.common.key_algorithm, &jwk.algorithm)
                    .ok_or_else(|| at(&format!("key {name}: not a signature key")))?;
                Ok(Key::new(kid, key, &algorithms))
            })
            .collect();
    }
    if text.len() < MIN_SECRET {
        return Err(at(&format!(
            "an HMAC secret of {} bytes: at least {MIN_SECRET} are needed",
            text.len()
        )));
    }
    Ok(vec![Key::new(None, DecodingKey::from_secret(text), &HMAC)])
}

/// A JWK's algorithms: the one its `alg` names, else those of its type.
fn jwk_algorithms(
    alg: Option<KeyAlgorithm>,
    params: &AlgorithmParameters,
) -> Option<Vec<Algorithm>> {
    if let Some(a) = alg {
        let a = match a {
            KeyAlgorithm::HS256 => Algorithm::HS256,
            KeyAlgorithm::HS384 => Algorithm::HS384,
            KeyAlgorithm::HS512 => Algorithm::HS512,
            KeyAlgorithm::ES256 => Algorithm::ES256,
            KeyAlgorithm::ES384 => Algorithm::ES384,
            KeyAlgorithm::RS256 => Algorithm::RS256,
            KeyAlgorithm::RS384 => Algorithm::RS384,
            KeyAlgorithm::RS512 => Algorithm::RS512,
            KeyAlgorithm::PS256 => Algorithm::PS256,
            KeyAlgorithm::PS384 => Algorithm::PS384,
            KeyAlgorithm::PS512 => Algorithm::PS512,
            KeyAlgorithm::EdDSA => Algorithm::EdDSA,
            _ => return None,
        };
        return Some(vec![a]);
    }
    Some(match params {
        AlgorithmParameters::RSA(_) => RSA.to_vec(),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKey(_) => HMAC.to_vec(),
        AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
    })
}

/// The trusted keys, shared by every worker, reloaded in place
/// ([`JwtKeys::reload`], on SIGHUP in the binary).
pub struct JwtKeys {
    config: JwtConfig,
    keys: RwLock<Arc<Vec<Key>>>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("config", &self.config)
            .field("keys", &self.len())
            .finish()
    }
}

impl JwtKeys {
    /// Read every key file; an error names the file and what is wrong.
    pub fn load(config: JwtConfig) -> Result<Arc<JwtKeys>, String> {
        if config.keys.is_empty() {
            return Err("no key files".into());
        }
        let keys = Self::read(&config)?;
        Ok(Arc::new(JwtKeys {
            config,
            keys: RwLock::new(Arc::new(keys)),
        }))
    }

    fn read(config: &JwtConfig) -> Result<Vec<Key>, String> {
        let mut keys = Vec::new();
        for path in &config.keys {
            keys.extend(load_file(path)?);
        }
        for k in &mut keys {
            require(&mut k.validation, config);
        }
        Ok(keys)
    }

    /// Read the key files again; on an error the keys in use stay and the
    /// error is returned. Returns the number of keys now trusted.
    pub fn reload(&self) -> Result<usize, String> {
        let keys = Self::read(&self.config)?;
        let n = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(n)
    }

    /// The number of keys trusted.
    pub fn len(&self) -> usize {
        self.current().len()
    }

    /// Whether no key is trusted (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn current(&self) -> Arc<Vec<Key>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The identity `token` carries at `now`, or why it is refused.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Identity, TokenError> {
        if token.len() > MAX_TOKEN {
            return Err(TokenError::TooLong);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let keys = self.current();
        let by_kid = |k: &&Key| header.kid.is_some() && k.kid == header.kid;
        let named = keys.iter().any(|k| by_kid(&k));
        let candidates = keys
            .iter()
            .filter(|k| !named || by_kid(k))
            .filter(|k| k.validation.algorithms.contains(&header.alg));
        let mut refusal = TokenError::UnknownKey;
        for key in candidates {
            match key.check(token) {
                Ok(claims) => return self.valid_at(claims, now),
                Err(e) => refusal = e,
            }
        }
        Err(refusal)
    }

    fn valid_at(&self, claims: Claims, now: SystemTime) -> Result<Identity, TokenError> {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let leeway = self.config.leeway.as_secs();
        let exp = claims.exp.ok_or(TokenError::NoExpiry)?;
        if now > exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| now.saturating_add(leeway) < nbf)
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(Identity::new(
            claims.sub,
            exp,
            claims.topics.subscribe,
            claims.topics.publish,
        ))
    }
}
