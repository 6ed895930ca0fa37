//! The HTTP/2 frame codec (RFC 9113 §4 and §6), sans-IO: bytes to
//! validated [`Frame`]s that borrow from the input, and frames to bytes.
//!
//! This is the first layer of HTTP/2 in ringwave: it checks everything a
//! single frame can be checked for (its length against the frame size
//! limit and its type, the stream it may travel on, padding, setting
//! values) and says whether a violation is a connection error or a stream
//! error, with its error code. What depends on more than one frame (stream
//! states, CONTINUATION sequencing, flow-control windows, HPACK) belongs to
//! the session above it.

use std::fmt;

pub mod session;

/// What a client sends first on an HTTP/2 connection (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Frame header length.
pub const HEAD_LEN: usize = 9;
/// `SETTINGS_MAX_FRAME_SIZE` until a peer raises it, and its least value.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest `SETTINGS_MAX_FRAME_SIZE` allowed.
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// The largest flow-control window (and `SETTINGS_INITIAL_WINDOW_SIZE`).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Frame types (RFC 9113 §6).
pub mod kind {
    /// DATA.
    pub const DATA: u8 = 0x0;
    /// HEADERS.
    pub const HEADERS: u8 = 0x1;
    /// PRIORITY (deprecated; parsed and ignored).
    pub const PRIORITY: u8 = 0x2;
    /// RST_STREAM.
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS.
    pub const SETTINGS: u8 = 0x4;
    /// PUSH_PROMISE (a server's only; refused from a client).
    pub const PUSH_PROMISE: u8 = 0x5;
    /// PING.
    pub const PING: u8 = 0x6;
    /// GOAWAY.
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE.
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION.
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub mod flag {
    /// END_STREAM (DATA, HEADERS).
    pub const END_STREAM: u8 = 0x1;
    /// ACK (SETTINGS, PING).
    pub const ACK: u8 = 0x1;
    /// END_HEADERS (HEADERS, CONTINUATION).
    pub const END_HEADERS: u8 = 0x4;
    /// PADDED (DATA, HEADERS).
    pub const PADDED: u8 = 0x8;
    /// PRIORITY (HEADERS).
    pub const PRIORITY: u8 = 0x20;
}

/// Setting identifiers (RFC 9113 §6.5.2, RFC 8441 §3).
pub mod setting {
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    /// SETTINGS_ENABLE_PUSH.
    pub const ENABLE_PUSH: u16 = 0x2;
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    /// SETTINGS_MAX_FRAME_SIZE.
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441).
    pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
}

/// An HTTP/2 error code (RFC 9113 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// NO_ERROR.
    pub const NO_ERROR: ErrorCode = ErrorCode(0x0);
    /// PROTOCOL_ERROR.
    pub const PROTOCOL_ERROR: ErrorCode = ErrorCode(0x1);
    /// INTERNAL_ERROR.
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(0x2);
    /// FLOW_CONTROL_ERROR.
    pub const FLOW_CONTROL_ERROR: ErrorCode = ErrorCode(0x3);
    /// SETTINGS_TIMEOUT.
    pub const SETTINGS_TIMEOUT: ErrorCode = ErrorCode(0x4);
    /// STREAM_CLOSED.
    pub const STREAM_CLOSED: ErrorCode = ErrorCode(0x5);
    /// FRAME_SIZE_ERROR.
    pub const FRAME_SIZE_ERROR: ErrorCode = ErrorCode(0x6);
    /// REFUSED_STREAM.
    pub const REFUSED_STREAM: ErrorCode = ErrorCode(0x7);
    /// CANCEL.
    pub const CANCEL: ErrorCode = ErrorCode(0x8);
    /// COMPRESSION_ERROR.
    pub const COMPRESSION_ERROR: ErrorCode = ErrorCode(0x9);
    /// CONNECT_ERROR.
    pub const CONNECT_ERROR: ErrorCode = ErrorCode(0xa);
    /// ENHANCE_YOUR_CALM.
    pub const ENHANCE_YOUR_CALM: ErrorCode = ErrorCode(0xb);
    /// INADEQUATE_SECURITY.
    pub const INADEQUATE_SECURITY: ErrorCode = ErrorCode(0xc);
    /// HTTP_1_1_REQUIRED.
    pub const HTTP_1_1_REQUIRED: ErrorCode = ErrorCode(0xd);
}

