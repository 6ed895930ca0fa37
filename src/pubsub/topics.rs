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
}

impl Topics {
    pub fn new(default_policy: Policy, overrides: Arc<HashMap<String, Policy>>) -> Self {
        Topics {
            map: HashMap::new(),
            default_policy,
            overrides,
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
                self.map.remove(topic);
            }
        }
    }
}
