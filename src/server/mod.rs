//! What applications see: the [`Handler`] trait, the [`Ws`] handle, the
//! server [`Config`] and [`Server::builder`].
//!
//! A handler runs on its worker's thread (one handler per worker, built by the
//! factory given to [`ServerBuilder::serve`]), so it needs no `Send` and no
//! locks. Sending is a return value: [`Ws::send`] says whether the frame was
//! queued behind nothing, queued behind unsent bytes, or refused because the
//! connection's unsent bytes passed the limit.

#![forbid(unsafe_code)]

mod access;
mod api;
pub mod feed;
pub mod feedsim;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod jwt;
pub mod page;
mod routes;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::bridge::NatsBridge;
use crate::driver::Backend;
use crate::proto::ws::handshake::UpgradeRequest;
use crate::proto::{CloseCode, Limits};
pub use crate::runtime::app::{EngineConfig, Live};
use crate::runtime::app::{RequestCx, Settings};
use crate::runtime::tls::{Certificates, TlsSettings};
use crate::runtime::uplink::Uplink;
use crate::runtime::{self, Running};

pub use crate::bridge::{NatsAuth, NatsConfig};
use crate::pubsub::history::History;
pub use crate::pubsub::{
    HistoryConfig, Policy, Position, Publication, Retention, SubscribeError, SubscribeOptions,
    Subscribed,
};
pub use crate::runtime::tls::CertFiles;
pub use crate::runtime::ws::{ConnId, Msg, SendStatus, Ws};
pub use crate::runtime::{PublishError, Publisher, ReconfigureHandle};
pub use access::{BuiltinRoutes, SubscribeGuard};
pub use feed::Feed;
pub use jwt::{Identity, JwtConfig, JwtKeys, TokenError};

/// An upgrade request as a [`Handler`] sees it: the validated request
/// (its fields through `Deref`) and what the server knows of the connection.
pub struct Request<'a> {
    upgrade: &'a UpgradeRequest,
    cx: &'a RequestCx<'a>,
    caller: &'a access::Caller,
}

impl<'a> Request<'a> {
    fn new(
        upgrade: &'a UpgradeRequest,
        cx: &'a RequestCx<'a>,
        caller: &'a access::Caller,
    ) -> Request<'a> {
        Request {
            upgrade,
            cx,
            caller,
        }
    }

    /// Who the request's token names and what it may see, when the server
    /// verifies tokens ([`Config::jwt`]) and this one presented a valid one.
    pub fn identity(&self) -> Option<&Identity> {
        self.caller.identity()
    }

    /// Admitted to the feed without a token: it must send one
    /// (`{"op":"auth","token":"…"}`) within the handshake timeout, and may
    /// do nothing else before.
    pub fn awaits_token(&self) -> bool {
        matches!(self.caller, access::Caller::Pending)
    }

    /// The connection that will open if the upgrade is accepted (the same
    /// id its [`Ws::id`] and [`Handler::on_close`] carry).
    pub fn id(&self) -> ConnId {
        self.cx.id
    }

    /// The TCP peer, when the driver knows it.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.cx.peer_addr
    }

    /// The client's address: the TCP peer's, or, behind a trusted proxy
    /// ([`EngineConfig::trust_proxy`]), the one its PROXY v2 header or the last
    /// `X-Forwarded-For` entry names.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.cx.client_ip
    }
}

impl std::ops::Deref for Request<'_> {
    type Target = UpgradeRequest;

    fn deref(&self) -> &UpgradeRequest {
        self.upgrade
    }
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

