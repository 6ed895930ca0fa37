//! Per-worker counters, summed on scrape into the Prometheus text format
//! served on `GET /metrics`.
//!
//! Each worker owns its [`Stats`] and is its only writer, so a count is a
//! relaxed load and store (plain moves on x86), not a locked read-modify-write
//! shared between cores. A scrape reads every worker's counters.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

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

    /// Make it `n` (owner thread only; for gauges).
    #[inline]
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One worker's counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Subscribers of each topic on this worker (for the server API's
    /// position of a topic), changed on subscribe and unsubscribe.
    pub topic_subscribers: Mutex<HashMap<Box<str>, u32>>,
    /// Connections open now (any state).
    pub connections_open: Counter,
    /// Output bytes the worker holds besides its subscribers' queues, as
    /// of its last flush: ciphertext waiting in TLS layers and buffers in
    /// the driver's sends that have not completed.
    pub send_backlog: Counter,
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
    /// Subscriptions from a position that were recovered.
    pub recovered: Counter,
    /// Subscriptions from a position that could not be (too old, another
    /// epoch, never reached).
    pub not_recovered: Counter,
    /// Subscribers closed with 1008 by the `close` policy.
    pub slow_closes: Counter,
    /// Connections closed with 1008 for sending messages faster than
    /// `max_message_rate`.
    pub rate_closes: Counter,
    /// WebSockets closed with 1001 at the end of their lifetime
    /// (`max_lifetime`).
    pub lifetime_closes: Counter,
    /// Publications skipped by the `drop` policy.
    pub slow_drops: Counter,
    /// Notices of skipped publications sent to subscribers that asked for
    /// them.
    pub gap_notices: Counter,
    /// Publications held back by the `conflate` policy.
    pub slow_conflated: Counter,
    /// Held-back publications replaced by a newer one before being sent.
    pub slow_superseded: Counter,
    /// Whole messages received.
    pub messages_in: Counter,
    /// Messages queued by handlers (publications are `deliveries`).
    pub messages_out: Counter,
    /// Bytes read from sockets.
    pub bytes_in: Counter,
    /// Bytes handed to the kernel.
    pub bytes_out: Counter,
    /// WebSocket connections closed, by close code ([`CLOSE_CODES`], then
    /// any other code).
    pub closes: [Counter; CLOSE_CODES.len() + 1],
    /// Requests refused, by reason ([`REJECT_REASONS`]).
    pub rejects: [Counter; REJECT_REASONS.len()],
    /// TLS handshakes completed.
    pub tls_handshakes: Counter,
    /// TLS connections that failed, by reason ([`TLS_FAILURES`]).
    pub tls_failures: [Counter; TLS_FAILURES.len()],
    /// HTTP/2 connections (prior knowledge or ALPN `h2`).
    pub h2_connections: Counter,
    /// HTTP/2 streams served, by kind ([`H2_STREAMS`]).
    pub h2_streams: [Counter; H2_STREAMS.len()],
    /// HTTP/2 connections failed and streams refused, by reason
    /// ([`H2_ERRORS`]).
    pub h2_errors: [Counter; H2_ERRORS.len()],
    /// Loop-turn work time histogram (not counting the wait for I/O).
    pub turn: Histogram<{ TURN_BUCKETS_US.len() }>,
    /// Delivery lag: from a publication's arrival on the first worker to
    /// the send that carried it to a subscriber (see `runtime::flush`).
    pub delivery_lag: Histogram<{ LAG_BUCKETS_US.len() }>,
}

/// What an HTTP/2 stream served: a whole response, an event stream, a
/// publish body or a WebSocket (RFC 8441).
pub const H2_STREAMS: [&str; 4] = ["response", "events", "publish", "websocket"];