/// A frame that breaks the protocol: the whole connection (GOAWAY) or only
/// its stream (RST_STREAM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameError {
    /// The code to send.
    pub code: ErrorCode,
    /// `Some(stream)` for a stream error, `None` for a connection error.
    pub stream: Option<u32>,
    /// What was wrong, for logs.
    pub reason: &'static str,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.stream {
            Some(s) => write!(f, "stream {s} error {:#x}: {}", self.code.0, self.reason),
            None => write!(f, "connection error {:#x}: {}", self.code.0, self.reason),
        }
    }
}

impl std::error::Error for FrameError {}

fn conn_err(code: ErrorCode, reason: &'static str) -> FrameError {
    FrameError {
        code,
        stream: None,
        reason,
    }
}

fn stream_err(stream: u32, code: ErrorCode, reason: &'static str) -> FrameError {
    FrameError {
        code,
        stream: Some(stream),
        reason,
    }
}

/// A HEADERS frame's priority fields (parsed, and ignored above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    /// The stream depended on.
    pub depends_on: u32,
    /// Exclusive dependency.
    pub exclusive: bool,
    /// Weight, 1-256 less one.
    pub weight: u8,
}

/// One frame, its payload borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// DATA, padding removed; `flow_len` is the whole payload length
    /// (padding included), which is what flow control counts.
    Data {
        /// The stream.
        stream: u32,
        /// END_STREAM.
        end_stream: bool,
        /// The data.
        data: &'a [u8],
        /// Bytes counted against the flow-control windows.
        flow_len: u32,
    },
    /// HEADERS, padding and priority removed.
    Headers {
        /// The stream.
        stream: u32,
        /// END_STREAM.
        end_stream: bool,
        /// END_HEADERS: no CONTINUATION follows.
        end_headers: bool,
        /// Priority fields, when present.
        priority: Option<Priority>,
        /// The header block fragment (HPACK).
        block: &'a [u8],
    },
    /// PRIORITY.
    Priority {
        /// The stream.
        stream: u32,
        /// The fields.
        priority: Priority,
    },
    /// RST_STREAM.
    RstStream {
        /// The stream.
        stream: u32,
        /// Why.
        code: ErrorCode,
    },
    /// SETTINGS: an acknowledgement, or parameters (checked; read them with
    /// [`settings`]).
    Settings {
        /// ACK.
        ack: bool,
        /// Six bytes per parameter.
        params: &'a [u8],
    },
    /// PING.
    Ping {
        /// ACK.
        ack: bool,
        /// The opaque data, to echo.
        data: [u8; 8],
    },
    /// GOAWAY.
    GoAway {
        /// The last stream the sender may have processed.
        last_stream: u32,
        /// Why.
        code: ErrorCode,
        /// Debug data.
        debug: &'a [u8],
    },
    /// WINDOW_UPDATE (increment checked non-zero).
    WindowUpdate {
        /// The stream, 0 for the connection.
        stream: u32,
        /// The increment.
        increment: u32,
    },
    /// CONTINUATION.
    Continuation {
        /// The stream.
        stream: u32,
        /// END_HEADERS.
        end_headers: bool,
        /// The header block fragment.
        block: &'a [u8],
    },
    /// A frame type this codec does not know: to be ignored (RFC 9113 §4.1).
    Unknown {
        /// Its type.
        kind: u8,
        /// Its stream.
        stream: u32,
    },
}

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Payload length.
    pub len: u32,
    /// Type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier (the reserved bit cleared).
    pub stream: u32,
}

impl Head {
    /// Read a header from its 9 bytes.
    pub fn parse(b: &[u8; HEAD_LEN]) -> Head {
        Head {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & MAX_WINDOW,
        }
    }

