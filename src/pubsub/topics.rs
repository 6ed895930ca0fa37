//! One worker's topic table: which connections subscribe to what, each
//! topic's slow-consumer policy, and, for topics with history, the order
//! publications are delivered in and the subscriptions that start from a
//! position.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::history::{History, Order, Position};
use super::{valid_topic, Policy, Publication, SubscribeError, Subscriber, MAX_SUBSCRIPTIONS};
use crate::metrics::Stats;

/// One subscription on a topic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sub {
    pub index: u32,
    pub generation: u32,
    /// Publications go in their meta form ([`Publication::meta`]).
    pub meta: bool,
    /// Publications the `drop` policy skips for it are announced
    /// ([`Publication::gap`]) ahead of the next one it gets.
    pub gaps: bool,
    /// Live publications up to this offset were the subscriber's already
    /// (replayed, in a snapshot, or covered by the position it was told).
    pub floor: u64,
}

impl Sub {
    /// Whether live `p` goes to this subscriber.
    pub fn wants(&self, p: &Publication) -> bool {
        self.floor == 0 || p.position().is_none_or(|q| q.offset > self.floor)
    }
}

/// A topic's subscribers on one worker.
#[derive(Debug)]
pub(crate) struct Topic {
    pub subs: Vec<Sub>,
    pub policy: Policy,
}

/// How a subscription starts (the defaults: live from now, as published).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Recover from this position: the publications after it are sent
    /// first, in order, then live ones (topics with history).
    pub since: Option<Position>,
    /// Unless `since` was recovered, send the newest publication of every
    /// key first, in their meta form marked as snapshot.
    pub snapshot: bool,
    /// Send publications in their meta form, with their offsets.
    pub meta: bool,
    /// When the topic's `drop` policy skips publications for this
    /// subscriber (it was behind), say so ahead of the next one it gets:
    /// a notice `{"event":"gap","topic","dropped","from"?,"to"?}` (an
    /// event stream's `event: gap`). Event streams always get them.
    pub gaps: bool,
}

/// How a subscription started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribed {
    /// It is new (not a repeat of one already held).
    pub new: bool,
    /// The topic's position as the subscriber will stand once what was
    /// queued for it (replay) is out: `None` on a topic without history.
    pub position: Option<Position>,
    /// Where it stands before that: `since` when recovered, else
    /// `position`. (A Server-Sent Events stream's first id: a reconnect
    /// before the replay is through recovers from here.)
    pub start: Option<Position>,
    /// `since` was recovered: nothing after it is missing.
    pub recovered: bool,
}

/// One worker's topic table.
#[derive(Debug)]
pub(crate) struct Topics {
    map: HashMap<Arc<str>, Topic>,
    default_policy: Policy,
    overrides: Arc<HashMap<String, Policy>>,
    /// Topics that got their first subscriber here (`true`) or lost their
    /// last (`false`), in order, since the last [`Topics::take_changes`];
    /// kept only when someone asked for them ([`Topics::track_changes`]).
    changes: Option<Vec<(Arc<str>, bool)>>,
    history: Option<Arc<History>>,
    order: Order,
}

impl Topics {
    pub fn new(
        default_policy: Policy,
        overrides: Arc<HashMap<String, Policy>>,
        history: Option<Arc<History>>,
    ) -> Self {
        Topics {
            map: HashMap::new(),
            default_policy,
            overrides,
            changes: None,
            history,
            order: Order::default(),
        }
    }

    /// New policies: the default and the per-topic ones, for every topic
    /// here from its next publication.
    pub fn set_policies(
        &mut self,
        default_policy: Policy,
        overrides: Arc<HashMap<String, Policy>>,
    ) {
        for (name, topic) in self.map.iter_mut() {
            topic.policy = overrides.get(&**name).copied().unwrap_or(default_policy);
        }
        self.default_policy = default_policy;
        self.overrides = overrides;
    }

    /// Take a publication that reached this worker; `out` gets what is now
    /// deliverable (on a topic with history, in offset order, each once).
    pub fn admit(&mut self, p: &Arc<Publication>, out: &mut Vec<Arc<Publication>>) {
        self.order.admit(p, out);
    }

