//! `recover`: a reconnect storm on a topic with history, each subscriber
//! catching up on exactly what it missed.

use clap::Args;

use crate::common::CpuWindow;

#[derive(Args, Debug)]
pub(crate) struct RecoverArgs {
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

pub(crate) fn recover(a: RecoverArgs) -> Result<(), String> {
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