    /// Append the 9 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.len.to_be_bytes()[1..]);
        out.push(self.kind);
        out.push(self.flags);
        out.extend_from_slice(&(self.stream & MAX_WINDOW).to_be_bytes());
    }
}

fn u32_at(p: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]])
}

/// Take one frame off the front of `buf`: `Ok(None)` until it is whole,
/// else the frame and the bytes it took. `max_frame_size` is the
/// `SETTINGS_MAX_FRAME_SIZE` this side announced.
pub fn decode(buf: &[u8], max_frame_size: u32) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(head) = buf.first_chunk::<HEAD_LEN>() else {
        return Ok(None);
    };
    let head = Head::parse(head);
    if head.len > max_frame_size {
        return Err(conn_err(
            ErrorCode::FRAME_SIZE_ERROR,
            "frame longer than SETTINGS_MAX_FRAME_SIZE",
        ));
    }
    let total = HEAD_LEN + head.len as usize;
    let Some(payload) = buf.get(HEAD_LEN..total) else {
        return Ok(None);
    };
    Ok(Some((frame(head, payload)?, total)))
}

/// `payload` without its padding, for a frame with PADDED set.
fn unpad<'a>(head: &Head, payload: &'a [u8]) -> Result<&'a [u8], FrameError> {
    if head.flags & flag::PADDED == 0 {
        return Ok(payload);
    }
    let Some((&pad, rest)) = payload.split_first() else {
        return Err(conn_err(
            ErrorCode::FRAME_SIZE_ERROR,
            "padded frame without a pad length",
        ));
    };
    if pad as usize > rest.len() {
        return Err(conn_err(
            ErrorCode::PROTOCOL_ERROR,
            "padding longer than the payload",
        ));
    }
    Ok(&rest[..rest.len() - pad as usize])
}

fn priority(p: &[u8]) -> Priority {
    let dep = u32_at(p, 0);
    Priority {
        depends_on: dep & MAX_WINDOW,
        exclusive: dep & !MAX_WINDOW != 0,
        weight: p[4],
    }
}

