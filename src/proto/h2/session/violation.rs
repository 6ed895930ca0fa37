//! The rules a peer can break, as the session reports them.

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
