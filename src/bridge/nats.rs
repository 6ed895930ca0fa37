//! The bridge thread: a current-thread tokio runtime driving the
//! `async-nats` client. One loop takes the workers' publications (sent to
//! NATS in batches) and interest changes (subscribe, unsubscribe after a
//! grace); one task per subscribed topic hands what NATS delivers to the
//! workers, in the order NATS delivered it.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event, ServerAddr};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc::{Receiver, UnboundedReceiver};
use tokio::task::JoinHandle;

use async_nats::jetstream as js_api;

use super::headers::{self, decode};
use super::jetstream;
use super::subject;
use super::{add, Counts, Interest, NatsAuth, NatsConfig, MAX_RETRY_DELAY, UNSUBSCRIBE_AFTER};
use crate::pubsub::history::{History, MAX_LOGS};
use crate::pubsub::Publication;
use crate::runtime::Publisher;

/// Commands the client queues before its writer takes them.
const CLIENT_CAPACITY: usize = 256;
/// Publications taken from the workers' queue at once.
const BATCH: usize = 256;
/// How long the start waits for the named topics' history from JetStream.
const WARM_UP: Duration = Duration::from_secs(5);

/// The thread's body: build the runtime, connect, serve until closed.
pub(super) fn run(
    cfg: NatsConfig,
    history: Option<Arc<History>>,
    counts: Arc<Counts>,
    out: Receiver<Arc<Publication>>,
    interest: UnboundedReceiver<Interest>,
    local: Arc<OnceLock<Publisher>>,
    ready: std::sync::mpsc::Sender<io::Result<()>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    rt.block_on(async move {
        let client = match connect(&cfg, &counts).await {
            Ok(c) => c,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let history = history.filter(|_| cfg.jetstream);
        let mut bridge = Bridge {
            js: history.is_some().then(|| js_api::new(client.clone())),
            client,
            prefix: cfg.prefix,
            reconnects: counts.reconnects.load(Ordering::Relaxed),
            counts,
            local,
            history,
            topics: HashMap::new(),
            streams: HashSet::new(),
        };
        if let Err(e) = bridge.check_jetstream(&cfg.urls.join(",")).await {
            let _ = ready.send(Err(e));
            return;
        }
        bridge.warm().await;
        let _ = ready.send(Ok(()));
        bridge.serve(out, interest).await;
    });
}

/// The client options every connection attempt uses.
fn options(cfg: &NatsConfig, counts: &Arc<Counts>) -> ConnectOptions {
    let counts = counts.clone();
    let o = ConnectOptions::new()
        // This node's publications reach its own subscribers directly.
        .no_echo()
        .name("ringwave")
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        // The client's own command queue stays short, so the bridge's
        // queue (--nats-queue) is what bounds a stalled NATS's backlog.
        .client_capacity(CLIENT_CAPACITY)
        .reconnect_delay_callback(retry_delay)
        .event_callback(move |e| {
            on_event(&counts, e);
            async {}
        });
    match &cfg.auth {
        NatsAuth::None => o,
        NatsAuth::Token(t) => o.token(t.clone()),
        NatsAuth::UserPassword { user, password } => {
            o.user_and_password(user.clone(), password.clone())
        }
    }
}

/// Before attempt `n` (from 1): none, then 0.1 s doubling up to
/// [`MAX_RETRY_DELAY`].
fn retry_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let shift = (attempts - 2).min(16) as u32;
    Duration::from_millis(100)
        .saturating_mul(1 << shift)
        .min(MAX_RETRY_DELAY)
}

/// The connection changed state: count it and say so once.
fn on_event(counts: &Counts, e: Event) {
    match e {
        Event::Connected => {
            if !counts.connected.swap(true, Ordering::Relaxed) {
                if counts.ever_connected.swap(true, Ordering::Relaxed) {
                    add(&counts.reconnects);
                    tracing::info!("NATS bridge reconnected");
                } else {
                    tracing::info!("NATS bridge connected");
                }
            }
        }
        Event::Disconnected => {
            if counts.connected.swap(false, Ordering::Relaxed) {
                tracing::warn!(
                    "NATS bridge lost its connection; retrying, and dropping (counting) publications until it is back"
                );
            }
        }
        Event::Closed => {
            counts.connected.store(false, Ordering::Relaxed);
            tracing::warn!("NATS bridge closed its connection");
        }
        Event::SlowConsumer(sid) => {
            tracing::debug!("NATS bridge: slow consumer on subscription {sid}");
        }
        // Each failed attempt while reconnecting says so: once is enough.
        Event::ClientError(e) if !counts.connected.load(Ordering::Relaxed) => {
            tracing::debug!("NATS bridge: {e}");
        }
        other => tracing::warn!("NATS bridge: {other}"),
    }
}

