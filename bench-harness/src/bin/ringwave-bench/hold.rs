//! `hold`: ramp up to a million connections over child processes and
//! measure the server at checkpoints.

use std::path::PathBuf;
use std::time::Duration;

use bench_harness::Target;
use clap::Args;
use ringwave::driver::Backend;

use crate::common::ServerArgs;

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
