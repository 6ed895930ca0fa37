//! `report.md`, `results.json` and PNG charts from a file of run results
//! (JSON lines): medians over repeats, ranges, and ratios to the best peer
//! (the best server that is not a ringwave build) in the same run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use plotters::prelude::*;

use crate::stats::RunResult;

/// Servers in report order.
const ORDER: [&str; 11] = [
    "ringwave-uring",
    "ringwave-poll",
    "ringwave-uring-2w",
    "ringwave-poll-2w",
    // Another build of ringwave (`--baseline BIN` in the bench scripts).
    "baseline-uring",
    "baseline-poll",
    "baseline-uring-2w",
    "tokio-tungstenite",
    "fastwebsockets",
    "bun",
    "uwebsockets-js",
];

/// Whether `server` is a peer (not a build of ringwave).
fn is_peer(server: &str) -> bool {
    !server.starts_with("ringwave-") && !server.starts_with("baseline-")
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Median of each figure over the repeats of one (server, case).
#[derive(Debug, Clone, Default)]
struct Cell {
    repeats: usize,
    rate: Option<f64>,
    rate_min: Option<f64>,
    rate_max: Option<f64>,
    server_cpu: Option<f64>,
    ns_per_op: Option<f64>,
    gen_cpu: Option<f64>,
    /// The generator's own CPU time per message (ns): beside `ns_per_op`
    /// it shows which side costs more per message.
    gen_ns_per_op: Option<f64>,
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    p99_min: Option<f64>,
    p99_max: Option<f64>,
    p999: Option<f64>,
    max: Option<f64>,
    rss: Option<f64>,
    target: Option<f64>,
    errors: u64,
    missing: Option<f64>,
    broker_cpu: Option<f64>,
    /// Peak server RSS, MiB.
    rss_peak_mib: Option<f64>,
    /// The server's own delivery lag (its /metrics), µs.
    lag_p50: Option<f64>,
    lag_p99: Option<f64>,
}

fn cells(runs: &[RunResult]) -> BTreeMap<(String, String), Cell> {
    let mut groups: BTreeMap<(String, String), Vec<&RunResult>> = BTreeMap::new();
    for r in runs {
        groups
            .entry((r.case.clone(), r.server.clone()))
            .or_default()
            .push(r);
    }
    groups
        .into_iter()
        .map(|(k, rs)| {
            let f = |g: &dyn Fn(&RunResult) -> Option<f64>| {
                median(rs.iter().filter_map(|r| g(r)).collect())
            };
            let rates: Vec<f64> = rs.iter().map(|r| r.rate).collect();
            let p99s: Vec<f64> = rs
                .iter()
                .filter_map(|r| r.latency.as_ref().map(|l| l.p99_us))
                .collect();
            let cell = Cell {
                repeats: rs.len(),
                rate: f(&|r| Some(r.rate)),
                rate_min: rates.iter().copied().reduce(f64::min),
                rate_max: rates.iter().copied().reduce(f64::max),
                server_cpu: f(&|r| r.server_cpu_pct),
                broker_cpu: f(&|r| r.broker_cpu_pct),
                ns_per_op: f(&|r| r.server_cpu_ns_per_op),
                gen_cpu: f(&|r| Some(r.generator_cpu_pct)),
                gen_ns_per_op: f(&|r| {
                    (r.rate > 0.0).then(|| r.generator_cpu_pct / 100.0 * 1e9 / r.rate)
                }),
                p50: f(&|r| r.latency.as_ref().map(|l| l.p50_us)),
                p90: f(&|r| r.latency.as_ref().map(|l| l.p90_us)),
                p99: median(p99s.clone()),
                p99_min: p99s.iter().copied().reduce(f64::min),
                p99_max: p99s.iter().copied().reduce(f64::max),
                p999: f(&|r| r.latency.as_ref().map(|l| l.p999_us)),
                max: f(&|r| r.latency.as_ref().map(|l| l.max_us)),
                rss: f(&|r| r.rss_per_conn),
                target: f(&|r| r.target_rate),
                errors: rs.iter().map(|r| r.errors).sum(),
                missing: f(&|r| r.missing.map(|m| m as f64)),
                rss_peak_mib: f(&|r| r.server_rss_peak_bytes.map(|b| b as f64 / 1048576.0)),
                lag_p50: f(&|r| r.server_lag.as_ref().map(|l| l.p50_us)),
                lag_p99: f(&|r| r.server_lag.as_ref().map(|l| l.p99_us)),
            };
            (k, cell)
        })
        .collect()
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.digits$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "–".into(),
    }
}

