//! Pub/sub across machines through NATS: an [`Uplink`] that sends every
//! publication made on this node to NATS once, and subscribes in NATS to
//! each topic while the node has local subscribers of it.
//!
//! The bridge runs on a thread of its own with a current-thread tokio
//! runtime and the `async-nats` client; the workers never wait for it. What
//! they hand it goes through a bounded queue (a full one drops and counts),
//! and what it brings in reaches the workers through their mailboxes, as a
//! `Publisher`'s publications do ([`Publisher::local`], which does not hand
//! them back to the bridge).
//!
//! - Local subscribers get this node's own publications directly, as
//!   without a bridge; the NATS connection is made with `no_echo`, so NATS
//!   does not send them back and nobody gets one twice.
//! - A topic is subscribed in NATS when its first local subscriber comes
//!   (on any worker) and unsubscribed [`UNSUBSCRIBE_AFTER`] after its last
//!   one left, unless one came back meanwhile.
//! - Message kind and conflation key travel in the `Ringwave-Kind` (absent:
//!   text) and `Ringwave-Key` headers; topics become subject tokens as
//!   `subject` says.
//! - Delivery across nodes is at most once: a publication made while NATS is
//!   unreachable, or that finds the queue full, is dropped and counted;
//!   publications in flight when a connection breaks are lost uncounted.
//! - With [`NatsConfig::jetstream`], topics with history are numbered by a
//!   JetStream stream each instead (`jetstream`): this node's
//!   publications on them go to the stream and come back like other
//!   nodes', so every node has one sequence and one history.

mod headers;
mod jetstream;
mod nats;
mod subject;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::pubsub::history::History;
use crate::pubsub::Publication;
use crate::runtime::uplink::Uplink;
use crate::runtime::Publisher;

pub use subject::check_prefix;

/// How long a topic's NATS subscription outlives its last local subscriber
/// (so a client that reconnects at once does not cost an unsubscribe and a
/// subscribe).
pub const UNSUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// Publications waiting for the bridge thread, by default; beyond it they
/// are dropped and counted.
pub const DEFAULT_QUEUE: usize = 65_536;

/// The longest wait between two attempts to reach NATS.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);

/// How a node authenticates to NATS.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum NatsAuth {
    /// No credentials.
    #[default]
    None,
    /// A token (`authorization { token: ... }` in nats-server).
    Token(String),
    /// A user and password.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
}

impl fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets stay out of logs.
        match self {
            NatsAuth::None => f.write_str("None"),
            NatsAuth::Token(_) => f.write_str("Token(..)"),
            NatsAuth::UserPassword { user, .. } => {
                write!(f, "UserPassword {{ user: {user:?}, .. }}")
            }
        }
    }
}

/// Where NATS is and how to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// Server URLs (`nats://host:port`, or `host:port`), tried in turn.
    pub urls: Vec<String>,
    /// Prepended to every subject: empty, or tokens each ending in `.`.
    pub prefix: String,
    /// Credentials.
    pub auth: NatsAuth,
    /// Publications that may wait for the bridge thread.
    pub queue: usize,
    /// Topics with history keep it in NATS JetStream (a stream per topic),
    /// which numbers their publications: one sequence, one epoch and one
    /// history for every node, kept across restarts of the nodes.
    pub jetstream: bool,
}

impl Default for NatsConfig {
    /// `nats://127.0.0.1:4222`, prefix `ringwave.`, no credentials.
    fn default() -> Self {
        NatsConfig {
            urls: vec!["nats://127.0.0.1:4222".to_string()],
            prefix: "ringwave.".to_string(),
            auth: NatsAuth::None,
            queue: DEFAULT_QUEUE,
            jetstream: false,
        }
    }
}

/// The bridge's counts, written by the workers and the bridge thread.
#[derive(Debug, Default)]
struct Counts {
    connected: AtomicBool,
    /// Connected once at least (a later connect is a reconnect).
    ever_connected: AtomicBool,
    published: AtomicU64,
    received: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_disconnected: AtomicU64,
    /// Refused by the client (a payload above the server's max_payload).
    dropped_refused: AtomicU64,
    /// Received but not deliverable (a text payload that is not UTF-8).
    received_invalid: AtomicU64,
    reconnects: AtomicU64,
    subjects: AtomicU64,
}

fn add(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What the workers send the bridge thread besides publications.
#[derive(Debug)]
enum Interest {
    Topic(Arc<str>, bool),
    Close,
}

/// The NATS bridge: the workers' side of it.
pub struct NatsBridge {
    out: tokio::sync::mpsc::Sender<Arc<Publication>>,
    interest: tokio::sync::mpsc::UnboundedSender<Interest>,
    counts: Arc<Counts>,
    local: Arc<OnceLock<Publisher>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for NatsBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsBridge")
            .field("connected", &self.counts.connected.load(Ordering::Relaxed))
            .finish()
    }
}

