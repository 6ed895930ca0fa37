//! A market-data simulator: publishes synthetic ticks (a random walk per
//! symbol) on the `ticks` topic, keyed by symbol, so a fresh server shows a
//! live feed and a slow subscriber under `conflate` keeps the latest price of
//! every symbol.

use std::fmt;
use std::str::FromStr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Publication, Publisher};
use crate::proto::MessageKind;

/// The topic the simulator publishes on.
pub const TOPIC: &str = "ticks";

const NAMES: [&str; 24] = [
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META", "TSLA", "AVGO", "JPM", "V", "XOM", "UNH", "MA",
    "HD", "PG", "COST", "NFLX", "AMD", "ADBE", "CRM", "INTC", "ORCL", "KO", "PEP",
];

/// `SYMBOLS:RATE`: how many symbols and how many ticks per second in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimSpec {
    /// Symbols (1 to 10,000).
    pub symbols: u32,
    /// Ticks per second over all symbols (1 to 1,000,000).
    pub rate: u32,
}

impl FromStr for SimSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected SYMBOLS:RATE, e.g. 20:50"))?;
        let symbols: u32 = a
            .trim()
            .parse()
            .map_err(|_| format!("{a:?} is not a number of symbols"))?;
        let rate: u32 = b
            .trim()
            .parse()
            .map_err(|_| format!("{b:?} is not a rate in ticks per second"))?;
        if !(1..=10_000).contains(&symbols) {
            return Err(format!("{symbols} symbols: expected 1 to 10000"));
        }
        if !(1..=1_000_000).contains(&rate) {
            return Err(format!("{rate} ticks/s: expected 1 to 1000000"));
        }
        Ok(SimSpec { symbols, rate })
    }
}

impl fmt::Display for SimSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.symbols, self.rate)
    }
}

/// The name of symbol `i`.
pub fn symbol(i: u32) -> String {
    match NAMES.get(i as usize) {
        Some(n) => (*n).to_string(),
        None => format!("SYM{i:04}"),
    }
}

/// Start publishing through `publisher` on a thread of its own; it ends when
/// the server stops.
pub fn spawn(publisher: Publisher, spec: SimSpec) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ringwave-feed-sim".into())
        .spawn(move || run(publisher, spec))
}

fn run(publisher: Publisher, spec: SimSpec) {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let names: Vec<String> = (0..spec.symbols).map(symbol).collect();
    let mut prices: Vec<f64> = (0..spec.symbols)
        .map(|_| rng.random_range(20.0..500.0))
        .collect();
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut text = String::with_capacity(128);
    loop {
        let due = (started.elapsed().as_secs_f64() * spec.rate as f64) as u64;
        // After a stall, do not burst more than a second's worth.
        if due > sent + spec.rate as u64 {
            sent = due - spec.rate as u64;
        }
        while sent < due {
            let i = (sent % spec.symbols as u64) as usize;
            let step = rng.random_range(-0.0015..0.0015);
            prices[i] = (prices[i] * (1.0 + step)).max(0.01);
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            text.clear();
            use std::fmt::Write as _;
            let _ = write!(
                text,
                r#"{{"type":"tick","symbol":"{}","price":{:.2},"size":{},"seq":{},"ts":{}}}"#,
                names[i],
                prices[i],
                rng.random_range(1..50) * 100,
                sent,
                ts
            );
            let p = Publication::new(TOPIC, Some(&names[i]), MessageKind::Text, text.as_bytes());
            if publisher.publish(p).is_err() {
                return;
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            "20:50".parse(),
            Ok(SimSpec {
                symbols: 20,
                rate: 50
            })
        );
        assert!("20".parse::<SimSpec>().is_err());
        assert!("0:50".parse::<SimSpec>().is_err());
        assert!("5:x".parse::<SimSpec>().is_err());
        assert!("5:0".parse::<SimSpec>().is_err());
        assert_eq!(symbol(0), "AAPL");
        assert_eq!(symbol(30), "SYM0030");
    }
}