    /// Subscribe as `opts` says: replayed and snapshot publications are
    /// queued on `sub` (`sse`: in their event-stream form).
    #[allow(clippy::too_many_arguments)]
    pub fn subscribe_with(
        &mut self,
        index: u32,
        generation: u32,
        sub: &mut Option<Box<Subscriber>>,
        topic: &str,
        opts: &SubscribeOptions,
        sse: bool,
        now: Instant,
        stats: &Stats,
    ) -> Result<Subscribed, SubscribeError> {
        let new = self.subscribe(index, generation, sub, topic, stats)?;
        if new {
            if let Some(s) = self.entry_mut(topic, index, generation) {
                // (Set again below, with the floor, on a topic with history:
                // without one, envelopes say epoch 0, offset 0.)
                s.meta = opts.meta && !sse;
                s.gaps = opts.gaps || sse;
            }
        }
        let history = self.history.clone();
        let start = history.as_ref().and_then(|h| h.start(topic));
        // Delivered here so far: below this offset (of the log's epoch).
        let delivered = match start {
            Some((epoch, first)) => self.order.next_in(topic, epoch).unwrap_or(first),
            None => self.order.next(topic),
        };
        let position = start.map(|(epoch, _)| Position {
            epoch,
            offset: delivered.saturating_sub(1),
        });
        let mut done = Subscribed {
            new,
            position,
            start: position,
            recovered: false,
        };
        let (Some(h), Some(_), true) = (history, position, new) else {
            return Ok(done);
        };
        let mut queue = Vec::new();
        // What this worker counts as delivered may still wait in the turn's
        // batch, to be queued to every subscriber, this one too: it is
        // covered by the position reported (and by a replay or snapshot),
        // so live offsets up to it are skipped for this subscriber.
        let mut floor = delivered.saturating_sub(1);
        if let Some(since) = opts.since {
            let r = h.recover(topic, since, delivered, now);
            done.recovered = r.recovered;
            if r.recovered {
                stats.recovered.add(1);
            } else {
                stats.not_recovered.add(1);
            }
            floor = floor.max(r.floor);
            if r.recovered {
                done.position = Some(Position {
                    offset: since.offset.max(delivered.saturating_sub(1)),
                    ..since
                });
                done.start = Some(since);
            }
            queue = r.replay;
            if opts.meta {
                queue = queue.iter().map(|p| p.meta(false)).collect();
            }
        }
        if opts.snapshot && !done.recovered && !sse {
            queue = h
                .snapshot(topic, delivered)
                .iter()
                .map(|p| p.meta(true))
                .collect();
        }
        if let Some(s) = self.entry_mut(topic, index, generation) {
            s.meta = opts.meta && !sse;
            s.floor = floor;
        }
        stats.deliveries.add(queue.len() as u64);
        if let Some(sub) = sub.as_deref_mut() {
            for p in queue {
                let len = p.bytes(sse).len();
                sub.push(p, len);
            }
        }
        Ok(done)
    }

    /// Record from now on which topics gain their first subscriber and lose
    /// their last (for a broker bridge, which subscribes to what this worker
    /// needs).
    pub fn track_changes(&mut self) {
        self.changes.get_or_insert_with(Vec::new);
    }

    /// Hand the recorded changes to `f`, oldest first, and forget them.
    pub fn take_changes(&mut self, mut f: impl FnMut(&str, bool)) {
        if let Some(changes) = self.changes.as_mut() {
            for (topic, subscribed) in changes.drain(..) {
                f(&topic, subscribed);
            }
        }
    }

    /// Slot (`index`, `generation`)'s entry among `topic`'s subscribers.
    fn entry_mut(&mut self, topic: &str, index: u32, generation: u32) -> Option<&mut Sub> {
        self.map
            .get_mut(topic)?
            .subs
            .iter_mut()
            .find(|s| (s.index, s.generation) == (index, generation))
    }

    pub fn get(&self, topic: &str) -> Option<&Topic> {
        self.map.get(topic)
    }

    /// Subscribe slot (`index`, `generation`); `Ok(false)` if it already was.
    pub fn subscribe(
        &mut self,
        index: u32,
        generation: u32,
        sub: &mut Option<Box<Subscriber>>,
        topic: &str,
        stats: &Stats,
    ) -> Result<bool, SubscribeError> {
        if !valid_topic(topic) {
            return Err(SubscribeError::BadTopic);
        }
        let sub = sub.get_or_insert_with(Box::default);
        if sub.topics.iter().any(|t| &**t == topic) {
            return Ok(false);
        }
        if sub.topics.len() >= MAX_SUBSCRIPTIONS {
            return Err(SubscribeError::TooMany);
        }
        let name = match self.map.get_key_value(topic) {
            Some((k, _)) => k.clone(),
            None => {
                let k: Arc<str> = Arc::from(topic);
                let policy = self
                    .overrides
                    .get(topic)
                    .copied()
                    .unwrap_or(self.default_policy);
                let entry = Topic {
                    subs: Vec::new(),
                    policy,
                };
                self.map.insert(k.clone(), entry);
                if let Some(c) = self.changes.as_mut() {
                    c.push((k.clone(), true));
                }
                k
            }
        };
        if let Some(entry) = self.map.get_mut(topic) {
            entry.subs.push(Sub {
                index,
                generation,
                meta: false,
                gaps: false,
                floor: 0,
            });
        }
        sub.topics.push(name);
        stats.subscriptions.add(1);
        stats.topic_subscriber(topic, true);
        Ok(true)
    }

