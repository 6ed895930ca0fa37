//! Per-topic offsets and history, shared by every worker and publisher of
//! one node.
//!
//! A topic with a [`Retention`] gets a log when first touched: an epoch (a
//! random token for this log's life, so positions from before a restart
//! are recognised as foreign) and the next offset. Every publication on it
//! takes the next offset under the log's lock, is kept (the same `Arc` the
//! subscriber queues hold, so its payload is stored once) while within the
//! retention's count and age, and, when keyed, is the topic's newest value
//! for its key (the snapshot).
//!
//! Workers receive a topic's publications in any interleaving of their
//! publishers; [`Order`] puts them back in offset order per worker. Because
//! a worker delivers offsets strictly in order, "delivered here so far" is
//! one number per topic (`Order::next`), and a subscriber recovering from
//! position N needs exactly the logged offsets N+1 up to it: the rest
//! reaches it live, with no duplicate and no hole at the seam.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Publication;

/// Most keys one topic's snapshot holds; a new key past it is not kept
/// (its publications are still delivered and logged).
pub const MAX_SNAPSHOT_KEYS: usize = 100_000;

/// Most topics with a log; a new topic past it keeps no history (its
/// publications are delivered without offsets), so a default retention
/// (`*`) cannot be made to hold unbounded topic names.
pub const MAX_LOGS: usize = 100_000;

/// How much of a topic's history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Newest publications kept (at least 1).
    pub count: usize,
    /// Publications older than this are dropped, when set.
    pub max_age: Option<Duration>,
}

impl std::str::FromStr for Retention {
    type Err = String;

    /// `COUNT` or `COUNT,SECS`.
    fn from_str(s: &str) -> Result<Retention, String> {
        let (count, secs) = match s.split_once(',') {
            Some((c, s)) => (c, Some(s)),
            None => (s, None),
        };
        let count: usize = count
            .trim()
            .parse()
            .ok()
            .filter(|&c| c > 0)
            .ok_or_else(|| format!("history count {count:?} is not a positive number"))?;
        let max_age = match secs {
            None => None,
            Some(s) => Some(
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        format!("history age {s:?} is not a positive number of seconds")
                    })?,
            ),
        };
        Ok(Retention { count, max_age })
    }
}

/// Where a topic's history keeps which topics, and how much.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Every topic not listed in `topics`; `None`: those keep no history.
    pub default: Option<Retention>,
    /// Per topic.
    pub topics: HashMap<String, Retention>,
}

impl HistoryConfig {
    /// Whether any topic keeps history.
    pub fn is_enabled(&self) -> bool {
        self.default.is_some() || !self.topics.is_empty()
    }

    fn retention(&self, topic: &str) -> Option<Retention> {
        self.topics.get(topic).copied().or(self.default)
    }
}

/// A position in a topic: its log's epoch and an offset (the first
/// publication is 1; 0 is "before any").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// The log's epoch.
    pub epoch: u32,
    /// The offset.
    pub offset: u64,
}

impl Position {
    /// The epoch as it is written (8 hex digits).
    pub fn epoch_str(&self) -> String {
        format!("{:08x}", self.epoch)
    }

    /// `EPOCH:OFFSET`, the Server-Sent Events id.
    pub fn parse_id(s: &str) -> Option<Position> {
        let (e, o) = s.trim().split_once(':')?;
        Some(Position {
            epoch: parse_epoch(e)?,
            offset: o.parse().ok()?,
        })
    }
}

/// An epoch as written: 8 hex digits.
pub fn parse_epoch(s: &str) -> Option<u32> {
    (s.len() == 8).then(|| u32::from_str_radix(s, 16).ok())?
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}:{}", self.epoch, self.offset)
    }
}

