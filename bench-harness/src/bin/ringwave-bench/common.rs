//! What every scenario shares: the target server's options, the common
//! options, opening connections, CPU windows and the JSON output.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bench_harness::stats::{append_json_lines, latency_histogram, RunResult};
use bench_harness::{process_cpu_ns, self_cpu_ns, Engine, Happened, Target};
use clap::Args;
use ringwave::driver::Backend;

/// Where the server is and how its certificate is checked.
#[derive(Args, Debug, Clone)]
pub(crate) struct ServerArgs {
    /// Server URL, ws://IP:PORT/PATH or wss://HOST:PORT/PATH (HOST
    /// `localhost` or an IP address; the certificate is checked against it).
    #[arg(long, default_value = "ws://127.0.0.1:9001/")]
    pub url: String,
    /// For wss://: trust the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// For wss://: accept any server certificate (signatures still checked).
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct Common {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Label for the server in results.
    #[arg(long, default_value = "server")]
    pub label: String,
    /// Server process id: report its CPU use (and RSS for idle).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Append the result as one JSON line to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Repeat number recorded in the result.
    #[arg(long, default_value_t = 0)]
    pub repeat: u32,
    /// Spread connections over this many source addresses 127.0.0.1..N.
    #[arg(long, default_value_t = 1)]
    pub sources: u8,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Case name in results [default: scenario and parameters, e.g.
    /// "echo 100x20B d1"].
    #[arg(long)]
    pub case: Option<String>,
    /// The generator's own I/O backend: auto (io_uring when available),
    /// uring or poll.
    #[arg(long, default_value = "auto")]
    pub backend: Backend,
}

/// Open `n` connections, at most `k` handshakes at once; returns the engine
/// and the handshake latency histogram.
pub(crate) fn open_connections(
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
pub(crate) fn target(common: &Common, url: &str) -> Result<Target, String> {
    Target::parse(url)?.with_tls(common.server.ca.as_deref(), common.server.insecure)
}

/// Open connections on `engine`'s current target until it holds `n` in all,
/// at most `k` handshakes at once.
pub(crate) fn open_more(
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

pub(crate) fn emit(common: &Common, r: &RunResult) -> Result<(), String> {
    let mut r = r.clone();
    if let Some(case) = &common.case {
        r.case = case.clone();
    }
    if let Some(path) = &common.json {
        append_json_lines(path, &[r])?;
    }
    Ok(())
}

pub(crate) struct CpuWindow {
    /// Each measured process and its CPU time at the start.
    pub server: Vec<(u32, u64)>,
    pub own: u64,
    pub at: Instant,
}

impl CpuWindow {
    /// Measure the processes `pids` together (a server, or every node of
    /// one).
    pub(crate) fn start(pids: impl IntoIterator<Item = u32>) -> CpuWindow {
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
    pub(crate) fn end(&self) -> (f64, Option<f64>, Option<u64>, f64) {
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
