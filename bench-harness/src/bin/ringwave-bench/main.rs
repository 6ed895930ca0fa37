//! `ringwave-bench`: a WebSocket load generator for any `ws://` server.
//!
//! Scenarios: `echo` (closed-loop throughput), `latency` (open-loop at a fixed
//! rate, HDR percentiles), `connect` (connection storm), `idle` (hold N idle
//! connections, across several processes and source addresses when N exceeds
//! one process's descriptor limit), `fanout` (pub/sub delivery over the feed
//! protocol). `report` turns results into Markdown and
//! PNG charts. Every scenario prints a summary line and, with `--json FILE`,
//! appends one JSON object per run to FILE.

use std::path::PathBuf;
use std::process::ExitCode;

use bench_harness::streams::Kind;
use clap::{Args, Parser, Subcommand};

mod common;
mod connect;
mod echo;
mod fanout;
mod hold;
mod idle;
mod latency;
mod recover;
mod streams;

use connect::ConnectArgs;
use echo::EchoArgs;
use fanout::FanoutArgs;
use hold::HoldArgs;
use idle::IdleArgs;
use latency::LatencyArgs;
use recover::RecoverArgs;
use streams::StreamFanoutArgs;

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
        Cmd::Echo(a) => echo::echo(a),
        Cmd::Latency(a) => latency::latency(a),
        Cmd::Connect(a) => connect::connect(a),
        Cmd::Idle(a) => idle::idle(a),
        Cmd::Fanout(a) => fanout::fanout(a),
        Cmd::SseFanout(a) => streams::stream_fanout(a, Kind::Sse),
        Cmd::WsFanout(a) => streams::stream_fanout(a, Kind::Ws),
        Cmd::Recover(a) => recover::recover(a),
        Cmd::Hold(a) => hold::hold(a),
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
