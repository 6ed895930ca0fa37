//! Helpers shared by the protocol tests: drive a `Conn` with byte vectors.
#![allow(dead_code)]

use ringwave::proto::{CloseCode, Conn, Event, Limits, OpCode, ProtocolError, Role};

/// An event copied out of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

impl From<Event<'_>> for Owned {
    fn from(e: Event<'_>) -> Self {
        match e {
            Event::Text(s) => Owned::Text(s.to_string()),
            Event::Binary(b) => Owned::Binary(b.to_vec()),
            Event::Ping(b) => Owned::Ping(b.to_vec()),
            Event::Pong(b) => Owned::Pong(b.to_vec()),
            Event::Close { code, reason } => Owned::Close(code.map(|c| c.0), reason.to_string()),
        }
    }
}

/// Feed `bytes` to `conn` cut at `cuts` (ascending offsets), as separate
/// reads. Returns the events and the error that ended the connection, if any.
pub fn feed_split(
    conn: &mut Conn,
    bytes: &[u8],
    cuts: &[usize],
) -> (Vec<Owned>, Option<ProtocolError>) {
    let mut events = Vec::new();
    let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c <= bytes.len()).collect();
    bounds.push(bytes.len());
    let mut start = 0;
    for end in bounds {
        let mut read = bytes[start..end].to_vec();
        start = end;
        let mut pos = 0;
        loop {
            match conn.read(&mut read[pos..]) {
                Ok((n, ev)) => {
                    pos += n;
                    match ev {
                        Some(e) => events.push(e.into()),
                        None => {
                            assert_eq!(pos, read.len(), "no event but input left over");
                            break;
                        }
                    }
                }
                Err(e) => return (events, Some(e)),
            }
            if pos == read.len() {
                break;
            }
        }
    }
    (events, None)
}

/// Feed `bytes` in one read.
pub fn feed(conn: &mut Conn, bytes: &[u8]) -> (Vec<Owned>, Option<ProtocolError>) {
    feed_split(conn, bytes, &[])
}

pub fn server() -> Conn {
    Conn::new(Role::Server, Limits::default(), None)
}

pub fn client() -> Conn {
    Conn::client_with_seed(Limits::default(), None, 7)
}

/// A frame as a client would send it (masked with a fixed key).
pub fn masked(op: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    raw_frame(op, fin, 0, Some([0x11, 0x22, 0x33, 0x44]), payload)
}

/// Any frame, with explicit RSV bits (bit 2 = RSV1, bit 1 = RSV2, bit 0 =
/// RSV3) and optional mask.
pub fn raw_frame(op: u8, fin: bool, rsv: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![(fin as u8) << 7 | (rsv & 7) << 4 | (op & 0x0f)];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => v.push(m | n as u8),
        n if n <= 0xffff => {
            v.push(m | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            v.push(m | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if let Some(k) = mask {
        v.extend_from_slice(&k);
    }
    let body = v.len();
    v.extend_from_slice(payload);
    if let Some(k) = mask {
        for (i, b) in v[body..].iter_mut().enumerate() {
            *b ^= k[i % 4];
        }
    }
    v
}

/// The close frame (code, reason) found in `out` (server output, unmasked),
/// assuming it is the last frame.
pub fn last_close(out: &[u8]) -> Option<u16> {
    let mut pos = 0;
    let mut last = None;
    while pos < out.len() {
        let (h, n) = ringwave::proto::FrameHeader::decode(&out[pos..]).ok()??;
        let len = h.payload_len as usize;
        let mut p = out[pos + n..pos + n + len].to_vec();
        if let Some(k) = h.mask {
            ringwave::proto::ws::mask::apply_mask(&mut p, k, 0);
        }
        if h.opcode == OpCode::Close {
            last = Some(if p.len() >= 2 {
                u16::from_be_bytes([p[0], p[1]])
            } else {
                1005
            });
        }
        pos += n + len;
    }
    last
}

pub fn code(c: u16) -> CloseCode {
    CloseCode(c)
}
