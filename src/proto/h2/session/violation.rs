//! The rules a peer can break, and the connection errors that report them.

use crate::proto::h2::ErrorCode;

/// Which rule a connection error or a refused stream broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// A protocol error (preface, frame, sequence, stream).
    Protocol,
    /// DATA past a window, a window past 2^31-1.
    FlowControl,
    /// An HPACK block that cannot be decoded.
    Compression,
    /// A header block past its size or frame limit.
    ContinuationFlood,
    /// Too many control frames in a tick.
    ControlFlood,
    /// Too many streams reset or refused in a tick.
    RapidReset,
    /// A header list past SETTINGS_MAX_HEADER_LIST_SIZE (answered 431).
    HeaderList,
    /// A stream past SETTINGS_MAX_CONCURRENT_STREAMS.
    StreamLimit,
    /// A request with fields RFC 9113 §8 forbids.
    Malformed,
}

impl Violation {
    /// Its name in snake case (for counters and logs).
    pub fn name(self) -> &'static str {
        match self {
            Violation::Protocol => "protocol",
            Violation::FlowControl => "flow_control",
            Violation::Compression => "compression",
            Violation::ContinuationFlood => "continuation_flood",
            Violation::ControlFlood => "control_flood",
            Violation::RapidReset => "rapid_reset",
            Violation::HeaderList => "header_list",
            Violation::StreamLimit => "stream_limit",
            Violation::Malformed => "malformed",
        }
    }
}

/// The peer broke the connection: GOAWAY with `code` is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnError {
    /// The code sent.
    pub code: ErrorCode,
    /// The rule broken.
    pub violation: Violation,
    /// What was wrong, also the GOAWAY's debug data.
    pub reason: &'static str,
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HTTP/2 connection error {:#x}: {}",
            self.code.0, self.reason
        )
    }
}

/// A connection error; its violation follows from the code.
pub(super) fn conn(code: ErrorCode, reason: &'static str) -> ConnError {
    let violation = match code {
        ErrorCode::FLOW_CONTROL_ERROR => Violation::FlowControl,
        ErrorCode::COMPRESSION_ERROR => Violation::Compression,
        _ => Violation::Protocol,
    };
    ConnError {
        code,
        violation,
        reason,
    }
}

/// A flood: ENHANCE_YOUR_CALM.
pub(super) fn flood(violation: Violation, reason: &'static str) -> ConnError {
    ConnError {
        code: ErrorCode::ENHANCE_YOUR_CALM,
        violation,
        reason,
    }
}
