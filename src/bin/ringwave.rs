//! The `ringwave` command. The server runtime is not built yet: for now the
//! binary states its version and what it will do.

use clap::Parser;

/// ringwave: a thread-per-core WebSocket server over io_uring.
///
/// This build contains the protocol core (RFC 6455 and permessage-deflate);
/// the server runtime that listens on a socket is not part of it yet, so the
/// command exits with an error instead of pretending to serve.
#[derive(Parser, Debug)]
#[command(name = "ringwave", version, about, long_about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!(
        "ringwave {}: the server runtime is not implemented yet; this build only \
         contains the protocol library (see README.md)",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}
