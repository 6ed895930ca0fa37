//! What an op's `user_data` says: its kind, the slot's generation and the
//! slot index, so a completion for a recycled slot is recognised as stale.

/// Operation kinds in `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum OpKind {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Cancel = 4,
    Wake = 5,
    Shutdown = 6,
}

/// `user_data` layout: kind (8 bits) | generation (24 bits) | index (32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct UserData {
    pub kind: OpKind,
    pub generation: u32,
    pub index: u32,
}

impl UserData {
    pub(super) fn encode(self) -> u64 {
        (self.kind as u64) << 56 | ((self.generation & 0xff_ffff) as u64) << 32 | self.index as u64
    }

    pub(super) fn decode(v: u64) -> Option<UserData> {
        let kind = match (v >> 56) as u8 {
            1 => OpKind::Accept,
            2 => OpKind::Recv,
            3 => OpKind::Send,
            4 => OpKind::Cancel,
            5 => OpKind::Wake,
            6 => OpKind::Shutdown,
            _ => return None,
        };
        Some(UserData {
            kind,
            generation: ((v >> 32) & 0xff_ffff) as u32,
            index: v as u32,
        })
    }

    /// Accept `k` of the `listener`-th listener (or its cancel); the
    /// generation field carries `k`.
    pub(super) fn accept(kind: OpKind, listener: usize, k: usize) -> u64 {
        UserData {
            kind,
            generation: k as u32,
            index: listener as u32,
        }
        .encode()
    }

    pub(super) fn listener(kind: OpKind) -> u64 {
        UserData {
            kind,
            generation: 0,
            index: 0,
        }
        .encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        for kind in [
            OpKind::Accept,
            OpKind::Recv,
            OpKind::Send,
            OpKind::Cancel,
            OpKind::Wake,
        ] {
            let ud = UserData {
                kind,
                generation: 0xab_cdef,
                index: u32::MAX,
            };
            assert_eq!(UserData::decode(ud.encode()), Some(ud));
        }
        assert_eq!(UserData::decode(0), None);
    }
}
