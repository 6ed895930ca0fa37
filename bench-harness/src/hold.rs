//! `ringwave-bench hold`: open up to a million WebSocket connections at a
//! ramp rate and hold them, measuring the server at checkpoints.
//!
//! One process may hold only as many sockets as its descriptor limit
//! (20,000 here), so the parent spreads the connections over child
//! processes ([`child`]), each with its own loopback source addresses
//! (four each from 127.1.0.1 on: each address has its own ephemeral ports)
//! and its own
//! [`Engine`]. The parent ([`run`]) paces them: every 50 ms it tells each
//! child how many connections it should have started (`target K` on its
//! standard input), filling one child before the next. Children report on
//! their standard output every 200 ms:
//!
//! - `s OPEN STARTED LOST FAILED PINGED`: connections open, started, lost
//!   after their handshake, failed before it, and pinged by the server at
//!   least once;
//! - `c US US ...`: handshake times since the last report, in µs;
//! - `e US US ...`: echo round trips of the sample connections, in µs;
//! - `x TEXT`: an error (the first few of each child).
//!
//! While the connections ramp up and are held, each child's first `sample`
//! connections send a stamped message every second and time the echo; every
//! connection answers the server's pings (the protocol does). At each
//! checkpoint the parent records a [`Checkpoint`]: connections open, server
//! RSS and RSS per connection, kernel socket memory, handshake p99 since the
//! previous checkpoint and echo p50/p99 of the last few seconds.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ringwave::driver::Backend;
use ringwave::proto::MessageKind;
use serde::Serialize;

use crate::stats::{append_json_lines, latency_histogram};
use crate::{process_rss, Engine, Happened, Target};

/// Handshakes a child keeps in flight at once.
const CHILD_CONCURRENCY: usize = 256;
/// Source addresses per child: a few thousand connections per address keep
/// the kernel's search for a free port short.
const SOURCES_PER_CHILD: u32 = 4;
/// Echo samples kept for the moving p50/p99 (the last few seconds).
const ECHO_WINDOW: Duration = Duration::from_secs(5);

/// What the parent needs to know.
#[derive(Debug, Clone)]
pub struct HoldConfig {
    pub url: String,
    pub ca: Option<PathBuf>,
    pub insecure: bool,
    pub backend: Backend,
    pub connections: usize,
    /// New connections per second.
    pub rate: f64,
    /// How long to hold them all once open.
    pub hold: Duration,
    pub per_process: usize,
    pub checkpoints: Vec<usize>,
    /// Connections (over all children) that echo every second.
    pub sample: usize,
    pub source_base: Ipv4Addr,
    pub server_pid: Option<u32>,
    /// Where the server's `/metrics` is (its count of open connections).
    pub metrics: Option<SocketAddr>,
    /// The whole run stops after this long, whatever it reached.
    pub max_seconds: f64,
    pub json: Option<PathBuf>,
    pub quiet: bool,
}

/// The state at one checkpoint (or at the end of the hold).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checkpoint {
    /// "10000", ..., or "held 60 s".
    pub label: String,
    /// Connections open (the generator's count).
    pub open: usize,
    /// The server's own count (`ringwave_connections_open`, minus the
    /// request that asked), when `/metrics` answered.
    pub server_open: Option<u64>,
    /// Most connections on one server worker.
    pub worker_max: Option<u64>,
    /// Seconds since the first connection.
    pub seconds: f64,
    pub server_rss_bytes: Option<u64>,
    /// (RSS now - RSS before the first connection) / open.
    pub rss_per_conn: Option<f64>,
    /// `/proc/net/sockstat`: TCP sockets in use (both ends) and the pages
    /// of buffer memory they hold, in KiB.
    pub tcp_inuse: u64,
    pub tcp_mem_kib: u64,
    /// Kernel slab memory since the start (socket structures, both ends),
    /// in KiB, from `/proc/meminfo`.
    pub slab_kib: i64,
    /// Handshakes since the previous checkpoint.
    pub connect_p99_us: f64,
    pub connect_rate: f64,
    pub echo_p50_us: Option<f64>,
    pub echo_p99_us: Option<f64>,
    pub echo_samples: u64,
    pub lost: usize,
    pub failed: usize,
    /// Open connections the server has pinged at least once.
    pub pinged: usize,
}

