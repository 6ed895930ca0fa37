//! Limits per client address, shared by every worker: connections open at
//! once (`--max-connections-per-ip`) and new connections per second
//! (`--new-connections-per-ip`, a token bucket refilled each second). A
//! client is its TCP peer's address, or the one its PROXY v2 header names
//! behind a trusted proxy.
//!
//! The table holds an entry per address with connections open or a bucket
//! not yet full again; the others are swept out once a second, so it is
//! bounded by the connections open and the addresses of the last second.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The address has its most connections open.
    Open(u32),
    /// The address opened its most connections this second.
    Rate(u32),
}

impl Refused {
    /// The answer's body.
    pub(crate) fn reason(self) -> String {
        match self {
            Refused::Open(n) => {
                format!(
                    "too many connections from your address (at most {n} at once); retry later\n"
                )
            }
            Refused::Rate(n) => {
                format!("too many new connections from your address (at most {n} a second); retry later\n")
            }
        }
    }
}

#[derive(Debug)]
struct Client {
    open: u32,
    /// New connections it may still open (`per_second` at most).
    tokens: u32,
    /// The second `tokens` was last topped up.
    at: u64,
}

#[derive(Debug, Default)]
struct Table {
    clients: HashMap<IpAddr, Client>,
    swept: u64,
}

/// The per-address limits and what each address holds.
#[derive(Debug)]
pub(crate) struct Clients {
    max_open: u32,
    per_second: u32,
    table: Mutex<Table>,
}

impl Clients {
    /// Limits of `max_open` connections at once and `per_second` new ones
    /// a second per address (0: none).
    pub(crate) fn new(max_open: u32, per_second: u32) -> Clients {
        Clients {
            max_open,
            per_second,
            table: Mutex::new(Table::default()),
        }
    }

    /// Whether any limit is set (else nothing is counted).
    pub(crate) fn limited(&self) -> bool {
        self.max_open > 0 || self.per_second > 0
    }

    /// A new connection from `ip` at second `now` (wall clock): counted,
    /// or refused.
    pub(crate) fn admit(&self, ip: IpAddr, now: u64) -> Result<(), Refused> {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if now != t.swept {
            t.swept = now;
            let full = self.per_second;
            t.clients
                .retain(|_, c| c.open > 0 || (full > 0 && c.tokens < full && c.at + 1 > now));
        }
        let c = t.clients.entry(ip).or_insert(Client {
            open: 0,
            tokens: self.per_second,
            at: now,
        });
        if self.max_open > 0 && c.open >= self.max_open {
            return Err(Refused::Open(self.max_open));
        }
        if self.per_second > 0 {
            if now > c.at {
                let secs = u32::try_from(now - c.at).unwrap_or(u32::MAX);
                c.tokens = c
                    .tokens
                    .saturating_add(self.per_second.saturating_mul(secs))
                    .min(self.per_second);
                c.at = now;
            }
            if c.tokens == 0 {
                return Err(Refused::Rate(self.per_second));
            }
            c.tokens -= 1;
        }
        c.open += 1;
        Ok(())
    }

    /// A connection `admit` counted has closed.
    pub(crate) fn release(&self, ip: IpAddr) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = t.clients.get_mut(&ip) {
            c.open = c.open.saturating_sub(1);
        }
    }

    /// Addresses in the table (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.lock().map_or(0, |t| t.clients.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn open_connections_are_limited_per_address() {
        let c = Clients::new(2, 0);
        assert_eq!(c.admit(ip(1), 0), Ok(()));
        assert_eq!(c.admit(ip(1), 0), Ok(()));
        assert_eq!(c.admit(ip(1), 0), Err(Refused::Open(2)));
        assert_eq!(c.admit(ip(2), 0), Ok(()), "another address");
        c.release(ip(1));
        assert_eq!(c.admit(ip(1), 5), Ok(()), "one closed: room again");
    }

    #[test]
    fn new_connections_are_limited_per_second_and_the_table_swept() {
        let c = Clients::new(0, 3);
        for _ in 0..3 {
            assert_eq!(c.admit(ip(1), 10), Ok(()));
            c.release(ip(1));
        }
        assert_eq!(c.admit(ip(1), 10), Err(Refused::Rate(3)));
        assert_eq!(c.admit(ip(1), 11), Ok(()), "the next second: three more");
        c.release(ip(1));
        assert_eq!(c.admit(ip(2), 11), Ok(()));
        c.release(ip(2));
        assert_eq!(c.len(), 2);
        // Two seconds on, both buckets are full again and nothing is open.
        assert_eq!(c.admit(ip(3), 13), Ok(()));
        assert_eq!(c.len(), 1, "swept: only the one open");
    }
}