/// Why an HTTP/2 connection failed (GOAWAY) or a stream was refused:
/// - `protocol`: a protocol error (bad preface, frame, sequence, stream);
/// - `flow_control`: DATA past a window, a window past 2^31-1;
/// - `compression`: an HPACK block that cannot be decoded, or a table
///   larger than announced;
/// - `continuation_flood`: a header block past its size or frame limit;
/// - `control_flood`: too many PING, SETTINGS, PRIORITY, WINDOW_UPDATE or
///   empty frames in a second;
/// - `rapid_reset`: too many streams reset or refused in a second
///   (CVE-2023-44487);
/// - `header_list`: a stream refused with 431 for its header list;
/// - `stream_limit`: a stream past SETTINGS_MAX_CONCURRENT_STREAMS, refused;
/// - `malformed`: a request refused for its fields;
/// - `unread`: a connection closed for not reading the answers its own
///   frames asked for (acknowledgements, resets) past `max_buffered`.
pub const H2_ERRORS: [&str; 10] = [
    "protocol",
    "flow_control",
    "compression",
    "continuation_flood",
    "control_flood",
    "rapid_reset",
    "header_list",
    "stream_limit",
    "malformed",
    "unread",
];

/// Why a TLS connection failed:
/// - `plaintext_http`: an HTTP request on the TLS port (answered 400);
/// - `bad_record`: bytes that are not TLS records, or a record too large;
/// - `incompatible`: no common protocol version, cipher suite or ALPN
///   protocol, or no certificate for the name asked;
/// - `misbehaved`: a peer breaking the protocol (renegotiation, unexpected
///   messages);
/// - `alert`: the peer sent a fatal alert;
/// - `truncated`: the peer closed in the middle of the handshake;
/// - `timeout`: the handshake was not done within `--handshake-timeout`;
/// - `other`: anything else rustls refused.
pub const TLS_FAILURES: [&str; 8] = [
    "plaintext_http",
    "bad_record",
    "incompatible",
    "misbehaved",
    "alert",
    "truncated",
    "timeout",
    "other",
];

/// Close codes counted one by one; others go to `code="other"`.
pub const CLOSE_CODES: [u16; 11] = [
    1000, 1001, 1002, 1003, 1006, 1007, 1008, 1009, 1011, 4001, 4003,
];

/// Reasons a request is refused: an HTTP status, or a timeout.
pub const REJECT_REASONS: [&str; 13] = [
    "400", "401", "403", "404", "405", "411", "413", "426", "429", "431", "503", "other", "timeout",
];

impl Stats {
    /// A subscriber of `topic` came (`true`) or went.
    pub fn topic_subscriber(&self, topic: &str, came: bool) {
        let mut map = self
            .topic_subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if came {
            *map.entry(topic.into()).or_default() += 1;
        } else if let Some(n) = map.get_mut(topic) {
            *n -= 1;
            if *n == 0 {
                map.remove(topic);
            }
        }
    }

    /// Subscribers of `topic` on this worker.
    pub fn subscribers_of(&self, topic: &str) -> u32 {
        let map = self
            .topic_subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.get(topic).copied().unwrap_or(0)
    }

    /// Count a WebSocket close with `code`.
    pub fn close(&self, code: u16) {
        let i = CLOSE_CODES
            .iter()
            .position(|&c| c == code)
            .unwrap_or(CLOSE_CODES.len());
        self.closes[i].add(1);
    }

    /// Count a refused request by its HTTP status.
    pub fn reject(&self, status: u16) {
        let s = status.to_string();
        let i = REJECT_REASONS
            .iter()
            .position(|&r| r == s)
            .unwrap_or(REJECT_REASONS.len() - 2);
        self.rejects[i].add(1);
        self.handshakes_rejected.add(1);
    }

    /// Count a failed TLS connection; `reason` is one of [`TLS_FAILURES`]
    /// (anything else counts as `other`).
    pub fn tls_failure(&self, reason: &str) {
        let i = TLS_FAILURES
            .iter()
            .position(|&r| r == reason)
            .unwrap_or(TLS_FAILURES.len() - 1);
        self.tls_failures[i].add(1);
    }

