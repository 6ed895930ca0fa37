//! The `Sec-WebSocket-Extensions` header (RFC 6455 §9.1): a list of
//! extensions, each a token with parameters.

/// One element of a `Sec-WebSocket-Extensions` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// Extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in order; the value is unquoted.
    pub params: Vec<(String, Option<String>)>,
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parse a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1). `None` when it
/// is malformed.
pub fn parse_extensions(value: &str) -> Option<Vec<ExtensionOffer>> {
    let mut out = Vec::new();
    for ext in split_outside_quotes(value, ',') {
        let ext = ext.trim();
        if ext.is_empty() {
            continue;
        }
        let mut parts = split_outside_quotes(ext, ';').into_iter();
        let name = parts.next()?.trim();
        if !is_token(name) {
            return None;
        }
        let mut params = Vec::new();
        for p in parts {
            let p = p.trim();
            let (k, v) = match p.split_once('=') {
                None => (p, None),
                Some((k, v)) => {
                    let v = v.trim();
                    let v = if let Some(q) = v.strip_prefix('"') {
                        q.strip_suffix('"')?.to_string()
                    } else {
                        v.to_string()
                    };
                    if !is_token(&v) {
                        return None;
                    }
                    (k.trim(), Some(v))
                }
            };
            if !is_token(k) {
                return None;
            }
            params.push((k.to_string(), v));
        }
        out.push(ExtensionOffer {
            name: name.to_string(),
            params,
        });
    }
    Some(out)
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_lists() {
        let e = parse_extensions("permessage-deflate; client_max_window_bits=\"10\", foo").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0].params,
            vec![("client_max_window_bits".into(), Some("10".into()))]
        );
        assert_eq!(e[1].name, "foo");
        assert!(parse_extensions("bad name").is_none());
        assert!(parse_extensions("x; a=\"unterminated").is_none());
    }
}
