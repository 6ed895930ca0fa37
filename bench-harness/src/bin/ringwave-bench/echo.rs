//! `echo`: closed-loop throughput, C connections each keeping D messages
//! of S bytes in flight.

use std::time::{Duration, Instant};

use bench_harness::stats::RunResult;
use bench_harness::Happened;
use clap::Args;
use ringwave::proto::MessageKind;

use crate::common::{emit, open_connections, Common, CpuWindow};

#[derive(Args, Debug)]
pub(crate) struct EchoArgs {
    #[command(flatten)]
    common: Common,
    /// Connections.
    #[arg(short = 'c', long, default_value_t = 100)]
    connections: usize,
    /// Message size in bytes.
    #[arg(short = 's', long, default_value_t = 20)]
    size: usize,
    /// Messages in flight per connection.
    #[arg(short = 'd', long, default_value_t = 1)]
    depth: usize,
    /// Measured seconds.
    #[arg(short = 't', long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of traffic before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
}

pub(crate) fn echo(a: EchoArgs) -> Result<(), String> {
    let c = &a.common;
    let (mut engine, _, errors, _) =
        open_connections(c, a.connections, 500, Duration::from_secs(120))?;
    let payload = vec![0x5au8; a.size];
    for i in 0..a.connections {
        for _ in 0..a.depth {
            engine.send(i, MessageKind::Binary, &payload);
        }
    }
    let mut events = Vec::new();
    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(a.warmup);
    let end = warm_end + Duration::from_secs_f64(a.duration);
    let mut window: Option<CpuWindow> = None;
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut closed = 0u64;
    let mut last_progress = Instant::now();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if window.is_none() && now >= warm_end {
            window = Some(CpuWindow::start(c.server_pid));
            count = 0;
            bytes = 0;
        }
        events.clear();
        engine
            .poll(Duration::from_millis(5), &mut events)
            .map_err(|e| e.to_string())?;
        for ev in &events {
            match *ev {
                Happened::Pinged(_) => {}
                Happened::Message(i, len, _) => {
                    count += 1;
                    bytes += len as u64;
                    engine.send(i, MessageKind::Binary, &payload);
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
        if !c.quiet && last_progress.elapsed() >= Duration::from_secs(1) && window.is_some() {
            last_progress = Instant::now();
            let secs = window
                .as_ref()
                .map_or(1.0, |w| w.at.elapsed().as_secs_f64());
            eprint!(
                "\r[echo {}] {:.0} msg/s          ",
                c.label,
                count as f64 / secs
            );
        }
    }
    let w = window.ok_or("the run ended during warm-up")?;
    let (secs, server_pct, server_ns, own_pct) = w.end();
    engine.close_all();
    let rate = count as f64 / secs;
    let r = RunResult {
        server: c.label.clone(),
        case: format!("echo {}x{}B d{}", a.connections, a.size, a.depth),
        scenario: "echo".into(),
        repeat: c.repeat,
        connections: a.connections,
        size: a.size,
        seconds: secs,
        rate,
        bytes_per_s: bytes as f64 / secs,
        count,
        latency: None,
        server_cpu_pct: server_pct,
        server_cpu_ns_per_op: server_ns.map(|ns| ns as f64 / count.max(1) as f64),
        generator_cpu_pct: own_pct,
        rss_per_conn: None,
        errors: errors + closed,
        target_rate: None,
        missing: None,
        broker_cpu_pct: None,
        server_rss_peak_bytes: None,
        server_lag: None,
    };
    if !c.quiet {
        eprintln!();
    }
    println!(
        "{} {}: {:.0} msg/s, {:.1} MB/s; server CPU {}, {} per msg; generator CPU {:.0}%",
        r.server,
        r.case,
        r.rate,
        r.bytes_per_s / 1e6,
        server_pct.map_or("n/a".into(), |p| format!("{p:.0}%")),
        r.server_cpu_ns_per_op
            .map_or("n/a".into(), |n| format!("{n:.0} ns")),
        own_pct
    );
    emit(c, &r)
}
