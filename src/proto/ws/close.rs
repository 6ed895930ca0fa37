//! Close frames (RFC 6455 §5.5.1, §7.4): status codes, the close payload and
//! the close handshake states.

use std::fmt;

/// A close status code as carried in a close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status received. Never sent on the wire.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: closed without a close frame. Never sent on the wire.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: payload inconsistent with its type (invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: policy violation.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: message too big.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// Whether this code may appear in a close frame on the wire:
    /// 1000–1003, 1007–1011 and 3000–4999. 1004–1006, 1015, codes below
    /// 1000, the other 1xxx/2xxx codes (as the Autobahn suite expects, 1012–1014
    /// too) and 5000+ are invalid.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1011 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a received close payload is unacceptable, with the code to close with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosePayloadError {
    /// One byte long, or a status code not allowed on the wire: 1002.
    BadCode,
    /// The reason is not valid UTF-8: 1007.
    BadReason,
}

impl ClosePayloadError {
    /// The close code that answers this error.
    pub fn close_code(self) -> CloseCode {
        match self {
            ClosePayloadError::BadCode => CloseCode::PROTOCOL_ERROR,
            ClosePayloadError::BadReason => CloseCode::INVALID_PAYLOAD,
        }
    }
}

/// Parse a close frame's (unmasked) payload: empty, or a 2-byte code followed
/// by a UTF-8 reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(CloseCode, &str)>, ClosePayloadError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(ClosePayloadError::BadCode),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_valid_on_wire() {
                return Err(ClosePayloadError::BadCode);
            }
            let reason = simdutf8::basic::from_utf8(&payload[2..])
                .map_err(|_| ClosePayloadError::BadReason)?;
            Ok(Some((code, reason)))
        }
    }
}

/// Write a close payload: the code then as much of `reason` as fits in a
/// control frame (123 bytes), cut on a character boundary.
pub fn close_payload(code: CloseCode, reason: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&code.0.to_be_bytes());
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&reason.as_bytes()[..end]);
}

/// Where a connection is in the close handshake (RFC 6455 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseState {
    /// No close frame sent or received.
    Open,
    /// We sent a close frame and wait for the peer's.
    CloseSent,
    /// Both close frames exchanged (a received close is answered at once), or
    /// the connection failed: nothing more is read or written; the transport
    /// is closed once the queued output is flushed.
    Closed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_range() {
        for c in 0u16..=u16::MAX {
            let expect = matches!(c, 1000..=1003 | 1007..=1011 | 3000..=4999);
            assert_eq!(CloseCode(c).is_valid_on_wire(), expect, "code {c}");
        }
        for c in [
            0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            let p = u16::to_be_bytes(c);
            assert_eq!(
                parse_close_payload(&p),
                Err(ClosePayloadError::BadCode),
                "{c}"
            );
        }
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            let p = u16::to_be_bytes(c);
            assert_eq!(parse_close_payload(&p), Ok(Some((CloseCode(c), ""))), "{c}");
        }
    }

    #[test]
    fn payload_shapes() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
        assert_eq!(parse_close_payload(&[3]), Err(ClosePayloadError::BadCode));
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8, 0xff]),
            Err(ClosePayloadError::BadReason)
        );
        assert_eq!(
            parse_close_payload(b"\x03\xe8bye"),
            Ok(Some((CloseCode::NORMAL, "bye")))
        );
        assert_eq!(ClosePayloadError::BadReason.close_code(), CloseCode(1007));
        assert_eq!(ClosePayloadError::BadCode.close_code(), CloseCode(1002));
    }

    #[test]
    fn long_reason_is_cut_on_char_boundary() {
        let reason = "é".repeat(100); // 200 bytes
        let mut out = Vec::new();
        close_payload(CloseCode::NORMAL, &reason, &mut out);
        assert!(out.len() <= 125);
        assert!(parse_close_payload(&out).is_ok());
    }
}