    /// Unsubscribe; returns whether it was subscribed.
    pub fn unsubscribe(
        &mut self,
        index: u32,
        generation: u32,
        sub: &mut Option<Box<Subscriber>>,
        topic: &str,
        stats: &Stats,
    ) -> bool {
        let Some(sub) = sub.as_deref_mut() else {
            return false;
        };
        let Some(pos) = sub.topics.iter().position(|t| &**t == topic) else {
            return false;
        };
        sub.topics.swap_remove(pos);
        self.remove_one(index, generation, topic);
        stats.subscriptions.sub(1);
        stats.topic_subscriber(topic, false);
        true
    }

    /// Drop every subscription of a closed connection.
    pub fn remove_all(&mut self, index: u32, generation: u32, sub: &Subscriber, stats: &Stats) {
        for t in &sub.topics {
            self.remove_one(index, generation, t);
            stats.topic_subscriber(t, false);
        }
        stats.subscriptions.sub(sub.topics.len() as u64);
    }

    fn remove_one(&mut self, index: u32, generation: u32, topic: &str) {
        if let Some(entry) = self.map.get_mut(topic) {
            if let Some(i) = entry
                .subs
                .iter()
                .position(|s| (s.index, s.generation) == (index, generation))
            {
                entry.subs.swap_remove(i);
            }
            if entry.subs.is_empty() {
                if let Some((k, _)) = self.map.remove_entry(topic) {
                    if let Some(c) = self.changes.as_mut() {
                        c.push((k, false));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(t: &mut Topics) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        t.take_changes(|topic, on| out.push((topic.to_string(), on)));
        out
    }

    #[test]
    fn first_and_last_subscriber_of_a_topic_are_recorded_in_order() {
        let stats = Stats::default();
        let mut t = Topics::new(Policy::Drop, Arc::new(HashMap::new()), None);
        let (mut a, mut b) = (None, None);
        // Untracked: nothing is kept.
        t.subscribe(1, 1, &mut a, "x", &stats).unwrap();
        assert!(changes(&mut t).is_empty());
        t.track_changes();
        t.subscribe(2, 1, &mut b, "x", &stats).unwrap();
        t.subscribe(2, 1, &mut b, "y", &stats).unwrap();
        assert_eq!(changes(&mut t), [("y".to_string(), true)]);
        assert!(t.unsubscribe(1, 1, &mut a, "x", &stats));
        assert!(changes(&mut t).is_empty(), "x still has a subscriber");
        let sub = b.take().unwrap();
        t.remove_all(2, 1, &sub, &stats);
        let mut gone = changes(&mut t);
        gone.sort();
        assert_eq!(gone, [("x".to_string(), false), ("y".to_string(), false)]);
        // Subscribed and gone again within one turn: both, in order.
        t.subscribe(3, 1, &mut a, "z", &stats).unwrap();
        assert!(t.unsubscribe(3, 1, &mut a, "z", &stats));
        assert_eq!(
            changes(&mut t),
            [("z".to_string(), true), ("z".to_string(), false)]
        );
    }

    /// The turn's batch holds publications this worker counts as
    /// delivered but has not queued yet; a subscription made meanwhile is
    /// given them in its replay, so the batch must not give them again.
    #[test]
    fn a_replay_and_the_turns_batch_do_not_overlap() {
        use super::super::history::{HistoryConfig, Retention};
        use crate::proto::MessageKind;
        let stats = Stats::default();
        let history = Arc::new(History::new(HistoryConfig {
            default: Some(Retention {
                count: 10,
                max_age: None,
            }),
            topics: HashMap::new(),
        }));
        let mut t = Topics::new(
            Policy::Drop,
            Arc::new(HashMap::new()),
            Some(history.clone()),
        );
        let now = Instant::now();
        let publish =
            |b: &[u8]| history.record(Publication::new("t", None, MessageKind::Text, b), now);
        let (p1, p2) = (publish(b"1"), publish(b"2"));
        let mut batch = Vec::new();
        t.admit(&p1, &mut batch);
        t.admit(&p2, &mut batch);
        let epoch = p1.position().unwrap().epoch;
        let mut sub = None;
        let opts = SubscribeOptions {
            since: Some(Position { epoch, offset: 0 }),
            ..SubscribeOptions::default()
        };
        let r = t
            .subscribe_with(1, 1, &mut sub, "t", &opts, false, now, &stats)
            .unwrap();
        assert!(r.recovered);
        assert_eq!(r.position.map(|p| p.offset), Some(2));
        assert_eq!(sub.as_ref().unwrap().queue.len(), 2, "1 and 2 replayed");
        let s = t.get("t").unwrap().subs[0];
        assert!(
            !s.wants(&p1) && !s.wants(&p2),
            "the batch's 1 and 2 are not sent again"
        );
        let p3 = publish(b"3");
        assert!(s.wants(&p3));
        // A plain subscription at the same moment stands at 2 as well.
        let mut other = None;
        let r = t
            .subscribe_with(
                2,
                1,
                &mut other,
                "t",
                &SubscribeOptions::default(),
                false,
                now,
                &stats,
            )
            .unwrap();
        assert_eq!(r.position.map(|p| p.offset), Some(2));
        assert!(!t.get("t").unwrap().subs[1].wants(&p2));
    }
}
