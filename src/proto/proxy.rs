//! The PROXY protocol version 2 header (HAProxy's binary preamble), which a
//! load balancer sends before the HTTP request to tell the server who the
//! client is, and `X-Forwarded-For`. Only read when the server is told to
//! trust its proxy: a client could send either itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12 bytes every v2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Largest header accepted: the fixed 16 bytes plus addresses and TLVs.
pub const MAX_HEADER: usize = 16 + 536;

/// What the start of a connection holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preamble {
    /// Not enough bytes yet to decide.
    Incomplete,
    /// No PROXY header: the bytes are the request itself.
    Absent,
    /// A PROXY header of `len` bytes; `source` is the client's address
    /// (`None` for a `LOCAL` command, e.g. the proxy's own health check, or
    /// an address family other than TCP over IPv4/IPv6).
    Header {
        /// Bytes the header took.
        len: usize,
        /// The original client.
        source: Option<SocketAddr>,
    },
    /// A header that starts right but is malformed.
    Invalid(&'static str),
}

/// Look for a PROXY v2 header at the start of `buf`.
pub fn parse_v2(buf: &[u8]) -> Preamble {
    let n = buf.len().min(SIGNATURE.len());
    if buf[..n] != SIGNATURE[..n] {
        return Preamble::Absent;
    }
    if buf.len() < 16 {
        return Preamble::Incomplete;
    }
    let (ver_cmd, family) = (buf[12], buf[13]);
    let body = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if ver_cmd >> 4 != 2 {
        return Preamble::Invalid("PROXY header version is not 2");
    }
    if 16 + body > MAX_HEADER {
        return Preamble::Invalid("PROXY header too long");
    }
    if buf.len() < 16 + body {
        return Preamble::Incomplete;
    }
    let addrs = &buf[16..16 + body];
    let source = match (ver_cmd & 0x0f, family) {
        (0, _) => None, // LOCAL
        (1, 0x11) => {
            if addrs.len() < 12 {
                return Preamble::Invalid("PROXY TCP4 addresses cut short");
            }
            let ip = Ipv4Addr::new(addrs[0], addrs[1], addrs[2], addrs[3]);
            let port = u16::from_be_bytes([addrs[8], addrs[9]]);
            Some(SocketAddr::new(IpAddr::V4(ip), port))
        }
        (1, 0x21) => {
            if addrs.len() < 36 {
                return Preamble::Invalid("PROXY TCP6 addresses cut short");
            }
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&addrs[..16]);
            let port = u16::from_be_bytes([addrs[32], addrs[33]]);
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        (1, _) => None, // UNSPEC, UDP or UNIX: nothing to report
        _ => return Preamble::Invalid("PROXY header command is neither LOCAL nor PROXY"),
    };
    Preamble::Header {
        len: 16 + body,
        source,
    }
}

/// The client named by `X-Forwarded-For` values: the last address, the one
/// the trusted proxy appended (earlier entries came from the client and
/// prove nothing). `None` when absent or not an address.
pub fn forwarded_for<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<IpAddr> {
    let last = values.last()?;
    let last = std::str::from_utf8(last).ok()?.rsplit(',').next()?.trim();
    last.parse::<IpAddr>()
        .ok()
        .or_else(|| last.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// Encode a v2 `PROXY` header for TCP from `source` to `dest` (for tests and
/// load generators).
pub fn encode_v2(source: SocketAddr, dest: SocketAddr) -> Vec<u8> {
    let mut v = SIGNATURE.to_vec();
    v.push(0x21);
    match (source, dest) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            v.push(0x11);
            v.extend_from_slice(&12u16.to_be_bytes());
            v.extend_from_slice(&s.ip().octets());
            v.extend_from_slice(&d.ip().octets());
            v.extend_from_slice(&s.port().to_be_bytes());
            v.extend_from_slice(&d.port().to_be_bytes());
        }
        (s, d) => {
            let six = |a: SocketAddr| match a.ip() {
                IpAddr::V4(ip) => ip.to_ipv6_mapped(),
                IpAddr::V6(ip) => ip,
            };
            v.push(0x21);
            v.extend_from_slice(&36u16.to_be_bytes());
            v.extend_from_slice(&six(s).octets());
            v.extend_from_slice(&six(d).octets());
            v.extend_from_slice(&s.port().to_be_bytes());
            v.extend_from_slice(&d.port().to_be_bytes());
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_and_v6_headers_at_every_split() {
        let cases = [
            ("203.0.113.7:4242", "10.0.0.1:443"),
            ("[2001:db8::1]:5555", "[2001:db8::2]:443"),
        ];
        for (s, d) in cases {
            let (s, d): (SocketAddr, SocketAddr) = (s.parse().unwrap(), d.parse().unwrap());
            let mut wire = encode_v2(s, d);
            let len = wire.len();
            wire.extend_from_slice(b"GET / HTTP/1.1\r\n");
            for cut in 0..len {
                assert_eq!(parse_v2(&wire[..cut]), Preamble::Incomplete, "cut {cut}");
            }
            assert_eq!(
                parse_v2(&wire),
                Preamble::Header {
                    len,
                    source: Some(s)
                }
            );
        }
    }

    #[test]
    fn absent_local_and_invalid() {
        assert_eq!(parse_v2(b"GET / HTTP/1.1\r\n"), Preamble::Absent);
        assert_eq!(parse_v2(b"G"), Preamble::Absent);
        assert_eq!(parse_v2(b""), Preamble::Incomplete);
        let mut local = SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(
            parse_v2(&local),
            Preamble::Header {
                len: 16,
                source: None
            }
        );
        let mut v1 = SIGNATURE.to_vec();
        v1.extend_from_slice(&[0x11, 0x11, 0, 12]);
        assert!(matches!(parse_v2(&v1), Preamble::Invalid(_)));
        let mut short = SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(matches!(parse_v2(&short), Preamble::Invalid(_)));
        let mut long = SIGNATURE.to_vec();
        long.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(matches!(parse_v2(&long), Preamble::Invalid(_)));
    }

    #[test]
    fn forwarded_for_takes_the_proxys_entry() {
        let one = |v: &'static str| forwarded_for([v.as_bytes()].into_iter());
        assert_eq!(one("1.2.3.4, 198.51.100.9"), "198.51.100.9".parse().ok());
        assert_eq!(one("2001:db8::5"), "2001:db8::5".parse().ok());
        assert_eq!(one("198.51.100.9:8080"), "198.51.100.9".parse().ok());
        assert_eq!(one("unknown"), None);
        assert_eq!(forwarded_for(std::iter::empty()), None);
        let two = [b"6.6.6.6".as_slice(), b"7.7.7.7".as_slice()];
        assert_eq!(forwarded_for(two.into_iter()), "7.7.7.7".parse().ok());
    }
}
