//! `ringwave-bench`: a WebSocket load generator for any `ws://` server.
//!
//! Scenarios: `echo` (closed-loop throughput), `latency` (open-loop at a fixed
//! rate, HDR percentiles), `connect` (connection storm), `idle` (hold N idle
//! connections, across several processes and source addresses when N exceeds
//! one process's descriptor limit), `fanout` (pub/sub delivery over the feed
//! protocol). `report` turns results into Markdown and
//! PNG charts. Every scenario prints a summary line and, with `--json FILE`,
//! appends one JSON object per run to FILE.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use bench_harness::stats::{append_json_lines, latency_histogram, Percentiles, RunResult};
use bench_harness::streams::{Kind, StreamConfig};
use bench_harness::{process_cpu_ns, self_cpu_ns, settled_rss, Engine, Happened, Target};
use clap::{Args, Parser, Subcommand};
use ringwave::driver::Backend;
use ringwave::proto::MessageKind;

/// Load generator for WebSocket servers (ringwave's client protocol on mio).
#[derive(Parser, Debug)]
#[command(name = "ringwave-bench", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Closed-loop echo throughput: C connections, each keeping D messages of
    /// S bytes in flight, for T seconds.
    Echo(EchoArgs),
    /// Open-loop latency: messages sent on a fixed schedule at R per second
    /// across C connections whatever the replies do (no coordinated
    /// omission); latency from scheduled send to receipt.
    Latency(LatencyArgs),
    /// Connection storm: open N connections, at most K handshakes at once.
    Connect(ConnectArgs),
    /// Open N idle connections and hold them for T seconds.
    Idle(IdleArgs),
    /// Pub/sub fan-out over the feed protocol (ringwave's /feed, or the Bun
    /// peer's): S subscriber connections on one topic, one publisher at R
    /// publishes per second; latency from publish to each receipt, delivered
    /// messages per second.
    Fanout(FanoutArgs),
    /// Server-Sent Events fan-out: S subscriber streams of GET /sse/TOPIC,
    /// over HTTP/1.1 (a connection each) or HTTP/2 (--streams-per-conn per
    /// connection, prior knowledge); one publisher posting R per second over
    /// HTTP/2 (the server needs --allow-client-publish).
    SseFanout(StreamFanoutArgs),
    /// The same fan-out to WebSocket subscribers of /feed: over HTTP/1.1 an
    /// upgrade each, over HTTP/2 (--streams-per-conn) RFC 8441 extended
    /// CONNECT streams.
    WsFanout(StreamFanoutArgs),
    /// A reconnect storm on a topic with history (the server needs
    /// --history TOPIC=COUNT and --allow-client-publish): N /feed
    /// subscribers read to one position, leave, miss M publications, and
    /// all come back at once with "since"; each must recover exactly the M.
    /// Reports the time until each caught up and the server's CPU.
    Recover(RecoverArgs),
    /// Ramp up to N connections (a million by default) at R per second over
    /// child processes, hold them for T seconds, and measure the server at
    /// checkpoints: connections open, RSS per connection, kernel socket
    /// memory, handshake p99, echo p50/p99 of a sample, connections lost.
    Hold(HoldArgs),
    /// Write report.md and charts from a results file.
    Report(ReportArgs),
}