/// Check one frame by itself.
fn frame<'a>(head: Head, p: &'a [u8]) -> Result<Frame<'a>, FrameError> {
    let s = head.stream;
    let on_stream = |what: &'static str| {
        if s == 0 {
            Err(conn_err(ErrorCode::PROTOCOL_ERROR, what))
        } else {
            Ok(())
        }
    };
    let on_connection = |what: &'static str| {
        if s != 0 {
            Err(conn_err(ErrorCode::PROTOCOL_ERROR, what))
        } else {
            Ok(())
        }
    };
    Ok(match head.kind {
        kind::DATA => {
            on_stream("DATA on stream 0")?;
            Frame::Data {
                stream: s,
                end_stream: head.flags & flag::END_STREAM != 0,
                data: unpad(&head, p)?,
                flow_len: head.len,
            }
        }
        kind::HEADERS => {
            on_stream("HEADERS on stream 0")?;
            let mut block = unpad(&head, p)?;
            let mut prio = None;
            if head.flags & flag::PRIORITY != 0 {
                if block.len() < 5 {
                    return Err(conn_err(
                        ErrorCode::FRAME_SIZE_ERROR,
                        "HEADERS too short for its priority",
                    ));
                }
                prio = Some(priority(block));
                block = &block[5..];
            }
            Frame::Headers {
                stream: s,
                end_stream: head.flags & flag::END_STREAM != 0,
                end_headers: head.flags & flag::END_HEADERS != 0,
                priority: prio,
                block,
            }
        }
        kind::PRIORITY => {
            on_stream("PRIORITY on stream 0")?;
            if p.len() != 5 {
                return Err(stream_err(
                    s,
                    ErrorCode::FRAME_SIZE_ERROR,
                    "PRIORITY is not 5 bytes",
                ));
            }
            Frame::Priority {
                stream: s,
                priority: priority(p),
            }
        }
        kind::RST_STREAM => {
            on_stream("RST_STREAM on stream 0")?;
            if p.len() != 4 {
                return Err(conn_err(
                    ErrorCode::FRAME_SIZE_ERROR,
                    "RST_STREAM is not 4 bytes",
                ));
            }
            Frame::RstStream {
                stream: s,
                code: ErrorCode(u32_at(p, 0)),
            }
        }
        kind::SETTINGS => {
            on_connection("SETTINGS on a stream")?;
            let ack = head.flags & flag::ACK != 0;
            if ack && !p.is_empty() {
                return Err(conn_err(
                    ErrorCode::FRAME_SIZE_ERROR,
                    "SETTINGS ACK with a payload",
                ));
            }
            if !p.len().is_multiple_of(6) {
                return Err(conn_err(
                    ErrorCode::FRAME_SIZE_ERROR,
                    "SETTINGS not a multiple of 6 bytes",
                ));
            }
            for (id, value) in settings(p) {
                check_setting(id, value)?;
            }
            Frame::Settings { ack, params: p }
        }
        kind::PUSH_PROMISE => {
            return Err(conn_err(
                ErrorCode::PROTOCOL_ERROR,
                "PUSH_PROMISE from a client",
            ));
        }
        kind::PING => {
            on_connection("PING on a stream")?;
            let Ok(data) = <[u8; 8]>::try_from(p) else {
                return Err(conn_err(ErrorCode::FRAME_SIZE_ERROR, "PING is not 8 bytes"));
            };
            Frame::Ping {
                ack: head.flags & flag::ACK != 0,
                data,
            }
        }
        kind::GOAWAY => {
            on_connection("GOAWAY on a stream")?;
            if p.len() < 8 {
                return Err(conn_err(
                    ErrorCode::FRAME_SIZE_ERROR,
                    "GOAWAY shorter than 8 bytes",
                ));
            }
            Frame::GoAway {
                last_stream: u32_at(p, 0) & MAX_WINDOW,
                code: ErrorCode(u32_at(p, 4)),
                debug: &p[8..],
            }
        }
        kind::WINDOW_UPDATE => {
            if p.len() != 4 {
                return Err(conn_err(
                    ErrorCode::FRAME_SIZE_ERROR,
                    "WINDOW_UPDATE is not 4 bytes",
                ));
            }
            let increment = u32_at(p, 0) & MAX_WINDOW;
            if increment == 0 {
                let why = "WINDOW_UPDATE of 0";
                return Err(if s == 0 {
                    conn_err(ErrorCode::PROTOCOL_ERROR, why)
                } else {
                    stream_err(s, ErrorCode::PROTOCOL_ERROR, why)
                });
            }
            Frame::WindowUpdate {
                stream: s,
                increment,
            }
        }
        kind::CONTINUATION => {
            on_stream("CONTINUATION on stream 0")?;
            Frame::Continuation {
                stream: s,
                end_headers: head.flags & flag::END_HEADERS != 0,
                block: p,
            }
        }
        other => Frame::Unknown {
            kind: other,
            stream: s,
        },
    })
}

/// A SETTINGS payload's parameters, in order (a trailing partial one is
/// left out: [`decode`] refuses those).
pub fn settings(params: &[u8]) -> impl Iterator<Item = (u16, u32)> + '_ {
    params
        .chunks_exact(6)
        .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32_at(c, 2)))
}

/// The values RFC 9113 §6.5.2 and RFC 8441 §3 allow; unknown identifiers
/// are ignored.
fn check_setting(id: u16, value: u32) -> Result<(), FrameError> {
    match id {
        setting::ENABLE_PUSH | setting::ENABLE_CONNECT_PROTOCOL if value > 1 => Err(conn_err(
            ErrorCode::PROTOCOL_ERROR,
            "a boolean setting other than 0 or 1",
        )),
        setting::INITIAL_WINDOW_SIZE if value > MAX_WINDOW => Err(conn_err(
            ErrorCode::FLOW_CONTROL_ERROR,
            "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
        )),
        setting::MAX_FRAME_SIZE
            if !(DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) =>
        {
            Err(conn_err(
                ErrorCode::PROTOCOL_ERROR,
                "SETTINGS_MAX_FRAME_SIZE outside 2^14..2^24-1",
            ))
        }
        _ => Ok(()),
    }
}

