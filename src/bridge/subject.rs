//! Topic names as NATS subjects, and back.
//!
//! A topic is any non-empty string without control characters; a NATS
//! subject token may not hold `.`, `*`, `>` or whitespace. A topic becomes
//! one token: ASCII letters, digits, `-` and `_` stay as they are, every
//! other byte of its UTF-8 becomes `%XX` (upper-case hex), so `prices.EU`
//! under the prefix `ringwave.` is `ringwave.prices%2EEU`. Conflation keys
//! travel in a header encoded the same way.

/// Check a subject prefix: empty, or tokens each followed by `.`, none
/// empty, with no wildcard or whitespace.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Ok(());
    }
    let Some(body) = prefix.strip_suffix('.') else {
        return Err(format!(
            "NATS subject prefix {prefix:?} must end with '.' (for example \"ringwave.\")"
        ));
    };
    for token in body.split('.') {
        if token.is_empty() {
            return Err(format!("NATS subject prefix {prefix:?} has an empty token"));
        }
        if token
            .chars()
            .any(|c| c == '*' || c == '>' || c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "NATS subject prefix {prefix:?} may not hold wildcards ('*', '>') or whitespace"
            ));
        }
    }
    Ok(())
}

fn kept(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// `s` as one subject token (see the module's description).
pub fn encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if kept(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

/// The string [`encode`] made `token` from; `None` if `token` is not one
/// of its outputs (a stray `%`, a byte it would have escaped, bad UTF-8).
/// (Keys come back through it; each subscription knows its topic.)
pub fn decode(token: &str) -> Option<String> {
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = token.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(hex, 16).ok()?;
            if kept(v) {
                return None;
            }
            out.push(v);
            i += 3;
        } else if kept(b) {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_become_one_token_and_come_back() {
        for t in [
            "ticks",
            "prices.EU",
            "a b*c>d",
            "100%",
            "ünïcode/Ω",
            "x..y.",
            "_-",
        ] {
            let e = encode(t);
            assert!(e.bytes().all(|b| kept(b) || b == b'%'), "{t:?} gave {e:?}");
            assert_eq!(decode(&e).as_deref(), Some(t));
        }
        assert_eq!(encode("prices.EU"), "prices%2EEU");
    }

    #[test]
    fn tokens_encode_would_not_make_are_refused() {
        for t in ["a.b", "%", "%4", "%zz", "%41", "a b", "%FF"] {
            assert_eq!(decode(t), None, "{t:?}");
        }
    }

    #[test]
    fn prefixes() {
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("ringwave.").is_ok());
        assert!(check_prefix("prod.ws.").is_ok());
        assert!(check_prefix("ringwave").is_err());
        assert!(check_prefix("a..").is_err());
        assert!(check_prefix(".").is_err());
        assert!(check_prefix("a*.").is_err());
        assert!(check_prefix("a b.").is_err());
    }
}