/// The first attempt, made before the server starts: a bad URL or refused
/// credentials fail the start; NATS unreachable starts the bridge retrying
/// in the background.
async fn connect(cfg: &NatsConfig, counts: &Arc<Counts>) -> io::Result<Client> {
    let mut addrs = Vec::with_capacity(cfg.urls.len());
    for u in &cfg.urls {
        match u.parse::<ServerAddr>() {
            Ok(a) => addrs.push(a),
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("bad NATS URL {u:?}: {e}"),
                ));
            }
        }
    }
    let urls = cfg.urls.join(",");
    match options(cfg, counts).connect(addrs.clone()).await {
        Ok(client) => {
            counts.ever_connected.store(true, Ordering::Relaxed);
            counts.connected.store(true, Ordering::Relaxed);
            tracing::info!("NATS bridge connected to {urls}");
            Ok(client)
        }
        Err(e)
            if matches!(
                e.kind(),
                ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication
            ) =>
        {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("NATS at {urls} refused the credentials: {e}"),
            ))
        }
        Err(e) => {
            tracing::warn!(
                "NATS at {urls} is unreachable ({e}); serving without it and retrying (every {} s at most)",
                MAX_RETRY_DELAY.as_secs()
            );
            options(cfg, counts)
                .retry_on_initial_connect()
                .connect(addrs)
                .await
                .map_err(|e| io::Error::other(format!("NATS client: {e}")))
        }
    }
}

/// A topic the node has subscribers of, as the bridge tracks it.
struct Topic {
    /// Workers with subscribers of it.
    workers: i64,
    /// The task that receives its subject, while subscribed.
    task: Option<JoinHandle<()>>,
    /// When the last local subscriber left.
    idle_since: Option<Instant>,
    /// Followed until the node stops (a JetStream topic: its log stays
    /// whole).
    pinned: bool,
}

struct Bridge {
    client: Client,
    prefix: String,
    counts: Arc<Counts>,
    local: Arc<OnceLock<Publisher>>,
    topics: HashMap<Arc<str>, Topic>,
    /// With JetStream: the logs it fills, and the context.
    history: Option<Arc<History>>,
    js: Option<js_api::Context>,
    /// Topics whose stream this node made sure of (for publishing).
    streams: HashSet<Arc<str>>,
    /// The reconnects the sweep last saw.
    reconnects: u64,
}

/// A publication's payload as the client's `Bytes`, without a copy.
struct Payload(Arc<Publication>);

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        self.0.payload()
    }
}

