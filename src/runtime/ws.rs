//! [`Ws`]: the handle an application gets for one WebSocket connection during
//! a callback, and the small types that go with it.
//!
//! It lives in the runtime because it borrows the loop's state (the
//! connection's output, its subscriber queue, the worker's topic table);
//! `server` re-exports it as part of the public API.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::metrics::Stats;
use crate::proto::{CloseCode, MessageKind, Sender};
use crate::pubsub::{
    Publication, SubscribeError, SubscribeOptions, Subscribed, Subscriber, Topics,
};

use super::clock::Epoch;
use super::identity::Identity;
use super::reply::Replies;

/// A connection's identity: worker, slot index and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    /// The worker (thread) that owns it.
    pub worker: u16,
    /// Its slot in the worker's table.
    pub index: u32,
    /// Which use of the slot.
    pub generation: u32,
}

/// Which of an application's handlers serves a WebSocket connection: chosen
/// by the route table when it accepts the upgrade, handed back with every
/// callback for that connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AppTag(pub u8);

/// A received message, borrowed for the duration of the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg<'a> {
    /// A text message (valid UTF-8).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl Msg<'_> {
    /// Its kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Msg::Text(_) => MessageKind::Text,
            Msg::Binary(_) => MessageKind::Binary,
        }
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Msg::Text(s) => s.as_bytes(),
            Msg::Binary(b) => b,
        }
    }
}

/// How [`Ws::send`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Queued with nothing unsent ahead of it: it leaves at the end of this
    /// loop turn, with everything else queued on the connection.
    Sent,
    /// Queued behind bytes the peer has not taken yet (back-pressure is
    /// building; `on_drain` fires when it clears).
    Buffered,
    /// Not queued: the connection's unsent bytes exceed the server's
    /// `max_buffered`, or it is closing.
    Refused,
}

/// The worker's pub/sub state a [`Ws`] reaches.
pub(crate) struct PubSub<'a> {
    pub sub: &'a mut Option<Box<Subscriber>>,
    pub topics: &'a mut Topics,
    /// Publishes made during the callback, delivered right after it.
    pub publishes: &'a mut Vec<Arc<Publication>>,
    pub stats: &'a Stats,
    /// The worker's clock for this callback (the runtime reads no clock
    /// below the worker).
    pub now: Instant,
    /// The worker's epoch, for the wall clock at `now` (computed only when
    /// asked for).
    pub epoch: &'a Epoch,
    /// What the callback does to the connection's token; the loop applies
    /// it after.
    pub token: &'a mut TokenChange,
}

/// A change a handler makes to its connection's token during a callback
/// ([`Ws::set_token_expiry`], [`Ws::set_identity`]), which the loop applies
/// once the callback returns (the handle borrows the connection's output,
/// not its session).
#[derive(Debug, Default)]
pub(crate) struct TokenChange {
    /// A new moment for the token to expire (`Some(None)`: never).
    pub expiry: Option<Option<SystemTime>>,
    /// A new identity.
    pub identity: Option<Box<Identity>>,
}

impl TokenChange {
    /// Nothing was changed (the common case, checked once per read).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.expiry.is_none() && self.identity.is_none()
    }
}

/// A connection handle, valid during a callback.
pub struct Ws<'a> {
    id: ConnId,
    tag: AppTag,
    sender: Sender<'a>,
    max_buffered: usize,
    pubsub: PubSub<'a>,
    /// Who its token names.
    identity: Option<&'a Identity>,
    /// During a read whose socket the driver lent: messages sent from the
    /// read buffer go out from there.
    replies: Option<&'a mut Replies>,
}

