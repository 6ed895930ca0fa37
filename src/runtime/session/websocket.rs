//! The WebSocket session: the sans-IO protocol state, which handler serves
//! it, how it closed, and keep-alive (ping after silence, 1001 after an
//! unanswered ping).

use crate::proto::{CloseCode, CloseState, Conn};

use super::super::identity::Identity;

use super::super::app::TOKEN_EXPIRED;
use super::super::ws::AppTag;
use super::Ticks;

/// An upgraded connection.
pub(in crate::runtime) struct WebSocket {
    pub conn: Conn,
    pub tag: AppTag,
    /// How it closed, for `on_close` and the close-code counters.
    pub close_code: CloseCode,
    /// Its close reason and its identity, which few connections have.
    pub rare: Option<Box<Rare>>,
    /// Tick of the peer's last traffic.
    last_seen: u32,
    /// Pinged, with no traffic since.
    pinged: bool,
    /// What it may still send (`max_message_rate`).
    pub allowance: Allowance,
}

/// What few WebSockets have, behind one pointer: 8 bytes in every slot
/// rather than the 32 or more of these fields. Keeping the `WebSocket`
/// small leaves room in a 112-byte `Session` for a plain tag (`repr(u8)`):
/// a tag stored in a niche of the largest variant instead costs a few
/// instructions at every `match` on the session, about 60 per echoed
/// message in all (callgrind, `scripts/callgrind-echo.sh`).
#[derive(Debug, Default)]
pub(in crate::runtime) struct Rare {
    /// The reason its close carried (the peer's, or the protocol error's).
    pub close_reason: String,
    /// Who its token names, for the handler (`Ws::identity`).
    pub identity: Option<Box<Identity>>,
    /// The tick its token expires at (closed with 4001), 0: never.
    token_ends: u32,
    /// The tick its lifetime is over at (closed with 1001), 0: never.
    life_ends: u32,
}

impl Rare {
    /// The identity in `rare`, if any (a function of the field, so that
    /// it borrows only the field).
    pub(in crate::runtime) fn identity(rare: &Option<Box<Rare>>) -> Option<&Identity> {
        rare.as_deref().and_then(|r| r.identity.as_deref())
    }

    /// The `sub` of the identity in `rare`, for the log ("-" without one).
    pub(in crate::runtime) fn subject(rare: &Option<Box<Rare>>) -> &str {
        Self::identity(rare)
            .and_then(Identity::subject)
            .unwrap_or("-")
    }

    /// The box to write to: the one `rare` holds, or a new one when the
    /// value to write is not the empty default (`needed`); `None` when
    /// there is none and none is needed (nothing to write).
    fn edit(rare: &mut Option<Box<Rare>>, needed: bool) -> Option<&mut Rare> {
        if needed {
            Some(rare.get_or_insert_with(Box::default))
        } else {
            rare.as_deref_mut()
        }
    }

    /// Keep in `rare` the reason a close carried (nothing, for an empty
    /// one).
    pub(in crate::runtime) fn set_close_reason(rare: &mut Option<Box<Rare>>, reason: &str) {
        if let Some(r) = Rare::edit(rare, !reason.is_empty()) {
            r.close_reason.clear();
            r.close_reason.push_str(reason);
        }
    }

    /// Give `rare` an identity (`None` takes it away).
    pub(in crate::runtime) fn set_identity(
        rare: &mut Option<Box<Rare>>,
        id: Option<Box<Identity>>,
    ) {
        if let Some(r) = Rare::edit(rare, id.is_some()) {
            r.identity = id;
        }
    }
}

/// A token bucket of messages, refilled each tick.
#[derive(Debug, Clone, Copy)]
pub(in crate::runtime) struct Allowance {
    /// Messages it may still send.
    left: u32,
    /// The tick `left` was last topped up at.
    at: u32,
}

impl Allowance {
    /// Take one message at tick `now`: `rate` a second, at most `rate` at
    /// once; false when it is spent. A `rate` of 0 is no limit.
    #[inline]
    pub(in crate::runtime) fn take(&mut self, now: u64, rate: u32) -> bool {
        if rate == 0 {
            return true;
        }
        let now = now as u32;
        if now != self.at {
            let ticks = now.wrapping_sub(self.at);
            self.left = self.left.saturating_add(rate.saturating_mul(ticks));
            self.at = now;
        }
        self.left = self.left.min(rate);
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        true
    }
}

/// What a WebSocket's deadline means when it comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::runtime) enum Expiry {
    /// Come back at this tick.
    Again(u64),
    /// Its lifetime (`--max-lifetime`) is over: closing with 1001; come
    /// back at this tick.
    LifeOver(u64),
    /// Close the transport now (the close handshake itself timed out).
    Close,
}

