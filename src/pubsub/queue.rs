//! A subscriber's queue: the publications queued for one connection (shared,
//! not copied), how far the front one is written, and what conflation held
//! back.

use std::collections::VecDeque;
use std::sync::Arc;

use super::Publication;

/// A subscribing connection's side of pub/sub: its topics, the publications
/// queued for it (shared, not copied) and those held back by conflation.
/// Boxed in the connection's slot only once it subscribes.
#[derive(Debug, Default)]
pub(crate) struct Subscriber {
    pub topics: Vec<Arc<str>>,
    pub queue: VecDeque<Arc<Publication>>,
    /// Bytes of the front publication already written.
    pub front_pos: usize,
    /// Unwritten bytes in `queue`.
    pub queued_bytes: usize,
    /// Newest publication per topic (and key) held back while over the limit.
    pub conflated: Vec<Arc<Publication>>,
    /// Publications the `drop` policy skipped, per topic, not yet announced.
    pub gaps: Vec<Gap>,
}

/// Publications of one topic skipped for a subscriber that was behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Gap {
    pub topic: Arc<str>,
    /// How many.
    pub dropped: u64,
    /// The first and last skipped offsets, on a topic with history.
    pub from: Option<u64>,
    pub to: Option<u64>,
}

impl Subscriber {
    /// Queue `p` (`len` bytes in this subscriber's encoding).
    pub fn push(&mut self, p: Arc<Publication>, len: usize) {
        self.queued_bytes += len;
        self.queue.push_back(p);
    }

    /// `skipped` (a run of one topic, in order) were dropped for it.
    pub fn note_gap(&mut self, skipped: &[Arc<Publication>]) {
        let (Some(first), Some(last)) = (skipped.first(), skipped.last()) else {
            return;
        };
        let offset = |p: &Publication| p.position().map(|q| q.offset);
        match self.gaps.iter_mut().find(|g| *g.topic == *first.topic()) {
            Some(g) => {
                g.dropped += skipped.len() as u64;
                g.to = offset(last);
            }
            None => self.gaps.push(Gap {
                topic: first.topic_name().clone(),
                dropped: skipped.len() as u64,
                from: offset(first),
                to: offset(last),
            }),
        }
    }

    /// The gap on `topic` not yet announced, if any (forgotten here).
    pub fn take_gap(&mut self, topic: &str) -> Option<Gap> {
        let i = self.gaps.iter().position(|g| &*g.topic == topic)?;
        Some(self.gaps.swap_remove(i))
    }

    /// Hold `p` back; returns whether it replaced an older one.
    pub fn conflate(&mut self, p: &Arc<Publication>) -> bool {
        match self.conflated.iter_mut().find(|q| q.same_slot(p)) {
            Some(old) => {
                *old = p.clone();
                true
            }
            None => {
                self.conflated.push(p.clone());
                false
            }
        }
    }

    /// Queue what conflation held back, oldest slot first.
    pub fn release_conflated(&mut self, sse: bool) {
        for p in std::mem::take(&mut self.conflated) {
            let len = p.bytes(sse).len();
            self.push(p, len);
        }
    }

    /// Forget everything not yet started (a closing subscriber); a partly
    /// written front stays so the stream keeps its framing.
    pub fn discard_unstarted(&mut self, sse: bool) {
        let keep = usize::from(self.front_pos > 0);
        self.queue.truncate(keep);
        self.queued_bytes = self
            .queue
            .front()
            .map_or(0, |p| p.bytes(sse).len() - self.front_pos);
        self.conflated.clear();
    }
}