impl<'a> Ws<'a> {
    pub(crate) fn new(
        id: ConnId,
        tag: AppTag,
        sender: Sender<'a>,
        max_buffered: usize,
        pubsub: PubSub<'a>,
        identity: Option<&'a Identity>,
        replies: Option<&'a mut Replies>,
    ) -> Ws<'a> {
        Ws {
            id,
            tag,
            sender,
            max_buffered,
            pubsub,
            identity,
            replies,
        }
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The wall clock of this loop turn (what a token's expiry is compared
    /// with; the worker reads the clock once a turn).
    pub fn wall_clock(&self) -> SystemTime {
        self.pubsub.epoch.wall_at(self.pubsub.now)
    }

    /// Close the connection with 4001 at `at` (`None`: never), as when the
    /// token it was admitted with expires: for a token refreshed in band, or
    /// one first sent in band.
    pub fn set_token_expiry(&mut self, at: Option<SystemTime>) {
        self.pubsub.token.expiry = Some(at);
    }

    /// Who the connection's token names and the topics it may see: the
    /// token its upgrade presented, or the last one set with
    /// [`Ws::set_identity`] (the feed's in-band `auth`). `None` without a
    /// token (no `Config::jwt`, the shared token, or none sent yet).
    pub fn identity(&self) -> Option<&Identity> {
        self.pubsub.token.identity.as_deref().or(self.identity)
    }

    /// Make `identity` the connection's (a token sent in band, or
    /// refreshed): [`Ws::identity`] returns it from now on, and the
    /// connection is closed with 4001 at its expiry unless another comes.
    pub fn set_identity(&mut self, identity: Identity) {
        self.set_token_expiry(Some(identity.expires()));
        self.pubsub.token.identity = Some(Box::new(identity));
    }

    /// Which handler serves it (see [`AppTag`]).
    pub fn tag(&self) -> AppTag {
        self.tag
    }

    /// Bytes queued and not yet taken by the socket (its own frames and the
    /// publications queued for it).
    pub fn buffered(&self) -> usize {
        self.sender.buffered_output()
            + self.replies.as_ref().map_or(0, |r| r.bytes())
            + self.pubsub.sub.as_ref().map_or(0, |s| s.queued_bytes)
    }

    /// Queue a message. See [`SendStatus`].
    pub fn send(&mut self, kind: MessageKind, payload: &[u8]) -> SendStatus {
        let before = self.buffered();
        if before > self.max_buffered {
            return SendStatus::Refused;
        }
        let sent = match self.replies.as_deref_mut() {
            Some(r) => r.send(&mut self.sender, kind, payload),
            None => self.sender.send(kind, payload),
        };
        if sent.is_ok() {
            self.pubsub.stats.messages_out.add(1);
        }
        match sent {
            Ok(()) if before == 0 => SendStatus::Sent,
            Ok(()) => SendStatus::Buffered,
            Err(_) => SendStatus::Refused,
        }
    }

    /// Queue a text message.
    pub fn send_text(&mut self, text: &str) -> SendStatus {
        self.send(MessageKind::Text, text.as_bytes())
    }

    /// Queue a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> SendStatus {
        self.send(MessageKind::Binary, data)
    }

    /// Subscribe this connection to `topic`; `Ok(false)` if it already was.
    /// Publications from any worker or `Publisher` reach it from now on.
    pub fn subscribe(&mut self, topic: &str) -> Result<bool, SubscribeError> {
        if !self.sender.is_open() {
            return Err(SubscribeError::Closing);
        }
        self.pubsub.topics.subscribe(
            self.id.index,
            self.id.generation,
            self.pubsub.sub,
            topic,
            self.pubsub.stats,
        )
    }

    /// Subscribe as `opts` says. On a topic with history: from a position
    /// (the missed publications first, in order, then live ones, none twice
    /// and none missing at the seam, or `recovered: false` when they are no
    /// longer kept), with the newest publication per key first (snapshot),
    /// or with each publication's offset (meta). See [`SubscribeOptions`].
    pub fn subscribe_with(
        &mut self,
        topic: &str,
        opts: &SubscribeOptions,
    ) -> Result<Subscribed, SubscribeError> {
        if !self.sender.is_open() {
            return Err(SubscribeError::Closing);
        }
        self.pubsub.topics.subscribe_with(
            self.id.index,
            self.id.generation,
            self.pubsub.sub,
            topic,
            opts,
            false,
            self.pubsub.now,
            self.pubsub.stats,
        )
    }

    /// Stop receiving `topic`; returns whether it was subscribed. Publications
    /// already queued for this connection are still sent.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        self.pubsub.topics.unsubscribe(
            self.id.index,
            self.id.generation,
            self.pubsub.sub,
            topic,
            self.pubsub.stats,
        )
    }

    /// The topics this connection subscribes to.
    pub fn subscriptions(&self) -> impl Iterator<Item = &str> + '_ {
        self.pubsub
            .sub
            .iter()
            .flat_map(|s| s.topics.iter().map(|t| &**t))
    }

    /// Publish on `topic` to every subscriber on every worker (this
    /// connection too, if it subscribes). Framed once; handed to the other
    /// workers when the callback returns, and queued to this worker's
    /// subscribers with the rest of the loop turn's publications.
    pub fn publish(&mut self, topic: &str, kind: MessageKind, payload: &[u8]) {
        self.publish_keyed(topic, None, kind, payload);
    }

    /// Publish with a conflation key: under `Policy::Conflate` a slow
    /// subscriber keeps the newest publication per topic and key.
    pub fn publish_keyed(
        &mut self,
        topic: &str,
        key: Option<&str>,
        kind: MessageKind,
        payload: &[u8],
    ) {
        self.pubsub
            .publishes
            .push(Publication::new(topic, key, kind, payload));
    }

    /// Start the close handshake.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        let _ = self.sender.close(code, reason);
    }
}
