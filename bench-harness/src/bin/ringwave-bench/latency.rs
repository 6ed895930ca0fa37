//! `latency`: open loop at a fixed rate, send times scheduled so that
//! stalls cannot hide (no coordinated omission); HDR percentiles.

use std::time::{Duration, Instant};

use bench_harness::stats::{latency_histogram, Percentiles, RunResult};
use bench_harness::Happened;
use clap::Args;
use ringwave::proto::MessageKind;

use crate::common::{emit, open_connections, Common, CpuWindow};

#[derive(Args, Debug)]
pub(crate) struct LatencyArgs {
    #[command(flatten)]
    common: Common,
    /// Connections.
    #[arg(short = 'c', long, default_value_t = 100)]
    connections: usize,
    /// Message size in bytes (at least 8: the send timestamp).
    #[arg(short = 's', long, default_value_t = 64)]
    size: usize,
    /// Messages per second, over all connections.
    #[arg(short = 'r', long)]
    rate: f64,
    /// Measured seconds.
    #[arg(short = 't', long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds at the rate before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
}

pub(crate) fn latency(a: LatencyArgs) -> Result<(), String> {
    let c = &a.common;
    if a.size < 8 {
        return Err("--size must be at least 8 (the payload carries the send time)".into());
    }
    if a.rate <= 0.0 {
        return Err("--rate must be positive".into());
    }
    let (mut engine, _, errors, _) =
        open_connections(c, a.connections, 500, Duration::from_secs(120))?;
    let mut payload = vec![0x5au8; a.size];
    let mut hist = latency_histogram();
    let mut events = Vec::new();
    let epoch = Instant::now();
    let interval_ns = 1e9 / a.rate;
    let warm_ns = (a.warmup * 1e9) as u64;
    let send_end_ns = warm_ns + (a.duration * 1e9) as u64;
    let mut k: u64 = 0;
    // Sends scheduled inside the measured window: each must come back.
    let mut measured = 0u64;
    let mut window: Option<CpuWindow> = None;
    let mut received = 0u64;
    let mut closed = 0u64;
    let mut last_progress = Instant::now();
    let mut drain_deadline: Option<Instant> = None;
    loop {
        let now_ns = epoch.elapsed().as_nanos() as u64;
        if window.is_none() && now_ns >= warm_ns {
            window = Some(CpuWindow::start(c.server_pid));
        }
        // Send everything due by now, on schedule, whatever the replies do.
        loop {
            let due = (k as f64 * interval_ns) as u64;
            if due > now_ns || due >= send_end_ns {
                break;
            }
            payload[..8].copy_from_slice(&due.to_le_bytes());
            engine.send((k as usize) % a.connections, MessageKind::Binary, &payload);
            k += 1;
            measured += u64::from(due >= warm_ns);
        }
        let next_due = (k as f64 * interval_ns) as u64;
        if next_due >= send_end_ns && drain_deadline.is_none() {
            drain_deadline = Some(Instant::now() + Duration::from_secs(2));
        }
        let wait_ns = next_due.saturating_sub(epoch.elapsed().as_nanos() as u64);
        let timeout = if wait_ns < 50_000 {
            Duration::ZERO
        } else {
            Duration::from_nanos(wait_ns.min(1_000_000))
        };
        events.clear();
        engine
            .poll(timeout, &mut events)
            .map_err(|e| e.to_string())?;
        let now_ns = epoch.elapsed().as_nanos() as u64;
        for ev in &events {
            match *ev {
                Happened::Pinged(_) => {}
                Happened::Message(_, _, sent) => {
                    if sent >= warm_ns {
                        received += 1;
                        let _ = hist.record(now_ns.saturating_sub(sent).max(1000));
                    }
                }
                Happened::Closed(i, ref why) => {
                    closed += 1;
                    if closed <= 3 {
                        eprintln!("connection {i} closed during the run: {why}");
                    }
                }
                Happened::Opened(..) => {}
            }
        }
        if let Some(d) = drain_deadline {
            if received >= measured || Instant::now() >= d {
                break;
            }
        }
        if !c.quiet && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprint!(
                "\r[latency {}] {:.1}s sent {} received {} p99 {:.0} µs          ",
                c.label,
                now_ns as f64 / 1e9,
                k,
                received,
                hist.value_at_quantile(0.99) as f64 / 1000.0
            );
        }
    }
    let w = window.ok_or("the run ended during warm-up")?;
    let (_, server_pct, server_ns, own_pct) = w.end();
    engine.close_all();
    let lost = measured.saturating_sub(received);
    let p = Percentiles::from_ns(&hist);
    if !c.quiet {
        eprintln!();
    }
    println!(
        "{} latency {}x{}B at {:.0}/s: p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs ({} samples, {} missing)",
        c.label, a.connections, a.size, a.rate, p.p50_us, p.p90_us, p.p99_us, p.p999_us, p.max_us, p.count, lost
    );
    let r = RunResult {
        server: c.label.clone(),
        case: format!("latency {}x{}B", a.connections, a.size),
        scenario: "latency".into(),
        repeat: c.repeat,
        connections: a.connections,
        size: a.size,
        seconds: a.duration,
        rate: received as f64 / a.duration,
        bytes_per_s: received as f64 * a.size as f64 / a.duration,
        count: received,
        latency: Some(p),
        server_cpu_pct: server_pct,
        server_cpu_ns_per_op: server_ns.map(|ns| ns as f64 / received.max(1) as f64),
        generator_cpu_pct: own_pct,
        rss_per_conn: None,
        errors: errors + closed + lost,
        target_rate: Some(a.rate),
        missing: None,
        broker_cpu_pct: None,
        server_rss_peak_bytes: None,
        server_lag: None,
    };
    emit(c, &r)
}