    /// Count an HTTP/2 stream of `kind` (one of [`H2_STREAMS`]).
    pub fn h2_stream(&self, kind: &str) {
        if let Some(i) = H2_STREAMS.iter().position(|&k| k == kind) {
            self.h2_streams[i].add(1);
        }
    }

    /// Count an HTTP/2 failure; `reason` is one of [`H2_ERRORS`] (anything
    /// else counts as `protocol`).
    pub fn h2_error(&self, reason: &str) {
        let i = H2_ERRORS.iter().position(|&r| r == reason).unwrap_or(0);
        self.h2_errors[i].add(1);
    }

    /// Count a request that timed out before its head was complete.
    pub fn reject_timeout(&self) {
        self.rejects[REJECT_REASONS.len() - 1].add(1);
        self.handshakes_rejected.add(1);
    }
}

/// Upper bounds of the loop-turn histogram buckets, in microseconds (the
/// last is +Inf).
pub const TURN_BUCKETS_US: [u64; 10] = [
    10,
    50,
    100,
    500,
    1_000,
    5_000,
    10_000,
    50_000,
    100_000,
    u64::MAX,
];

/// Upper bounds of the delivery-lag histogram buckets, in microseconds
/// (the last is +Inf): from a tenth of a millisecond to ten seconds.
pub const LAG_BUCKETS_US: [u64; 14] = [
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    1_000_000,
    10_000_000,
    u64::MAX,
];

/// A histogram over the `N` buckets of `BOUNDS` (microseconds, the last
/// +Inf), written by one thread.
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    buckets: [Counter; N],
    sum_ns: Counter,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| Counter::default()),
            sum_ns: Counter::default(),
        }
    }
}

impl<const N: usize> Histogram<N> {
    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(Counter::get).sum()
    }

    /// Record `n` observations of `d` against `bounds`.
    pub fn observe_in(&self, bounds: &[u64; N], d: std::time::Duration, n: u32) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = bounds.iter().position(|&b| us <= b).unwrap_or(N - 1);
        self.buckets[i].add(u64::from(n));
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.add(ns.saturating_mul(u64::from(n)));
    }
}

impl Histogram<{ TURN_BUCKETS_US.len() }> {
    /// Record one loop turn.
    pub fn observe(&self, d: std::time::Duration) {
        self.observe_in(&TURN_BUCKETS_US, d, 1);
    }
}

impl Histogram<{ LAG_BUCKETS_US.len() }> {
    /// Record `n` deliveries with lag `d`.
    pub fn observe_lag(&self, d: std::time::Duration, n: u32) {
        self.observe_in(&LAG_BUCKETS_US, d, n);
    }
}

