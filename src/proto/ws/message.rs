//! Message reassembly: the buffer that collects a fragmented (or partially
//! received, or compressed) message, its streaming UTF-8 check and its size
//! limit. Whole single-frame messages that arrive in one read never come here:
//! [`crate::proto::ws::conn`] hands them out straight from the read buffer.

use super::close::CloseCode;
use super::deflate::{InflateError, PerMessageDeflate};
use super::utf8::Utf8Validator;
use super::ProtocolError;

/// Text or binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// UTF-8 text (opcode 0x1).
    Text,
    /// Binary data (opcode 0x2).
    Binary,
}

/// An owned message, for code that keeps messages past the read call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Message {
    /// Its kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Text(_) => MessageKind::Text,
            Message::Binary(_) => MessageKind::Binary,
        }
    }

    /// Its payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }
}

/// A message being received frame by frame.
#[derive(Debug, Default)]
pub struct Reassembly {
    kind: Option<MessageKind>,
    compressed: bool,
    buf: Vec<u8>,
    utf8: Utf8Validator,
}

fn invalid_utf8() -> ProtocolError {
    ProtocolError::new(CloseCode::INVALID_PAYLOAD, "invalid UTF-8 in text message")
}

fn inflate_error(e: InflateError) -> ProtocolError {
    match e {
        InflateError::TooBig => ProtocolError::new(
            CloseCode::MESSAGE_TOO_BIG,
            "message too big after inflation",
        ),
        InflateError::Corrupt => {
            ProtocolError::new(CloseCode::INVALID_PAYLOAD, "corrupt compressed data")
        }
    }
}

impl Reassembly {
    /// Whether a message has started and not yet finished.
    pub fn in_progress(&self) -> bool {
        self.kind.is_some()
    }

    /// Bytes collected so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// No bytes collected.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Whether the message in progress is compressed.
    pub fn compressed(&self) -> bool {
        self.compressed
    }

    /// Start a message.
    pub fn start(&mut self, kind: MessageKind, compressed: bool) {
        self.kind = Some(kind);
        self.compressed = compressed;
        self.buf.clear();
        self.utf8.reset();
    }

    /// Add a chunk of (unmasked) payload; text is checked as it arrives.
    pub fn push(
        &mut self,
        chunk: &[u8],
        deflate: Option<&mut PerMessageDeflate>,
        max_message: usize,
    ) -> Result<(), ProtocolError> {
        let before = self.buf.len();
        match deflate.filter(|_| self.compressed) {
            Some(d) => {
                if let Err(e) = d.inflate(chunk, &mut self.buf, max_message) {
                    // Report the earliest fault: invalid text in what did
                    // inflate comes before corruption found further on, as
                    // it would if the frame had arrived in smaller pieces.
                    self.check_new(before)?;
                    return Err(inflate_error(e));
                }
            }
            None => {
                if before + chunk.len() > max_message {
                    return Err(too_big());
                }
                self.buf.extend_from_slice(chunk);
            }
        }
        self.check_new(before)
    }

    fn check_new(&mut self, from: usize) -> Result<(), ProtocolError> {
        if self.kind == Some(MessageKind::Text) {
            self.utf8
                .feed(&self.buf[from..])
                .map_err(|_| invalid_utf8())?;
        }
        Ok(())
    }

    /// The last frame ended. Returns the kind; the payload is in
    /// [`Reassembly::payload`] until the next [`Reassembly::start`] or
    /// [`Reassembly::clear`].
    pub fn finish(
        &mut self,
        deflate: Option<&mut PerMessageDeflate>,
        max_message: usize,
    ) -> Result<MessageKind, ProtocolError> {
        let kind = self.kind.take().unwrap_or(MessageKind::Binary);
        if let Some(d) = deflate.filter(|_| self.compressed) {
            let before = self.buf.len();
            self.kind = Some(kind);
            let inflated = d.finish_message(&mut self.buf, max_message);
            self.check_new(before)?;
            inflated.map_err(inflate_error)?;
            self.kind = None;
        }
        if kind == MessageKind::Text {
            self.utf8.finish().map_err(|_| invalid_utf8())?;
        }
        Ok(kind)
    }

    /// The payload of the finished message.
    pub fn payload(&self) -> &[u8] {
        &self.buf
    }

    /// Drop a delivered payload, keeping the allocation for the next one
    /// unless it grew past 16 KiB (idle connections should hold little).
    pub fn clear(&mut self) {
        if self.buf.capacity() > 16 * 1024 {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }
}

/// The 1009 error for a message past the size limit.
pub fn too_big() -> ProtocolError {
    ProtocolError::new(CloseCode::MESSAGE_TOO_BIG, "message exceeds the size limit")
}
