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
}

impl Subscriber {
    /// Queue `p` (`len` bytes in this subscriber's encoding).
    pub fn push(&mut self, p: Arc<Publication>, len: usize) {
        self.queued_bytes += len;
        self.queue.push_back(p);
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
