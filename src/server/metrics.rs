//! Per-worker counters, summed on scrape into the Prometheus text format
//! served on `GET /metrics`.
//!
//! Each worker owns its [`Stats`] and is its only writer, so a count is a
//! relaxed load and store (plain moves on x86), not a locked read-modify-write
//! shared between cores. A scrape reads every worker's counters.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A counter or gauge written by one thread and read by any.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Add `n` (owner thread only).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Subtract `n` (owner thread only; for gauges).
    #[inline]
    pub fn sub(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_sub(n),
            Ordering::Relaxed,
        );
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One worker's counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections open now (any state).
    pub connections_open: Counter,
    /// Connections accepted.
    pub connections_total: Counter,
    /// WebSocket handshakes completed.
    pub handshakes_accepted: Counter,
    /// Handshakes and HTTP requests answered with an error status.
    pub handshakes_rejected: Counter,
    /// Publications taken by this worker (local and from mailboxes).
    pub publishes: Counter,
    /// Publications queued to a subscriber.
    pub deliveries: Counter,
    /// Subscriptions held now.
    pub subscriptions: Counter,
    /// Subscribers closed with 1008 by the `close` policy.
    pub slow_closes: Counter,
    /// Publications skipped by the `drop` policy.
    pub slow_drops: Counter,
    /// Publications held back by the `conflate` policy.
    pub slow_conflated: Counter,
    /// Held-back publications replaced by a newer one before being sent.
    pub slow_superseded: Counter,
}

/// Picks one counter out of a worker's [`Stats`].
type Field = fn(&Stats) -> &Counter;

/// What a scrape needs from each worker.
pub struct WorkerView<'a> {
    /// Its counters.
    pub stats: &'a Stats,
    /// Messages waiting in its mailbox.
    pub mailbox_depth: usize,
}

/// Render the Prometheus text exposition (version 0.0.4).
pub fn render(workers: &[WorkerView<'_>]) -> String {
    let mut out = String::with_capacity(2048);
    let sum = |f: Field| workers.iter().map(|w| f(w.stats).get()).sum::<u64>();
    let rows: [(&str, &str, &str, Field); 11] = [
        (
            "ringwave_connections",
            "gauge",
            "Connections open now.",
            |s| &s.connections_open,
        ),
        (
            "ringwave_connections_total",
            "counter",
            "Connections accepted.",
            |s| &s.connections_total,
        ),
        (
            "ringwave_handshakes_accepted_total",
            "counter",
            "WebSocket handshakes completed.",
            |s| &s.handshakes_accepted,
        ),
        (
            "ringwave_handshakes_rejected_total",
            "counter",
            "Requests answered with an HTTP error status.",
            |s| &s.handshakes_rejected,
        ),
        (
            "ringwave_publishes_total",
            "counter",
            "Publications taken by workers (one per worker per publish).",
            |s| &s.publishes,
        ),
        (
            "ringwave_deliveries_total",
            "counter",
            "Publications queued to subscribers.",
            |s| &s.deliveries,
        ),
        (
            "ringwave_subscriptions",
            "gauge",
            "Subscriptions held now.",
            |s| &s.subscriptions,
        ),
        (
            "ringwave_slow_consumer_closes_total",
            "counter",
            "Subscribers closed with 1008 by the close policy.",
            |s| &s.slow_closes,
        ),
        (
            "ringwave_slow_consumer_drops_total",
            "counter",
            "Publications skipped by the drop policy.",
            |s| &s.slow_drops,
        ),
        (
            "ringwave_slow_consumer_conflated_total",
            "counter",
            "Publications held back by the conflate policy.",
            |s| &s.slow_conflated,
        ),
        (
            "ringwave_slow_consumer_superseded_total",
            "counter",
            "Held-back publications replaced by a newer one before being sent.",
            |s| &s.slow_superseded,
        ),
    ];
    for (name, kind, help, f) in rows {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
            sum(f)
        );
    }
    let _ = writeln!(
        out,
        "# HELP ringwave_mailbox_depth Messages waiting in a worker's mailbox.\n# TYPE ringwave_mailbox_depth gauge"
    );
    for (i, w) in workers.iter().enumerate() {
        let _ = writeln!(
            out,
            "ringwave_mailbox_depth{{worker=\"{i}\"}} {}",
            w.mailbox_depth
        );
    }
    let per_worker: [(&str, &str, Field); 2] = [
        (
            "ringwave_worker_connections",
            "Connections open now, per worker.",
            |s| &s.connections_open,
        ),
        (
            "ringwave_worker_subscriptions",
            "Subscriptions held now, per worker.",
            |s| &s.subscriptions,
        ),
    ];
    for (name, help, f) in per_worker {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (i, w) in workers.iter().enumerate() {
            let _ = writeln!(out, "{name}{{worker=\"{i}\"}} {}", f(w.stats).get());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_workers() {
        let a = Stats::default();
        let b = Stats::default();
        a.slow_drops.add(3);
        b.slow_drops.add(4);
        b.subscriptions.add(2);
        b.subscriptions.sub(1);
        let text = render(&[
            WorkerView {
                stats: &a,
                mailbox_depth: 0,
            },
            WorkerView {
                stats: &b,
                mailbox_depth: 5,
            },
        ]);
        assert!(
            text.contains("\nringwave_slow_consumer_drops_total 7\n"),
            "{text}"
        );
        assert!(text.contains("\nringwave_subscriptions 1\n"), "{text}");
        assert!(
            text.contains("ringwave_mailbox_depth{worker=\"1\"} 5\n"),
            "{text}"
        );
    }
}
