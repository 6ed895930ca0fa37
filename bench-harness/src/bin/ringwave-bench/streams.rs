//! `sse-fanout` and `ws-fanout`: subscribers as SSE streams or `/feed`
//! WebSockets, over HTTP/1.1 or as HTTP/2 streams.

use bench_harness::streams::{Kind, StreamConfig};
use clap::Args;

use crate::common::CpuWindow;

#[derive(Args, Debug)]
pub(crate) struct StreamFanoutArgs {
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

pub(crate) fn stream_fanout(a: StreamFanoutArgs, kind: Kind) -> Result<(), String> {
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