/// Application callbacks, called on the worker thread that owns the
/// connection.
pub trait Handler: 'static {
    /// Decide on an upgrade request (auth, origin, subprotocol). Default:
    /// accept without a subprotocol.
    fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade {
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

/// Server settings: the engine's ([`EngineConfig`], whose fields read
/// through: `config.max_buffered`) and what the routes and the built-in
/// apps use.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listening, threads, the limits and timeouts every connection meets,
    /// the slow-consumer policies.
    pub engine: EngineConfig,
    /// Browser origins allowed to open WebSockets, read event streams and
    /// publish (`Origin` header; `*` for any). `None`: every origin.
    pub allowed_origins: Option<Vec<String>>,
    /// A shared secret every route but `/healthz` requires (`?token=` on
    /// the URL, or `Authorization: Bearer <token>`), with no limit on
    /// topics; with [`Config::jwt`] too, either is accepted.
    pub token: Option<String>,
    /// Verify signed tokens (JWT) on every route but `/healthz`: their
    /// claims name who the client is and the topics it may subscribe to and
    /// publish on. Load the keys with [`JwtKeys::load`] and keep the `Arc`
    /// to [`JwtKeys::reload`] them.
    pub jwt: Option<Arc<JwtKeys>>,
    /// A token `/metrics` requires, apart from the others (`None`: the
    /// `token` or a valid JWT when either is set, else none).
    pub metrics_token: Option<String>,
    /// Where the built-in feed app is served (`None`, the default:
    /// nowhere; the binary serves it on `/feed`).
    pub feed_path: Option<String>,
    /// Which built-in routes are served: none by default, all in the
    /// binary (see [`BuiltinRoutes`]).
    pub routes: BuiltinRoutes,
    /// The application's own say on subscriptions through the built-in
    /// routes (the feed, event streams), asked after a token's claims
    /// (`None`: the claims alone decide).
    pub subscribe_guard: Option<SubscribeGuard>,
    /// Let every `/feed` client and `POST /publish/<topic>` publish.
    pub allow_client_publish: bool,
    /// Let clients that present this token publish (`?token=` on the URL, or
    /// `Authorization: Bearer <token>`).
    pub publish_token: Option<String>,
    /// The server API under `/api/` (a topic's position and history, batch
    /// publishing, disconnecting a token's subject; docs/feed-protocol.md)
    /// for clients that send `Authorization: Bearer <api_token>`; off
    /// (404) without one.
    pub api_token: Option<String>,
    /// A TLS listener beside the plaintext one (`None`: plaintext only).
    pub tls: Option<TlsConfig>,
    /// Share pub/sub with other nodes through NATS (`None`: this node only).
    pub nats: Option<NatsConfig>,
    /// Topics that keep offsets and history, so a subscriber can recover
    /// from its last position (none by default).
    pub history: HistoryConfig,
    /// End each Server-Sent Events stream after this long, asking the
    /// client to reconnect a second later (`retry:`), so long-lived streams
    /// spread over nodes that restarted or were added; with history on the
    /// topic the reconnect recovers from `Last-Event-ID`. `None`: never.
    pub sse_lifetime: Option<Duration>,
    /// Close each WebSocket (1001) and end each event stream after this long,
    /// less a random tenth at most, so clients come back spread over time
    /// (and over nodes that restarted or were added). `None`: never.
    pub max_lifetime: Option<Duration>,
}

/// A TLS listener: where, and the certificates it presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Address of the TLS listener.
    pub listen: SocketAddr,
    /// Certificate chains and keys (PEM). The first is the default; with
    /// several, the client's SNI name picks the first whose certificate is
    /// valid for it.
    pub certs: Vec<CertFiles>,
}

impl Default for Config {
    /// The engine's defaults ([`EngineConfig::default`]); no built-in
    /// route and no feed app: only the handler's WebSockets and `/healthz`.
    fn default() -> Self {
        Config {
            engine: EngineConfig::default(),
            allowed_origins: None,
            token: None,
            jwt: None,
            metrics_token: None,
            feed_path: None,
            routes: BuiltinRoutes::NONE,
            subscribe_guard: None,
            allow_client_publish: false,
            publish_token: None,
            api_token: None,
            tls: None,
            nats: None,
            history: HistoryConfig::default(),
            sse_lifetime: None,
            max_lifetime: None,
        }
    }
}

impl std::ops::Deref for Config {
    type Target = EngineConfig;

    fn deref(&self) -> &EngineConfig {
        &self.engine
    }
}

impl std::ops::DerefMut for Config {
    fn deref_mut(&mut self) -> &mut EngineConfig {
        &mut self.engine
    }
}

