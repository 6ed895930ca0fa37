//! What applications see: the [`Handler`] trait, the [`Ws`] handle, the
//! server [`Config`] and [`Server::builder`].
//!
//! A handler runs on its worker's thread (one handler per worker, built by the
//! factory given to [`ServerBuilder::serve`]), so it needs no `Send` and no
//! locks. Sending is a return value: [`Ws::send`] says whether the frame was
//! queued behind nothing, queued behind unsent bytes, or refused because the
//! connection's unsent bytes passed the limit.

#![forbid(unsafe_code)]

pub(crate) mod feed;
pub mod feedsim;
pub mod metrics;
pub mod page;
pub mod pubsub;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::driver::Backend;
use crate::proto::handshake::UpgradeRequest;
use crate::proto::{CloseCode, DeflateConfig, Limits, MessageKind, Sender};
use crate::runtime;
use metrics::Stats;
pub use pubsub::{Policy, Publication, PublishError, Publisher, SubscribeError};
use pubsub::{Subscriber, Topics};

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
    /// Not queued: the connection's unsent bytes exceed
    /// [`Config::max_buffered`], or it is closing.
    Refused,
}

/// The handler's answer to an upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upgrade {
    /// Accept, optionally with a subprotocol the client offered.
    Accept {
        /// The chosen subprotocol.
        protocol: Option<String>,
    },
    /// Refuse with an HTTP status and a reason (sent as the body).
    Reject {
        /// HTTP status, e.g. 401 or 403.
        status: u16,
        /// Why.
        reason: String,
    },
}

/// The worker-local pub/sub state a [`Ws`] reaches.
pub(crate) struct Local<'a> {
    pub generation: u32,
    pub sub: &'a mut Option<Box<Subscriber>>,
    pub topics: &'a mut Topics,
    /// Publishes made during the callback, delivered right after it.
    pub publishes: &'a mut Vec<Arc<Publication>>,
    pub stats: &'a Stats,
}

/// A connection handle, valid during a callback.
pub struct Ws<'a> {
    pub(crate) id: ConnId,
    pub(crate) sender: Sender<'a>,
    pub(crate) max_buffered: usize,
    pub(crate) local: Local<'a>,
}

impl<'a> Ws<'a> {
    pub(crate) fn new(
        id: ConnId,
        sender: Sender<'a>,
        max_buffered: usize,
        local: Local<'a>,
    ) -> Ws<'a> {
        Ws {
            id,
            sender,
            max_buffered,
            local,
        }
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Bytes queued and not yet taken by the socket (its own frames and the
    /// publications queued for it).
    pub fn buffered(&self) -> usize {
        self.sender.buffered_output() + self.local.sub.as_ref().map_or(0, |s| s.queued_bytes)
    }

    /// Queue a message. See [`SendStatus`].
    pub fn send(&mut self, kind: MessageKind, payload: &[u8]) -> SendStatus {
        let before = self.buffered();
        if before > self.max_buffered {
            return SendStatus::Refused;
        }
        let sent = self.sender.send(kind, payload);
        if sent.is_ok() {
            self.local.stats.messages_out.add(1);
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
    /// Publications from any worker or [`Publisher`] reach it from now on.
    pub fn subscribe(&mut self, topic: &str) -> Result<bool, SubscribeError> {
        if !self.sender.is_open() {
            return Err(SubscribeError::Closing);
        }
        self.local.topics.subscribe(
            self.id.index,
            self.local.generation,
            self.local.sub,
            topic,
            self.local.stats,
        )
    }

    /// Stop receiving `topic`; returns whether it was subscribed. Publications
    /// already queued for this connection are still sent.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        self.local.topics.unsubscribe(
            self.id.index,
            self.local.generation,
            self.local.sub,
            topic,
            self.local.stats,
        )
    }

    /// The topics this connection subscribes to.
    pub fn subscriptions(&self) -> impl Iterator<Item = &str> + '_ {
        self.local
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

    /// Publish with a conflation key: under [`Policy::Conflate`] a slow
    /// subscriber keeps the newest publication per topic and key.
    pub fn publish_keyed(
        &mut self,
        topic: &str,
        key: Option<&str>,
        kind: MessageKind,
        payload: &[u8],
    ) {
        self.local
            .publishes
            .push(Publication::new(topic, key, kind, payload));
    }

    /// Start the close handshake.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        let _ = self.sender.close(code, reason);
    }
}

