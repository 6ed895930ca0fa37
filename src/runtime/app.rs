//! What the loop asks of the application above it ([`App`]), what it answers
//! a request head with ([`Route`]), and the loop's own settings
//! ([`Settings`]).
//!
//! The loop knows sessions (request head, response, body, event stream,
//! WebSocket), not paths: which path is which is the route table's business
//! (`server::routes`), and so is every application, built-in or not.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use super::live::Live;
use crate::driver::Backend;
use crate::metrics::{self, WorkerView};
use crate::proto::http::HttpRequest;
pub use crate::proto::http::Response;
use crate::proto::ws::handshake::UpgradeRequest;
use crate::proto::{CloseCode, DeflateConfig, Limits};
use crate::pubsub::history::History;
use crate::pubsub::{Policy, Position};

use super::identity::Identity;
use super::mailbox::Control;
use super::uplink::Uplink;
use super::ws::{AppTag, ConnId, Msg, Ws};
use super::Shared;

/// The application as the loop sees it: a route table plus the callbacks of
/// the WebSocket connections it accepted. Called on the worker's thread.
pub trait App: 'static {
    /// A whole request head arrived: say which session serves it.
    fn route(&mut self, req: HttpRequest, cx: &RequestCx<'_>) -> Route;

    /// A WebSocket connection accepted with [`Route::Upgrade`] is open.
    fn on_open(&mut self, ws: &mut Ws<'_>);

    /// A whole message arrived.
    fn on_message(&mut self, ws: &mut Ws<'_>, msg: Msg<'_>);

    /// The connection's unsent bytes, which had passed the limit, were all
    /// written.
    fn on_drain(&mut self, ws: &mut Ws<'_>);

    /// The connection closed (`CloseCode::ABNORMAL` without a close frame).
    fn on_close(&mut self, id: ConnId, tag: AppTag, code: CloseCode, reason: &str);
}

/// What the loop knows of a request beyond its head.
pub struct RequestCx<'a> {
    /// The connection the request came on.
    pub id: ConnId,
    /// The TCP peer, when the driver knows it.
    pub peer_addr: Option<SocketAddr>,
    /// The client: the TCP peer's address, or behind a trusted proxy the one
    /// its PROXY v2 header or `X-Forwarded-For` names.
    pub client_ip: Option<IpAddr>,
    /// The server is shutting down.
    pub draining: bool,
    /// The wall clock as the worker read it this turn (what a token's
    /// expiry is compared with).
    pub now: SystemTime,
    pub(crate) shared: Option<&'a Shared>,
    /// This worker's settings (their limits go into /metrics).
    pub(crate) engine: &'a EngineConfig,
}

impl RequestCx<'_> {
    /// Close every WebSocket whose token names `sub`, on every worker (each
    /// at its next turn), with [`DISCONNECTED`]; returns how many workers
    /// were told (a worker whose mailbox is full is not).
    pub fn disconnect(&self, sub: &str) -> usize {
        let Some(shared) = self.shared else {
            return 0;
        };
        let sub: Arc<str> = Arc::from(sub);
        shared
            .mailboxes
            .iter()
            .filter(|m| m.send(Control::Disconnect(sub.clone())).is_ok())
            .count()
    }

    /// Subscribers of `topic` in this process, every worker's.
    pub fn subscribers(&self, topic: &str) -> u64 {
        self.shared.map_or(0, |s| {
            s.stats
                .iter()
                .map(|w| u64::from(w.subscribers_of(topic)))
                .sum()
        })
    }

    /// The topics' history, when the server keeps any.
    pub fn history(&self) -> Option<&History> {
        self.shared.and_then(|s| s.history.as_deref())
    }

    /// Every worker's counters in the Prometheus text format.
    pub fn metrics(&self) -> String {
        let Some(shared) = self.shared else {
            return String::new();
        };
        let views: Vec<WorkerView<'_>> = shared
            .stats
            .iter()
            .zip(shared.mailboxes.iter())
            .map(|(s, m)| WorkerView {
                stats: s,
                mailbox_depth: m.depth(),
            })
            .collect();
        let mut text = metrics::render(&views);
        let e = self.engine;
        let limits = [
            ("max_connections", e.max_connections as u64),
            ("max_message_bytes", e.limits.max_message_size as u64),
            ("max_frame_bytes", e.limits.max_frame_payload as u64),
            ("max_handshake_bytes", e.limits.max_handshake_bytes as u64),
            ("max_buffered_bytes", e.max_buffered as u64),
            ("max_message_rate", u64::from(e.max_message_rate)),
            (
                "max_connections_per_ip",
                u64::from(e.max_connections_per_ip),
            ),
            (
                "new_connections_per_ip",
                u64::from(e.new_connections_per_ip),
            ),
        ];
        text.push_str(&metrics::render_limits(&limits));
        if let Some(certs) = &shared.tls {
            let (ok, failed) = certs.reloads();
            text.push_str(&metrics::render_tls_reloads(ok, failed));
        }
        if let Some(u) = &shared.uplink {
            text.push_str(&u.metrics());
        }
        if let Some(h) = &shared.history {
            let (entries, keys) = h.sizes();
            text.push_str(&metrics::render_history(entries, keys));
        }
        text
    }
}

