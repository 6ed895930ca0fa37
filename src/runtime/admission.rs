//! Who gets in: a new connection's slot with its handshake deadline and
//! TLS layer, the process-wide connection limit (503) and the limits per
//! client address (429, see `clients`).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

use crate::driver::Token;

use super::app::{App, Response};
use super::core::Core;
use super::session::head::{ProxyHead, RequestHead};
use super::session::{Session, Slot};
use super::tls::TlsLayer;

impl<A: App> Core<A> {
    /// A connection from listener `listener` (see [`super::TLS_LISTENER`]).
    pub(super) fn accept(&mut self, t: Token, peer: Option<SocketAddr>, listener: usize) {
        let generation = self.conns.new_generation();
        // The current tick began up to a second ago: one more tick, so the
        // handshake gets at least the whole timeout (a 1 s timeout could
        // otherwise fire a moment after the accept).
        let deadline = self.conns.now() + self.ticks.handshake + 1;
        let tls = match &self.cfg.tls {
            Some(tls) if listener == super::TLS_LISTENER => {
                TlsLayer::new(&tls.config).map(Box::new)
            }
            _ => None,
        };
        // PROXY headers are read on the plaintext listener only.
        let session = if self.cfg.trust_proxy && tls.is_none() {
            Session::Proxy(ProxyHead::new(peer))
        } else {
            Session::Head(Box::new(RequestHead::new(&self.cfg.limits, peer)))
        };
        let mut slot = Slot::new(generation, session, deadline);
        slot.tls = tls;
        self.conns.insert_conn(t.0, slot);
        self.stats.connections_open.add(1);
        self.stats.connections_total.add(1);
        // Behind a trusted proxy the client is the one its header names.
        if !self.cfg.trust_proxy {
            if let Some(peer) = peer {
                self.count_client(t.0, peer.ip());
            }
        }
        if let Some(shared) = self.peers.shared() {
            let open = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
            if self.cfg.max_connections > 0 && open > self.cfg.max_connections {
                let msg = format!(
                    "the server is at its connection limit ({}); try again later\n",
                    self.cfg.max_connections
                );
                self.respond(t.0, Response::text(503, msg), false);
            }
        }
    }

    /// Count a new connection against its client address's limits, or
    /// answer 429 (with `Retry-After`) past them.
    pub(super) fn count_client(&mut self, index: u32, ip: IpAddr) {
        let Some(shared) = self.peers.shared().filter(|s| s.clients.limited()) else {
            return;
        };
        let now = self.wall().duration_since(std::time::UNIX_EPOCH);
        match shared.clients.admit(ip, now.map_or(0, |d| d.as_secs())) {
            Ok(()) => {
                self.counted.insert(index, ip);
            }
            Err(refused) => {
                let r = Response::text(429, refused.reason()).header("Retry-After", "1");
                self.respond(index, r, false);
            }
        }
    }

    /// A connection counted against its client address has closed.
    pub(super) fn uncount_client(&mut self, index: u32) {
        if let Some(ip) = self.counted.remove(&index) {
            if let Some(shared) = self.peers.shared() {
                shared.clients.release(ip);
            }
        }
    }
}