#[derive(Args, Debug)]
struct HoldArgs {
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

/// Where the server is and how its certificate is checked.
#[derive(Args, Debug, Clone)]
struct ServerArgs {
    /// Server URL, ws://IP:PORT/PATH or wss://HOST:PORT/PATH (HOST
    /// `localhost` or an IP address; the certificate is checked against it).
    #[arg(long, default_value = "ws://127.0.0.1:9001/")]
    url: String,
    /// For wss://: trust the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// For wss://: accept any server certificate (signatures still checked).
    #[arg(long)]
    insecure: bool,
}

#[derive(Args, Debug, Clone)]
struct Common {
    #[command(flatten)]
    server: ServerArgs,
    /// Label for the server in results.
    #[arg(long, default_value = "server")]
    label: String,
    /// Server process id: report its CPU use (and RSS for idle).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Append the result as one JSON line to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Repeat number recorded in the result.
    #[arg(long, default_value_t = 0)]
    repeat: u32,
    /// Spread connections over this many source addresses 127.0.0.1..N.
    #[arg(long, default_value_t = 1)]
    sources: u8,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Case name in results [default: scenario and parameters, e.g.
    /// "echo 100x20B d1"].
    #[arg(long)]
    case: Option<String>,
    /// The generator's own I/O backend: auto (io_uring when available),
    /// uring or poll.
    #[arg(long, default_value = "auto")]
    backend: Backend,
}

#[derive(Args, Debug)]
struct EchoArgs {
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

#[derive(Args, Debug)]
struct LatencyArgs {
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

#[derive(Args, Debug)]
struct ConnectArgs {
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
struct IdleArgs {
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

#[derive(Args, Debug)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    /// Subscriber connections (one subscription each).
    #[arg(short = 'n', long, default_value_t = 1000)]
    subscribers: usize,
    /// Publishes per second.
    #[arg(short = 'r', long, default_value_t = 1000.0)]
    rate: f64,
    /// Payload bytes per publication (at least 16: the send time in hex).
    #[arg(short = 's', long, default_value_t = 100)]
    size: usize,
    /// Topic.
    #[arg(long, default_value = "bench")]
    topic: String,
    /// Measured seconds.
    #[arg(short = 't', long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds at the rate before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Another node serving the same topics (repeatable): the subscribers
    /// are split evenly over --url and these; the publisher stays on --url.
    #[arg(long = "also-url", value_name = "URL")]
    also_urls: Vec<String>,
    /// Where the publisher connects [default: --url]: another node, to
    /// time deliveries that all cross the broker.
    #[arg(long, value_name = "URL")]
    publish_url: Option<String>,
    /// Another node's process id (repeatable): its CPU counts as server CPU.
    #[arg(long = "also-pid", value_name = "PID")]
    also_pids: Vec<u32>,
    /// The broker's process id (nats-server): its CPU is reported apart.
    #[arg(long, value_name = "PID")]
    broker_pid: Option<u32>,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// Results file (JSON lines).
    #[arg(long)]
    input: PathBuf,
    /// Output directory for report.md, results.json and charts.
    #[arg(long)]
    out: PathBuf,
    /// Extra Markdown put under the title (machine, command, duration).
    #[arg(long)]
    preface: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Echo(a) => echo(a),
        Cmd::Latency(a) => latency(a),
        Cmd::Connect(a) => connect(a),
        Cmd::Idle(a) => idle(a),
        Cmd::Fanout(a) => fanout(a),
        Cmd::SseFanout(a) => stream_fanout(a, Kind::Sse),
        Cmd::WsFanout(a) => stream_fanout(a, Kind::Ws),
        Cmd::Recover(a) => recover(a),
        Cmd::Hold(a) => hold(a),
        Cmd::Report(a) => bench_harness::report::write(&a.input, &a.out, a.preface.as_deref())
            .map_err(|e| e.to_string()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringwave-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Open `n` connections, at most `k` handshakes at once; returns the engine
/// and the handshake latency histogram.
fn open_connections(
    common: &Common,
    n: usize,
    k: usize,
    deadline: Duration,
) -> Result<(Engine, hdrhistogram::Histogram<u64>, u64, Duration), String> {
    let target = target(common, &common.server.url)?;
    let mut engine =
        Engine::new(target, common.sources, common.backend).map_err(|e| e.to_string())?;
    let (hist, errors, took) = open_more(&mut engine, common, n, k, deadline)?;
    Ok((engine, hist, errors, took))
}

/// `url` with the TLS settings of `common`.
fn target(common: &Common, url: &str) -> Result<Target, String> {
    Target::parse(url)?.with_tls(common.server.ca.as_deref(), common.server.insecure)
}

/// Open connections on `engine`'s current target until it holds `n` in all,
/// at most `k` handshakes at once.
fn open_more(
    engine: &mut Engine,
    common: &Common,
    n: usize,
    k: usize,
    deadline: Duration,
) -> Result<(hdrhistogram::Histogram<u64>, u64, Duration), String> {
    let mut hist = latency_histogram();
    let mut events = Vec::new();
    let start = Instant::now();
    let mut errors = 0u64;
    let mut pending = 0usize;
    let mut last_progress = Instant::now();
    while engine.open() + (errors as usize) < n {
        while pending < k && engine.started() < n {
            engine.connect().map_err(|e| format!("connect: {e}"))?;
            pending += 1;
        }
        events.clear();
        engine
            .poll(Duration::from_millis(10), &mut events)
            .map_err(|e| e.to_string())?;
        for ev in &events {
            match ev {
                Happened::Pinged(_) => {}
                Happened::Opened(_, d) => {
                    pending -= 1;
                    let _ = hist.record(d.as_nanos().max(1000) as u64);
                }
                Happened::Closed(i, why) => {
                    errors += 1;
                    pending = pending.saturating_sub(1);
                    if errors <= 3 {
                        eprintln!("connection {i}: {why}");
                    }
                }
                Happened::Message(..) => {}
            }
        }
        if start.elapsed() > deadline {
            return Err(format!(
                "only {} of {n} connections opened within {deadline:?}",
                engine.open()
            ));
        }
        if !common.quiet && last_progress.elapsed() > Duration::from_secs(1) {
            last_progress = Instant::now();
            eprint!("\r[connect] {} / {n} open          ", engine.open());
        }
    }
    if !common.quiet && n > 1000 {
        eprintln!("\r[connect] {} / {n} open          ", engine.open());
    }
    Ok((hist, errors, start.elapsed()))
}

fn emit(common: &Common, r: &RunResult) -> Result<(), String> {
    let mut r = r.clone();
    if let Some(case) = &common.case {
        r.case = case.clone();
    }
    if let Some(path) = &common.json {
        append_json_lines(path, &[r])?;
    }
    Ok(())
}

struct CpuWindow {
    /// Each measured process and its CPU time at the start.
    server: Vec<(u32, u64)>,
    own: u64,
    at: Instant,
}

impl CpuWindow {
    /// Measure the processes `pids` together (a server, or every node of
    /// one).
    fn start(pids: impl IntoIterator<Item = u32>) -> CpuWindow {
        CpuWindow {
            server: pids
                .into_iter()
                .filter_map(|p| process_cpu_ns(p).map(|c| (p, c)))
                .collect(),
            own: self_cpu_ns(),
            at: Instant::now(),
        }
    }

    /// (seconds, server CPU %, server CPU ns, own CPU %); the server's is
    /// the sum over its processes, `None` when there are none.
    fn end(&self) -> (f64, Option<f64>, Option<u64>, f64) {
        let secs = self.at.elapsed().as_secs_f64();
        let server_ns = self
            .server
            .iter()
            .map(|&(p, c0)| process_cpu_ns(p).map(|c1| c1.saturating_sub(c0)))
            .sum::<Option<u64>>()
            .filter(|_| !self.server.is_empty());
        let own = self_cpu_ns().saturating_sub(self.own);
        (
            secs,
            server_ns.map(|ns| ns as f64 / 1e9 / secs * 100.0),
            server_ns,
            own as f64 / 1e9 / secs * 100.0,
        )
    }
}

fn echo(a: EchoArgs) -> Result<(), String> {
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

fn latency(a: LatencyArgs) -> Result<(), String> {
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
    };
    emit(c, &r)
}

#[derive(Args, Debug)]
struct StreamFanoutArgs {
    /// The server (cleartext; HTTP/2 by prior knowledge).
    #[arg(long, default_value = "127.0.0.1:9001")]
    addr: std::net::SocketAddr,
    /// Subscriber streams.
    #[arg(short = 'n', long, default_value_t = 1000)]
    subscribers: usize,
    /// Streams per HTTP/2 connection; 0: HTTP/1.1, a connection each.
    #[arg(long, default_value_t = 0)]
    streams_per_conn: usize,
    /// Publications per second.
    #[arg(short = 'r', long, default_value_t = 100.0)]
    rate: f64,
    /// Payload bytes (at least 16: the send time in hex).
    #[arg(short = 's', long, default_value_t = 100)]
    size: usize,
    #[arg(long, default_value = "bench")]
    topic: String,
    /// Measured seconds.
    #[arg(short = 't', long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of publishing before the measured window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// The server's process id: its CPU over the window and its RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Name in the printed line.
    #[arg(long, default_value = "server")]
    label: String,
}

#[derive(Args, Debug)]
struct RecoverArgs {
    /// The server.
    #[arg(long, default_value = "127.0.0.1:9001")]
    addr: std::net::SocketAddr,
    /// Subscribers.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    subscribers: usize,
    /// Publications made while they are away.
    #[arg(short = 'm', long, default_value_t = 1000)]
    missed: u64,
    /// Payload bytes.
    #[arg(short = 's', long, default_value_t = 100)]
    size: usize,
    /// A topic with history that nothing else publishes on.
    #[arg(long, default_value = "bench")]
    topic: String,
    /// The server's process id: its CPU over the storm.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Name in the printed line.
    #[arg(long, default_value = "server")]
    label: String,
}

fn recover(a: RecoverArgs) -> Result<(), String> {
    if a.subscribers == 0 || a.missed == 0 {
        return Err("--subscribers and --missed must be positive".into());
    }
    let cfg = bench_harness::recover::RecoverConfig {
        addr: a.addr,
        topic: a.topic.clone(),
        subscribers: a.subscribers,
        missed: a.missed,
        size: a.size,
    };
    let mut window = None;
    let mut cpu = None;
    let r = bench_harness::recover::run(&cfg, |start| {
        if start {
            window = Some(CpuWindow::start(a.server_pid));
        } else {
            cpu = window.as_ref().map(CpuWindow::end);
        }
    })?;
    let (_, _, server_ns, own_pct) = cpu.ok_or("no storm")?;
    let replayed = a.subscribers as u64 * a.missed;
    println!(
        "{} recover {} subscribers x {} missed: all caught up in {:.0} ms; p50 {:.0} ms, p99 {:.0} ms; recovered {}/{}; wrong {}; server CPU {}, {} per replayed publication; generator CPU {:.0}%",
        a.label,
        a.subscribers,
        a.missed,
        r.total.as_secs_f64() * 1e3,
        r.latency.p50_us / 1e3,
        r.latency.p99_us / 1e3,
        r.recovered,
        a.subscribers,
        r.wrong,
        server_ns.map_or("n/a".into(), |ns| format!("{:.0} ms", ns as f64 / 1e6)),
        server_ns.map_or("n/a".into(), |ns| format!("{:.0} ns", ns as f64 / replayed as f64)),
        own_pct
    );
    if r.recovered != a.subscribers || r.wrong != 0 {
        return Err(format!(
            "{} of {} recovered, {} replays wrong",
            r.recovered, a.subscribers, r.wrong
        ));
    }
    Ok(())
}

fn stream_fanout(a: StreamFanoutArgs, kind: Kind) -> Result<(), String> {
    if a.size < 16 || a.rate <= 0.0 || a.subscribers == 0 {
        return Err("--size must be at least 16, --rate and --subscribers positive".into());
    }
    let cfg = StreamConfig {
        addr: a.addr,
        kind,
        topic: a.topic.clone(),
        subscribers: a.subscribers,
        streams_per_conn: a.streams_per_conn,
        rate: a.rate,
        size: a.size,
        warmup: a.warmup,
        duration: a.duration,
    };
    let mut window = None;
    let mut cpu = None;
    let mut rss = None;
    let r = bench_harness::streams::run(&cfg, |start| {
        if start {
            window = Some(CpuWindow::start(a.server_pid));
        } else {
            cpu = window.as_ref().map(CpuWindow::end);
            rss = a.server_pid.and_then(bench_harness::process_rss);
        }
    })?;
    let (_, server_pct, server_ns, own_pct) = cpu.ok_or("no measured window")?;
    let proto = if a.streams_per_conn == 0 {
        format!("HTTP/1.1, {} connections", a.subscribers)
    } else {
        format!(
            "HTTP/2, {} connections x {} streams",
            a.subscribers.div_ceil(a.streams_per_conn),
            a.streams_per_conn
        )
    };
    println!(
        "{} {} {} subscribers ({proto}) x {:.0}/s x {}B: delivered {:.0}/s; p50 {:.0} µs, p99 {:.0} µs; missing {}; server CPU {}, {} per delivery; server RSS {}; generator CPU {:.0}%",
        a.label,
        match kind {
            Kind::Sse => "sse-fanout",
            Kind::Ws => "ws-fanout",
        },
        a.subscribers,
        a.rate,
        a.size,
        r.delivered as f64 / a.duration,
        r.latency.p50_us,
        r.latency.p99_us,
        r.missing,
        server_pct.map_or("n/a".into(), |p| format!("{p:.0}%")),
        server_ns.map_or("n/a".into(), |ns| format!("{:.0} ns", ns as f64 / r.delivered.max(1) as f64)),
        rss.map_or("n/a".into(), |b| format!("{:.1} MiB", b as f64 / (1 << 20) as f64)),
        own_pct
    );
    Ok(())
}

fn fanout(a: FanoutArgs) -> Result<(), String> {
    let c = &a.common;
    if a.size < 16 {
        return Err("--size must be at least 16 (the payload carries the send time)".into());
    }
    if a.rate <= 0.0 || a.subscribers == 0 {
        return Err("--rate and --subscribers must be positive".into());
    }
    // Subscribers first, split evenly over the nodes, then the publisher
    // (the last connection) on the first node.
    let nodes = 1 + a.also_urls.len();
    let first_share = a.subscribers - (a.subscribers / nodes) * (nodes - 1);
    let (mut engine, _, mut errors, _) =
        open_connections(c, first_share, 500, Duration::from_secs(300))?;
    let mut opened = first_share;
    for url in &a.also_urls {
        engine.set_target(target(c, url)?);
        opened += a.subscribers / nodes;
        errors += open_more(&mut engine, c, opened, 500, Duration::from_secs(300))?.1;
    }
    engine.set_target(target(
        c,
        a.publish_url.as_deref().unwrap_or(&c.server.url),
    )?);
    errors += open_more(
        &mut engine,
        c,
        a.subscribers + 1,
        500,
        Duration::from_secs(300),
    )?
    .1;
    if errors > 0 {
        return Err(format!("{errors} connections failed to open"));
    }
    let publisher = a.subscribers;
    let subscribe = format!(r#"{{"op":"subscribe","topic":"{}"}}"#, a.topic);
    for i in 0..a.subscribers {
        engine.send(i, MessageKind::Text, subscribe.as_bytes());
    }
    // Every subscriber answers with one acknowledgement.
    let mut events = Vec::new();
    let mut acks = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    while acks < a.subscribers {
        events.clear();
        engine
            .poll(Duration::from_millis(10), &mut events)
            .map_err(|e| e.to_string())?;
        for ev in &events {
            match ev {
                Happened::Pinged(_) => {}
                Happened::Message(..) => acks += 1,
                Happened::Closed(i, why) => return Err(format!("subscriber {i}: {why}")),
                Happened::Opened(..) => {}
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {acks} of {} subscriptions acknowledged",
                a.subscribers
            ));
        }
    }
    let mut hist = latency_histogram();
    let pad = "x".repeat(a.size - 16);
    let mut msg = String::with_capacity(a.size + 64);
    let epoch = Instant::now();
    let interval_ns = 1e9 / a.rate;
    let warm_ns = (a.warmup * 1e9) as u64;
    let send_end_ns = warm_ns + (a.duration * 1e9) as u64;
    let mut k: u64 = 0;
    let mut measured_sent: u64 = 0;
    // The nodes' CPU (every node's is server CPU) and the broker's apart.
    let mut window: Option<(CpuWindow, Option<CpuWindow>)> = None;
    let end = |(w, b): &(CpuWindow, Option<CpuWindow>)| (w.end(), b.as_ref().map(CpuWindow::end));
    let mut received = 0u64;
    // Every delivery that arrives during the measured window, whenever it
    // was published: the throughput figure when the server is saturated and
    // publications queue up for longer than the run.
    let mut delivered_in_window = 0u64;
    type Cpu = (f64, Option<f64>, Option<u64>, f64);
    let mut window_cpu: Option<(Cpu, Option<Cpu>)> = None;
    let mut closed = 0u64;
    let mut last_progress = Instant::now();
    let mut drain_deadline: Option<Instant> = None;
    loop {
        let now_ns = epoch.elapsed().as_nanos() as u64;
        if window.is_none() && now_ns >= warm_ns {
            let nodes = c.server_pid.into_iter().chain(a.also_pids.iter().copied());
            window = Some((
                CpuWindow::start(nodes),
                a.broker_pid.map(|p| CpuWindow::start(Some(p))),
            ));
        }
        if window_cpu.is_none() && now_ns >= send_end_ns {
            window_cpu = window.as_ref().map(end);
        }
        loop {
            let due = (k as f64 * interval_ns) as u64;
            if due > now_ns || due >= send_end_ns {
                break;
            }
            use std::fmt::Write as _;
            msg.clear();
            let _ = write!(
                msg,
                r#"{{"op":"publish","topic":"{}","data":"{due:016x}{pad}"}}"#,
                a.topic
            );
            engine.send(publisher, MessageKind::Text, msg.as_bytes());
            if due >= warm_ns {
                measured_sent += 1;
            }
            k += 1;
        }
        let next_due = (k as f64 * interval_ns) as u64;
        if next_due >= send_end_ns && drain_deadline.is_none() {
            drain_deadline = Some(Instant::now() + Duration::from_secs(3));
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
                    if now_ns >= warm_ns && now_ns < send_end_ns {
                        delivered_in_window += 1;
                    }
                    if sent >= warm_ns && sent < send_end_ns {
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
        let expected = measured_sent * a.subscribers as u64;
        if let Some(d) = drain_deadline {
            if received >= expected || Instant::now() >= d {
                break;
            }
        }
        if !c.quiet && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprint!(
                "\r[fanout {}] {:.1}s published {} delivered {} p99 {:.0} µs          ",
                c.label,
                now_ns as f64 / 1e9,
                k,
                received,
                hist.value_at_quantile(0.99) as f64 / 1000.0
            );
        }
    }
    let ((_, server_pct, server_ns, own_pct), broker_cpu) = window_cpu
        .or_else(|| window.as_ref().map(end))
        .ok_or("the run ended during warm-up")?;
    let broker_cpu_pct = broker_cpu.and_then(|(_, pct, _, _)| pct);
    engine.close_all();
    let expected = measured_sent * a.subscribers as u64;
    let lost = expected.saturating_sub(received);
    let p = Percentiles::from_ns(&hist);
    let delivered_rate = delivered_in_window as f64 / a.duration;
    if !c.quiet {
        eprintln!();
    }
    println!(
        "{} fanout {} subscribers x {:.0}/s x {}B: delivered {:.0} msg/s of {:.0} offered; latency of the measured publications (received {} of {}): p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs; server CPU {}, {} per delivery;{} generator CPU {:.0}%",
        c.label,
        a.subscribers,
        a.rate,
        a.size,
        delivered_rate,
        expected as f64 / a.duration,
        received,
        expected,
        p.p50_us,
        p.p99_us,
        p.p999_us,
        p.max_us,
        server_pct.map_or("n/a".into(), |p| format!("{p:.0}%")),
        server_ns.map_or("n/a".into(), |ns| format!(
            "{:.0} ns",
            ns as f64 / delivered_in_window.max(1) as f64
        )),
        broker_cpu_pct.map_or(String::new(), |p| format!(" broker CPU {p:.0}%;")),
        own_pct
    );
    let r = RunResult {
        server: c.label.clone(),
        case: format!("fanout {}x{:.0}/s {}B", a.subscribers, a.rate, a.size),
        scenario: "fanout".into(),
        repeat: c.repeat,
        connections: a.subscribers,
        size: a.size,
        seconds: a.duration,
        rate: delivered_rate,
        bytes_per_s: delivered_rate * a.size as f64,
        count: delivered_in_window,
        latency: (received > 0).then_some(p),
        server_cpu_pct: server_pct,
        server_cpu_ns_per_op: server_ns.map(|ns| ns as f64 / delivered_in_window.max(1) as f64),
        generator_cpu_pct: own_pct,
        rss_per_conn: None,
        errors: errors + closed,
        missing: Some(lost),
        target_rate: Some(a.rate * a.subscribers as f64),
        broker_cpu_pct,
    };
    emit(c, &r)
}

fn connect(a: ConnectArgs) -> Result<(), String> {
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

fn idle(a: IdleArgs) -> Result<(), String> {
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

fn hold(a: HoldArgs) -> Result<(), String> {
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

fn report_idle(c: &Common, n: usize, before: Option<u64>) -> Result<(), String> {
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
fn wait_hold(hold: Duration) {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = std::io::stdin().read_line(&mut sink);
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(hold);
}