/// Append one frame's header and payload.
pub fn encode_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    Head {
        len: payload.len() as u32,
        kind,
        flags,
        stream,
    }
    .encode(out);
    out.extend_from_slice(payload);
}

/// Append a SETTINGS frame with `params`.
pub fn encode_settings(out: &mut Vec<u8>, params: &[(u16, u32)]) {
    let mut p = Vec::with_capacity(params.len() * 6);
    for (id, v) in params {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    encode_frame(out, kind::SETTINGS, 0, 0, &p);
}

/// Append a GOAWAY frame.
pub fn encode_goaway(out: &mut Vec<u8>, last_stream: u32, code: ErrorCode, debug: &[u8]) {
    let mut p = Vec::with_capacity(8 + debug.len());
    p.extend_from_slice(&(last_stream & MAX_WINDOW).to_be_bytes());
    p.extend_from_slice(&code.0.to_be_bytes());
    p.extend_from_slice(debug);
    encode_frame(out, kind::GOAWAY, 0, 0, &p);
}

/// Append a WINDOW_UPDATE frame.
pub fn encode_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    encode_frame(
        out,
        kind::WINDOW_UPDATE,
        0,
        stream,
        &(increment & MAX_WINDOW).to_be_bytes(),
    );
}

/// Append a header block as HEADERS and as many CONTINUATION frames as
/// `max_frame_size` (the peer's) needs.
pub fn encode_headers(
    out: &mut Vec<u8>,
    stream: u32,
    end_stream: bool,
    block: &[u8],
    max_frame_size: u32,
) {
    let max = max_frame_size.max(DEFAULT_MAX_FRAME_SIZE) as usize;
    let mut chunks = block.chunks(max).peekable();
    let first = chunks.next().unwrap_or(&[]);
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    if chunks.peek().is_none() {
        flags |= flag::END_HEADERS;
    }
    encode_frame(out, kind::HEADERS, flags, stream, first);
    while let Some(c) = chunks.next() {
        let f = if chunks.peek().is_none() {
            flag::END_HEADERS
        } else {
            0
        };
        encode_frame(out, kind::CONTINUATION, f, stream, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
        match decode(bytes, DEFAULT_MAX_FRAME_SIZE)? {
            Some((f, n)) => {
                assert_eq!(n, bytes.len());
                Ok(f)
            }
            None => panic!("incomplete"),
        }
    }

    fn raw(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_frame(&mut v, kind, flags, stream, payload);
        v
    }

    #[test]
    fn incomplete_until_whole_then_exactly_one_frame() {
        let mut two = raw(kind::PING, 0, 0, b"12345678");
        two.extend(raw(kind::PING, flag::ACK, 0, b"abcdefgh"));
        for cut in 0..17 {
            assert_eq!(
                decode(&two[..cut], DEFAULT_MAX_FRAME_SIZE),
                Ok(None),
                "{cut}"
            );
        }
        let (f, n) = decode(&two, DEFAULT_MAX_FRAME_SIZE).unwrap().unwrap();
        assert_eq!(n, 17);
        assert_eq!(
            f,
            Frame::Ping {
                ack: false,
                data: *b"12345678"
            }
        );
        let (f, _) = decode(&two[n..], DEFAULT_MAX_FRAME_SIZE).unwrap().unwrap();
        assert_eq!(
            f,
            Frame::Ping {
                ack: true,
                data: *b"abcdefgh"
            }
        );
    }

    #[test]
    fn padding_priority_and_flow_length() {
        // DATA, 3 bytes of padding: flow control counts all 9 bytes.
        let bytes = raw(
            kind::DATA,
            flag::PADDED | flag::END_STREAM,
            1,
            b"\x03hello\0\0\0",
        );
        let f = one(&bytes).unwrap();
        assert_eq!(
            f,
            Frame::Data {
                stream: 1,
                end_stream: true,
                data: b"hello",
                flow_len: 9
            }
        );
        let mut p = vec![2u8];
        p.extend_from_slice(&(0x8000_0003u32).to_be_bytes());
        p.push(15);
        p.extend_from_slice(b"blk\0\0");
        let bytes = raw(
            kind::HEADERS,
            flag::PADDED | flag::PRIORITY | flag::END_HEADERS,
            5,
            &p,
        );
        let f = one(&bytes).unwrap();
        assert_eq!(
            f,
            Frame::Headers {
                stream: 5,
                end_stream: false,
                end_headers: true,
                priority: Some(Priority {
                    depends_on: 3,
                    exclusive: true,
                    weight: 15
                }),
                block: b"blk",
            }
        );
        // Padding as long as what follows the pad length is allowed; longer is not.
        assert!(one(&raw(kind::DATA, flag::PADDED, 1, b"\x03abc")).is_ok());
        let e = one(&raw(kind::DATA, flag::PADDED, 1, b"\x04abc")).unwrap_err();
        assert_eq!((e.code, e.stream), (ErrorCode::PROTOCOL_ERROR, None));
    }

    #[test]
    fn each_rule_with_its_code_and_scope() {
        let c = |k, fl, s, p: &[u8]| {
            one(&raw(k, fl, s, p))
                .map(|_| ())
                .map_err(|e| (e.code, e.stream))
        };
        use ErrorCode as E;
        assert_eq!(c(kind::DATA, 0, 0, b"x"), Err((E::PROTOCOL_ERROR, None)));
        assert_eq!(c(kind::HEADERS, 0, 0, b"x"), Err((E::PROTOCOL_ERROR, None)));
        assert_eq!(
            c(kind::PRIORITY, 0, 3, b"1234"),
            Err((E::FRAME_SIZE_ERROR, Some(3)))
        );
        assert_eq!(
            c(kind::RST_STREAM, 0, 3, b"123"),
            Err((E::FRAME_SIZE_ERROR, None))
        );
        assert_eq!(
            c(kind::RST_STREAM, 0, 0, b"1234"),
            Err((E::PROTOCOL_ERROR, None))
        );
        assert_eq!(c(kind::SETTINGS, 0, 1, b""), Err((E::PROTOCOL_ERROR, None)));
        assert_eq!(
            c(kind::SETTINGS, flag::ACK, 0, b"\0\x01\0\0\0\0"),
            Err((E::FRAME_SIZE_ERROR, None))
        );
        assert_eq!(
            c(kind::SETTINGS, 0, 0, b"\0\x01\0\0\0"),
            Err((E::FRAME_SIZE_ERROR, None))
        );
        assert_eq!(
            c(kind::SETTINGS, 0, 0, b"\0\x02\0\0\0\x02"),
            Err((E::PROTOCOL_ERROR, None))
        );
        assert_eq!(
            c(kind::SETTINGS, 0, 0, b"\0\x04\x80\0\0\0"),
            Err((E::FLOW_CONTROL_ERROR, None))
        );
        assert_eq!(
            c(kind::SETTINGS, 0, 0, b"\0\x05\0\0\x3f\xff"),
            Err((E::PROTOCOL_ERROR, None))
        );
        assert_eq!(
            c(kind::SETTINGS, 0, 0, b"\0\x05\x01\0\0\0"),
            Err((E::PROTOCOL_ERROR, None))
        );
        assert_eq!(c(kind::SETTINGS, 0, 0, b"\0\x05\0\xff\xff\xff"), Ok(()));
        assert_eq!(
            c(kind::SETTINGS, 0, 0, b"\x00\x63\xff\xff\xff\xff"),
            Ok(()),
            "unknown ids pass"
        );
        assert_eq!(
            c(kind::PUSH_PROMISE, 0, 1, b"\0\0\0\x02"),
            Err((E::PROTOCOL_ERROR, None))
        );
        assert_eq!(
            c(kind::PING, 0, 1, b"12345678"),
            Err((E::PROTOCOL_ERROR, None))
        );
        assert_eq!(
            c(kind::PING, 0, 0, b"1234567"),
            Err((E::FRAME_SIZE_ERROR, None))
        );
        assert_eq!(
            c(kind::GOAWAY, 0, 0, b"1234567"),
            Err((E::FRAME_SIZE_ERROR, None))
        );
        assert_eq!(
            c(kind::WINDOW_UPDATE, 0, 0, b"\0\0\0\0"),
            Err((E::PROTOCOL_ERROR, None))
        );
        assert_eq!(
            c(kind::WINDOW_UPDATE, 0, 7, b"\0\0\0\0"),
            Err((E::PROTOCOL_ERROR, Some(7)))
        );
        assert_eq!(
            c(kind::WINDOW_UPDATE, 0, 7, b"\0\0\0"),
            Err((E::FRAME_SIZE_ERROR, None))
        );
        assert_eq!(
            c(kind::CONTINUATION, 0, 0, b""),
            Err((E::PROTOCOL_ERROR, None))
        );
        assert_eq!(
            c(0x42, 0xff, 9, b"anything"),
            Ok(()),
            "unknown types are ignored"
        );
        // Longer than the announced frame size, refused from the header alone.
        let mut big = Vec::new();
        Head {
            len: DEFAULT_MAX_FRAME_SIZE + 1,
            kind: kind::DATA,
            flags: 0,
            stream: 1,
        }
        .encode(&mut big);
        assert_eq!(
            decode(&big, DEFAULT_MAX_FRAME_SIZE).map_err(|e| e.code),
            Err(E::FRAME_SIZE_ERROR)
        );
        assert_eq!(decode(&big, DEFAULT_MAX_FRAME_SIZE + 1), Ok(None));
    }

    #[test]
    fn encoders_give_what_decode_reads() {
        let mut out = Vec::new();
        encode_settings(
            &mut out,
            &[
                (setting::ENABLE_CONNECT_PROTOCOL, 1),
                (setting::MAX_CONCURRENT_STREAMS, 100),
            ],
        );
        encode_goaway(&mut out, 7, ErrorCode::ENHANCE_YOUR_CALM, b"calm");
        encode_window_update(&mut out, 3, 65_535);
        let block: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        encode_headers(&mut out, 9, true, &block, DEFAULT_MAX_FRAME_SIZE);
        let mut rest = &out[..];
        let mut frames = Vec::new();
        while let Some((f, n)) = decode(rest, DEFAULT_MAX_FRAME_SIZE).unwrap() {
            frames.push(f);
            rest = &rest[n..];
        }
        assert!(rest.is_empty());
        let Frame::Settings { ack: false, params } = frames[0] else {
            panic!("{:?}", frames[0])
        };
        assert_eq!(
            settings(params).collect::<Vec<_>>(),
            [
                (setting::ENABLE_CONNECT_PROTOCOL, 1),
                (setting::MAX_CONCURRENT_STREAMS, 100)
            ]
        );
        assert_eq!(
            frames[1],
            Frame::GoAway {
                last_stream: 7,
                code: ErrorCode::ENHANCE_YOUR_CALM,
                debug: b"calm"
            }
        );
        assert_eq!(
            frames[2],
            Frame::WindowUpdate {
                stream: 3,
                increment: 65_535
            }
        );
        // 40,000 bytes: HEADERS and two CONTINUATIONs, END_HEADERS on the last.
        let mut joined = Vec::new();
        let mut ends = Vec::new();
        for f in &frames[3..] {
            match *f {
                Frame::Headers {
                    stream: 9,
                    end_stream: true,
                    end_headers,
                    block,
                    ..
                } => {
                    joined.extend_from_slice(block);
                    ends.push(end_headers);
                }
                Frame::Continuation {
                    stream: 9,
                    end_headers,
                    block,
                } => {
                    joined.extend_from_slice(block);
                    ends.push(end_headers);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(joined, block);
        assert_eq!(ends, [false, false, true]);
    }
}
