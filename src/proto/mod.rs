//! The protocols, sans-IO: each turns bytes into events and calls into
//! bytes. Nothing here touches a socket, a clock or a thread, so every part
//! can be tested with byte vectors and reused by the load generator in the
//! client role. The only `unsafe` is the SIMD in [`ws::mask`].
//!
//! - [`http`]: HTTP/1.1 request heads and typed responses (RFC 9110, 9112).
//! - [`ws`]: WebSocket (RFC 6455) and permessage-deflate (RFC 7692): the
//!   upgrade, frames, masking, UTF-8, close, messages, the connection.
//! - [`h2`]: HTTP/2 (RFC 9113): the frame codec and a server session.
//! - [`hpack`]: HPACK header blocks (RFC 7541) with a server's limits.
//! - [`proxy`]: the PROXY protocol v2 header.
//!
//! [`Limits`] are shared by HTTP/1.1 (the head) and WebSocket (frames and
//! messages).

pub mod h2;
pub mod hpack;
pub mod http;
pub mod proxy;
pub mod ws;

pub use ws::close::{CloseCode, CloseState};
pub use ws::conn::{Conn, Event, Role, SendError, Sender};
pub use ws::deflate::{DeflateConfig, DeflateParams};
pub use ws::frame::{FrameHeader, HeaderError, OpCode};
pub use ws::message::{Message, MessageKind};
pub use ws::ProtocolError;

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