/// The best peer's value of `figure` in `case`: the largest when `higher`
/// is better, else the smallest.
fn best_peer(
    cells: &BTreeMap<(String, String), Cell>,
    case: &str,
    figure: impl Fn(&Cell) -> Option<f64>,
    higher: bool,
) -> Option<f64> {
    let values = cells
        .iter()
        .filter(|((c, s), _)| c == case && is_peer(s))
        .filter_map(|(_, cell)| figure(cell));
    if higher {
        values.reduce(f64::max)
    } else {
        values.reduce(f64::min)
    }
}

/// Latency paired by repeat: a repeat runs every server back to back, so
/// they share the machine's phase (a noisy minute raises all their p99s)
/// far more than repeats do. For each ringwave build and each peer in
/// `case`, the ratio of the build's p99 to the peer's in the same repeat,
/// one per repeat that has both, in repeat order. (Not against the lowest
/// peer of each repeat: the least of four noisy draws is lower than any
/// one server's typical draw, so even an equal server would lose to it.)
fn paired_p99(runs: &[RunResult], case: &str) -> BTreeMap<(String, String), Vec<f64>> {
    let mut by_repeat: BTreeMap<u32, Vec<(&str, f64)>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.case == case) {
        if let Some(l) = &r.latency {
            by_repeat
                .entry(r.repeat)
                .or_default()
                .push((r.server.as_str(), l.p99_us));
        }
    }
    let mut out: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for runs in by_repeat.values() {
        for &(s, p99) in runs.iter().filter(|(s, _)| !is_peer(s)) {
            for &(peer, peer_p99) in runs.iter().filter(|(p, _)| is_peer(p)) {
                if peer_p99 > 0.0 {
                    out.entry((s.to_string(), peer.to_string()))
                        .or_default()
                        .push(p99 / peer_p99);
                }
            }
        }
    }
    out
}

/// The sign test on paired ratios: with `at_or_below` of `n` pairs at or
/// below 1, is the build's p99 lower than the peer's ("lower"), higher
/// ("higher"), or are the two not told apart by this run ("level")? Two-sided,
/// at 5%: a side wins only when so lopsided a count would come by chance
/// less than one time in 40 if neither server's p99 tended to be the lower.
/// It asks only which is lower more often, so a few stalled repeats, however
/// long, weigh no more than any other repeat.
fn sign_test(at_or_below: usize, n: usize) -> &'static str {
    // Binomial(n, 1/2) probabilities, built up term by term.
    let mut pmf = vec![0.5f64.powi(n as i32)];
    for i in 0..n {
        let next = pmf[i] * (n - i) as f64 / (i + 1) as f64;
        pmf.push(next);
    }
    let at_least: f64 = pmf[at_or_below.min(n)..].iter().sum();
    let at_most: f64 = pmf[..=at_or_below.min(n)].iter().sum();
    if n > 0 && at_least <= 0.025 {
        "lower"
    } else if n > 0 && at_most <= 0.025 {
        "higher"
    } else {
        "level"
    }
}

/// A server's place in report order.
fn rank(server: &str) -> usize {
    ORDER
        .iter()
        .position(|o| *o == server)
        .unwrap_or(ORDER.len())
}

fn servers(cells: &BTreeMap<(String, String), Cell>, case: &str) -> Vec<String> {
    let mut present: Vec<String> = cells
        .keys()
        .filter(|(c, _)| c == case)
        .map(|(_, s)| s.clone())
        .collect();
    present.sort_by_key(|s| rank(s));
    present
}