impl NatsBridge {
    /// Start the bridge thread and make the first attempt to connect.
    /// Fails on a bad configuration or credentials NATS refused; NATS
    /// unreachable is not an error: the server runs, local pub/sub works,
    /// and the bridge keeps trying (logging when it connects).
    pub fn start(cfg: NatsConfig, history: Option<Arc<History>>) -> io::Result<Arc<NatsBridge>> {
        check_prefix(&cfg.prefix).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if cfg.urls.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no NATS server URL given",
            ));
        }
        let (out, out_rx) = tokio::sync::mpsc::channel(cfg.queue.max(1));
        let (interest, interest_rx) = tokio::sync::mpsc::unbounded_channel();
        let counts = Arc::new(Counts::default());
        let local = Arc::new(OnceLock::new());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let counts = counts.clone();
            let local = local.clone();
            std::thread::Builder::new()
                .name("ringwave-nats".to_string())
                .spawn(move || {
                    nats::run(cfg, history, counts, out_rx, interest_rx, local, ready_tx)
                })?
        };
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => return Err(io::Error::other("the NATS bridge thread exited")),
        }
        Ok(Arc::new(NatsBridge {
            out,
            interest,
            counts,
            local,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Where publications from NATS go: this node's workers, without the
    /// bridge. Set once the workers run.
    pub fn attach(&self, local: Publisher) {
        let _ = self.local.set(local.local());
    }

    /// Whether the bridge holds a connection to NATS now.
    pub fn connected(&self) -> bool {
        self.counts.connected.load(Ordering::Relaxed)
    }
}

impl Uplink for NatsBridge {
    fn publish(&self, p: &Arc<Publication>) {
        if !self.counts.connected.load(Ordering::Relaxed) {
            add(&self.counts.dropped_disconnected);
            return;
        }
        if let Err(e) = self.out.try_send(p.clone()) {
            if matches!(e, tokio::sync::mpsc::error::TrySendError::Full(_)) {
                add(&self.counts.dropped_queue_full);
            }
        }
    }

    fn interest(&self, topic: &str, subscribed: bool) {
        let _ = self
            .interest
            .send(Interest::Topic(Arc::from(topic), subscribed));
    }

    fn metrics(&self) -> String {
        let c = &self.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "# HELP ringwave_nats_connected 1 while the NATS bridge holds a connection.\n\
             # TYPE ringwave_nats_connected gauge\n\
             ringwave_nats_connected {}\n\
             # HELP ringwave_nats_published_total Publications made on this node and handed to the NATS client.\n\
             # TYPE ringwave_nats_published_total counter\n\
             ringwave_nats_published_total {}\n\
             # HELP ringwave_nats_received_total Publications from other nodes received through NATS and handed to the workers.\n\
             # TYPE ringwave_nats_received_total counter\n\
             ringwave_nats_received_total {}\n\
             # HELP ringwave_nats_dropped_total Publications made on this node that did not go to NATS, by reason.\n\
             # TYPE ringwave_nats_dropped_total counter\n\
             ringwave_nats_dropped_total{{reason=\"disconnected\"}} {}\n\
             ringwave_nats_dropped_total{{reason=\"queue_full\"}} {}\n\
             ringwave_nats_dropped_total{{reason=\"refused\"}} {}\n\
             # HELP ringwave_nats_received_invalid_total Messages from NATS that could not be delivered (text that is not UTF-8).\n\
             # TYPE ringwave_nats_received_invalid_total counter\n\
             ringwave_nats_received_invalid_total {}\n\
             # HELP ringwave_nats_reconnects_total Connections to NATS made again after one was lost.\n\
             # TYPE ringwave_nats_reconnects_total counter\n\
             ringwave_nats_reconnects_total {}\n\
             # HELP ringwave_nats_subjects NATS subjects subscribed now (topics with local subscribers).\n\
             # TYPE ringwave_nats_subjects gauge\n\
             ringwave_nats_subjects {}\n",
            u8::from(c.connected.load(Ordering::Relaxed)),
            get(&c.published),
            get(&c.received),
            get(&c.dropped_disconnected),
            get(&c.dropped_queue_full),
            get(&c.dropped_refused),
            get(&c.received_invalid),
            get(&c.reconnects),
            get(&c.subjects),
        )
    }

    fn close(&self) {
        let _ = self.interest.send(Interest::Close);
        let thread = match self.thread.lock() {
            Ok(mut t) => t.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}
