//! A stream's state, RFC 9113 §5.1.

/// A stream's state (RFC 9113 §5.1) while it is in the map: a closed
/// stream leaves it, and a server never reserves one (no push).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Open,
    /// The peer sent END_STREAM: this side still answers.
    HalfClosedRemote,
    /// This side sent END_STREAM (or reset): the peer may still send.
    HalfClosedLocal,
}

impl State {
    /// The peer may still send DATA.
    pub(super) fn remote_open(self) -> bool {
        self != State::HalfClosedRemote
    }

    /// This side may still send.
    pub(super) fn local_open(self) -> bool {
        self != State::HalfClosedLocal
    }
}
