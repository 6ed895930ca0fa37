//! The frame header (RFC 6455 §5.2): decode and encode the 2–14 byte header.
//!
//! Decoding checks everything the header alone can tell: reserved opcodes,
//! control-frame rules, the 64-bit length's top bit, minimal length encoding is
//! *not* required of peers (the RFC requires it of senders only). Checks that
//! depend on connection state (RSV bits with or without an extension, mask
//! direction, continuation without a start) live in [`crate::proto::ws::conn`].

use std::fmt;

/// A frame opcode (RFC 6455 §5.2, §11.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continuation of a fragmented message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// The opcode for a 4-bit value, or `None` for the reserved ones
    /// (0x3–0x7, 0xB–0xF).
    pub fn from_u8(v: u8) -> Option<OpCode> {
        Some(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// The largest control-frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The largest header: 2 bytes, 8 bytes of extended length, 4 bytes of key.
pub const MAX_HEADER_LEN: usize = 14;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Final fragment of a message.
    pub fin: bool,
    /// RSV1 (used by permessage-deflate for "compressed").
    pub rsv1: bool,
    /// RSV2: no extension here uses it.
    pub rsv2: bool,
    /// RSV3: no extension here uses it.
    pub rsv3: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on frames a client sends.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

/// Why a header is invalid on its own. Every variant is answered with close
/// code 1002.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Opcode 0x3–0x7 or 0xB–0xF.
    ReservedOpcode(u8),
    /// A control frame with FIN clear.
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload.
    ControlTooLong(u64),
    /// A 64-bit length with its most significant bit set.
    LengthTopBit,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            HeaderError::FragmentedControl => f.write_str("fragmented control frame"),
            HeaderError::ControlTooLong(n) => {
                write!(f, "control frame payload of {n} bytes exceeds 125")
            }
            HeaderError::LengthTopBit => f.write_str("64-bit payload length with the top bit set"),
        }
    }
}

impl std::error::Error for HeaderError {}

impl FrameHeader {
    /// Decode a header from the start of `buf`. Returns the header and its
    /// length in bytes, or `Ok(None)` when `buf` does not yet hold a whole
    /// header.
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, HeaderError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let b0 = buf[0];
        let b1 = buf[1];
        let fin = b0 & 0x80 != 0;
        let raw_op = b0 & 0x0f;
        let opcode = OpCode::from_u8(raw_op).ok_or(HeaderError::ReservedOpcode(raw_op))?;
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7f;
        if opcode.is_control() {
            if !fin {
                return Err(HeaderError::FragmentedControl);
            }
            if len7 as usize > MAX_CONTROL_PAYLOAD {
                // 126 or 127 means an extended length, always > 125 bytes.
                return Err(HeaderError::ControlTooLong(len7 as u64));
            }
        }
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_len = 2 + ext + if masked { 4 } else { 0 };
        if buf.len() < header_len {
            return Ok(None);
        }
        let payload_len = match ext {
            2 => u16::from_be_bytes([buf[2], buf[3]]) as u64,
            8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                let v = u64::from_be_bytes(b);
                if v >> 63 != 0 {
                    return Err(HeaderError::LengthTopBit);
                }
                v
            }
            _ => len7 as u64,
        };
        let mask = masked.then(|| {
            let k = 2 + ext;
            [buf[k], buf[k + 1], buf[k + 2], buf[k + 3]]
        });
        Ok(Some((
            FrameHeader {
                fin,
                rsv1: b0 & 0x40 != 0,
                rsv2: b0 & 0x20 != 0,
                rsv3: b0 & 0x10 != 0,
                opcode,
                mask,
                payload_len,
            },
            header_len,
        )))
    }

    /// Encode this header with the minimal length encoding. Returns the bytes
    /// written to `out`.
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (self.fin as u8) << 7
            | (self.rsv1 as u8) << 6
            | (self.rsv2 as u8) << 5
            | (self.rsv3 as u8) << 4
            | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut n = if self.payload_len < 126 {
            out[1] = mask_bit | self.payload_len as u8;
            2
        } else if self.payload_len <= u16::MAX as u64 {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
            4
        } else {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
            10
        };
        if let Some(k) = self.mask {
            out[n..n + 4].copy_from_slice(&k);
            n += 4;
        }
        n
    }

    /// Append this header to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut h = [0u8; MAX_HEADER_LEN];
        let n = self.encode(&mut h);
        out.extend_from_slice(&h[..n]);
    }
}

/// Append a whole frame (header and payload, masked with `mask` if given) to
/// `out`. This is how a publish is framed once for many receivers.
pub fn encode_frame(
    out: &mut Vec<u8>,
    opcode: OpCode,
    fin: bool,
    rsv1: bool,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) {
    // One allocation for header and payload (an empty output buffer would
    // otherwise be allocated for the header, then reallocated).
    out.reserve(MAX_HEADER_LEN + payload.len());
    FrameHeader {
        fin,
        rsv1,
        rsv2: false,
        rsv3: false,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    }
    .encode_into(out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(k) = mask {
        super::mask::apply_mask(&mut out[start..], k, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(op: OpCode, len: u64, mask: Option<[u8; 4]>) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: op,
            mask,
            payload_len: len,
        }
    }

    #[test]
    fn round_trip_every_length_class() {
        for len in [0u64, 1, 125, 126, 127, 65535, 65536, 1 << 40] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let h = header(OpCode::Binary, len, mask);
                let mut buf = [0u8; MAX_HEADER_LEN];
                let n = h.encode(&mut buf);
                let expect_n = match len {
                    0..=125 => 2,
                    126..=65535 => 4,
                    _ => 10,
                } + if mask.is_some() { 4 } else { 0 };
                assert_eq!(n, expect_n, "minimal encoding for {len}");
                assert_eq!(FrameHeader::decode(&buf[..n]), Ok(Some((h, n))));
                for short in 0..n {
                    assert_eq!(FrameHeader::decode(&buf[..short]), Ok(None));
                }
            }
        }
    }

    #[test]
    fn rejects_reserved_opcodes() {
        for op in (0x3..=0x7).chain(0xB..=0xF) {
            assert_eq!(
                FrameHeader::decode(&[0x80 | op, 0]),
                Err(HeaderError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn rejects_bad_control_frames() {
        for op in [0x8u8, 0x9, 0xA] {
            assert_eq!(
                FrameHeader::decode(&[op, 0]),
                Err(HeaderError::FragmentedControl)
            );
            assert_eq!(
                FrameHeader::decode(&[0x80 | op, 126, 0, 126]),
                Err(HeaderError::ControlTooLong(126))
            );
            assert!(FrameHeader::decode(&[0x80 | op, 125]).unwrap().is_some());
        }
    }

    #[test]
    fn rejects_length_top_bit() {
        let mut b = vec![0x82, 127];
        b.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(FrameHeader::decode(&b), Err(HeaderError::LengthTopBit));
    }

    #[test]
    fn accepts_non_minimal_length_from_peer() {
        // 5 bytes announced with the 16-bit form: legal to receive.
        let (h, n) = FrameHeader::decode(&[0x82, 126, 0, 5]).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (5, 4));
    }
}