/// The close code of a WebSocket whose token expired, or that sent none in
/// time (in the range RFC 6455 §7.4.2 leaves to applications).
pub const TOKEN_EXPIRED: CloseCode = CloseCode(4001);

/// The close code of a WebSocket the server API disconnected
/// ([`RequestCx::disconnect`]).
pub const DISCONNECTED: CloseCode = CloseCode(4003);

/// The moments a WebSocket is closed or an event stream ends, by the wall
/// clock [`RequestCx::now`] reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ends {
    /// Its token expires (or, for a connection admitted without one, the
    /// moment by which it must have sent one): a WebSocket is closed with
    /// [`TOKEN_EXPIRED`]. A handler moves it with
    /// [`Ws::set_token_expiry`](super::ws::Ws::set_token_expiry).
    pub token: Option<SystemTime>,
    /// Its lifetime is over (`--max-lifetime`): a WebSocket is closed with
    /// 1001.
    pub lifetime: Option<SystemTime>,
}

/// Which session serves a request.
#[derive(Debug)]
pub enum Route {
    /// Answer with this whole response (counted as a refusal from 400 on),
    /// then close; its body is left out in answer to `HEAD`.
    Respond(Response),
    /// Accepted WebSocket upgrade: the loop negotiates extensions, answers
    /// 101 and calls [`App::on_open`]; `tag` comes back with every callback.
    Upgrade {
        /// The validated upgrade request.
        req: UpgradeRequest,
        /// The subprotocol chosen, if any.
        protocol: Option<String>,
        /// Which handler serves the connection.
        tag: AppTag,
        /// When it is closed, if ever.
        ends: Ends,
        /// Who its token names, for the handler ([`Ws::identity`]).
        identity: Option<Box<Identity>>,
    },
    /// Stream `topic` as Server-Sent Events.
    EventStream {
        /// The topic (valid).
        topic: String,
        /// Recover from this position (`Last-Event-ID`), on a topic with
        /// history.
        since: Option<Position>,
        /// When the stream ends, if ever (besides `--sse-lifetime`).
        ends: Ends,
    },
    /// Read a body of `len` bytes, publish it on `topic` (or the
    /// publications it holds, for a [`Batch`]), answer.
    Publish {
        /// The topic (valid).
        topic: String,
        /// The conflation key.
        key: Option<String>,
        /// `Content-Length`.
        len: usize,
        /// The client sent `Expect: 100-continue` (HTTP/1.1) and waits for
        /// `100 Continue` before the body (RFC 9110 §10.1.1).
        continue_first: bool,
        /// The body holds several publications (`None`: it is one).
        batch: Option<Batch>,
    },
}

/// A batch's publications (each one's bytes), or the answer to a body that
/// is not a batch.
pub type BatchParts = Result<Vec<Vec<u8>>, Response>;

/// A publish request whose body holds several publications: how to split
/// it and what to answer. The loop publishes the parts in order, each as
/// text when it is UTF-8.
#[derive(Debug, Clone, Copy)]
pub struct Batch {
    /// The body's publications, or the answer to a body that is not a
    /// batch (nothing is published).
    pub split: fn(&[u8]) -> BatchParts,
    /// The answer, given the topic, how many were published, and on a
    /// topic whose offsets this node gives, the first and the last
    /// position.
    pub answer: fn(&str, usize, Option<(Position, Position)>) -> Response,
}