/// Application callbacks, called on the worker thread that owns the
/// connection.
pub trait Handler: 'static {
    /// Decide on an upgrade request (auth, origin, subprotocol). Default:
    /// accept without a subprotocol.
    fn on_upgrade(&mut self, _req: &UpgradeRequest) -> Upgrade {
        Upgrade::Accept { protocol: None }
    }

    /// The connection is open.
    fn on_open(&mut self, _ws: &mut Ws<'_>) {}

    /// A whole message arrived.
    fn on_message(&mut self, ws: &mut Ws<'_>, msg: Msg<'_>);

    /// The connection's unsent bytes, which had passed the limit, were all
    /// written.
    fn on_drain(&mut self, _ws: &mut Ws<'_>) {}

    /// The connection closed: `code` is the peer's close code, or
    /// [`CloseCode::ABNORMAL`] (1006) if it went away without a close frame.
    fn on_close(&mut self, _id: ConnId, _code: CloseCode, _reason: &str) {}
}

/// The default application: echo every message as it came (text stays text,
/// binary stays binary).
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, ws: &mut Ws<'_>, msg: Msg<'_>) {
        if ws.send(msg.kind(), msg.as_bytes()) == SendStatus::Refused {
            // The peer is not reading its echoes: the slow-consumer policy
            // for the echo app is to close.
            ws.close(
                CloseCode::POLICY_VIOLATION,
                "slow consumer: send buffer limit exceeded",
            );
        }
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Worker threads (one per core by default).
    pub threads: usize,
    /// I/O backend.
    pub backend: Backend,
    /// Protocol limits.
    pub limits: Limits,
    /// permessage-deflate, if offered by clients and enabled here.
    pub deflate: Option<DeflateConfig>,
    /// Unsent bytes per connection past which sends are refused.
    pub max_buffered: usize,
    /// Time to complete the opening handshake.
    pub handshake_timeout: Duration,
    /// A connection silent this long is pinged (and again every interval).
    pub ping_interval: Duration,
    /// A connection that sends nothing (not even a pong) this long, after an
    /// unanswered ping, is closed with 1001.
    pub idle_timeout: Duration,
    /// On shutdown, the period over which connections are told to go (close
    /// 1001 at a random moment each), so clients do not reconnect in a storm.
    /// New upgrades get 503 and `/healthz` answers 503 meanwhile.
    pub drain: Duration,
    /// After the drain, how long to wait for close handshakes.
    pub shutdown_grace: Duration,
    /// Connections per process beyond which new ones get 503 (0: no limit
    /// but the descriptor limit).
    pub max_connections: usize,
    /// Browser origins allowed to open WebSockets (`Origin` header; `*` for
    /// any). `None`: every origin.
    pub allowed_origins: Option<Vec<String>>,
    /// Pin each worker to one CPU.
    pub pin_threads: bool,
    /// What to do with a subscriber whose unsent bytes pass `max_buffered`.
    pub slow_consumer: Policy,
    /// Per-topic overrides of `slow_consumer`.
    pub topic_policies: HashMap<String, Policy>,
    /// Where the built-in feed app is served (`None`: nowhere).
    pub feed_path: Option<String>,
    /// Let every `/feed` client and `POST /publish/<topic>` publish.
    pub allow_client_publish: bool,
    /// Let clients that present this token publish (`?token=` on the URL, or
    /// `Authorization: Bearer <token>`).
    pub publish_token: Option<String>,
    /// Take the client's address from a PROXY protocol v2 header or
    /// `X-Forwarded-For` (only behind a proxy that sets them: clients could
    /// send either themselves).
    pub trust_proxy: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9001)),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            backend: Backend::Auto,
            limits: Limits::default(),
            deflate: None,
            max_buffered: 1 << 20,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            drain: Duration::ZERO,
            shutdown_grace: Duration::from_secs(3),
            max_connections: 0,
            allowed_origins: None,
            pin_threads: true,
            slow_consumer: Policy::Close,
            topic_policies: HashMap::new(),
            feed_path: Some("/feed".to_string()),
            allow_client_publish: false,
            publish_token: None,
            trust_proxy: false,
        }
    }
}

/// Builds and runs a server.
#[derive(Debug, Default)]
pub struct ServerBuilder {
    config: Config,
}

/// Entry point: `Server::builder()`.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// A builder with the default [`Config`].
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

impl ServerBuilder {
    /// Replace the whole configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Listen address.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.config.listen = addr;
        self
    }

    /// Worker threads.
    pub fn threads(mut self, n: usize) -> Self {
        self.config.threads = n.max(1);
        self
    }

    /// I/O backend.
    pub fn backend(mut self, b: Backend) -> Self {
        self.config.backend = b;
        self
    }

    /// Take client addresses from PROXY v2 headers or `X-Forwarded-For`
    /// (see [`Config::trust_proxy`]).
    pub fn trust_proxy(mut self, on: bool) -> Self {
        self.config.trust_proxy = on;
        self
    }

    /// Protocol limits.
    pub fn limits(mut self, l: Limits) -> Self {
        self.config.limits = l;
        self
    }

    /// Slow-consumer policy for every topic without an override.
    pub fn slow_consumer(mut self, p: Policy) -> Self {
        self.config.slow_consumer = p;
        self
    }

    /// Slow-consumer policy for one topic.
    pub fn topic_policy(mut self, topic: &str, p: Policy) -> Self {
        self.config.topic_policies.insert(topic.to_string(), p);
        self
    }

    /// Bind the listeners and start the workers; each builds its handler with
    /// `factory`. Returns once every worker is serving.
    pub fn serve<H, F>(self, factory: F) -> io::Result<runtime::Running>
    where
        H: Handler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        runtime::start(self.config, factory)
    }
}
