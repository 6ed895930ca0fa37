//! The WebSocket protocol, sans-IO: RFC 6455 and permessage-deflate (RFC 7692).
//!
//! Nothing here touches a socket, a clock or a thread: the types turn bytes
//! into events and calls into bytes, so every part can be tested with byte
//! vectors and reused by the load generator in the client role. The only
//! `unsafe` is the SIMD in [`mask`].
//!
//! - [`handshake`]: the HTTP/1.1 upgrade, both sides.
//! - [`frame`]: the frame header codec.
//! - [`mask`]: payload masking, SIMD.
//! - [`utf8`]: streaming UTF-8 validation.
//! - [`close`]: close codes and payloads.
//! - [`message`]: reassembly of fragmented messages.
//! - [`deflate`]: permessage-deflate negotiation and compression.
//! - [`conn`]: the connection state machine tying them together.
//! - [`h2`]: the HTTP/2 frame codec (the first layer of HTTP/2).
//! - [`hpack`]: HPACK header blocks with a server's limits.

pub mod close;
pub mod conn;
pub mod deflate;
pub mod frame;
pub mod h2;
pub mod handshake;
pub mod hpack;
pub mod mask;
pub mod message;
pub mod proxy;
pub mod utf8;

use std::fmt;

pub use close::{CloseCode, CloseState};
pub use conn::{Conn, Event, Role, SendError, Sender};
pub use deflate::{DeflateConfig, DeflateParams};
pub use frame::{FrameHeader, HeaderError, OpCode};
pub use message::{Message, MessageKind};

/// Size limits enforced by the protocol layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest handshake request head, in bytes (431 past it). Default 8 KiB.
    pub max_handshake_bytes: usize,
    /// Largest payload of one frame (close 1009 past it). Default 16 MiB;
    /// at most 4 GiB - 1 (a larger value counts as that).
    pub max_frame_payload: usize,
    /// Largest message, after decompression (close 1009 past it). Default
    /// 16 MiB; at most 4 GiB - 1 (a larger value counts as that).
    pub max_message_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_handshake_bytes: 8 * 1024,
            max_frame_payload: 16 << 20,
            max_message_size: 16 << 20,
        }
    }
}

/// A protocol violation by the peer: the connection is failed with `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    /// The close code sent to the peer (1002, 1007, 1009, ...).
    pub code: CloseCode,
    /// What the peer did wrong; also sent as the close reason.
    pub reason: &'static str,
}

impl ProtocolError {
    /// An error closing with `code`.
    pub fn new(code: CloseCode, reason: &'static str) -> Self {
        ProtocolError { code, reason }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "protocol error (close {}): {}", self.code, self.reason)
    }
}

impl std::error::Error for ProtocolError {}

impl From<HeaderError> for ProtocolError {
    fn from(e: HeaderError) -> Self {
        let reason = match e {
            HeaderError::ReservedOpcode(_) => "reserved opcode",
            HeaderError::FragmentedControl => "fragmented control frame",
            HeaderError::ControlTooLong(_) => "control frame payload over 125 bytes",
            HeaderError::LengthTopBit => "64-bit payload length with the top bit set",
        };
        ProtocolError::new(CloseCode::PROTOCOL_ERROR, reason)
    }
}
