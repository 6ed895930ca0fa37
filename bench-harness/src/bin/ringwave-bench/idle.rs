//! `idle`: hold N idle connections, over several source addresses and,
//! past one process's descriptor limit, several processes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use bench_harness::settled_rss;
use bench_harness::stats::RunResult;
use clap::Args;

use crate::common::{emit, open_connections, Common};

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