/// One histogram per worker in the Prometheus text format, `le` in
/// seconds.
fn render_histogram<const N: usize>(
    out: &mut String,
    name: &str,
    help: &str,
    bounds: &[u64; N],
    workers: &[WorkerView<'_>],
    of: fn(&Stats) -> &Histogram<N>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (w, view) in workers.iter().enumerate() {
        let h = of(view.stats);
        let mut cumulative = 0;
        for (i, b) in bounds.iter().enumerate() {
            cumulative += h.buckets[i].get();
            let le = match *b {
                u64::MAX => "+Inf".to_string(),
                b => (b as f64 / 1e6).to_string(),
            };
            let _ = writeln!(
                out,
                "{name}_bucket{{worker=\"{w}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = h.sum_ns.get() as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{worker=\"{w}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{worker=\"{w}\"}} {cumulative}");
    }
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

/// The TLS certificate reload counts, in the Prometheus text format.
pub fn render_tls_reloads(ok: u64, failed: u64) -> String {
    format!(
        "# HELP ringwave_tls_certificate_reloads_total Certificate reloads (SIGHUP or the library call), by result; a failed one keeps the old certificates.\n# TYPE ringwave_tls_certificate_reloads_total counter\nringwave_tls_certificate_reloads_total{{result=\"ok\"}} {ok}\nringwave_tls_certificate_reloads_total{{result=\"failed\"}} {failed}\n"
    )
}

/// What the topics' history holds, in the Prometheus text format.
pub fn render_history(entries: usize, keys: usize) -> String {
    format!(
        "# HELP ringwave_history_entries Publications kept in topic histories.\n# TYPE ringwave_history_entries gauge\nringwave_history_entries {entries}\n# HELP ringwave_history_snapshot_keys Keys with a newest publication kept for snapshots.\n# TYPE ringwave_history_snapshot_keys gauge\nringwave_history_snapshot_keys {keys}\n"
    )
}

/// The limits in effect, by name (0: none).
pub fn render_limits(limits: &[(&str, u64)]) -> String {
    let mut out = String::from(
        "# HELP ringwave_limit The limits in effect, by name (0: none); a reload (SIGHUP) changes them.\n# TYPE ringwave_limit gauge\n",
    );
    for (name, value) in limits {
        out.push_str(&format!("ringwave_limit{{limit=\"{name}\"}} {value}\n"));
    }
    out
}

/// Render the Prometheus text exposition (version 0.0.4).
pub fn render(workers: &[WorkerView<'_>]) -> String {
    let mut out = String::with_capacity(2048);
    let sum = |f: Field| workers.iter().map(|w| f(w.stats).get()).sum::<u64>();
    let rows: [(&str, &str, &str, Field); 20] = [
        (
            "ringwave_connections_open",
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
            "ringwave_recoveries_total",
            "counter",
            "Subscriptions from a position (since, Last-Event-ID) that were recovered.",
            |s| &s.recovered,
        ),
        (
            "ringwave_recoveries_failed_total",
            "counter",
            "Subscriptions from a position that could not be recovered (too old, another epoch, never reached).",
            |s| &s.not_recovered,
        ),
        (
            "ringwave_slow_consumer_closes_total",
            "counter",
            "Subscribers closed with 1008 by the close policy.",
            |s| &s.slow_closes,
        ),
        (
            "ringwave_message_rate_closes_total",
            "counter",
            "Connections closed with 1008 for sending messages faster than --max-message-rate.",
            |s| &s.rate_closes,
        ),
        (
            "ringwave_lifetime_closes_total",
            "counter",
            "WebSockets closed with 1001 at the end of --max-lifetime.",
            |s| &s.lifetime_closes,
        ),
        (
            "ringwave_slow_consumer_drops_total",
            "counter",
            "Publications skipped by the drop policy.",
            |s| &s.slow_drops,
        ),
        (
            "ringwave_slow_consumer_gap_notices_total",
            "counter",
            "Notices of publications the drop policy skipped, sent to the subscribers they were skipped for.",
            |s| &s.gap_notices,
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
        (
            "ringwave_messages_in_total",
            "counter",
            "Whole messages received.",
            |s| &s.messages_in,
        ),
        (
            "ringwave_messages_out_total",
            "counter",
            "Messages sent by handlers (publications are deliveries).",
            |s| &s.messages_out,
        ),
        (
            "ringwave_bytes_in_total",
            "counter",
            "Bytes read from sockets.",
            |s| &s.bytes_in,
        ),
        (
            "ringwave_bytes_out_total",
            "counter",
            "Bytes handed to the kernel.",
            |s| &s.bytes_out,
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
        "# HELP ringwave_closes_total WebSocket connections closed, by close code (1006: no close frame).\n# TYPE ringwave_closes_total counter"
    );
    for i in 0..=CLOSE_CODES.len() {
        let label = CLOSE_CODES
            .get(i)
            .map_or("other".to_string(), |c| c.to_string());
        let n: u64 = workers.iter().map(|w| w.stats.closes[i].get()).sum();
        let _ = writeln!(out, "ringwave_closes_total{{code=\"{label}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP ringwave_rejects_total Requests refused, by HTTP status or timeout.\n# TYPE ringwave_rejects_total counter"
    );
    for (i, reason) in REJECT_REASONS.iter().enumerate() {
        let n: u64 = workers.iter().map(|w| w.stats.rejects[i].get()).sum();
        let _ = writeln!(out, "ringwave_rejects_total{{reason=\"{reason}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP ringwave_tls_handshakes_total TLS handshakes completed.\n# TYPE ringwave_tls_handshakes_total counter"
    );
    let n: u64 = workers.iter().map(|w| w.stats.tls_handshakes.get()).sum();
    let _ = writeln!(out, "ringwave_tls_handshakes_total {n}");
    let _ = writeln!(
        out,
        "# HELP ringwave_tls_handshake_failures_total TLS connections failed, by reason.\n# TYPE ringwave_tls_handshake_failures_total counter"
    );
    for (i, reason) in TLS_FAILURES.iter().enumerate() {
        let n: u64 = workers.iter().map(|w| w.stats.tls_failures[i].get()).sum();
        let _ = writeln!(
            out,
            "ringwave_tls_handshake_failures_total{{reason=\"{reason}\"}} {n}"
        );
    }
    let n: u64 = workers.iter().map(|w| w.stats.h2_connections.get()).sum();
    let _ = writeln!(
        out,
        "# HELP ringwave_http2_connections_total HTTP/2 connections.\n# TYPE ringwave_http2_connections_total counter\nringwave_http2_connections_total {n}"
    );
    let _ = writeln!(
        out,
        "# HELP ringwave_http2_streams_total HTTP/2 streams served, by kind.\n# TYPE ringwave_http2_streams_total counter"
    );
    for (i, kind) in H2_STREAMS.iter().enumerate() {
        let n: u64 = workers.iter().map(|w| w.stats.h2_streams[i].get()).sum();
        let _ = writeln!(out, "ringwave_http2_streams_total{{kind=\"{kind}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP ringwave_http2_errors_total HTTP/2 connections failed and streams refused, by reason.\n# TYPE ringwave_http2_errors_total counter"
    );
    for (i, reason) in H2_ERRORS.iter().enumerate() {
        let n: u64 = workers.iter().map(|w| w.stats.h2_errors[i].get()).sum();
        let _ = writeln!(
            out,
            "ringwave_http2_errors_total{{reason=\"{reason}\"}} {n}"
        );
    }
    render_histogram(
        &mut out,
        "ringwave_loop_turn_seconds",
        "Work per event-loop turn (not counting the wait for I/O), per worker.",
        &TURN_BUCKETS_US,
        workers,
        |s| &s.turn,
    );
    render_histogram(
        &mut out,
        "ringwave_delivery_lag_seconds",
        "From a publication's arrival on the first worker to the send that carried it to a subscriber being handed to the kernel, per delivery, by the worker that sent it.",
        &LAG_BUCKETS_US,
        workers,
        |s| &s.delivery_lag,
    );
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
    let per_worker: [(&str, &str, Field); 3] = [
        (
            "ringwave_worker_connections",
            "Connections open now, per worker.",
            |s| &s.connections_open,
        ),
        (
            "ringwave_worker_send_backlog_bytes",
            "Output bytes a worker holds besides its subscribers' queues (TLS ciphertext not yet sent, buffers in sends not yet completed), as of its last flush.",
            |s| &s.send_backlog,
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
        a.close(1000);
        b.close(4000);
        a.reject(431);
        b.reject_timeout();
        a.turn.observe(std::time::Duration::from_micros(7));
        a.turn.observe(std::time::Duration::from_millis(2));
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
        assert!(
            text.contains("ringwave_closes_total{code=\"1000\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("ringwave_closes_total{code=\"other\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("ringwave_rejects_total{reason=\"431\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("ringwave_rejects_total{reason=\"timeout\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("\nringwave_handshakes_rejected_total 2\n"),
            "{text}"
        );
        let bucket = "ringwave_loop_turn_seconds_bucket{worker=\"0\",le=\"0.00001\"} 1\n";
        assert!(text.contains(bucket), "{text}");
        let all = "ringwave_loop_turn_seconds_bucket{worker=\"0\",le=\"+Inf\"} 2\n";
        assert!(text.contains(all), "{text}");
    }
}
