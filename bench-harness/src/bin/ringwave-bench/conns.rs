//! Connections held: a storm of handshakes (`connect`), idle connections
//! (`idle`), and a ramp to a million held and measured (`hold`).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use bench_harness::stats::{Percentiles, RunResult};
use bench_harness::{settled_rss, Target};
use clap::Args;
use ringwave::driver::Backend;

use crate::common::{emit, open_connections, Common, CpuWindow, ServerArgs};

#[derive(Args, Debug)]
pub(crate) struct HoldArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The generator's own I/O backend: auto, uring or poll.
    #[arg(long, default_value = "auto")]
    backend: Backend,
    /// Connections to open and hold.
    #[arg(short = 'n', long, default_value_t = 1_000_000)]
    connections: usize,
    /// Ramp: new connections per second.
    #[arg(short = 'r', long, default_value_t = 20_000.0)]
    rate: f64,
    /// Seconds to hold them once all are open.
    #[arg(short = 't', long, default_value_t = 60.0)]
    hold: f64,
    /// Connections per generator process (each needs a descriptor; the
    /// process's descriptor limit must allow this many plus a few).
    #[arg(long, default_value_t = 19_000)]
    per_process: usize,
    /// Checkpoints, in connections open (N itself is always one).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10000,100000,250000,500000"
    )]
    checkpoints: Vec<usize>,
    /// Connections (over all processes) that send a stamped message every
    /// second and time its echo (the URL's path must echo: any but /feed on
    /// ringwave).
    #[arg(long, default_value_t = 1000)]
    sample: usize,
    /// First source address; process k binds to the k-th one after it (each
    /// address has its own ephemeral ports). Loopback targets only.
    #[arg(long, default_value = "127.1.0.1")]
    source_base: std::net::Ipv4Addr,
    /// Server process id: its RSS at every checkpoint.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Ask the server's /metrics (at the URL's address) for its own count
    /// of open connections at every checkpoint.
    #[arg(long)]
    server_metrics: bool,
    /// Stop after this many seconds whatever was reached.
    #[arg(long, default_value_t = 540.0)]
    max_seconds: f64,
    /// Append every checkpoint as one JSON line to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Internal: run as one generator process, paced by the parent.
    #[arg(long, hide = true)]
    child: bool,
}

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

#[derive(Args, Debug)]
pub(crate) struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Connections to hold.
    #[arg(short = 'n', long, default_value_t = 15_000)]
    connections: usize,
    /// Seconds to hold them (the caller measures the server meanwhile); ends
    /// early when standard input closes.
    #[arg(short = 't', long, default_value_t = 10.0)]
    hold: f64,
    /// Most connections per process (each needs a descriptor; the limit here
    /// is 20,000). More are spread over child processes.
    #[arg(long, default_value_t = 15_000)]
    per_process: usize,
    /// Internal: run as a child holding a share.
    #[arg(long, hide = true)]
    child: bool,
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
    };
    emit(c, &r)
}

pub(crate) fn idle(a: IdleArgs) -> Result<(), String> {
    let c = &a.common;
    let rss_before = c
        .server_pid
        .and_then(|pid| settled_rss(pid, Duration::from_secs(20)));
    let hold = Duration::from_secs_f64(a.hold);
    if a.child || a.connections <= a.per_process {
        let (engine, _, errors, _) =
            open_connections(c, a.connections, 500, Duration::from_secs(300))?;
        if errors > 0 {
            return Err(format!("{errors} connections failed"));
        }
        println!("open {}", engine.open());
        let _ = std::io::stdout().flush();
        if !a.child {
            report_idle(c, a.connections, rss_before)?;
        }
        wait_hold(hold);
        drop(engine);
        return Ok(());
    }
    // Several processes, each with its own descriptor limit and its own
    // source addresses.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let procs = a.connections.div_ceil(a.per_process);
    let mut children = Vec::new();
    for p in 0..procs {
        let share = (a.connections - p * a.per_process).min(a.per_process);
        let child = Command::new(&exe)
            .args(["idle", "--child", "--quiet", "--url", &c.server.url])
            .args(["-n", &share.to_string(), "-t", &a.hold.to_string()])
            .args(["--sources", &c.sources.max(2).to_string()])
            .args(
                c.server
                    .ca
                    .iter()
                    .flat_map(|ca| [std::ffi::OsStr::new("--ca"), ca.as_os_str()]),
            )
            .args(c.server.insecure.then_some("--insecure"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn child: {e}"))?;
        children.push(child);
    }
    let mut open = 0usize;
    for ch in &mut children {
        let out = ch.stdout.take().ok_or("child stdout")?;
        let mut line = String::new();
        BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        open += line
            .trim()
            .strip_prefix("open ")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| format!("a child failed: {line:?}"))?;
    }
    println!("open {open}");
    let _ = std::io::stdout().flush();
    report_idle(c, open, rss_before)?;
    wait_hold(hold);
    for mut ch in children {
        drop(ch.stdin.take());
        let _ = ch.wait();
    }
    Ok(())
}

pub(crate) fn hold(a: HoldArgs) -> Result<(), String> {
    if a.child {
        return bench_harness::hold::child(
            &a.server.url,
            a.server.ca.as_deref(),
            a.server.insecure,
            a.backend,
            a.source_base,
            a.sample,
        );
    }
    let metrics = if a.server_metrics {
        Some(Target::parse(&a.server.url)?.addr)
    } else {
        None
    };
    let cfg = bench_harness::hold::HoldConfig {
        url: a.server.url,
        ca: a.server.ca,
        insecure: a.server.insecure,
        backend: a.backend,
        connections: a.connections,
        rate: a.rate,
        hold: Duration::from_secs_f64(a.hold.max(0.0)),
        per_process: a.per_process,
        checkpoints: a.checkpoints,
        sample: a.sample,
        source_base: a.source_base,
        server_pid: a.server_pid,
        metrics,
        max_seconds: a.max_seconds,
        json: a.json,
        quiet: a.quiet,
    };
    bench_harness::hold::run(&cfg).map(|_| ())
}

pub(crate) fn report_idle(c: &Common, n: usize, before: Option<u64>) -> Result<(), String> {
    let after = c
        .server_pid
        .and_then(|pid| settled_rss(pid, Duration::from_secs(20)));
    let per = match (before, after) {
        (Some(b), Some(a)) => Some((a as f64 - b as f64) / n as f64),
        _ => None,
    };
    if let Some(p) = per {
        println!(
            "{} idle {n}: server RSS grew {p:.0} bytes per connection",
            c.label
        );
    }
    let r = RunResult {
        server: c.label.clone(),
        case: format!("idle {n}"),
        scenario: "idle".into(),
        repeat: c.repeat,
        connections: n,
        rss_per_conn: per,
        count: n as u64,
        ..RunResult::default()
    };
    emit(c, &r)
}

/// Hold for `hold`, or until standard input closes.
pub(crate) fn wait_hold(hold: Duration) {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = std::io::stdin().read_line(&mut sink);
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(hold);
}
