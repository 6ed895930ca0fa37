//! `connect`: a storm of handshakes, at most K at once.

use std::time::Duration;

use bench_harness::stats::{Percentiles, RunResult};
use clap::Args;

use crate::common::{emit, open_connections, Common, CpuWindow};

#[derive(Args, Debug)]
pub(crate) struct ConnectArgs {
    #[command(flatten)]
    common: Common,
    /// Connections to open.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    connections: usize,
    /// Handshakes in flight at once.
    #[arg(short = 'k', long, default_value_t = 200)]
    concurrency: usize,
}

pub(crate) fn connect(a: ConnectArgs) -> Result<(), String> {
    let c = &a.common;
    let w = CpuWindow::start(c.server_pid);
    let (mut engine, hist, errors, took) =
        open_connections(c, a.connections, a.concurrency, Duration::from_secs(300))?;
    let (_, server_pct, server_ns, own_pct) = w.end();
    engine.close_all();
    let p = Percentiles::from_ns(&hist);
    let rate = a.connections as f64 / took.as_secs_f64();
    println!(
        "{} connect {} (≤{} at once): {:.0} connections/s; handshake p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs; {} errors",
        c.label, a.connections, a.concurrency, rate, p.p50_us, p.p99_us, p.max_us, errors
    );
    let r = RunResult {
        server: c.label.clone(),
        case: format!("connect {}", a.connections),
        scenario: "connect".into(),
        repeat: c.repeat,
        connections: a.connections,
        size: 0,
        seconds: took.as_secs_f64(),
        rate,
        bytes_per_s: 0.0,
        count: a.connections as u64,
        latency: Some(p),
        server_cpu_pct: server_pct,
        server_cpu_ns_per_op: server_ns.map(|ns| ns as f64 / a.connections.max(1) as f64),
        generator_cpu_pct: own_pct,
        rss_per_conn: None,
        errors,
        target_rate: None,
        missing: None,
        broker_cpu_pct: None,
        server_rss_peak_bytes: None,
        server_lag: None,
    };
    emit(c, &r)
}
