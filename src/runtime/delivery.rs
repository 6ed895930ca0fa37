//! Pub/sub delivery on one worker: the topic table, the publishes made
//! during a callback, and the turn's publications, delivered run by run of
//! one topic to each subscriber's slot, with the topic's slow-consumer
//! policy for those over their limit.

use std::sync::Arc;
use std::time::Instant;

use crate::metrics::Stats;
use crate::proto::CloseCode;
use crate::pubsub::{Policy, Publication, Subscriber, Topics};

use super::clock::Epoch;
use super::connections::Connections;
use super::session::Session;
use super::ws::{PubSub, TokenChange};

/// What the worker delivers, and to whom.
pub(super) struct Delivery {
    pub(super) topics: Topics,
    /// Publishes made during a callback, published right after it.
    publishes: Vec<Arc<Publication>>,
    /// Publications taken this turn, delivered together before the flush:
    /// each subscriber's slot is visited once per run of publications on a
    /// topic, not once per publication.
    batch: Vec<Arc<Publication>>,
    /// Where a handle leaves a change to its token during a callback.
    token: TokenChange,
}

/// The limits a run of deliveries applies.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// A subscriber's most unsent bytes before its topic's policy applies.
    pub max_buffered: usize,
    /// Ticks a subscriber closed for being slow gets for its close.
    pub close_ticks: u64,
}

impl Delivery {
    pub(super) fn new(topics: Topics) -> Delivery {
        Delivery {
            topics,
            publishes: Vec::new(),
            batch: Vec::new(),
            token: TokenChange::default(),
        }
    }