impl WebSocket {
    pub(in crate::runtime) fn new(conn: Conn, tag: AppTag, now: u64) -> WebSocket {
        WebSocket {
            conn,
            tag,
            close_code: CloseCode::ABNORMAL,
            rare: None,
            last_seen: now as u32,
            pinged: false,
            // Full at the start: a burst of `rate` in the first tick.
            allowance: Allowance {
                left: u32::MAX,
                at: now as u32,
            },
        }
    }

    /// Close it at these ticks: when its token expires, when its lifetime
    /// is over (`None`: never).
    pub(in crate::runtime) fn ending(mut self, token: Option<u64>, life: Option<u64>) -> WebSocket {
        self.set_token_end(token);
        if let Some(r) = Rare::edit(&mut self.rare, life.is_some()) {
            r.life_ends = life.map_or(0, tick32);
        }
        self
    }

    /// Move the tick its token expires at (a refreshed token).
    pub(in crate::runtime) fn set_token_end(&mut self, token: Option<u64>) {
        if let Some(r) = Rare::edit(&mut self.rare, token.is_some()) {
            r.token_ends = token.map_or(0, tick32);
        }
    }

    /// The ticks its token and its life end at (0: never).
    fn ends(&self) -> (u32, u32) {
        self.rare
            .as_deref()
            .map_or((0, 0), |r| (r.token_ends, r.life_ends))
    }

    /// `deadline`, or the end of its life if that comes first.
    #[inline]
    pub(in crate::runtime) fn cap(&self, deadline: u64) -> u64 {
        let (token, life) = self.ends();
        if token | life == 0 {
            return deadline;
        }
        [token, life]
            .into_iter()
            .filter(|&e| e != 0)
            .fold(deadline, |d, e| d.min(e as u64))
    }

    /// The peer sent something at tick `now`.
    pub(in crate::runtime) fn heard(&mut self, now: u64) {
        self.last_seen = now as u32;
        self.pinged = false;
    }

    /// The deadline came at tick `now`: ping a silent peer (again every ping
    /// interval), close with 1001 one that stayed silent for the idle
    /// timeout after a ping, and give up on a close handshake that did not
    /// finish.
    pub(in crate::runtime) fn expire(&mut self, now: u64, ticks: &Ticks) -> Expiry {
        if self.conn.close_state() != CloseState::Open {
            return Expiry::Close;
        }
        let due = |e: u32| e != 0 && now >= e as u64;
        let (token, life) = self.ends();
        if due(token) {
            self.close(TOKEN_EXPIRED, "no valid token");
            return Expiry::Again(now + ticks.handshake);
        }
        if due(life) {
            self.close(CloseCode::GOING_AWAY, "connection lifetime reached");
            return Expiry::LifeOver(now + ticks.handshake);
        }
        let close_at = self.last_seen as u64 + ticks.idle;
        if !self.pinged || now < close_at {
            let _ = self.conn.ping(b"ringwave");
            self.pinged = true;
            // Silent for a ping interval: give back what its receive state
            // holds.
            self.conn.release_idle();
            return Expiry::Again(self.cap((now + ticks.ping).min(close_at)).max(now + 1));
        }
        let _ = self.conn.close(CloseCode::GOING_AWAY, "idle timeout");
        self.close_code = CloseCode::GOING_AWAY;
        Expiry::Again(now + ticks.handshake)
    }

    /// Start the close handshake with `code` (the server is going away, or
    /// the peer is a slow consumer).
    pub(in crate::runtime) fn close(&mut self, code: CloseCode, reason: &str) {
        if self.conn.close(code, reason).is_ok() {
            self.close_code = code;
        }
    }

    /// The protocol failed: close with the error's code.
    pub(in crate::runtime) fn failed(&mut self, code: CloseCode, reason: &str) {
        self.close_code = code;
        Rare::set_close_reason(&mut self.rare, reason);
    }

    /// The reason its close carried ("" when none did).
    pub(in crate::runtime) fn close_reason(&self) -> &str {
        self.rare.as_deref().map_or("", |r| &r.close_reason)
    }
}

/// A tick as a `u32` (a later one counts as the last).
fn tick32(t: u64) -> u32 {
    u32::try_from(t).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::Allowance;

    #[test]
    fn the_allowance_is_the_rate_a_tick_never_more_at_once() {
        let mut a = Allowance {
            left: u32::MAX,
            at: 10,
        };
        let taken = |a: &mut Allowance, tick, n| (0..n).filter(|_| a.take(tick, 3)).count();
        assert_eq!(taken(&mut a, 10, 5), 3, "a burst of the rate at the start");
        assert_eq!(taken(&mut a, 10, 1), 0);
        assert_eq!(taken(&mut a, 11, 5), 3, "the rate again the next tick");
        assert_eq!(
            taken(&mut a, 20, 10),
            3,
            "an idle spell saves no more than the rate"
        );
        assert!((0..100).all(|_| a.take(20, 0)), "0: no limit");
    }
}
