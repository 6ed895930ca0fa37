//! One worker's topic table: which connections subscribe to what, and each
//! topic's slow-consumer policy.

use std::collections::HashMap;
use std::sync::Arc;

use super::{valid_topic, Policy, SubscribeError, Subscriber, MAX_SUBSCRIPTIONS};
use crate::metrics::Stats;

/// A topic's subscribers on one worker.
#[derive(Debug)]
pub(crate) struct Topic {
    /// (slot index, generation) of each subscriber.
    pub subs: Vec<(u32, u32)>,
    pub policy: Policy,
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
}

impl Topics {
    pub fn new(default_policy: Policy, overrides: Arc<HashMap<String, Policy>>) -> Self {
        Topics {
            map: HashMap::new(),
            default_policy,
            overrides,
            changes: None,
        }
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
            entry.subs.push((index, generation));
        }
        sub.topics.push(name);
        stats.subscriptions.add(1);
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
        true
    }

    /// Drop every subscription of a closed connection.
    pub fn remove_all(&mut self, index: u32, generation: u32, sub: &Subscriber, stats: &Stats) {
        for t in &sub.topics {
            self.remove_one(index, generation, t);
        }
        stats.subscriptions.sub(sub.topics.len() as u64);
    }

    fn remove_one(&mut self, index: u32, generation: u32, topic: &str) {
        if let Some(entry) = self.map.get_mut(topic) {
            if let Some(i) = entry.subs.iter().position(|&s| s == (index, generation)) {
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
        let mut t = Topics::new(Policy::Drop, Arc::new(HashMap::new()));
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
}
