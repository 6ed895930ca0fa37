//! WebSocket (RFC 6455) with permessage-deflate (RFC 7692), sans-IO.
//!
//! - [`handshake`]: the opening handshake, both sides.
//! - [`extension`]: the `Sec-WebSocket-Extensions` grammar.
//! - [`frame`]: the frame header codec.
//! - [`mask`]: payload masking, SIMD (the only `unsafe` of `proto`).
//! - [`utf8`]: streaming UTF-8 validation.
//! - [`close`]: close codes and payloads.
//! - [`message`]: reassembly of fragmented messages.
//! - [`deflate`]: permessage-deflate negotiation and compression.
//! - [`conn`]: the connection state machine tying them together.

pub mod close;
pub mod conn;
pub mod deflate;
pub mod extension;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod utf8;

use std::fmt;

use close::CloseCode;
use frame::HeaderError;

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
