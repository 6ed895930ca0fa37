//! SIGHUP: the JWT keys read again (the certificates are the library's
//! part), and with `--config` the file read again: what can change live is
//! applied, what cannot is named as needing a restart.

use std::ffi::OsString;
use std::sync::Arc;

use clap::{ArgMatches, CommandFactory as _};
use ringwave::server::{HistoryConfig, JwtKeys, Live, ReconfigureHandle};

use crate::cli::{self, Cli};
use crate::file;

/// Options that take effect without a restart. `history` only while the
/// same topics keep history (see `History::set_retention`).
const LIVE: [&str; 10] = [
    "max-message",
    "max-frame",
    "max-handshake-bytes",
    "max-buffered",
    "max-message-rate",
    "max-connections",
    "slow-consumer",
    "topic-policy",
    "history",
    "log-level",
];

/// Sets the log filter in use.
pub type SetFilter = Box<dyn Fn(tracing_subscriber::EnvFilter) -> Result<(), String> + Send>;

/// What a reload compares against and acts on.
pub struct Reloader {
    /// The command line as given (the file is read again from it).
    pub args: Vec<OsString>,
    /// The options the server started with: what restart-only changes are
    /// measured against.
    pub started: ArgMatches,
    /// The options last applied: what live changes are measured against.
    pub applied: ArgMatches,
    /// The history the server started with: which topics keep it is
    /// fixed then, and a reload may change only their amounts.
    pub history: HistoryConfig,
    pub jwt: Option<Arc<JwtKeys>>,
    pub handle: ReconfigureHandle,
    pub set_filter: SetFilter,
}

impl Reloader {
    /// One SIGHUP.
    pub fn reload(&mut self) {
        if let Some(jwt) = &self.jwt {
            match jwt.reload() {
                Ok(n) => tracing::info!("SIGHUP: JWT keys reloaded ({n} keys)"),
                Err(e) => {
                    tracing::error!("SIGHUP: JWT keys not reloaded, the old ones stay in use: {e}")
                }
            }
        }
        let merged = match file::merge(&self.args) {
            Ok(m) => m,
            Err(e) => return tracing::error!("SIGHUP: {e}; the settings stay as they were"),
        };
        let Some(path) = merged.path.as_ref().map(|p| p.display().to_string()) else {
            return tracing::info!("SIGHUP: no --config file, nothing else to reload");
        };
        let matches = match Cli::command().try_get_matches_from(&merged.argv) {
            Ok(m) => m,
            Err(e) => {
                let e = cli::clap_message(&e);
                return tracing::error!("SIGHUP: {path}: {e}; nothing changed");
            }
        };
        let new = match cli::settle(&matches) {
            Ok(n) => n,
            Err(e) => return tracing::error!("SIGHUP: {path}: {e}; nothing changed"),
        };
        let show = |v: &[(String, String, String)]| {
            v.iter()
                .map(|(k, a, b)| format!("{k} {a} -> {b}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        // Which topics keep history is fixed at start: only amounts change.
        let (old_h, new_h) = (&self.history, &new.config.history);
        let same_topics = old_h.default.is_some() == new_h.default.is_some()
            && old_h.topics.len() == new_h.topics.len()
            && old_h.topics.keys().all(|t| new_h.topics.contains_key(t));
        let is_live = |k: &str| LIVE.contains(&k) && (k != "history" || same_topics);
        let restart: Vec<_> = file::changes(&self.started, &matches)
            .into_iter()
            .filter(|(k, ..)| !is_live(k))
            .collect();
        let live: Vec<_> = file::changes(&self.applied, &matches)
            .into_iter()
            .filter(|(k, ..)| is_live(k))
            .collect();
        if live.is_empty() && restart.is_empty() {
            return tracing::info!("SIGHUP: {path}: no option changed");
        }
        if !live.is_empty() {
            let mut update = Live::of(&new.config.engine);
            update.history = same_topics.then(|| new.config.history.clone());
            if let Err(e) = self.handle.reconfigure(update) {
                tracing::error!("SIGHUP: {path}: {e}");
            }
            if live.iter().any(|(k, ..)| k == "log-level") {
                if let Err(e) = (self.set_filter)(new.filter) {
                    tracing::error!("SIGHUP: log level not changed: {e}");
                }
            }
            tracing::info!(changed = %show(&live), "SIGHUP: {path}: applied");
            self.applied = matches;
        }
        if !restart.is_empty() {
            tracing::warn!(
                changed = %show(&restart),
                "SIGHUP: {path}: changed but needs a restart to take effect"
            );
        }
    }
}
