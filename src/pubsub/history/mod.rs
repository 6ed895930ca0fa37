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
use std::sync::{Arc, Mutex, RwLock};
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
    /// Which topics keep history, and how much: the amounts change with
    /// [`History::set_retention`].
    config: RwLock<HistoryConfig>,
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
            .field("config", &*self.config())
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
            config: RwLock::new(config),
            relayed,
            logs: Mutex::new(HashMap::new()),
            seed: std::collections::hash_map::RandomState::new(),
        }
    }

    fn config(&self) -> std::sync::RwLockReadGuard<'_, HistoryConfig> {
        self.config.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Take `config`'s amounts: each log trims to its topic's new count
    /// at once, and to its age at its next publication. Which topics keep
    /// history is fixed when the server starts (a subscriber's offsets
    /// must not stop or start under it): a topic `config` adds gets none,
    /// one it leaves out keeps its old retention.
    pub fn set_retention(&self, config: &HistoryConfig) {
        let mut current = self.config.write().unwrap_or_else(|e| e.into_inner());
        if current.default.is_some() {
            current.default = config.default.or(current.default);
        }
        for (topic, r) in current.topics.iter_mut() {
            *r = config.retention(topic).unwrap_or(*r);
        }
        let mut logs = self.lock();
        for (topic, log) in logs.iter_mut() {
            if let Some(r) = current.retention(topic) {
                log.retention = r;
                while log.entries.len() > r.count {
                    log.entries.pop_front();
                }
            }
        }
    }

    /// Whether `topic` keeps history.
    pub fn keeps(&self, topic: &str) -> bool {
        self.config().retention(topic).is_some()
    }

    /// Whether a broker numbers `topic`'s publications: this node's go to
    /// it, and come back numbered, before anyone here receives them.
    pub fn relays(&self, topic: &str) -> bool {
        self.relayed && self.keeps(topic)
    }

    /// How much `topic` keeps (`None`: no history).
    pub fn retention(&self, topic: &str) -> Option<Retention> {
        self.config().retention(topic)
    }

    /// The topics named in the configuration (not `*`'s).
    pub fn named_topics(&self) -> Vec<String> {
        let mut v: Vec<String> = self.config().topics.keys().cloned().collect();
        v.sort();
        v
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Log>> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `topic`'s log, made on first use; `None` without history (and for a
    /// broker's log not yet live).
    fn with_log<R>(&self, topic: &str, f: impl FnOnce(&mut Log) -> R) -> Option<R> {
        let retention = self.retention(topic)?;
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
        let retention = self.retention(topic)?;
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
mod tests;
