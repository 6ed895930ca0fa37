//! `fanout`: pub/sub delivery over the feed protocol, S subscribers on one
//! topic and one publisher at R publishes per second.

use std::time::{Duration, Instant};

use bench_harness::stats::{latency_histogram, Percentiles, RunResult};
use bench_harness::Happened;
use clap::Args;
use ringwave::proto::MessageKind;

use crate::common::{emit, open_connections, open_more, target, Common, CpuWindow};

#[derive(Args, Debug)]
pub(crate) struct FanoutArgs {
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
    /// A ringwave's /metrics (http://HOST:PORT/metrics): its delivery-lag
    /// histogram is read at the end of the run (the server starts fresh
    /// for each run, so it covers the run).
    #[arg(long, value_name = "URL")]
    metrics_url: Option<String>,
}

/// Peak resident memory (`VmHWM`) of `pids`, summed, in bytes.
fn rss_peak(pids: impl Iterator<Item = u32>) -> Option<u64> {
    let mut total = None;
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        total = Some(total.unwrap_or(0) + kib * 1024);
    }
    total
}

/// The delivery lag a ringwave's /metrics at `url` holds, every worker's
/// histogram summed, as percentiles (linear within a bucket; beyond the
/// last finite bound, that bound).
fn server_lag(url: &str) -> Result<Percentiles, String> {
    use std::io::{Read as _, Write as _};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--metrics-url {url}: http:// only"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host).map_err(|e| format!("{url}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body)
        .map_err(|e| format!("{url}: {e}"))?;
    lag_percentiles(&body).map_err(|e| format!("{url}: {e}"))
}

/// The percentiles of the delivery-lag histogram in a /metrics `body`.
fn lag_percentiles(body: &str) -> Result<Percentiles, String> {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in body.lines() {
        let Some(rest) = line.strip_prefix("ringwave_delivery_lag_seconds_bucket{") else {
            continue;
        };
        let (labels, value) = rest
            .split_once("} ")
            .ok_or("a bucket line without a value")?;
        let le = labels
            .split(',')
            .find_map(|l| l.strip_prefix("le=\""))
            .and_then(|l| l.strip_suffix('"'))
            .ok_or("a bucket without le")?;
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().map_err(|_| "a bad le")?
        };
        let n: f64 = value.trim().parse().map_err(|_| "a bad bucket count")?;
        match buckets.iter_mut().find(|(b, _)| *b == le) {
            Some((_, c)) => *c += n,
            None => buckets.push((le, n)),
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map_or(0.0, |b| b.1);
    if total <= 0.0 {
        return Err("no delivery counted".into());
    }
    let at = |q: f64| -> f64 {
        let want = q * total;
        let (mut lo, mut below) = (0.0, 0.0);
        for &(le, cum) in &buckets {
            if cum >= want {
                if le.is_infinite() {
                    return lo * 1e6;
                }
                let share = if cum > below {
                    (want - below) / (cum - below)
                } else {
                    1.0
                };
                return (lo + (le - lo) * share) * 1e6;
            }
            (lo, below) = (le, cum);
        }
        lo * 1e6
    };
    let max = buckets
        .iter()
        .rev()
        .find(|(le, _)| le.is_finite())
        .map_or(0.0, |b| b.0 * 1e6);
    Ok(Percentiles {
        count: total as u64,
        p50_us: at(0.5),
        p90_us: at(0.9),
        p99_us: at(0.99),
        p999_us: at(0.999),
        max_us: max,
    })
}

pub(crate) fn fanout(a: FanoutArgs) -> Result<(), String> {
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
    let rss_peak_bytes = rss_peak(c.server_pid.into_iter().chain(a.also_pids.iter().copied()));
    let lag = match &a.metrics_url {
        Some(url) => Some(server_lag(url)?),
        None => None,
    };
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
    if let Some(l) = &lag {
        println!(
            "{} server delivery lag (its /metrics, {} deliveries): p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs; server peak RSS {}",
            c.label,
            l.count,
            l.p50_us,
            l.p99_us,
            l.p999_us,
            rss_peak_bytes.map_or("n/a".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0))
        );
    }
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
        server_rss_peak_bytes: rss_peak_bytes,
        server_lag: lag,
    };
    emit(c, &r)
}

#[cfg(test)]
mod tests {
    use super::lag_percentiles;

    #[test]
    fn lag_percentiles_interpolate_within_buckets_summed_over_workers() {
        let body = "\
ringwave_delivery_lag_seconds_bucket{worker=\"0\",le=\"0.001\"} 40
ringwave_delivery_lag_seconds_bucket{worker=\"0\",le=\"0.01\"} 50
ringwave_delivery_lag_seconds_bucket{worker=\"0\",le=\"+Inf\"} 50
ringwave_delivery_lag_seconds_bucket{worker=\"1\",le=\"0.001\"} 10
ringwave_delivery_lag_seconds_bucket{worker=\"1\",le=\"0.01\"} 49
ringwave_delivery_lag_seconds_bucket{worker=\"1\",le=\"+Inf\"} 50
ringwave_delivery_lag_seconds_count{worker=\"0\"} 50
";
        let p = lag_percentiles(body).unwrap();
        assert_eq!(p.count, 100);
        // 50 of 100 under 1 ms: the median is 1 ms.
        assert!((p.p50_us - 1000.0).abs() < 1e-6, "{p:?}");
        // 99 under 10 ms; the 90th is 40/49 of the way from 1 to 10 ms.
        assert!(
            (p.p90_us - (1000.0 + 9000.0 * 40.0 / 49.0)).abs() < 1e-6,
            "{p:?}"
        );
        // Beyond the last finite bound: that bound.
        assert_eq!(p.p999_us, 10_000.0);
        assert!(lag_percentiles("nothing here").is_err());
    }
}
