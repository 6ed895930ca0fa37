//! The `ringwave` command: a WebSocket echo server, a pub/sub feed with a
//! market-data simulator, and a demo page.

mod cli;
mod file;
mod reload;

use std::ffi::OsString;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::CommandFactory as _;
use ringwave::server::feedsim;
use ringwave::server::{Echo, Server};

use cli::{Cli, LogFormat};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let merged = match file::merge(&args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("ringwave: {e}");
            return ExitCode::from(2);
        }
    };
    let matches = match Cli::command().try_get_matches_from(&merged.argv) {
        Ok(m) => m,
        // --help and --version (exit 0), and clap's own errors (exit 2);
        // those of options from the file were reported above by key.
        Err(e) => e.exit(),
    };
    let cli::Settled {
        cli,
        config,
        sim,
        filter,
    } = match cli::settle(&matches) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringwave: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &cli.check_config {
        // What the server loads at start: the certificates and keys.
        if let Some(tls) = &config.tls {
            let certs = ringwave::runtime::tls::Certificates::load(tls.certs.clone());
            if let Err(e) = certs {
                eprintln!("ringwave: TLS: {e}");
                return ExitCode::from(2);
            }
        }
        if let Some(warning) = file::exposed_secrets(&merged) {
            eprintln!("ringwave: warning: {warning}");
        }
        let mut out = std::io::stdout();
        let text = format!(
            "# {}: ok; the settings in effect, each with where it comes from\n{}",
            path.display(),
            file::render(&matches, &merged)
        );
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        return ExitCode::SUCCESS;
    }
    // A log line that cannot be written is dropped: tracing's default
    // reports it with eprintln!, which panics on a closed stderr (a log
    // pipe that died, `2>&1 | head`) and took down the thread that logged,
    // the signal thread among them (SIGTERM then did nothing). The filter
    // can be replaced (SIGHUP with a new log-level).
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let set_filter: reload::SetFilter = match cli.log_format {
        LogFormat::Text => {
            let logs = logs
                .with_ansi(
                    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
                )
                .with_env_filter(filter)
                .with_filter_reloading();
            let handle = logs.reload_handle();
            logs.init();
            Box::new(move |f| handle.reload(f).map_err(|e| e.to_string()))
        }
        LogFormat::Json => {
            let logs = logs
                .json()
                .flatten_event(true)
                .with_env_filter(filter)
                .with_filter_reloading();
            let handle = logs.reload_handle();
            logs.init();
            Box::new(move |f| handle.reload(f).map_err(|e| e.to_string()))
        }
    };
    if let Some(warning) = file::exposed_secrets(&merged) {
        tracing::warn!("{warning}");
    }
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringwave: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let jwt = config.jwt.clone();
    let history = config.history.clone();
    let running = match Server::builder().config(config).serve(|| Echo) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ringwave: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        "backend {}: {}",
        running.backend(),
        running.backend_reason()
    );
    // SIGHUP is caught before the listening line: a reload asked for as
    // soon as the server says it is up must not meet the default action.
    let mut reloader = reload::Reloader {
        args,
        started: matches.clone(),
        applied: matches,
        history,
        jwt,
        handle: running.reconfigure_handle(),
        set_filter,
    };
    if let Err(e) = running.reload_on_sighup(move || reloader.reload()) {
        tracing::warn!("SIGHUP reload unavailable: {e}");
    }
    // Written, not printed: a closed stdout (`ringwave | head -1`) must not
    // panic the main thread.
    let addrs = running.local_addrs();
    let ws: Vec<String> = addrs.iter().map(|a| format!("ws://{a}")).collect();
    let page = format!("http://{}/", running.local_addr());
    let listening = match running.tls_addr() {
        None => format!(
            "ringwave listening on {} (backend {}, {} threads); demo page at {page}",
            ws.join(" and "),
            running.backend(),
            running.threads(),
        ),
        Some(tls) => format!(
            "ringwave listening on {} (backend {}, {} threads) and wss://{tls}; \
             demo page at {page} and https://{tls}/",
            ws.join(" and "),
            running.backend(),
            running.threads(),
        ),
    };
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{listening}").and_then(|()| stdout.flush());
    if let Some(spec) = sim {
        match feedsim::spawn(running.publisher(), spec) {
            Ok(_) => tracing::info!(
                "feed simulator: {} symbols, {} ticks/s on topic {:?}",
                spec.symbols,
                spec.rate,
                feedsim::TOPIC
            ),
            Err(e) => tracing::warn!("feed simulator not started: {e}"),
        }
    }
    let shutdown = running.shutdown_handle();
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            tracing::info!("signal {sig}: closing connections with 1001");
            shutdown.shutdown();
        }
    });
    match running.join() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringwave: {e}");
            ExitCode::FAILURE
        }
    }
}