/// `/proc/net/sockstat`'s TCP line: (inuse, mem pages).
fn sockstat() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("TCP:")) else {
        return (0, 0);
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    let field = |name: &str| {
        words
            .iter()
            .position(|w| *w == name)
            .and_then(|i| words.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("inuse"), field("mem"))
}

/// `/proc/meminfo`'s `Slab:` in KiB.
fn slab_kib() -> i64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("Slab:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The server's `ringwave_connections_open` (minus this request) and its
/// largest `ringwave_worker_connections`.
fn server_counts(addr: SocketAddr) -> Option<(u64, u64)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let mut open = None;
    let mut worker_max = 0u64;
    for line in body.lines() {
        let mut it = line.split_whitespace();
        let (Some(name), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        let Ok(v) = v.parse::<f64>() else {
            continue;
        };
        if name == "ringwave_connections_open" {
            open = Some((v as u64).saturating_sub(1));
        } else if name.starts_with("ringwave_worker_connections{") {
            worker_max = worker_max.max(v as u64);
        }
    }
    Some((open?, worker_max))
}

fn now_ns(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

/// Run as one child: hold what the parent asks for, report as described in
/// the module docs.
pub fn child(
    url: &str,
    ca: Option<&std::path::Path>,
    insecure: bool,
    backend: Backend,
    source: Ipv4Addr,
    sample: usize,
) -> Result<(), String> {
    let target = Target::parse(url)?.with_tls(ca, insecure)?;
    let mut engine =
        Engine::new(target, SOURCES_PER_CHILD as u8, backend).map_err(|e| e.to_string())?;
    engine.set_source_base(source);
    // Commands from the parent; None once its end of the pipe closes.
    let (tx, rx) = mpsc::channel::<Option<usize>>();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if let Some(k) = line.strip_prefix("target ").and_then(|k| k.parse().ok()) {
                if tx.send(Some(k)).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(None);
    });
    let epoch = Instant::now();
    let out = io::stdout();
    let mut out = out.lock();
    let mut target = 0usize;
    let mut pending = 0usize;
    let (mut lost, mut failed, mut errors_told) = (0usize, 0usize, 0usize);
    let mut pinged = Vec::<bool>::new();
    let mut pinged_open = 0usize;
    let mut samples: Vec<usize> = Vec::new();
    let (mut connect_us, mut echo_us): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
    let mut errors: Vec<String> = Vec::new();
    let mut events = Vec::new();
    let mut last_report = Instant::now();
    let mut last_echo = Instant::now();
    let mut connect_failing_since: Option<Instant> = None;
    loop {
        loop {
            match rx.try_recv() {
                Ok(Some(k)) => target = k,
                Ok(None) | Err(mpsc::TryRecvError::Disconnected) => {
                    engine.close_all();
                    let mut ev = Vec::new();
                    let _ = engine.poll(Duration::from_millis(10), &mut ev);
                    return Ok(());
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        // A failing connect (ports, memory) is retried every 100 ms, not in
        // a tight loop.
        let may_connect =
            connect_failing_since.is_none_or(|t| t.elapsed() > Duration::from_millis(100));
        if may_connect {
            connect_failing_since = None;
            while pending < CHILD_CONCURRENCY && engine.started() < target {
                match engine.connect() {
                    Ok(_) => pending += 1,
                    Err(e) => {
                        if errors_told < 3 {
                            errors_told += 1;
                            errors.push(format!("connect from {source}: {e}"));
                        }
                        connect_failing_since = Some(Instant::now());
                        break;
                    }
                }
            }
        }
        events.clear();
        engine
            .poll(Duration::from_millis(5), &mut events)
            .map_err(|e| e.to_string())?;
        let now = now_ns(epoch);
        for ev in &events {
            match ev {
                Happened::Opened(i, d) => {
                    pending = pending.saturating_sub(1);
                    connect_us.push(d.as_micros() as u64);
                    if samples.len() < sample {
                        samples.push(*i);
                    }
                }
                Happened::Closed(i, why) => {
                    if engine.was_opened(*i) {
                        lost += 1;
                        if pinged.get(*i).copied().unwrap_or(false) {
                            pinged_open -= 1;
                        }
                    } else {
                        failed += 1;
                        pending = pending.saturating_sub(1);
                    }
                    if errors_told < 3 {
                        errors_told += 1;
                        errors.push(format!("connection {i} from {source}: {why}"));
                    }
                }
                Happened::Message(_, _, stamp) => {
                    if *stamp > 0 && *stamp <= now {
                        echo_us.push((now - stamp) / 1000);
                    }
                }
                Happened::Pinged(i) => {
                    if pinged.len() <= *i {
                        pinged.resize(*i + 1, false);
                    }
                    if !pinged[*i] {
                        pinged[*i] = true;
                        pinged_open += 1;
                    }
                }
            }
        }
        if last_echo.elapsed() >= Duration::from_secs(1) {
            last_echo = Instant::now();
            let stamp = now_ns(epoch).to_le_bytes();
            for &i in &samples {
                if engine.is_open(i) && engine.backlog(i) == 0 {
                    engine.send(i, MessageKind::Binary, &stamp);
                }
            }
        }
        if last_report.elapsed() >= Duration::from_millis(200) {
            last_report = Instant::now();
            let w = |out: &mut io::StdoutLock, tag: &str, v: &mut Vec<u64>| -> io::Result<()> {
                if v.is_empty() {
                    return Ok(());
                }
                write!(out, "{tag}")?;
                for x in v.drain(..) {
                    write!(out, " {x}")?;
                }
                writeln!(out)
            };
            let r = (|| -> io::Result<()> {
                w(&mut out, "c", &mut connect_us)?;
                w(&mut out, "e", &mut echo_us)?;
                for e in errors.drain(..) {
                    writeln!(out, "x {e}")?;
                }
                writeln!(
                    out,
                    "s {} {} {lost} {failed} {pinged_open}",
                    engine.open(),
                    engine.started()
                )?;
                out.flush()
            })();
            if r.is_err() {
                // The parent is gone.
                return Ok(());
            }
        }
    }
}

/// One child as the parent sees it.
struct ChildState {
    process: Child,
    stdin: Option<ChildStdin>,
    target: usize,
    open: usize,
    started: usize,
    lost: usize,
    failed: usize,
    pinged: usize,
}

/// Run the whole ramp and hold; returns the checkpoints.
pub fn run(cfg: &HoldConfig) -> Result<Vec<Checkpoint>, String> {
    if cfg.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    if cfg.rate.is_nan() || cfg.rate <= 0.0 {
        return Err("--rate must be above 0".into());
    }
    let limit = crate::descriptor_limit();
    if cfg.per_process + 64 > limit as usize {
        return Err(format!(
            "--per-process {} does not fit this machine's descriptor limit of {limit} \
             (each connection needs one, plus a few for the process)",
            cfg.per_process
        ));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let processes = cfg.connections.div_ceil(cfg.per_process);
    let mut checkpoints: Vec<usize> = cfg
        .checkpoints
        .iter()
        .copied()
        .filter(|&c| c > 0 && c < cfg.connections)
        .collect();
    checkpoints.push(cfg.connections);
    checkpoints.sort_unstable();
    checkpoints.dedup();

    let rss0 = cfg.server_pid.and_then(process_rss);
    let slab0 = slab_kib();
    let (lines_tx, lines_rx) = mpsc::channel::<(usize, String)>();
    let mut children: Vec<ChildState> = Vec::new();
    let per_child_sample = cfg.sample.div_ceil(processes);

    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(cfg.max_seconds);
    let mut rows: Vec<Checkpoint> = Vec::new();
    let mut next_cp = 0usize;
    let mut segment = latency_histogram();
    let mut segment_start = (Instant::now(), 0usize);
    let mut echo: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut hold_echo = latency_histogram();
    let mut errors: Vec<String> = Vec::new();
    let mut last_progress = Instant::now();
    let mut best = (0usize, Instant::now());
    let mut held_since: Option<Instant> = None;
    let mut stopped: Option<String> = None;

    let row = |label: String,
               children: &[ChildState],
               segment: &hdrhistogram::Histogram<u64>,
               rate: f64,
               echo: &VecDeque<(Instant, u64)>,
               echo_hist: Option<&hdrhistogram::Histogram<u64>>|
     -> Checkpoint {
        let open: usize = children.iter().map(|c| c.open).sum();
        let rss = cfg.server_pid.and_then(process_rss);
        let (tcp_inuse, tcp_pages) = sockstat();
        let counts = cfg.metrics.and_then(server_counts);
        let (p50, p99, n) = match echo_hist {
            Some(h) if !h.is_empty() => (
                Some(h.value_at_quantile(0.5) as f64 / 1000.0),
                Some(h.value_at_quantile(0.99) as f64 / 1000.0),
                h.len(),
            ),
            Some(_) => (None, None, 0),
            None => {
                let mut h = latency_histogram();
                for &(_, us) in echo {
                    let _ = h.record((us * 1000).max(1000));
                }
                if h.is_empty() {
                    (None, None, 0)
                } else {
                    (
                        Some(h.value_at_quantile(0.5) as f64 / 1000.0),
                        Some(h.value_at_quantile(0.99) as f64 / 1000.0),
                        h.len(),
                    )
                }
            }
        };
        Checkpoint {
            label,
            open,
            server_open: counts.map(|c| c.0),
            worker_max: counts.map(|c| c.1),
            seconds: start.elapsed().as_secs_f64(),
            server_rss_bytes: rss,
            rss_per_conn: match (rss0, rss) {
                (Some(a), Some(b)) if open > 0 => Some((b as f64 - a as f64) / open as f64),
                _ => None,
            },
            tcp_inuse,
            tcp_mem_kib: tcp_pages * 4,
            slab_kib: slab_kib() - slab0,
            connect_p99_us: if segment.is_empty() {
                0.0
            } else {
                segment.value_at_quantile(0.99) as f64 / 1000.0
            },
            connect_rate: rate,
            echo_p50_us: p50,
            echo_p99_us: p99,
            echo_samples: n,
            lost: children.iter().map(|c| c.lost).sum(),
            failed: children.iter().map(|c| c.failed).sum(),
            pinged: children.iter().map(|c| c.pinged).sum(),
        }
    };

    if !cfg.quiet {
        eprintln!(
            "[hold] {} connections at {:.0}/s over {processes} generator processes \
             ({} each, sources {}..), then held {:.0} s",
            cfg.connections,
            cfg.rate,
            cfg.per_process,
            cfg.source_base,
            cfg.hold.as_secs_f64()
        );
    }
    let result = (|| -> Result<(), String> {
        loop {
            let now = Instant::now();
            if now > deadline {
                stopped = Some(format!(
                    "the run's time limit ({:.0} s) passed",
                    cfg.max_seconds
                ));
                return Ok(());
            }
            // Pace: how many should be started by now, child by child.
            let want = ((start.elapsed().as_secs_f64() * cfg.rate) as usize).min(cfg.connections);
            let mut left = want;
            for k in 0..processes {
                let share = left.min(cfg.per_process);
                left -= share;
                if share == 0 {
                    break;
                }
                if k == children.len() {
                    let source = Ipv4Addr::from(
                        u32::from(cfg.source_base).wrapping_add(k as u32 * SOURCES_PER_CHILD),
                    );
                    let mut cmd = Command::new(&exe);
                    cmd.args(["hold", "--child", "--url", &cfg.url])
                        .args(["--backend", &cfg.backend.to_string()])
                        .args(["--source-base", &source.to_string()])
                        .args(["--sample", &per_child_sample.to_string()]);
                    if let Some(ca) = &cfg.ca {
                        cmd.arg("--ca").arg(ca);
                    }
                    if cfg.insecure {
                        cmd.arg("--insecure");
                    }
                    let mut process = cmd
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .spawn()
                        .map_err(|e| format!("cannot start generator process {k}: {e}"))?;
                    let stdout = process.stdout.take().ok_or("child stdout")?;
                    let tx = lines_tx.clone();
                    std::thread::spawn(move || {
                        for line in BufReader::new(stdout).lines() {
                            let Ok(line) = line else { break };
                            if tx.send((k, line)).is_err() {
                                break;
                            }
                        }
                    });
                    children.push(ChildState {
                        stdin: process.stdin.take(),
                        process,
                        target: 0,
                        open: 0,
                        started: 0,
                        lost: 0,
                        failed: 0,
                        pinged: 0,
                    });
                }
                let c = &mut children[k];
                if c.target != share {
                    c.target = share;
                    if let Some(stdin) = &mut c.stdin {
                        if writeln!(stdin, "target {share}")
                            .and_then(|_| stdin.flush())
                            .is_err()
                        {
                            return Err(format!("generator process {k} exited"));
                        }
                    }
                }
            }
            // Reports.
            let wait_until = Instant::now() + Duration::from_millis(50);
            while let Ok((k, line)) =
                lines_rx.recv_timeout(wait_until.saturating_duration_since(Instant::now()))
            {
                let (tag, rest) = line.split_once(' ').unwrap_or((&line, ""));
                match tag {
                    "s" => {
                        let v: Vec<usize> =
                            rest.split(' ').filter_map(|x| x.parse().ok()).collect();
                        if let [open, started, lost, failed, pinged] = v[..] {
                            let c = &mut children[k];
                            (c.open, c.started, c.lost, c.failed, c.pinged) =
                                (open, started, lost, failed, pinged);
                        }
                    }
                    "c" => {
                        for us in rest.split(' ').filter_map(|x| x.parse::<u64>().ok()) {
                            let _ = segment.record((us * 1000).max(1000));
                        }
                    }
                    "e" => {
                        for us in rest.split(' ').filter_map(|x| x.parse::<u64>().ok()) {
                            echo.push_back((Instant::now(), us));
                            if held_since.is_some() {
                                let _ = hold_echo.record((us * 1000).max(1000));
                            }
                        }
                    }
                    "x" => {
                        if errors.len() < 10 {
                            errors.push(rest.to_string());
                        }
                        if !cfg.quiet {
                            eprintln!("\n[hold] generator {k}: {rest}");
                        }
                    }
                    _ => {}
                }
            }
            while echo.front().is_some_and(|(t, _)| t.elapsed() > ECHO_WINDOW) {
                echo.pop_front();
            }
            let open: usize = children.iter().map(|c| c.open).sum();
            let failed: usize = children.iter().map(|c| c.failed).sum();
            let lost: usize = children.iter().map(|c| c.lost).sum();
            if open > best.0 {
                best = (open, Instant::now());
            }
            while next_cp < checkpoints.len() && open >= checkpoints[next_cp] {
                let secs = segment_start.0.elapsed().as_secs_f64();
                let rate = (open - segment_start.1) as f64 / secs.max(1e-9);
                let r = row(
                    checkpoints[next_cp].to_string(),
                    &children,
                    &segment,
                    rate,
                    &echo,
                    None,
                );
                if !cfg.quiet {
                    eprintln!("\n[hold] checkpoint {}: {}", r.label, summary(&r));
                }
                rows.push(r);
                segment = latency_histogram();
                segment_start = (Instant::now(), open);
                next_cp += 1;
            }
            if held_since.is_none() && open >= cfg.connections {
                held_since = Some(Instant::now());
            }
            if let Some(t) = held_since {
                if t.elapsed() >= cfg.hold {
                    return Ok(());
                }
            } else if open + failed + lost >= cfg.connections && failed + lost > 0 {
                stopped = Some(format!(
                    "{failed} connections failed and {lost} were lost before all were open"
                ));
                return Ok(());
            } else if best.1.elapsed() > Duration::from_secs(30)
                && want >= cfg.connections.min(best.0 + 1)
            {
                stopped = Some(format!(
                    "no new connection opened for 30 s at {open} open ({} errors told: {})",
                    errors.len(),
                    errors.join("; ")
                ));
                return Ok(());
            }
            if !cfg.quiet && last_progress.elapsed() >= Duration::from_secs(1) {
                last_progress = Instant::now();
                let rss = cfg
                    .server_pid
                    .and_then(process_rss)
                    .map_or(String::new(), |r| format!(", server RSS {} MiB", r >> 20));
                let phase = match held_since {
                    Some(t) => format!(", held {:.0} s", t.elapsed().as_secs_f64()),
                    None => String::new(),
                };
                eprint!(
                    "\r[hold] {open} / {} open, {lost} lost, {failed} failed{rss}{phase}      ",
                    cfg.connections
                );
            }
        }
    })();
    let label = match (held_since, &stopped) {
        (Some(t), None) => format!("held {:.0} s", t.elapsed().as_secs_f64()),
        _ => "stopped".to_string(),
    };
    let rate = 0.0;
    let last = row(
        label,
        &children,
        &latency_histogram(),
        rate,
        &echo,
        Some(&hold_echo),
    );
    if !cfg.quiet {
        eprintln!("\n[hold] {}: {}", last.label, summary(&last));
    }
    rows.push(last);
    // Let every child close its connections and exit.
    for c in &mut children {
        drop(c.stdin.take());
    }
    for c in &mut children {
        let _ = c.process.wait();
    }
    if let Some(path) = &cfg.json {
        append_json_lines(path, &rows)?;
    }
    result?;
    print!("{}", table(&rows));
    print!("{}", chart(&rows));
    if let Some(why) = stopped {
        return Err(format!(
            "stopped at {} of {} connections: {why}",
            best.0, cfg.connections
        ));
    }
    let lost = rows.last().map_or(0, |r| r.lost);
    if lost > 0 {
        return Err(format!("{lost} connections were lost"));
    }
    Ok(rows)
}

fn summary(r: &Checkpoint) -> String {
    format!(
        "{} open (server {}), server RSS {}, {} per connection, connect p99 {:.0} µs, echo p99 {}, {} lost",
        r.open,
        r.server_open.map_or("?".into(), |v| v.to_string()),
        r.server_rss_bytes.map_or("?".into(), |v| format!("{} MiB", v >> 20)),
        r.rss_per_conn.map_or("?".into(), |v| format!("{v:.0} B")),
        r.connect_p99_us,
        r.echo_p99_us.map_or("-".into(), |v| format!("{v:.0} µs")),
        r.lost
    )
}

/// The checkpoint table, Markdown.
pub fn table(rows: &[Checkpoint]) -> String {
    let mut s = String::new();
    s.push_str(
        "| checkpoint | open | server count | most on a worker | time | connects/s | connect p99 | server RSS | RSS per connection | TCP sockets (both ends) | kernel slab | TCP buffers | echo p50 / p99 (samples) | pinged | lost | failed |\n",
    );
    s.push_str(
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} s | {} | {} | {} | {} | {} | {:.0} MiB | {} KiB | {} | {} | {} | {} |\n",
            r.label,
            r.open,
            r.server_open.map_or("-".into(), |v| v.to_string()),
            r.worker_max.map_or("-".into(), |v| v.to_string()),
            r.seconds,
            if r.connect_rate > 0.0 { format!("{:.0}", r.connect_rate) } else { "-".into() },
            if r.connect_p99_us > 0.0 { format!("{:.0} µs", r.connect_p99_us) } else { "-".into() },
            r.server_rss_bytes.map_or("-".into(), |v| format!("{:.0} MiB", v as f64 / 1048576.0)),
            r.rss_per_conn.map_or("-".into(), |v| format!("{v:.0} B")),
            r.tcp_inuse,
            r.slab_kib as f64 / 1024.0,
            r.tcp_mem_kib,
            match (r.echo_p50_us, r.echo_p99_us) {
                (Some(a), Some(b)) => format!("{a:.0} / {b:.0} µs ({})", r.echo_samples),
                _ => "-".into(),
            },
            r.pinged,
            r.lost,
            r.failed,
        ));
    }
    s
}

/// Server RSS against connections, one bar per checkpoint.
pub fn chart(rows: &[Checkpoint]) -> String {
    let max = rows
        .iter()
        .filter_map(|r| r.server_rss_bytes)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut s = String::from("\nserver RSS against connections open\n");
    for r in rows {
        let Some(rss) = r.server_rss_bytes else {
            continue;
        };
        let bar = (rss as f64 / max as f64 * 50.0).round() as usize;
        s.push_str(&format!(
            "{:>9} conns |{:<50}| {:>6.0} MiB\n",
            r.open,
            "#".repeat(bar),
            rss as f64 / 1048576.0
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_bars_scale_to_the_largest_rss() {
        let rows = vec![
            Checkpoint {
                open: 10,
                server_rss_bytes: Some(50 << 20),
                ..Checkpoint::default()
            },
            Checkpoint {
                open: 20,
                server_rss_bytes: Some(100 << 20),
                ..Checkpoint::default()
            },
        ];
        let c = chart(&rows);
        let bars: Vec<usize> = c
            .lines()
            .filter(|l| l.contains('|'))
            .map(|l| l.matches('#').count())
            .collect();
        assert_eq!(bars, vec![25, 50]);
        assert!(table(&rows).lines().count() == 4);
    }
}
