//! Results: one [`RunResult`] per run, serialised as a JSON line.

use std::io::Write;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

impl Percentiles {
    /// From a histogram of nanoseconds.
    pub fn from_ns(h: &Histogram<u64>) -> Percentiles {
        let us = |v: u64| v as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.5)),
            p90_us: us(h.value_at_quantile(0.9)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

/// Append each of `rows` as one JSON line to the file at `path` (created if
/// missing).
pub fn append_json_lines<T: Serialize>(path: &Path, rows: &[T]) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    for r in rows {
        let line = serde_json::to_string(r).map_err(|e| e.to_string())?;
        writeln!(f, "{line}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A histogram for nanosecond latencies from 1 µs to 100 s, 3 significant
/// digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// One run of one scenario against one server.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    /// Server label (set by the caller, e.g. `ringwave-uring`).
    pub server: String,
    /// Scenario name and parameters, e.g. `echo 100x20B`.
    pub case: String,
    /// Scenario: echo, latency, connect, idle.
    pub scenario: String,
    /// Repeat number.
    pub repeat: u32,
    /// Connections.
    pub connections: usize,
    /// Message size in bytes.
    pub size: usize,
    /// Measured seconds.
    pub seconds: f64,
    /// Messages received per second (echo, latency) or connections per
    /// second (connect).
    pub rate: f64,
    /// Payload bytes received per second.
    pub bytes_per_s: f64,
    /// Messages (or connections) counted.
    pub count: u64,
    /// Latency (latency: send schedule to receipt; connect: handshake).
    pub latency: Option<Percentiles>,
    /// Server CPU use over the run, in percent of one core (when the server
    /// pid was given).
    pub server_cpu_pct: Option<f64>,
    /// Server CPU nanoseconds per message (or per connection).
    pub server_cpu_ns_per_op: Option<f64>,
    /// This generator's CPU use, in percent of one core.
    pub generator_cpu_pct: f64,
    /// Server RSS growth per connection in bytes (idle).
    pub rss_per_conn: Option<f64>,
    /// Connections that failed.
    pub errors: u64,
    /// Target rate (latency; fanout: offered deliveries per second).
    pub target_rate: Option<f64>,
    /// Fanout: deliveries of the measured publications that did not arrive
    /// by the end of the run (queued behind a saturated server, or dropped).
    #[serde(default)]
    pub missing: Option<u64>,
    /// Fanout across nodes: the broker's (nats-server's) CPU use over the
    /// run, in percent of one core, when its pid was given.
    #[serde(default)]
    pub broker_cpu_pct: Option<f64>,
    /// Fanout: the server's peak resident memory over the run (its
    /// `VmHWM`; every node's, summed), in bytes.
    #[serde(default)]
    pub server_rss_peak_bytes: Option<u64>,
    /// Fanout against ringwave: the delivery lag its own `/metrics`
    /// measured over the run (`ringwave_delivery_lag_seconds`, every
    /// worker's), beside the generator's end-to-end latency.
    #[serde(default)]
    pub server_lag: Option<Percentiles>,
}