/// Read `input`, write `out/report.md`, `out/results.json` and charts.
pub fn write(input: &Path, out: &Path, preface: Option<&Path>) -> io::Result<()> {
    let text = std::fs::read_to_string(input)?;
    let runs: Vec<RunResult> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", input.display()),
            )
        })?;
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&runs).map_err(io::Error::other)?,
    )?;
    let cells = cells(&runs);
    let mut cases: Vec<(String, String)> = Vec::new();
    for r in &runs {
        if !cases.iter().any(|(c, _)| c == &r.case) {
            cases.push((r.case.clone(), r.scenario.clone()));
        }
    }
    let mut md = String::from("# ringwave benchmark report\n\n");
    if let Some(p) = preface {
        md.push_str(&std::fs::read_to_string(p)?);
        md.push('\n');
    }
    md.push_str(
        "Medians over interleaved repeats. Server pinned to CPU 0, load generator to CPU 1. \
         Server CPU is utime+stime of the server process over the measured window (100% = one core); \
         ns/msg is that CPU time divided by messages echoed. Generator ns/msg is the same figure for \
         the load generator: where it is not below the server's, one generator core cannot drive \
         more than that server, and the rate is a floor for the server. \
         \"vs best peer\" divides by the best figure among the servers that are not ringwave builds \
         in the same case (highest rate, lowest ns/msg, lowest p99).\n\n",
    );
    // Echo.
    let echo_cases: Vec<&String> = cases
        .iter()
        .filter(|(_, s)| s == "echo")
        .map(|(c, _)| c)
        .collect();
    if !echo_cases.is_empty() {
        md.push_str("## Echo throughput\n\n| case | server | msg/s (median) | range (repeats) | vs best peer | server CPU | server ns/msg | ns/msg vs best peer | generator CPU | generator ns/msg | errors |\n|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for case in &echo_cases {
            let best_rate = best_peer(&cells, case, |c| c.rate, true);
            let best_ns = best_peer(&cells, case, |c| c.ns_per_op, false);
            for s in servers(&cells, case) {
                let c = &cells[&((*case).clone(), s.clone())];
                let _ = writeln!(
                    md,
                    "| {case} | {s} | {} | {}–{} ({}) | {} | {}% | {} | {} | {}% | {} | {} |",
                    fmt(c.rate, 0),
                    fmt(c.rate_min, 0),
                    fmt(c.rate_max, 0),
                    c.repeats,
                    ratio(c.rate, best_rate),
                    fmt(c.server_cpu, 0),
                    fmt(c.ns_per_op, 0),
                    ratio(c.ns_per_op, best_ns),
                    fmt(c.gen_cpu, 0),
                    fmt(c.gen_ns_per_op, 0),
                    c.errors
                );
            }
        }
        md.push_str("\n![echo throughput](echo.png)\n\n");
        chart(
            &out.join("echo.png"),
            "Echo throughput (messages/s, median)",
            &echo_cases,
            &cells,
            |c| c.rate,
        )?;
    }
    let lat_cases: Vec<&String> = cases
        .iter()
        .filter(|(_, s)| s == "latency")
        .map(|(c, _)| c)
        .collect();
    if !lat_cases.is_empty() {
        md.push_str("## Latency (open loop, one rate for every server; p99 median and range over the repeats)\n\n| case | server | rate/s | p50 µs | p90 µs | p99 µs (median) | p99 range (repeats) | p99 vs best peer | p99.9 µs | max µs | server CPU | errors |\n|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|\n");
        for case in &lat_cases {
            let best_p99 = best_peer(&cells, case, |c| c.p99, false);
            for s in servers(&cells, case) {
                let c = &cells[&((*case).clone(), s.clone())];
                let _ = writeln!(
                    md,
                    "| {case} | {s} | {} | {} | {} | {} | {}–{} ({}) | {} | {} | {} | {}% | {} |",
                    fmt(c.target, 0),
                    fmt(c.p50, 0),
                    fmt(c.p90, 0),
                    fmt(c.p99, 0),
                    fmt(c.p99_min, 0),
                    fmt(c.p99_max, 0),
                    c.repeats,
                    ratio(c.p99, best_p99),
                    fmt(c.p999, 0),
                    fmt(c.max, 0),
                    fmt(c.server_cpu, 0),
                    c.errors
                );
            }
        }
        md.push_str("\nPaired by repeat: a repeat runs every server back to back, sharing the machine's phase, so each ringwave build's p99 is divided by each peer's p99 of the same repeat: median ratio over the repeats, its range, and in how many repeats the build's p99 was at or below the peer's. Verdict: the sign test on those counts (two-sided, 5%): lower or higher when the count is too lopsided to come by chance, else level.\n\n| case | server | against | p99 / peer's p99, same repeat (median) | range | repeats at or below | verdict |\n|---|---|---|---:|---|---:|---|\n");
        for case in &lat_cases {
            let mut paired: Vec<_> = paired_p99(&runs, case).into_iter().collect();
            paired.sort_by_key(|((s, p), _)| (rank(s), rank(p)));
            for ((s, peer), ratios) in paired {
                let at_or_below = ratios.iter().filter(|r| **r <= 1.0).count();
                let lo = ratios.iter().copied().reduce(f64::min);
                let hi = ratios.iter().copied().reduce(f64::max);
                let n = ratios.len();
                let _ = writeln!(
                    md,
                    "| {case} | {s} | {peer} | {}x | {}–{} | {at_or_below} of {n} | {} |",
                    fmt(median(ratios), 2),
                    fmt(lo, 2),
                    fmt(hi, 2),
                    sign_test(at_or_below, n),
                );
            }
        }
        md.push_str("\n![p99 latency](latency.png)\n\n");
        chart(
            &out.join("latency.png"),
            "p99 latency (µs, median of repeats)",
            &lat_cases,
            &cells,
            |c| c.p99,
        )?;
    }
    let conn_cases: Vec<&String> = cases
        .iter()
        .filter(|(_, s)| s == "connect")
        .map(|(c, _)| c)
        .collect();
    if !conn_cases.is_empty() {
        md.push_str("## Connect rate\n\n| case | server | connections/s (median) | range (repeats) | vs best peer | handshake p50 µs | p99 µs (median) | p99 range | p99 vs best peer | server ns/conn | generator CPU | errors |\n|---|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|\n");
        for case in &conn_cases {
            let best_rate = best_peer(&cells, case, |c| c.rate, true);
            let best_p99 = best_peer(&cells, case, |c| c.p99, false);
            for s in servers(&cells, case) {
                let c = &cells[&((*case).clone(), s.clone())];
                let _ = writeln!(
                    md,
                    "| {case} | {s} | {} | {}–{} ({}) | {} | {} | {} | {}–{} | {} | {} | {}% | {} |",
                    fmt(c.rate, 0),
                    fmt(c.rate_min, 0),
                    fmt(c.rate_max, 0),
                    c.repeats,
                    ratio(c.rate, best_rate),
                    fmt(c.p50, 0),
                    fmt(c.p99, 0),
                    fmt(c.p99_min, 0),
                    fmt(c.p99_max, 0),
                    ratio(c.p99, best_p99),
                    fmt(c.ns_per_op, 0),
                    fmt(c.gen_cpu, 0),
                    c.errors
                );
            }
        }
        md.push('\n');
    }
    let fan_cases: Vec<&String> = cases
        .iter()
        .filter(|(_, s)| s == "fanout")
        .map(|(c, _)| c)
        .collect();
    if !fan_cases.is_empty() {
        md.push_str("## Pub/sub fan-out (one publisher, N subscribers; latency from scheduled publish to each receipt)\n\n| case | server | offered deliveries/s | delivered msg/s (median) | range (repeats) | vs best peer | p50 µs | p99 µs | p99.9 µs | measured deliveries not received by the end | server CPU | server ns/delivery | broker CPU | generator CPU | server peak RSS MiB | server lag p50 µs | server lag p99 µs |\n|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for case in &fan_cases {
            let best_rate = best_peer(&cells, case, |c| c.rate, true);
            for s in servers(&cells, case) {
                let c = &cells[&((*case).clone(), s.clone())];
                let _ = writeln!(
                    md,
                    "| {case} | {s} | {} | {} | {}–{} ({}) | {} | {} | {} | {} | {} | {}% | {} | {} | {}% | {} | {} | {} |",
                    fmt(c.target, 0),
                    fmt(c.rate, 0),
                    fmt(c.rate_min, 0),
                    fmt(c.rate_max, 0),
                    c.repeats,
                    ratio(c.rate, best_rate),
                    fmt(c.p50, 0),
                    fmt(c.p99, 0),
                    fmt(c.p999, 0),
                    fmt(c.missing, 0),
                    fmt(c.server_cpu, 0),
                    fmt(c.ns_per_op, 0),
                    c.broker_cpu.map_or("–".into(), |b| format!("{b:.0}%")),
                    fmt(c.gen_cpu, 0),
                    fmt(c.rss_peak_mib, 0),
                    fmt(c.lag_p50, 0),
                    fmt(c.lag_p99, 0),
                );
            }
        }
        md.push_str("\n![fan-out deliveries](fanout.png)\n\n");
        chart(
            &out.join("fanout.png"),
            "Fan-out: delivered messages/s (median)",
            &fan_cases,
            &cells,
            |c| c.rate,
        )?;
    }
    let idle_cases: Vec<&String> = cases
        .iter()
        .filter(|(_, s)| s == "idle")
        .map(|(c, _)| c)
        .collect();
    if !idle_cases.is_empty() {
        md.push_str("## Memory per idle connection\n\n| case | server | RSS growth per connection (bytes) |\n|---|---|---:|\n");
        for case in &idle_cases {
            for s in servers(&cells, case) {
                let c = &cells[&((*case).clone(), s.clone())];
                let _ = writeln!(md, "| {case} | {s} | {} |", fmt(c.rss, 0));
            }
        }
        md.push('\n');
        chart(
            &out.join("idle.png"),
            "Server RSS per idle connection (bytes)",
            &idle_cases,
            &cells,
            |c| c.rss,
        )?;
        md.push_str("![idle memory](idle.png)\n");
    }
    std::fs::write(out.join("report.md"), md)
}

