//! Streams that closed, remembered for a while: RFC 9113 §5.1 answers a
//! late frame on a closed stream by how the stream closed, so a frame for a
//! stream this side reset (which the peer may have sent before it knew) is
//! told apart from one for a stream the peer reset or ended.

use std::collections::VecDeque;

/// Closed streams remembered; an older one counts as [`How::Ended`]. The
/// peer opens at most 128 streams at a time and resets are rate-limited,
/// so this covers every frame still in flight.
pub(super) const REMEMBERED: usize = 256;

/// How a stream closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum How {
    /// Both sides ended it (END_STREAM each way), or it is too old to be
    /// remembered: DATA on it is a stream error STREAM_CLOSED, HEADERS a
    /// connection error (§5.1: frames after END_STREAM), a WINDOW_UPDATE
    /// is ignored (it may have crossed this side's END_STREAM).
    Ended,
    /// This side reset it (RST_STREAM, or a refusal): the peer's frames on
    /// it may have been in flight, and are ignored (§5.1).
    Reset,
    /// The peer reset it: any frame but PRIORITY on it is a stream error
    /// STREAM_CLOSED (§5.1).
    PeerReset,
}

/// What a late frame on a closed stream gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Late {
    /// Nothing (but DATA still counts against the connection window).
    Ignore,
    /// RST_STREAM with STREAM_CLOSED.
    StreamClosed,
    /// A connection error STREAM_CLOSED (HEADERS after both ends: the peer
    /// opened a stream it had closed).
    ConnectionError,
}

/// The kinds of frame that can come late on a stream and get an answer
/// (a late RST_STREAM never does: RFC 9113 §5.4.2 forbids answering one
/// with another; nor does PRIORITY, allowed in every state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Data,
    Headers,
    WindowUpdate,
}

/// The last [`REMEMBERED`] closed streams and how each closed.
#[derive(Debug, Default)]
pub(super) struct Closed {
    ring: VecDeque<(u32, How)>,
}

impl Closed {
    pub(super) fn remember(&mut self, stream: u32, how: How) {
        if self.ring.len() == REMEMBERED {
            self.ring.pop_front();
        }
        self.ring.push_back((stream, how));
    }

    /// How `stream` closed: a stream the peer opened that is no longer
    /// open, remembered or not.
    pub(super) fn how(&self, stream: u32) -> How {
        self.ring
            .iter()
            .rev()
            .find(|(s, _)| *s == stream)
            .map_or(How::Ended, |&(_, h)| h)
    }

    /// What a frame of `kind` on the closed `stream` gets.
    pub(super) fn late(&self, stream: u32, kind: Kind) -> Late {
        late(self.how(stream), kind)
    }
}

/// The table of RFC 9113 §5.1 ("closed") and §6.1, §6.2, §6.9: how a
/// stream closed and the kind of the frame that came after.
pub(super) fn late(how: How, kind: Kind) -> Late {
    match (how, kind) {
        (How::Reset, _) => Late::Ignore,
        (How::Ended, Kind::WindowUpdate) => Late::Ignore,
        (How::Ended, Kind::Data) => Late::StreamClosed,
        (How::Ended, Kind::Headers) => Late::ConnectionError,
        (How::PeerReset, _) => Late::StreamClosed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_remembered_until_256_more_closed() {
        let mut c = Closed::default();
        c.remember(1, How::Reset);
        c.remember(3, How::PeerReset);
        assert_eq!(
            (c.how(1), c.how(3), c.how(5)),
            (How::Reset, How::PeerReset, How::Ended)
        );
        for s in 0..REMEMBERED as u32 - 1 {
            c.remember(101 + 2 * s, How::Ended);
        }
        assert_eq!(c.how(1), How::Ended, "forgotten: counted as ended");
        assert_eq!(c.how(3), How::PeerReset);
        assert_eq!(c.ring.len(), REMEMBERED);
    }
}
