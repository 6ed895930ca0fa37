//! One worker thread: its driver, its [`Core`] and its mailbox. This is the
//! only part of the loop that reads the clock.

use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use crate::driver::Driver;
use crate::metrics::Stats;

use super::app::{App, Settings};
use super::clock::Epoch;
use super::core::{Core, Flow};
use super::mailbox::Mailbox;
use super::Shared;

/// Run a worker until it is told to shut down and its connections are gone.
pub(crate) fn run<A: App>(
    worker: u16,
    mut driver: Box<dyn Driver>,
    app: A,
    cfg: Arc<Settings>,
    mailbox: Arc<Mailbox>,
    shared: Arc<OnceLock<Shared>>,
    stats: Arc<Stats>,
) {
    let mut core = Core::new(
        worker,
        app,
        cfg,
        mailbox.clone(),
        shared,
        stats.clone(),
        Epoch {
            at: Instant::now(),
            wall: SystemTime::now(),
        },
    );
    loop {
        let timeout = core.wait_time(Instant::now());
        // The loop-turn histogram measures work: from the first completion
        // to the end of the turn, not the wait for I/O.
        // The turn's completions share one reading of the clock, taken at
        // the first.
        let mut busy_since: Option<Instant> = None;
        let turned = driver.turn(Some(timeout), &mut |c| {
            let now = *busy_since.get_or_insert_with(Instant::now);
            core.on_completion(c, now);
        });
        if let Err(e) = turned {
            tracing::error!(worker, "driver failed: {e}; worker stops");
            mailbox.close();
            return;
        }
        let now = Instant::now();
        if core.take_woken() {
            core.read_mail(now);
        }
        let flow = core.after_io(driver.as_mut(), now);
        if let Some(t0) = busy_since {
            stats.turn.observe(t0.elapsed());
        }
        if flow == Flow::Exit {
            mailbox.close();
            return;
        }
    }
}