impl Bridge {
    async fn serve(
        &mut self,
        mut out: Receiver<Arc<Publication>>,
        mut interest: UnboundedReceiver<Interest>,
    ) {
        let mut sweep = tokio::time::interval(Duration::from_millis(250));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                n = out.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    for p in batch.drain(..) {
                        self.send(p).await;
                    }
                }
                change = interest.recv() => match change {
                    Some(Interest::Topic(topic, on)) => self.change(topic, on).await,
                    Some(Interest::Close) | None => break,
                },
                _ = sweep.tick() => self.sweep().await,
            }
        }
        // Whatever the workers handed over before they stopped goes out.
        while let Ok(p) = out.try_recv() {
            self.send(p).await;
        }
        for t in self.topics.values() {
            if let Some(task) = &t.task {
                task.abort();
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.client.flush()).await;
    }

    fn subject(&self, topic: &str) -> String {
        format!("{}{}", self.prefix, subject::encode(topic))
    }

    /// Whether JetStream numbers `topic`.
    fn relays(&self, topic: &str) -> bool {
        self.js.is_some() && self.history.as_ref().is_some_and(|h| h.relays(topic))
    }

    async fn send(&mut self, p: Arc<Publication>) {
        let subject = self.subject(p.topic());
        let relayed = self.relays(p.topic());
        if relayed && !self.stream_ready(p.topic(), &subject).await {
            add(&self.counts.dropped_refused);
            return;
        }
        let headers = headers::encode(&p);
        let payload = Bytes::from_owner(Payload(p));
        // Counted before it can reach another node, so a count read after a
        // delivery there includes it.
        add(&self.counts.published);
        let sent = match &self.js {
            Some(js) if relayed => match js.publish_with_headers(subject, headers, payload).await {
                Ok(ack) => {
                    // The stream's acknowledgement, awaited off this loop.
                    let counts = self.counts.clone();
                    tokio::spawn(async move {
                        if let Err(e) = ack.await {
                            counts.published.fetch_sub(1, Ordering::Relaxed);
                            add(&counts.dropped_refused);
                            tracing::debug!("NATS JetStream: publication not stored: {e}");
                        }
                    });
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            },
            _ if headers.is_empty() => self
                .client
                .publish(subject, payload)
                .await
                .map_err(|e| e.to_string()),
            _ => self
                .client
                .publish_with_headers(subject, headers, payload)
                .await
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = sent {
            self.counts.published.fetch_sub(1, Ordering::Relaxed);
            add(&self.counts.dropped_refused);
            tracing::debug!("NATS bridge: publish refused: {e}");
        }
    }

    /// Make sure `topic`'s stream exists before its first publication (one
    /// published to no stream would be lost); at most [`MAX_LOGS`] topics.
    async fn stream_ready(&mut self, topic: &str, subject: &str) -> bool {
        if self.streams.contains(topic) {
            return true;
        }
        let (Some(js), Some(h)) = (&self.js, &self.history) else {
            return false;
        };
        if self.streams.len() >= MAX_LOGS {
            return false;
        }
        match js
            .get_or_create_stream(jetstream::stream_config(h, topic, subject))
            .await
        {
            Ok(_) => {
                self.streams.insert(Arc::from(topic));
                true
            }
            Err(e) => {
                tracing::warn!("NATS JetStream: no stream for {subject}: {e}");
                false
            }
        }
    }

    /// With JetStream asked for: a NATS that answers without it stops the
    /// start (every history topic would be refused). Asked with the API's
    /// raw `INFO` request, whose answer's fields vary between server
    /// versions: only "no one answers" and an error 503 mean "no JetStream".
    async fn check_jetstream(&self, urls: &str) -> io::Result<()> {
        if self.js.is_none() || !self.counts.connected.load(Ordering::Relaxed) {
            return Ok(());
        }
        let unavailable = match self.client.request("$JS.API.INFO", Bytes::new()).await {
            Ok(m) => serde_json::from_slice::<serde_json::Value>(&m.payload)
                .is_ok_and(|v| v["error"]["code"] == 503),
            Err(e) => {
                let none = matches!(e.kind(), async_nats::RequestErrorKind::NoResponders);
                if !none {
                    tracing::warn!("NATS JetStream: account not read ({e}); going on");
                }
                none
            }
        };
        if unavailable {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("NATS at {urls} has no JetStream, which --nats-jetstream needs (start nats-server with -js)"),
            ));
        }
        Ok(())
    }

    /// Follow the topics named with history from the start, so their logs
    /// are whole before the first client comes (up to a few seconds).
    async fn warm(&mut self) {
        let Some(h) = self.history.clone().filter(|_| self.js.is_some()) else {
            return;
        };
        if !self.counts.connected.load(Ordering::Relaxed) {
            return;
        }
        let mut opened = Vec::new();
        for topic in h.named_topics() {
            let topic: Arc<str> = Arc::from(topic);
            self.topics.insert(
                topic.clone(),
                Topic {
                    workers: 0,
                    task: None,
                    idle_since: None,
                    pinned: true,
                },
            );
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.subscribe(&topic, Some(tx)).await;
            opened.push(rx);
        }
        let all = futures_util::future::join_all(opened);
        if tokio::time::timeout(WARM_UP, all).await.is_err() {
            tracing::warn!(
                "NATS JetStream: some topics' history was not read within {} s; serving meanwhile",
                WARM_UP.as_secs()
            );
        }
    }

    /// A worker's first subscriber of `topic` came, or its last left.
    async fn change(&mut self, topic: Arc<str>, on: bool) {
        let pinned = self.relays(&topic);
        let t = self.topics.entry(topic.clone()).or_insert(Topic {
            workers: 0,
            task: None,
            idle_since: None,
            pinned,
        });
        t.workers += if on { 1 } else { -1 };
        if t.workers > 0 || t.pinned {
            t.idle_since = None;
            if t.task.is_none() {
                self.subscribe(&topic, None).await;
            }
        } else if t.task.is_some() {
            t.idle_since.get_or_insert_with(Instant::now);
        } else {
            self.topics.remove(&topic);
        }
    }

    /// Unsubscribe topics idle past the grace; subscribe again those whose
    /// subscribe failed (or whose JetStream consumer gave up, or all of
    /// those after a reconnect: an ordered consumer can stall silently
    /// across a NATS restart).
    async fn sweep(&mut self) {
        let now = Instant::now();
        let mut retry = Vec::new();
        let counts = self.counts.clone();
        let reconnects = counts.reconnects.load(Ordering::Relaxed);
        let reconnected = std::mem::replace(&mut self.reconnects, reconnects) != reconnects;
        self.topics.retain(|topic, t| {
            let pinned = t.pinned;
            if let Some(task) = t
                .task
                .take_if(|h| pinned && (reconnected || h.is_finished()))
            {
                task.abort();
                counts.subjects.fetch_sub(1, Ordering::Relaxed);
            }
            if t.workers > 0 || t.pinned {
                if t.task.is_none() {
                    retry.push(topic.clone());
                }
                return true;
            }
            let idle = t
                .idle_since
                .is_some_and(|since| now.duration_since(since) >= UNSUBSCRIBE_AFTER);
            if !idle {
                return true;
            }
            if let Some(task) = t.task.take() {
                // Dropping the subscription unsubscribes it.
                task.abort();
                counts.subjects.fetch_sub(1, Ordering::Relaxed);
            }
            false
        });
        for topic in retry {
            self.subscribe(&topic, None).await;
        }
    }

    /// Subscribe `topic`'s subject (or follow its JetStream stream) and
    /// start its receiving task; on a failure the sweep tries again.
    async fn subscribe(
        &mut self,
        topic: &Arc<str>,
        opened: Option<tokio::sync::oneshot::Sender<()>>,
    ) {
        let subject = self.subject(topic);
        let task = match (&self.js, &self.history) {
            (Some(js), Some(h)) if h.relays(topic) => {
                let follow = jetstream::Follow {
                    js: js.clone(),
                    config: jetstream::stream_config(h, topic, &subject),
                    topic: topic.clone(),
                    history: h.clone(),
                    counts: self.counts.clone(),
                    local: self.local.clone(),
                    opened,
                };
                tokio::spawn(follow.run())
            }
            _ => match self.client.subscribe(subject.clone()).await {
                Ok(sub) => tokio::spawn(receive(
                    sub,
                    topic.clone(),
                    self.counts.clone(),
                    self.local.clone(),
                )),
                Err(e) => {
                    tracing::warn!("NATS bridge cannot subscribe to {subject}: {e}; retrying");
                    return;
                }
            },
        };
        if let Some(t) = self.topics.get_mut(topic) {
            t.task = Some(task);
            add(&self.counts.subjects);
        }
    }
}

/// Hand what NATS delivers on one topic's subject to the workers, in order.
/// A full worker mailbox makes this wait (the `Publisher`'s back-pressure),
/// and NATS holds the rest.
async fn receive(
    mut sub: async_nats::Subscriber,
    topic: Arc<str>,
    counts: Arc<Counts>,
    local: Arc<OnceLock<Publisher>>,
) {
    while let Some(m) = sub.next().await {
        let Some((kind, key)) = decode(&m, &counts) else {
            continue;
        };
        let Some(publisher) = local.get() else {
            continue;
        };
        let p = Publication::new(&topic, key.as_deref(), kind, &m.payload);
        // Counted before a subscriber can see it.
        add(&counts.received);
        if publisher.publish(p).is_err() {
            return;
        }
    }
}
