//! Topics with history kept in NATS JetStream: a stream per topic numbers
//! its publications for every node, and each node follows the streams of
//! the topics it serves, mirroring them into its [`History`].
//!
//! - A topic's stream is named after its subject ('.', '/' and '\' as
//!   '_') and made, if missing, with the topic's retention (count, age,
//!   file storage, oldest discarded). Its creation time gives the epoch, so
//!   every node reports the same one, and a stream made anew (deleted, or
//!   lost with nats-server's store) is another epoch.
//! - The stream sequence is the offset. Publications go to the stream (with
//!   their acknowledgement awaited off the publishing path) and come back
//!   to this node, its own included, through an ordered consumer.
//! - Following a topic starts with its backfill: what the stream holds is
//!   put in the log before the log is served (subscribers in between get no
//!   position, and no replayed publication as live), then the rest is
//!   handed to the workers in order. A node that followed a topic before
//!   (the consumer failed) goes on from its log's next offset instead.
//! - A node follows a topic from its first subscriber (or from the start,
//!   for topics named in `--history`) until it stops: its log stays whole,
//!   so a client recovers on it from any position the stream still holds.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::{self, stream};
use futures_util::StreamExt;
use tokio::sync::oneshot;

use super::headers::decode;
use super::{add, Counts};
use crate::pubsub::history::History;
use crate::pubsub::{Position, Publication};
use crate::runtime::Publisher;

/// The pause after following a topic failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The stream of `subject`.
pub(super) fn stream_name(subject: &str) -> String {
    subject
        .chars()
        .map(|c| match c {
            '.' | '/' | '\\' => '_',
            c => c,
        })
        .collect()
}

/// The stream's configuration for `topic` on `subject`, from its retention.
pub(super) fn stream_config(history: &History, topic: &str, subject: &str) -> stream::Config {
    let r = history.retention(topic);
    stream::Config {
        name: stream_name(subject),
        subjects: vec![subject.to_string()],
        max_messages: r.map_or(1, |r| r.count.min(i64::MAX as usize) as i64),
        max_age: r.and_then(|r| r.max_age).unwrap_or(Duration::ZERO),
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

/// The epoch of a stream made at `created` (nanoseconds since 1970): the
/// same on every node.
pub(super) fn epoch_of(created: i128) -> u32 {
    // SplitMix64's finaliser: nearby times give unrelated epochs.
    let mut z = (created as u64) ^ ((created >> 64) as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z ^ (z >> 32)) as u32
}

/// This node's publisher, once the workers run.
async fn attached(local: &OnceLock<Publisher>) -> Publisher {
    loop {
        if let Some(p) = local.get() {
            return p.clone();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What following one topic needs.
pub(super) struct Follow {
    pub js: jetstream::Context,
    pub config: stream::Config,
    pub topic: Arc<str>,
    pub history: Arc<History>,
    pub counts: Arc<Counts>,
    pub local: Arc<OnceLock<Publisher>>,
    /// Told once the topic's log is served (its backfill is in).
    pub opened: Option<oneshot::Sender<()>>,
}

impl Follow {
    /// Follow the topic's stream until it fails (the caller's sweep starts
    /// again, a second later at the soonest) or the server stops.
    pub(super) async fn run(mut self) {
        if let Err(e) = self.follow().await {
            tracing::warn!(
                "NATS JetStream: {e}; following again in {} s",
                RETRY_AFTER.as_secs()
            );
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }

    async fn follow(&mut self) -> Result<(), String> {
        let subject = self.config.subjects[0].clone();
        let mut stream = self
            .js
            .get_or_create_stream(self.config.clone())
            .await
            .map_err(|e| format!("no stream for {subject}: {e}"))?;
        let info = stream
            .info()
            .await
            .map_err(|e| format!("stream of {subject}: {e}"))?
            .clone();
        let epoch = epoch_of(info.created.unix_timestamp_nanos());
        let last = info.state.last_sequence;
        let (policy, mut backfill) = match self.history.broker_next(&self.topic) {
            Some(p) if p.epoch == epoch => (
                DeliverPolicy::ByStartSequence {
                    start_sequence: p.offset,
                },
                None,
            ),
            _ if info.state.messages == 0 => {
                self.open(epoch, last + 1);
                (
                    DeliverPolicy::ByStartSequence {
                        start_sequence: last + 1,
                    },
                    None,
                )
            }
            _ => (DeliverPolicy::All, Some(last)),
        };
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: subject.clone(),
                deliver_policy: policy,
                ..Default::default()
            })
            .await;
        let mut messages = consumer
            .map_err(|e| format!("no consumer of {subject}: {e}"))?
            .messages()
            .await
            .map_err(|e| format!("consumer of {subject}: {e}"))?;
        let mut publisher = None;
        // Any failure of the consumer starts following over from the log's
        // next offset (so does a reconnect: the bridge's sweep restarts every
        // follower then): nothing is lost or repeated, and a stream made anew
        // (another epoch) is seen.
        loop {
            let m = match messages.next().await {
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(format!("consumer of {subject}: {e}")),
                None => return Err(format!("consumer of {subject} ended")),
            };
            let Ok(seq) = m.info().map(|i| i.stream_sequence) else {
                add(&self.counts.received_invalid);
                continue;
            };
            let Some((kind, key)) = decode(&m.message, &self.counts) else {
                continue;
            };
            let p = Publication::new(&self.topic, key.as_deref(), kind, &m.message.payload);
            p.set_relayed_position(Position { epoch, offset: seq });
            if let Some(l) = backfill {
                if seq <= l {
                    self.history.adopt(p, Instant::now());
                    if seq == l {
                        self.open(epoch, l + 1);
                        backfill = None;
                    }
                    continue;
                }
                // The last one went (its age) before it reached us.
                self.open(epoch, seq);
                backfill = None;
            }
            let publisher = match &publisher {
                Some(p) => p,
                None => publisher.insert(attached(&self.local).await),
            };
            // Counted before a subscriber can see it.
            add(&self.counts.received);
            if publisher.relay(p).is_err() {
                // The server stopped.
                return Ok(());
            }
        }
    }

    fn open(&mut self, epoch: u32, next: u64) {
        self.history.open(&self.topic, epoch, next);
        if let Some(tx) = self.opened.take() {
            let _ = tx.send(());
        }
    }
}