const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

fn register_font() -> bool {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ONCE.get_or_init(|| {
        for p in FONT_PATHS {
            if let Ok(bytes) = std::fs::read(p) {
                let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, leaked).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// A grouped bar chart: one group per case, one bar per server.
fn chart(
    path: &Path,
    title: &str,
    cases: &[&String],
    cells: &BTreeMap<(String, String), Cell>,
    value: impl Fn(&Cell) -> Option<f64>,
) -> io::Result<()> {
    if !register_font() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no TrueType font for charts (install fonts-dejavu-core)",
        ));
    }
    let err = |e: &dyn std::fmt::Display| io::Error::other(e.to_string());
    let all_servers: Vec<&str> = ORDER
        .iter()
        .copied()
        .filter(|s| cells.keys().any(|(c, srv)| cases.contains(&c) && srv == s))
        .collect();
    let value = &value;
    let mut ymax = 1.0f64;
    for c in cases {
        for s in &all_servers {
            if let Some(v) = cells.get(&((*c).clone(), s.to_string())).and_then(value) {
                ymax = ymax.max(v);
            }
        }
    }
    let ymax = ymax * 1.15;
    let root = BitMapBackend::new(path, (1200, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let n = all_servers.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..cases.len() as f64, 0f64..ymax)
        .map_err(|e| err(&e))?;
    let labels: Vec<String> = cases.iter().map(|c| c.to_string()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(cases.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.26 {
                labels.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| err(&e))?;
    let palette = [
        RGBColor(214, 39, 40),
        RGBColor(255, 127, 14),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    for (si, s) in all_servers.iter().enumerate() {
        let color = palette[si % palette.len()];
        let bars: Vec<Rectangle<(f64, f64)>> = cases
            .iter()
            .enumerate()
            .filter_map(|(ci, c)| {
                let v = cells.get(&((*c).clone(), s.to_string())).and_then(value)?;
                let x0 = ci as f64 + 0.1 + 0.8 * si as f64 / n;
                let x1 = x0 + 0.8 / n * 0.9;
                Some(Rectangle::new([(x0, 0.0), (x1, v)], color.filled()))
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(|e| err(&e))?
            .label(*s)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lat(server: &str, repeat: u32, p99_us: f64) -> RunResult {
        RunResult {
            server: server.into(),
            case: "latency".into(),
            scenario: "latency".into(),
            repeat,
            latency: Some(crate::stats::Percentiles {
                p99_us,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn latency_pairs_each_build_with_each_peer_in_the_same_repeat() {
        let runs = [
            // Repeat 1 quiet, repeat 2 noisy for everyone.
            lat("ringwave-uring", 1, 90.0),
            lat("fastwebsockets", 1, 100.0),
            lat("bun", 1, 120.0),
            lat("ringwave-uring", 2, 3000.0),
            lat("fastwebsockets", 2, 2000.0),
            lat("bun", 2, 4000.0),
            // A repeat without a peer pairs with nothing.
            lat("ringwave-uring", 3, 10.0),
        ];
        let paired = paired_p99(&runs, "latency");
        assert_eq!(paired.len(), 2);
        let of = |peer: &str| &paired[&("ringwave-uring".to_string(), peer.to_string())];
        assert_eq!(of("fastwebsockets"), &vec![0.9, 1.5]);
        assert_eq!(of("bun"), &vec![0.75, 0.75]);
    }

    #[test]
    fn sign_test_needs_a_lopsided_count() {
        // 15 of 20 at or below: P(X >= 15) = 0.0207 under chance.
        assert_eq!(sign_test(15, 20), "lower");
        // 14 of 20: P(X >= 14) = 0.0577, not enough.
        assert_eq!(sign_test(14, 20), "level");
        assert_eq!(sign_test(10, 20), "level");
        assert_eq!(sign_test(6, 20), "level");
        assert_eq!(sign_test(5, 20), "higher");
        // Five of five is 1/32 = 0.031 one-sided: still level.
        assert_eq!(sign_test(5, 5), "level");
        assert_eq!(sign_test(6, 6), "lower");
        assert_eq!(sign_test(0, 0), "level");
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