    /// What a [`super::ws::Ws`] handle reaches of pub/sub: the connection's
    /// subscriber state, the topics, and where its publishes wait.
    pub(super) fn pubsub<'a>(
        &'a mut self,
        sub: &'a mut Option<Box<Subscriber>>,
        now: (Instant, &'a Epoch),
        stats: &'a Stats,
    ) -> PubSub<'a> {
        PubSub {
            now: now.0,
            epoch: now.1,
            sub,
            topics: &mut self.topics,
            publishes: &mut self.publishes,
            stats,
            token: &mut self.token,
        }
    }

    /// Whether a handler changed its token during the last callback.
    #[inline]
    pub(super) fn token_changed(&self) -> bool {
        !self.token.is_empty()
    }

    /// What a handler changed of its token during the last callback.
    pub(super) fn take_token(&mut self) -> TokenChange {
        std::mem::take(&mut self.token)
    }

    /// The publishes made during the last callback (empty if none); give
    /// the list back with [`Delivery::published`].
    pub(super) fn take_publishes(&mut self) -> Vec<Arc<Publication>> {
        std::mem::take(&mut self.publishes)
    }

    /// The emptied list back, to keep its allocation.
    pub(super) fn published(&mut self, mut done: Vec<Arc<Publication>>) {
        done.clear();
        if self.publishes.is_empty() {
            self.publishes = done;
        }
    }

    /// Take a publication for this worker's subscribers; it goes out with
    /// the turn's others in [`Delivery::deliver_batch`].
    /// On a topic with history it waits, if need be, for the offsets before
    /// it.
    pub(super) fn deliver(&mut self, p: &Arc<Publication>, stats: &Stats) {
        stats.publishes.add(1);
        self.topics.admit(p, &mut self.batch);
    }

    /// Queue the turn's publications to their subscribers, run by run of
    /// the same topic (so each subscriber still sees them in order).
    pub(super) fn deliver_batch(&mut self, conns: &mut Connections, limits: Limits, stats: &Stats) {
        let mut batch = std::mem::take(&mut self.batch);
        let mut start = 0;
        while start < batch.len() {
            let topic = batch[start].topic();
            let run = batch[start..]
                .iter()
                .position(|p| p.topic() != topic)
                .unwrap_or(batch.len() - start);
            self.deliver_run(&batch[start..start + run], conns, limits, stats);
            start += run;
        }
        batch.clear();
        if self.batch.is_empty() {
            self.batch = batch;
        }
    }

    /// Queue publications on one topic to each of its subscribers, applying
    /// the topic's slow-consumer policy.
    fn deliver_run(
        &mut self,
        run: &[Arc<Publication>],
        conns: &mut Connections,
        limits: Limits,
        stats: &Stats,
    ) {
        let Some(topic) = self.topics.get(run[0].topic()) else {
            return;
        };
        let limit = limits.max_buffered;
        let now = conns.now();
        // Several publications go as one entry, framed back to back once, to
        // each WebSocket subscriber with room for all of them (exactly when
        // one by one would queue every one); the others take them one by one.
        let mut joined: Option<(Arc<Publication>, usize)> = None;
        for s in &topic.subs {
            let (index, generation) = (s.index, s.generation);
            let Some(slot) = conns.live_mut(index, generation) else {
                continue;
            };
            let sse = slot.is_sse();
            let mut rest = run;
            // A run is in offset order: if its first is wanted, all are.
            let plain = !s.meta && s.wants(&run[0]);
            if run.len() > 1 && !sse && plain && slot.session.takes_publications() {
                let (whole, len) = joined.get_or_insert_with(|| {
                    let p = Publication::run(run);
                    let len = p.frame().len();
                    (p, len)
                });
                let pending = slot.pending();
                // (Held-back conflated publications would go first and count
                // against the limit: those subscribers go one by one.)
                // (So would a gap's notice.)
                let alone = |s: &&mut Subscriber| s.conflated.is_empty() && s.gaps.is_empty();
                if let Some(sub) = slot.sub.as_deref_mut().filter(alone) {
                    if pending + *len <= limit {
                        sub.push(whole.clone(), *len);
                        stats.deliveries.add(run.len() as u64);
                        rest = &[];
                    } else if topic.policy == Policy::Drop && pending > 0 {
                        // Over the limit with it: the run is skipped whole
                        // (one by one would take its head and skip the
                        // rest), so a saturated subscriber's queue holds a
                        // few joined entries rather than one per
                        // publication up to the limit (8 bytes each: 56 KB
                        // a subscriber at 1 MiB of 150-byte publications).
                        skip(sub, s.gaps, run, stats);
                        rest = &[];
                    }
                }
            }
            for (i, p) in rest.iter().enumerate() {
                if !slot.session.takes_publications() {
                    break;
                }
                if !s.wants(p) {
                    continue;
                }
                let meta;
                let p = if s.meta {
                    meta = p.meta(false);
                    &meta
                } else {
                    p
                };
                let len = p.bytes(sse).len();
                let buffered = slot.pending();
                let over = buffered > 0 && buffered + len > limit;
                let Some(sub) = slot.sub.as_deref_mut() else {
                    break;
                };
                if !over {
                    sub.release_conflated(sse);
                    if !sub.gaps.is_empty() {
                        if let Some(gap) = sub.take_gap(run[0].topic()) {
                            let notice = Publication::gap(&gap);
                            let n = notice.bytes(sse).len();
                            sub.push(notice, n);
                            stats.gap_notices.add(1);
                        }
                    }
                    sub.push(p.clone(), len);
                    stats.deliveries.add(1);
                    continue;
                }
                match topic.policy {
                    Policy::Drop => {
                        // Over the limit: the rest of the run is skipped too.
                        skip(sub, s.gaps, &rest[i..], stats);
                        break;
                    }
                    Policy::Conflate => {
                        stats.slow_conflated.add(1);
                        if sub.conflate(p) {
                            stats.slow_superseded.add(1);
                        }
                    }
                    Policy::Close => {
                        stats.slow_closes.add(1);
                        sub.discard_unstarted(sse);
                        match &mut slot.session {
                            Session::WebSocket(ws) => {
                                let _ = ws.conn.close(
                                    CloseCode::POLICY_VIOLATION,
                                    "slow consumer: send buffer limit exceeded",
                                );
                                ws.close_code = CloseCode::POLICY_VIOLATION;
                            }
                            Session::Events(s) => s.close(),
                            _ => {}
                        }
                        // The close handshake gets the handshake timeout.
                        slot.deadline = now + limits.close_ticks;
                        conns.reschedule(index);
                        break;
                    }
                }
            }
            conns.mark_dirty(index);
        }
    }
}

/// The drop policy skips `skipped` for a subscriber: counted, and noted as
/// a gap when its subscription asked to be told.
fn skip(sub: &mut Subscriber, gaps: bool, skipped: &[Arc<Publication>], stats: &Stats) {
    stats.slow_drops.add(skipped.len() as u64);
    if gaps {
        sub.note_gap(skipped);
    }
}