/// The settings of the connection engine: where it listens, its threads,
/// the limits and timeouts every connection meets, the slow-consumer
/// policies. Written once, here: the server's `Config` holds it (and reads
/// through to its fields), and so do the loop's [`Settings`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// More addresses served as `listen` is (a host name's other
    /// addresses: `localhost` as 127.0.0.1 and ::1); a port 0 among them
    /// takes the port `listen` got. Empty by default.
    pub also_listen: Vec<SocketAddr>,
    /// Worker threads (one per core by default).
    pub threads: usize,
    /// I/O backend.
    pub backend: Backend,
    /// Pin each worker to one CPU.
    pub pin_threads: bool,
    /// Protocol limits.
    pub limits: Limits,
    /// permessage-deflate, if offered by clients and enabled here.
    pub deflate: Option<DeflateConfig>,
    /// Unsent bytes per connection past which sends are refused (and the
    /// connection is no longer read until they drain).
    pub max_buffered: usize,
    /// Messages a WebSocket client may send per second, on average, with
    /// bursts of as many (0: no limit); past it the connection is closed
    /// with 1008.
    pub max_message_rate: u32,
    /// Connections a client address may hold open at once (0: no limit);
    /// past it, 429 with `Retry-After`. The address is the TCP peer's, or
    /// behind a trusted proxy the PROXY v2 header's.
    pub max_connections_per_ip: u32,
    /// New connections a client address may open per second (0: no limit);
    /// past it, 429 with `Retry-After`.
    pub new_connections_per_ip: u32,
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
    /// Take the client's address from a PROXY protocol v2 header or
    /// `X-Forwarded-For` (only behind a proxy that sets them: clients could
    /// send either themselves).
    pub trust_proxy: bool,
    /// What to do with a subscriber whose unsent bytes pass `max_buffered`.
    pub slow_consumer: Policy,
    /// Per-topic overrides of `slow_consumer`.
    pub topic_policies: HashMap<String, Policy>,
    /// Serve HTTP/2 beside HTTP/1.1: by prior knowledge on the plaintext
    /// listener, by ALPN `h2` on the TLS one (default on).
    pub http2: bool,
}

impl Default for EngineConfig {
    /// 127.0.0.1:9001, a worker per CPU, each pinned; the limits and
    /// timeouts docs/options.md gives.
    fn default() -> Self {
        EngineConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9001)),
            also_listen: Vec::new(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            backend: Backend::Auto,
            pin_threads: true,
            limits: Limits::default(),
            deflate: None,
            max_buffered: 1 << 20,
            max_message_rate: 0,
            max_connections_per_ip: 0,
            new_connections_per_ip: 0,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            drain: Duration::ZERO,
            shutdown_grace: Duration::from_secs(3),
            max_connections: 0,
            trust_proxy: false,
            slow_consumer: Policy::Close,
            topic_policies: HashMap::new(),
            http2: true,
        }
    }
}

impl Default for Live {
    /// The live part of [`EngineConfig::default`].
    fn default() -> Live {
        Live::of(&EngineConfig::default())
    }
}

impl Live {
    /// The live part of `engine` (history untouched).
    pub fn of(engine: &EngineConfig) -> Live {
        Live {
            limits: engine.limits,
            max_buffered: engine.max_buffered,
            max_message_rate: engine.max_message_rate,
            max_connections: engine.max_connections,
            slow_consumer: engine.slow_consumer,
            topic_policies: engine.topic_policies.clone(),
            history: None,
        }
    }

    /// `engine` with these values in place of its own.
    pub(crate) fn apply_to(&self, engine: &mut EngineConfig) {
        engine.limits = self.limits;
        engine.max_buffered = self.max_buffered;
        engine.max_message_rate = self.max_message_rate;
        engine.max_connections = self.max_connections;
        engine.slow_consumer = self.slow_consumer;
        engine.topic_policies = self.topic_policies.clone();
    }
}

/// The loop's settings: the engine's, and what the server made of the
/// rest of its `Config` (the TLS listener with its certificates loaded,
/// the uplink, the shared history). Reads through to the engine's fields.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The engine's settings.
    pub engine: EngineConfig,
    /// A TLS listener beside the plaintext one, if any.
    pub tls: Option<super::tls::TlsSettings>,
    /// A bridge to other nodes' pub/sub (a broker), if any.
    pub uplink: Option<Arc<dyn Uplink>>,
    /// Offsets and history for the topics that keep it, shared by every
    /// worker and publisher.
    pub history: Option<Arc<History>>,
    /// End each event stream after this long (clients reconnect, from
    /// their `Last-Event-ID`).
    pub sse_lifetime: Option<Duration>,
}

impl Settings {
    /// The engine's settings with nothing else.
    pub fn new(engine: EngineConfig) -> Settings {
        Settings {
            engine,
            ..Settings::default()
        }
    }
}

impl std::ops::Deref for Settings {
    type Target = EngineConfig;

    fn deref(&self) -> &EngineConfig {
        &self.engine
    }
}
