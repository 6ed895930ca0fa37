//! Pub/sub delivery on one worker: the turn's publications, run by run of
//! one topic, queued to each subscriber, with the topic's slow-consumer
//! policy for those over their limit.

use std::sync::Arc;

use crate::proto::CloseCode;
use crate::pubsub::{Policy, Publication};

use super::app::App;
use super::core::Core;
use super::session::Session;

impl<A: App> Core<A> {
    /// Take a publication for this worker's subscribers; it goes out with
    /// the turn's others in [`Core::deliver_batch`].
    /// On a topic with history it waits, if need be, for the offsets before
    /// it.
    pub(super) fn deliver(&mut self, p: &Arc<Publication>) {
        self.stats.publishes.add(1);
        self.topics.admit(p, &mut self.batch);
    }

    /// Queue the turn's publications to their subscribers, run by run of
    /// the same topic (so each subscriber still sees them in order).
    pub(super) fn deliver_batch(&mut self) {
        let mut batch = std::mem::take(&mut self.batch);
        let mut start = 0;
        while start < batch.len() {
            let topic = batch[start].topic();
            let run = batch[start..]
                .iter()
                .position(|p| p.topic() != topic)
                .unwrap_or(batch.len() - start);
            self.deliver_run(&batch[start..start + run]);
            start += run;
        }
        batch.clear();
        if self.batch.is_empty() {
            self.batch = batch;
        }
    }

    /// Queue publications on one topic to each of its subscribers, applying
    /// the topic's slow-consumer policy.
    fn deliver_run(&mut self, run: &[Arc<Publication>]) {
        let Some(topic) = self.topics.get(run[0].topic()) else {
            return;
        };
        let limit = self.cfg.max_buffered;
        let now = self.wheel.now();
        // Several publications go as one entry, framed back to back once, to
        // each WebSocket subscriber with room for all of them (exactly when
        // one by one would queue every one); the others take them one by one.
        let mut joined: Option<(Arc<Publication>, usize)> = None;
        for s in &topic.subs {
            let (index, generation) = (s.index, s.generation);
            let Some(Some(slot)) = self.conns.get_mut(index as usize) else {
                continue;
            };
            if slot.generation != generation {
                continue;
            }
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
                if let Some(sub) = slot.sub.as_deref_mut().filter(|s| s.conflated.is_empty()) {
                    if pending + *len <= limit {
                        sub.push(whole.clone(), *len);
                        self.stats.deliveries.add(run.len() as u64);
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
                    sub.push(p.clone(), len);
                    self.stats.deliveries.add(1);
                    continue;
                }
                match topic.policy {
                    Policy::Drop => {
                        // Over the limit: the rest of the run is skipped too.
                        self.stats.slow_drops.add((rest.len() - i) as u64);
                        break;
                    }
                    Policy::Conflate => {
                        self.stats.slow_conflated.add(1);
                        if sub.conflate(p) {
                            self.stats.slow_superseded.add(1);
                        }
                    }
                    Policy::Close => {
                        self.stats.slow_closes.add(1);
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
                        slot.deadline = now + self.ticks.handshake;
                        self.wheel.insert(index, generation, slot.deadline);
                        break;
                    }
                }
            }
            if !slot.dirty {
                slot.dirty = true;
                self.dirty.push(index);
            }
        }
    }
}