/// A setting of [`Config`] out of its range, or two that contradict each
/// other: `field` names it (as in `Config`; the CLI's flag is the same
/// with dashes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting at fault.
    pub field: &'static str,
    /// What is wrong with it, and what would do.
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Check every rule the settings must keep, for library users and the
    /// CLI alike; [`ServerBuilder::serve`] refuses a config that breaks one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, reason: String| Err(ConfigError { field, reason });
        let l = &self.limits;
        if self.threads == 0 {
            return err("threads", "at least 1 worker thread".into());
        }
        for (field, v) in [
            ("max_message_size", l.max_message_size),
            ("max_frame_payload", l.max_frame_payload),
        ] {
            if !(1..=1 << 40).contains(&v) {
                return err(field, format!("{v} bytes: from 1 byte to 1 TiB"));
            }
        }
        if !(256..=1 << 20).contains(&l.max_handshake_bytes) {
            return err(
                "max_handshake_bytes",
                format!("{} bytes: from 256 to 1 MiB", l.max_handshake_bytes),
            );
        }
        for (field, d) in [
            ("handshake_timeout", self.handshake_timeout),
            ("ping_interval", self.ping_interval),
            ("idle_timeout", self.idle_timeout),
        ] {
            if d < Duration::from_secs(1) {
                return err(
                    field,
                    format!("{d:?}: at least 1 s (checked once a second)"),
                );
            }
        }
        if self.idle_timeout <= self.ping_interval {
            return err(
                "idle_timeout",
                format!(
                    "{} s must be longer than ping_interval ({} s): a silent connection is \
                     pinged first, and closed only if it stays silent until the idle timeout",
                    self.idle_timeout.as_secs(),
                    self.ping_interval.as_secs()
                ),
            );
        }
        let topics = self.topic_policies.keys().chain(self.history.topics.keys());
        if let Some(t) = topics.into_iter().find(|t| !crate::pubsub::valid_topic(t)) {
            return err(
                "topic_policies/history",
                format!("{t:?} is not a valid topic"),
            );
        }
        if let Some(p) = self.feed_path.as_deref().filter(|p| !p.starts_with('/')) {
            return err("feed_path", format!("{p:?} must start with '/'"));
        }
        for (field, token) in [
            ("token", &self.token),
            ("publish_token", &self.publish_token),
            ("metrics_token", &self.metrics_token),
            ("api_token", &self.api_token),
        ] {
            if token.as_deref().is_some_and(|t| {
                t.is_empty() || t.contains(|c: char| c.is_whitespace() || c.is_control())
            }) {
                return err(
                    field,
                    "empty or with spaces: it could not be sent as a bearer token".into(),
                );
            }
        }
        if self.tls.as_ref().is_some_and(|t| t.certs.is_empty()) {
            return err("tls", "at least one certificate and key".into());
        }
        if let Some(n) = &self.nats {
            if n.urls.is_empty() {
                return err("nats", "at least one server URL".into());
            }
            if let Err(e) = crate::bridge::check_prefix(&n.prefix) {
                return err("nats_prefix", e);
            }
            if !(1..=1 << 24).contains(&n.queue) {
                return err("nats_queue", format!("{}: from 1 to 16,777,216", n.queue));
            }
        }
        Ok(())
    }

    /// What the loop needs of it (the rest is the route table's); reads the
    /// TLS certificates.
    fn settings(&self) -> io::Result<Settings> {
        let tls = match &self.tls {
            Some(t) => {
                let certs = Arc::new(Certificates::load(t.certs.clone())?);
                Some(TlsSettings::new(t.listen, certs, self.http2)?)
            }
            None => None,
        };
        Ok(Settings {
            engine: self.engine.clone(),
            tls,
            uplink: None,
            history: self.history.is_enabled().then(|| {
                // With JetStream the broker numbers the topics with history.
                let relayed = self.nats.as_ref().is_some_and(|n| n.jetstream);
                Arc::new(History::with_source(self.history.clone(), relayed))
            }),
            sse_lifetime: self.sse_lifetime,
        })
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
    /// Serve the built-in routes and the feed app on `/feed` as the
    /// `ringwave` binary does (see [`BuiltinRoutes`]; each still behind
    /// the configured tokens).
    pub fn builtins(mut self) -> Self {
        self.config.routes = BuiltinRoutes::ALL;
        self.config.feed_path = Some("/feed".into());
        self
    }

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
    /// (see [`EngineConfig::trust_proxy`]).
    pub fn trust_proxy(mut self, on: bool) -> Self {
        self.config.trust_proxy = on;
        self
    }

    /// Serve TLS on `listen` too, with these certificates (see
    /// [`TlsConfig`]).
    pub fn tls(mut self, listen: SocketAddr, certs: Vec<CertFiles>) -> Self {
        self.config.tls = Some(TlsConfig { listen, certs });
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

    /// The application's own say on subscriptions through the built-in
    /// routes (see [`SubscribeGuard`]): `f(identity, topic)` returns
    /// `Err(reason)` to refuse.
    pub fn subscribe_guard(
        mut self,
        f: impl Fn(Option<&Identity>, &str) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.config.subscribe_guard = Some(SubscribeGuard::new(f));
        self
    }

    /// Share pub/sub with other nodes through NATS (see [`NatsConfig`]).
    pub fn nats(mut self, nats: NatsConfig) -> Self {
        self.config.nats = Some(nats);
        self
    }

    /// Bind the listeners and start the workers; each builds its handler with
    /// `factory`. Returns once every worker is serving (and, with NATS, once
    /// the bridge made its first attempt to connect).
    pub fn serve<H, F>(self, factory: F) -> io::Result<Running>
    where
        H: Handler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        self.config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut settings = self.config.settings()?;
        let bridge = match &self.config.nats {
            Some(n) => Some(NatsBridge::start(n.clone(), settings.history.clone())?),
            None => None,
        };
        settings.uplink = bridge.clone().map(|b| b as Arc<dyn Uplink>);
        let config = Arc::new(self.config);
        let running = runtime::start(settings, move || {
            routes::Routes::new(config.clone(), factory())
        });
        match (&running, &bridge) {
            (Ok(r), Some(b)) => b.attach(r.publisher()),
            (Err(_), Some(b)) => b.close(),
            _ => {}
        }
        running
    }
}