struct Log {
    epoch: u32,
    /// The offset the next publication takes.
    next: u64,
    retention: Retention,
    entries: VecDeque<(Instant, Arc<Publication>)>,
    /// The newest publication per key.
    latest: HashMap<Box<str>, Arc<Publication>>,
    /// Served to subscribers: a broker's log is not until its backfill is in.
    live: bool,
    /// The first offset the workers receive (1 for this node's own log; for
    /// a broker's, the one after its backfill).
    start: u64,
}

impl Log {
    fn new(epoch: u32, next: u64, retention: Retention, live: bool) -> Log {
        Log {
            epoch,
            next,
            retention,
            entries: VecDeque::new(),
            latest: HashMap::new(),
            live,
            start: next,
        }
    }

    /// Keep `p` (its position set), and as its key's newest.
    fn push(&mut self, p: Arc<Publication>, now: Instant) {
        if let Some(key) = p.key() {
            if let Some(old) = self.latest.get_mut(key) {
                *old = p.clone();
            } else if self.latest.len() < MAX_SNAPSHOT_KEYS {
                self.latest.insert(Box::from(key), p.clone());
            }
        }
        self.entries.push_back((now, p));
        self.trim(now);
    }

    fn trim(&mut self, now: Instant) {
        while self.entries.len() > self.retention.count {
            self.entries.pop_front();
        }
        if let Some(age) = self.retention.max_age {
            while self
                .entries
                .front()
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) > age)
            {
                self.entries.pop_front();
            }
        }
    }

    /// The offset of the oldest publication kept, or `next` when none is.
    fn oldest(&self) -> u64 {
        self.entries
            .front()
            .and_then(|(_, p)| p.position())
            .map_or(self.next, |p| p.offset)
    }
}

/// What a subscription from a position found.
#[derive(Debug)]
pub struct Recovery {
    /// Whether `since` was recovered: every publication after it is either
    /// in `replay` or still to arrive live.
    pub recovered: bool,
    /// The logged publications the subscriber missed, in order.
    pub replay: Vec<Arc<Publication>>,
    /// Live publications at or below this offset are the subscriber's
    /// already (it was ahead of this worker): skip them.
    pub floor: u64,
}

/// A read of a topic's log ([`History::read`]).
#[derive(Debug)]
pub struct Read {
    /// The topic's position: its epoch and the offset of its newest
    /// publication (0: none yet).
    pub position: Position,
    /// Whether the read started right after `since`: `false` when `since`
    /// is of another epoch or older than what the log keeps (the read then
    /// starts at the oldest kept).
    pub recovered: bool,
    /// The publications, in offset order.
    pub publications: Vec<Arc<Publication>>,
}

/// One node's topic logs.
pub struct History {
    config: HistoryConfig,
    /// Offsets come from a broker (NATS JetStream) for every topic with
    /// history: [`History::adopt`] and [`History::open`] fill the logs, and
    /// this node's publications on those topics go to the broker first.
    relayed: bool,
    logs: Mutex<HashMap<Arc<str>, Log>>,
    seed: std::collections::hash_map::RandomState,
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("History")
            .field("config", &self.config)
            .finish()
    }
}

impl History {
    /// Logs as `config` says.
    pub fn new(config: HistoryConfig) -> History {
        Self::with_source(config, false)
    }

    /// Logs whose offsets a broker gives (`relayed`), or this node.
    pub fn with_source(config: HistoryConfig, relayed: bool) -> History {
        History {
            config,
            relayed,
            logs: Mutex::new(HashMap::new()),
            seed: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Whether `topic` keeps history.
    pub fn keeps(&self, topic: &str) -> bool {
        self.config.retention(topic).is_some()
    }

    /// Whether a broker numbers `topic`'s publications: this node's go to
    /// it, and come back numbered, before anyone here receives them.
    pub fn relays(&self, topic: &str) -> bool {
        self.relayed && self.keeps(topic)
    }

    /// How much `topic` keeps (`None`: no history).
    pub fn retention(&self, topic: &str) -> Option<Retention> {
        self.config.retention(topic)
    }

    /// The topics named in the configuration (not `*`'s).
    pub fn named_topics(&self) -> Vec<String> {
        let mut v: Vec<String> = self.config.topics.keys().cloned().collect();
        v.sort();
        v
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Log>> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `topic`'s log, made on first use; `None` without history (and for a
    /// broker's log not yet live).
    fn with_log<R>(&self, topic: &str, f: impl FnOnce(&mut Log) -> R) -> Option<R> {
        let retention = self.config.retention(topic)?;
        let mut logs = self.lock();
        if self.relayed {
            return logs.get_mut(topic).filter(|l| l.live).map(f);
        }
        if !logs.contains_key(topic) && logs.len() < MAX_LOGS {
            // Random per process: a restarted server's epochs are new.
            let epoch = self.seed.hash_one((topic, logs.len())) as u32;
            logs.insert(Arc::from(topic), Log::new(epoch, 1, retention, true));
        }
        logs.get_mut(topic).map(f)
    }

    /// A broker's log for `topic` under `epoch`, made (or started over, for
    /// another epoch) as needed; `None` past [`MAX_LOGS`] or without history.
    fn broker_log<R>(&self, topic: &str, epoch: u32, f: impl FnOnce(&mut Log) -> R) -> Option<R> {
        let retention = self.config.retention(topic)?;
        let mut logs = self.lock();
        if !logs.contains_key(topic) {
            if logs.len() >= MAX_LOGS {
                return None;
            }
            logs.insert(Arc::from(topic), Log::new(epoch, 1, retention, false));
        }
        let log = logs.get_mut(topic)?;
        if log.epoch != epoch {
            *log = Log::new(epoch, 1, retention, false);
        }
        Some(f(log))
    }

    /// Take a publication the broker numbered (its position set by
    /// `Publication::set_relayed_position`) into its log; `None` when the
    /// log holds that offset already (a redelivery). A jump past the log's
    /// next offset is a gap: what the log held cannot be recovered across
    /// it, so it starts over there. A log not yet live stays so (its
    /// backfill: [`History::open`] ends it).
    pub fn adopt(&self, p: Arc<Publication>, now: Instant) -> Option<Arc<Publication>> {
        let pos = p.position()?;
        let topic = p.topic().to_owned();
        self.broker_log(&topic, pos.epoch, |log| {
            if pos.offset < log.next {
                return None;
            }
            if pos.offset != log.next {
                log.entries.clear();
            }
            log.next = pos.offset + 1;
            log.push(p.clone(), now);
            Some(p)
        })
        .flatten()
    }

    /// The broker's log of `topic` under `epoch` is in up to `next`
    /// (exclusive): subscribers are served from it, and the workers receive
    /// offsets from `next` on. A live log is left as it is.
    pub fn open(&self, topic: &str, epoch: u32, next: u64) {
        self.broker_log(topic, epoch, |log| {
            if !log.live {
                log.live = true;
                if log.next != next {
                    log.entries.clear();
                }
                log.next = next;
                log.start = next;
            }
        });
    }

    /// A broker's live log of `topic`: its epoch and the next offset it
    /// expects.
    pub fn broker_next(&self, topic: &str) -> Option<Position> {
        let logs = self.lock();
        logs.get(topic).filter(|l| l.live).map(|l| Position {
            epoch: l.epoch,
            offset: l.next,
        })
    }

    /// `topic`'s epoch and the first offset the workers receive, when it
    /// keeps a log (made here on first use, for this node's own).
    pub fn start(&self, topic: &str) -> Option<(u32, u64)> {
        self.with_log(topic, |log| (log.epoch, log.start))
    }

    /// Give `p` its topic's next offset and log it; returns the publication
    /// to deliver (a copy when `p` already had a position: published twice).
    /// A topic without history (or past [`MAX_LOGS`]) returns `p` as it is.
    pub fn record(&self, p: Arc<Publication>, now: Instant) -> Arc<Publication> {
        if !self.keeps(p.topic()) {
            return p;
        }
        let p = if p.position().is_some() {
            Publication::new(p.topic(), p.key(), p.kind(), p.payload())
        } else {
            p
        };
        self.with_log(p.topic(), |log| {
            p.set_position(Position {
                epoch: log.epoch,
                offset: log.next,
            });
            log.next += 1;
            log.push(p.clone(), now);
        });
        p
    }

    /// The topic's position as a worker that delivered up to `delivered`
    /// (exclusive) sees it: `None` without history.
    pub fn position(&self, topic: &str, delivered: u64) -> Option<Position> {
        self.with_log(topic, |log| Position {
            epoch: log.epoch,
            offset: delivered.saturating_sub(1),
        })
    }

    /// A subscriber at `since` joins a worker that delivered the topic up to
    /// `delivered` (exclusive).
    pub fn recover(&self, topic: &str, since: Position, delivered: u64, now: Instant) -> Recovery {
        let lost = Recovery {
            recovered: false,
            replay: Vec::new(),
            floor: 0,
        };
        self.with_log(topic, |log| {
            log.trim(now);
            if since.epoch != log.epoch || since.offset >= log.next {
                return lost;
            }
            if since.offset + 1 >= delivered {
                // Up to date here, or ahead (delivered elsewhere first).
                return Recovery {
                    recovered: true,
                    replay: Vec::new(),
                    floor: since.offset,
                };
            }
            if since.offset + 1 < log.oldest() {
                return lost;
            }
            let replay = log
                .entries
                .iter()
                .map(|(_, p)| p)
                .filter(|p| {
                    p.position()
                        .is_some_and(|q| q.offset > since.offset && q.offset < delivered)
                })
                .cloned()
                .collect();
            Recovery {
                recovered: true,
                replay,
                floor: 0,
            }
        })
        .unwrap_or(Recovery {
            recovered: false,
            replay: Vec::new(),
            floor: 0,
        })
    }

    /// Up to `limit` of the publications `topic` keeps after `since` (from
    /// the oldest kept without it, or when `since` is no longer covered),
    /// and the topic's position; `None` on a topic without history.
    pub fn read(
        &self,
        topic: &str,
        since: Option<Position>,
        limit: usize,
        now: Instant,
    ) -> Option<Read> {
        self.with_log(topic, |log| {
            log.trim(now);
            let covered = since.filter(|s| {
                s.epoch == log.epoch && s.offset < log.next && s.offset + 1 >= log.oldest()
            });
            let after = covered.map_or(0, |s| s.offset);
            let publications = log
                .entries
                .iter()
                .map(|(_, p)| p)
                .filter(|p| p.position().is_some_and(|q| q.offset > after))
                .take(limit)
                .cloned()
                .collect();
            Read {
                position: Position {
                    epoch: log.epoch,
                    offset: log.next.saturating_sub(1),
                },
                recovered: since.is_none() || covered.is_some(),
                publications,
            }
        })
    }

    /// The newest publication of every key delivered before `delivered`, in
    /// offset order.
    pub fn snapshot(&self, topic: &str, delivered: u64) -> Vec<Arc<Publication>> {
        let mut v: Vec<Arc<Publication>> = self
            .with_log(topic, |log| {
                log.latest
                    .values()
                    .filter(|p| p.position().is_some_and(|q| q.offset < delivered))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by_key(|p| p.position().map_or(0, |q| q.offset));
        v
    }

    /// Publications kept and keys in snapshots, over every topic.
    pub fn sizes(&self) -> (usize, usize) {
        let logs = self.lock();
        logs.values().fold((0, 0), |(e, k), l| {
            (e + l.entries.len(), k + l.latest.len())
        })
    }
}

/// One worker's delivery order for the topics with history: offsets in
/// order, each once.
#[derive(Debug, Default)]
pub struct Order {
    topics: HashMap<Arc<str>, Pending>,
}

#[derive(Debug)]
struct Pending {
    /// The epoch of the offsets.
    epoch: u32,
    /// The offset to deliver next: everything below it was delivered here.
    next: u64,
    /// Arrived ahead of a predecessor still on its way.
    held: BTreeMap<u64, Arc<Publication>>,
}

impl Order {
    /// Take `p`; `out` gets what is now deliverable, in order.
    pub fn admit(&mut self, p: &Arc<Publication>, out: &mut Vec<Arc<Publication>>) {
        let Some(pos) = p.position() else {
            out.push(p.clone());
            return;
        };
        let pending = match self.topics.get_mut(p.topic()) {
            Some(t) => t,
            None => self.topics.entry(Arc::from(p.topic())).or_insert(Pending {
                epoch: pos.epoch,
                // A broker's offsets start where its log was opened.
                next: if p.relayed() { pos.offset } else { 1 },
                held: BTreeMap::new(),
            }),
        };
        if pending.epoch != pos.epoch {
            // The broker's log started over (this node's never does).
            *pending = Pending {
                epoch: pos.epoch,
                next: pos.offset,
                held: BTreeMap::new(),
            };
        }
        if pos.offset < pending.next {
            return;
        }
        if p.relayed() && pos.offset > pending.next {
            // One source, in order: what lies between will not come.
            pending.next = pos.offset;
        }
        if pos.offset > pending.next {
            pending.held.insert(pos.offset, p.clone());
            return;
        }
        out.push(p.clone());
        pending.next += 1;
        while let Some(q) = pending.held.remove(&pending.next) {
            out.push(q);
            pending.next += 1;
        }
    }

    /// The next offset this worker will deliver on `topic` (1 before any).
    pub fn next(&self, topic: &str) -> u64 {
        self.topics.get(topic).map_or(1, |t| t.next)
    }

    /// The same under `epoch`: `None` before any of that epoch arrived.
    pub fn next_in(&self, topic: &str, epoch: u32) -> Option<u64> {
        self.topics
            .get(topic)
            .filter(|t| t.epoch == epoch)
            .map(|t| t.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::MessageKind;

    fn history(count: usize, secs: Option<u64>) -> History {
        History::new(HistoryConfig {
            default: None,
            topics: [(
                "t".to_string(),
                Retention {
                    count,
                    max_age: secs.map(Duration::from_secs),
                },
            )]
            .into(),
        })
    }

    fn publish(h: &History, key: Option<&str>, body: &str, now: Instant) -> Arc<Publication> {
        h.record(
            Publication::new("t", key, MessageKind::Text, body.as_bytes()),
            now,
        )
    }

    fn offsets(v: &[Arc<Publication>]) -> Vec<u64> {
        v.iter().map(|p| p.position().unwrap().offset).collect()
    }

    #[test]
    fn offsets_count_up_and_the_log_keeps_count_and_age() {
        let h = history(3, Some(10));
        let t0 = Instant::now();
        let ps: Vec<_> = (0..5)
            .map(|i| publish(&h, None, &i.to_string(), t0))
            .collect();
        assert_eq!(offsets(&ps), [1, 2, 3, 4, 5]);
        let epoch = ps[0].position().unwrap().epoch;
        // Up to 5 delivered (next 6): from 2 recovers 3..=5, all kept.
        let r = h.recover("t", Position { epoch, offset: 2 }, 6, t0);
        assert!(r.recovered);
        assert_eq!(offsets(&r.replay), [3, 4, 5]);
        // From 1: offset 2 is gone (count 3 keeps 3..=5).
        assert!(
            !h.recover("t", Position { epoch, offset: 1 }, 6, t0)
                .recovered
        );
        // Another epoch, or a position never reached.
        assert!(
            !h.recover(
                "t",
                Position {
                    epoch: epoch ^ 1,
                    offset: 4
                },
                6,
                t0
            )
            .recovered
        );
        assert!(
            !h.recover("t", Position { epoch, offset: 9 }, 6, t0)
                .recovered
        );
        // 11 s later every entry is too old: 4 cannot be recovered...
        let later = t0 + Duration::from_secs(11);
        assert!(
            !h.recover("t", Position { epoch, offset: 4 }, 6, later)
                .recovered
        );
        // ...but the newest position still is (nothing was missed).
        assert!(
            h.recover("t", Position { epoch, offset: 5 }, 6, later)
                .recovered
        );
        // The payload is the queues' own: one allocation, shared.
        assert!(Arc::strong_count(&ps[4]) >= 2);
    }

    #[test]
    fn a_worker_behind_replays_only_what_it_delivered() {
        let h = history(100, None);
        let now = Instant::now();
        let ps: Vec<_> = (0..6)
            .map(|i| publish(&h, None, &i.to_string(), now))
            .collect();
        let epoch = ps[0].position().unwrap().epoch;
        // This worker delivered 1..=3; 4..=6 are on their way to it.
        let r = h.recover("t", Position { epoch, offset: 1 }, 4, now);
        assert_eq!(
            (r.recovered, offsets(&r.replay), r.floor),
            (true, vec![2, 3], 0)
        );
        // A subscriber ahead of this worker (at 5): nothing replayed, and
        // live 4 and 5 are skipped for it.
        let r = h.recover("t", Position { epoch, offset: 5 }, 4, now);
        assert_eq!((r.recovered, r.replay.len(), r.floor), (true, 0, 5));
    }

    #[test]
    fn order_delivers_each_offset_once_in_order() {
        let h = history(100, None);
        let now = Instant::now();
        let ps: Vec<_> = (0..5)
            .map(|i| publish(&h, None, &i.to_string(), now))
            .collect();
        let mut o = Order::default();
        let mut out = Vec::new();
        for i in [1, 0, 3, 0, 2, 4] {
            o.admit(&ps[i], &mut out);
        }
        assert_eq!(offsets(&out), [1, 2, 3, 4, 5]);
        assert_eq!(o.next("t"), 6);
        assert_eq!(o.next("other"), 1);
    }

    #[test]
    fn snapshot_is_the_newest_per_key_delivered_here() {
        let h = history(2, None);
        let now = Instant::now();
        for (k, v) in [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4"), ("b", "5")] {
            publish(&h, Some(k), v, now);
        }
        let snap = h.snapshot("t", 6);
        let got: Vec<_> = snap
            .iter()
            .map(|p| (p.key().unwrap().to_string(), p.payload().to_vec()))
            .collect();
        assert_eq!(
            got,
            [
                ("a".into(), b"3".to_vec()),
                ("c".into(), b"4".to_vec()),
                ("b".into(), b"5".to_vec())
            ]
        );
        // Delivered only up to 4 here: b's newest (5) comes live.
        assert_eq!(offsets(&h.snapshot("t", 5)), [3, 4]);
    }

    #[test]
    fn topics_past_the_log_limit_keep_no_history() {
        let h = History::new(HistoryConfig {
            default: Some(Retention {
                count: 1,
                max_age: None,
            }),
            topics: HashMap::new(),
        });
        for i in 0..MAX_LOGS {
            assert!(h.position(&format!("t{i}"), 1).is_some());
        }
        let p = h.record(
            Publication::new("one-more", None, MessageKind::Text, b"x"),
            Instant::now(),
        );
        assert_eq!(p.position(), None);
        assert_eq!(h.position("one-more", 1), None);
        assert!(h.position("t7", 1).is_some(), "the old ones keep theirs");
    }

    fn relayed(topic: &str, body: &str, epoch: u32, offset: u64) -> Arc<Publication> {
        let p = Publication::new(topic, Some(body), MessageKind::Text, body.as_bytes());
        p.set_relayed_position(Position { epoch, offset });
        p
    }

    #[test]
    fn a_brokers_log_is_served_once_its_backfill_is_in() {
        let h = History::with_source(history(100, None).config.clone(), true);
        let now = Instant::now();
        assert!(h.relays("t") && !h.relays("other"));
        // Backfill 5..=7 (the stream no longer held 1..=4): not served yet.
        for o in 5..=7 {
            assert!(h.adopt(relayed("t", &o.to_string(), 9, o), now).is_some());
        }
        assert_eq!(h.start("t"), None, "no position while the backfill runs");
        h.open("t", 9, 8);
        assert_eq!(h.start("t"), Some((9, 8)));
        assert_eq!(
            h.broker_next("t"),
            Some(Position {
                epoch: 9,
                offset: 8
            })
        );
        // Live 8, 9; a redelivery of 9 is dropped.
        for o in [8, 9] {
            assert!(h.adopt(relayed("t", "live", 9, o), now).is_some());
        }
        assert!(h.adopt(relayed("t", "again", 9, 9), now).is_none());
        // A worker that delivered up to 9 (next 10): from 5 recovers 6..=9;
        // from 3 does not (4 was never here).
        let r = h.recover(
            "t",
            Position {
                epoch: 9,
                offset: 5,
            },
            10,
            now,
        );
        assert_eq!((r.recovered, offsets(&r.replay)), (true, vec![6, 7, 8, 9]));
        assert!(
            !h.recover(
                "t",
                Position {
                    epoch: 9,
                    offset: 3
                },
                10,
                now
            )
            .recovered
        );
        // A jump (the stream lost 10..=11 meanwhile) is a gap: nothing
        // before it recovers across it.
        assert!(h.adopt(relayed("t", "after", 9, 12), now).is_some());
        assert!(
            !h.recover(
                "t",
                Position {
                    epoch: 9,
                    offset: 8
                },
                13,
                now
            )
            .recovered
        );
        assert!(
            h.recover(
                "t",
                Position {
                    epoch: 9,
                    offset: 12
                },
                13,
                now
            )
            .recovered
        );
        // The stream made anew: another epoch, served again once opened.
        assert!(h.adopt(relayed("t", "new", 4, 1), now).is_some());
        assert_eq!(h.start("t"), None);
        h.open("t", 4, 2);
        assert_eq!(h.start("t"), Some((4, 2)));
        assert!(
            !h.recover(
                "t",
                Position {
                    epoch: 9,
                    offset: 12
                },
                2,
                now
            )
            .recovered
        );
    }

    #[test]
    fn order_takes_a_brokers_offsets_from_where_they_start() {
        let mut o = Order::default();
        let mut out = Vec::new();
        // Starts at 40, skips ahead over a gap, drops a repeat.
        for (e, off) in [(9, 40), (9, 41), (9, 45), (9, 44), (9, 46)] {
            o.admit(&relayed("t", "x", e, off), &mut out);
        }
        assert_eq!(offsets(&out), [40, 41, 45, 46]);
        assert_eq!(o.next_in("t", 9), Some(47));
        assert_eq!(o.next_in("t", 4), None);
        // Another epoch starts over.
        out.clear();
        o.admit(&relayed("t", "x", 4, 1), &mut out);
        assert_eq!((offsets(&out), o.next_in("t", 4)), (vec![1], Some(2)));
    }

    #[test]
    fn retention_parses_count_and_seconds() {
        assert_eq!(
            "100,30".parse::<Retention>(),
            Ok(Retention {
                count: 100,
                max_age: Some(Duration::from_secs(30))
            })
        );
        assert_eq!("5".parse::<Retention>().map(|r| r.max_age), Ok(None));
        assert!("0".parse::<Retention>().is_err());
        assert!("x".parse::<Retention>().is_err());
        assert!("5,-1".parse::<Retention>().is_err());
        assert_eq!(
            Position::parse_id("0000abcd:42"),
            Some(Position {
                epoch: 0xabcd,
                offset: 42
            })
        );
        assert_eq!(Position::parse_id("abcd:42"), None);
        assert_eq!(
            Position {
                epoch: 0xabcd,
                offset: 42
            }
            .to_string(),
            "0000abcd:42"
        );
    }
}
