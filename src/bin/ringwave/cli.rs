//! The command line: every option, its parsing and checks, and the
//! server's [`Config`] made of them.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use ringwave::driver::Backend;
use ringwave::proto::{DeflateConfig, Limits};
use ringwave::server::feedsim::{self, SimSpec};
use ringwave::server::{
    BuiltinRoutes, CertFiles, Config, EngineConfig, HistoryConfig, JwtConfig, JwtKeys, NatsAuth,
    NatsConfig, Policy, Retention, TlsConfig,
};

/// ringwave: a thread-per-core WebSocket server over io_uring.
///
/// With no arguments it serves on 127.0.0.1:9001:
///
/// - WebSocket on /feed: the pub/sub feed app, JSON text messages
///   {"op":"subscribe","topic":"ticks"}, {"op":"unsubscribe",...} and (when
///   allowed) {"op":"publish","topic":...,"data":...}; a built-in simulator
///   publishes market-data ticks on the topic "ticks". On a topic with
///   --history, subscribe also takes "since":{"epoch":...,"offset":N}
///   (recover what was missed), "snapshot":true and "meta":true (offsets).
///
/// - WebSocket on any other path: echo (text stays text, binary stays binary).
///
/// - GET / is a demo page (live ticker and echo test); GET /sse/<topic>
///   streams a topic as Server-Sent Events; POST /publish/<topic> publishes
///   the body (when allowed); GET /metrics (Prometheus text); GET /healthz.
///
/// With --tls-cert and --tls-key it serves all of this over TLS as well, on
/// --tls-listen (wss:// and https://).
///
/// With --config FILE the options come from a TOML file as well (see
/// examples/ringwave.toml); SIGHUP reads the certificates, the JWT keys
/// and that file again, applies the limits, policies, history amounts and
/// log level at once and logs what else needs a restart.
///
/// With --nats, topics are shared with every other node on the same NATS
/// (a publication on any node reaches subscribers on all of them).
///
/// SIGINT/SIGTERM close every connection with 1001 and exit 0.
#[derive(Parser, Debug)]
#[command(name = "ringwave", version, about, long_about)]
pub struct Cli {
    /// Read options from a TOML file: each key is a long option's name
    /// (max-message = "64KiB"), repeatable options take arrays
    /// (topic-policy = ["ticks=drop"]), flags true or false. Options on
    /// the command line override the file's. SIGHUP reads it again and
    /// applies what can change live (limits, policies, history amounts,
    /// log level); see examples/ringwave.toml.
    #[arg(long, value_name = "FILE", conflicts_with = "check_config")]
    pub config: Option<std::path::PathBuf>,

    /// Check FILE (and the options beside it) as --config would, print
    /// the settings in effect with where each comes from, and exit: 0 when
    /// the server would start with them, 2 otherwise.
    #[arg(long, value_name = "FILE")]
    pub check_config: Option<std::path::PathBuf>,

    /// Address to listen on: IP:PORT, or HOST:PORT with a host name
    /// resolved at start, every address it has listened on (localhost:9001
    /// as 127.0.0.1 and ::1 where it has both). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9001", value_parser = parse_listen)]
    pub listen: Listen,

    /// I/O backend: auto (io_uring when the kernel allows it, else poll),
    /// uring (fail if unavailable) or poll (epoll via mio).
    #[arg(long, default_value = "auto")]
    pub backend: Backend,

    /// Worker threads, one per core, each pinned, 1 to 1024 [default:
    /// number of CPUs].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,

    /// Largest message, after decompression (close 1009 beyond). Sizes
    /// take a unit: 64KiB, 16MiB, 1k (k, M, G: powers of 1024).
    #[arg(long, default_value = "16MiB", value_parser = size_in::<1, { 1 << 40 }>)]
    pub max_message: u64,

    /// Largest frame payload (close 1009 beyond) [default: --max-message].
    #[arg(long, value_parser = size_in::<1, { 1 << 40 }>)]
    pub max_frame: Option<u64>,

    /// Largest HTTP request head (431 beyond), 256 bytes to 1 MiB.
    #[arg(long, default_value = "8KiB", value_parser = size_in::<256, { 1 << 20 }>)]
    pub max_handshake_bytes: u64,

    /// Unsent bytes per connection beyond which sends are refused (the echo
    /// app then closes the connection with 1008).
    #[arg(long, default_value = "1MiB", value_parser = size_in::<1, { 1 << 40 }>)]
    pub max_buffered: u64,

    /// Negotiate permessage-deflate with clients that offer it.
    #[arg(long)]
    pub deflate: bool,

    /// Seconds allowed to complete the opening handshake (at least this
    /// long: timeouts are checked once a second, so up to a second more).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub handshake_timeout: u64,

    /// Seconds a connection may stay silent before the server pings it (and
    /// pings again every interval while it stays silent).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub ping_interval: u64,

    /// Seconds of silence (no message, no pong) after which a connection that
    /// was pinged is closed with 1001.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,

    /// On SIGTERM/SIGINT, spread the 1001 closes over this many seconds (each
    /// connection at a random moment) so clients do not reconnect in a storm;
    /// /healthz answers 503 and new upgrades are refused from the start.
    #[arg(long, default_value_t = 0)]
    pub drain_seconds: u64,

    /// Seconds to wait for close handshakes after the drain.
    #[arg(long, default_value_t = 3)]
    pub shutdown_grace: u64,

    /// Connections beyond which new ones are answered 503 (0: only the
    /// process's open-file limit).
    #[arg(long, default_value_t = 0)]
    pub max_connections: usize,

    /// Comma-separated browser origins allowed to open WebSockets, read event
    /// streams and publish, e.g. https://example.com,http://localhost:8080
    /// (others get 403; requests without an Origin header, from non-browser
    /// clients, are allowed).
    #[arg(long, value_name = "ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,

    /// Behind a load balancer: take the client's address from a PROXY
    /// protocol v2 header (HAProxy, AWS NLB) or the last X-Forwarded-For
    /// entry. Only when every connection comes through that proxy: clients
    /// could send either themselves.
    #[arg(long)]
    pub trust_proxy: bool,

    /// Serve HTTP/1.1 only. By default HTTP/2 is served too, on the same
    /// ports: in cleartext to clients that start with the HTTP/2 preface
    /// (prior knowledge), over TLS to those that ask for `h2` by ALPN.
    /// WebSocket over HTTP/2 is RFC 8441's extended CONNECT.
    #[arg(long)]
    pub no_http2: bool,

    /// Require this shared token on every route but /healthz (WebSocket
    /// upgrades, event streams, publishing, the page, /metrics), as
    /// ?token=... on the URL or `Authorization: Bearer ...`; others get 401.
    /// Its holder may use every topic. With --jwt-key, either is accepted.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Verify signed tokens (JWT) on every route but /healthz: a key FILE
    /// (repeatable) holding an HMAC secret (HS256/384/512; at least 32
    /// bytes, one trailing newline removed), a PEM public key (RSA: RS*/PS*,
    /// EC P-256/P-384: ES256/ES384, Ed25519: EdDSA) or a JWKS (keys chosen by
    /// `kid`). The key fixes the algorithm; `exp` is required; the claim
    /// `topics: {"subscribe": [...], "publish": [...]}` lists the topics (or
    /// prefixes ending in *) the holder may use. Reloaded on SIGHUP.
    #[arg(long = "jwt-key", value_name = "FILE")]
    pub jwt_keys: Vec<std::path::PathBuf>,

    /// The `aud` every token must carry (with --jwt-key).
    #[arg(long, value_name = "AUD", requires = "jwt_keys")]
    pub jwt_audience: Option<String>,

    /// The `iss` every token must carry (with --jwt-key).
    #[arg(long, value_name = "ISS", requires = "jwt_keys")]
    pub jwt_issuer: Option<String>,

    /// Seconds of clock difference allowed on `exp` and `nbf`.
    #[arg(long, value_name = "SECS", default_value_t = 2, requires = "jwt_keys")]
    pub jwt_leeway: u64,

    /// A token /metrics requires, apart from the others (by default
    /// /metrics needs the --token or a valid JWT when either is set, and
    /// nothing otherwise).
    #[arg(long, value_name = "TOKEN")]
    pub metrics_token: Option<String>,

    /// What to do with a subscriber whose unsent bytes pass --max-buffered:
    /// close (close it with 1008), drop (skip publications while it is over),
    /// conflate (keep only the newest per topic and key, send when it drains).
    #[arg(long, default_value = "close")]
    pub slow_consumer: Policy,

    /// Slow-consumer policy for one topic, TOPIC=POLICY (repeatable). The
    /// simulator's topic "ticks" defaults to conflate.
    #[arg(long = "topic-policy", value_name = "TOPIC=POLICY", value_parser = parse_topic_policy)]
    pub topic_policies: Vec<(String, Policy)>,

    /// Keep offsets and history for a topic, TOPIC=COUNT[,SECS] (repeatable;
    /// TOPIC * for every topic not listed): the newest COUNT publications,
    /// none older than SECS. Subscribers can then recover what they missed
    /// ("since" on /feed, Last-Event-ID on SSE) and ask for a snapshot of
    /// the newest publication per key. Off by default.
    #[arg(long = "history", value_name = "TOPIC=COUNT[,SECS]", value_parser = parse_history)]
    pub history: Vec<(String, Retention)>,

    /// End each Server-Sent Events stream after SECS, asking the client to
    /// reconnect a second later; with --history on the topic the browser's
    /// reconnect (Last-Event-ID) misses nothing. 0: never.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub sse_lifetime: u64,

    /// Close each WebSocket with 1001 (and end each event stream) after SECS,
    /// less up to a tenth at random so clients do not all come back at once.
    /// 0: never.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub max_lifetime: u64,

    /// Messages a WebSocket client may send per second, on average, with
    /// bursts of as many; past it the connection is closed with 1008
    /// (counted in ringwave_message_rate_closes_total). 0: no limit.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_message_rate: u32,

    /// Connections one client address may hold open at once; past it, 429
    /// with Retry-After. The address is the TCP peer's, or with
    /// --trust-proxy the one a PROXY v2 header names (X-Forwarded-For is not
    /// used for this). 0: no limit.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_connections_per_ip: u32,

    /// New connections one client address may open per second; past it,
    /// 429 with Retry-After. 0: no limit.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub new_connections_per_ip: u32,

    /// Let every /feed client publish, and accept POST /publish/<topic>
    /// without a token.
    #[arg(long)]
    pub allow_client_publish: bool,

    /// Let clients presenting this token publish: ?token=... on the /feed URL
    /// or `Authorization: Bearer ...` (also for POST /publish/<topic>).
    #[arg(long, value_name = "TOKEN")]
    pub publish_token: Option<String>,

    /// Serve the server API under /api/ (a topic's position and history,
    /// batch publishing, disconnecting a token's subject) to clients that
    /// send `Authorization: Bearer TOKEN`. Off without it. See
    /// docs/feed-protocol.md.
    #[arg(long, value_name = "TOKEN")]
    pub api_token: Option<String>,

    /// Built-in market-data simulator on topic "ticks": SYMBOLS:RATE (ticks
    /// per second in total), or "off".
    #[arg(long, default_value = "20:50", value_name = "SYMBOLS:RATE|off")]
    pub feed_sim: String,

    /// TLS certificate chain (PEM, server certificate first). Repeatable: the
    /// Nth --tls-cert goes with the Nth --tls-key; the first pair is the
    /// default, and a client's SNI name picks the first other pair whose
    /// certificate is valid for it.
    #[arg(long = "tls-cert", value_name = "FILE")]
    pub tls_certs: Vec<std::path::PathBuf>,

    /// Private key for the --tls-cert at the same position (PEM: PKCS#8,
    /// PKCS#1 or SEC1; ECDSA, RSA or Ed25519).
    #[arg(long = "tls-key", value_name = "FILE")]
    pub tls_keys: Vec<std::path::PathBuf>,

    /// Address of the TLS listener (wss://, https://), served beside
    /// --listen when a certificate is given.
    #[arg(long, default_value = "127.0.0.1:9443")]
    pub tls_listen: SocketAddr,

    /// Share pub/sub with other ringwave nodes through NATS: server URLs,
    /// comma-separated (nats://host:4222,...). Every publication made here
    /// goes to NATS once; each topic with subscribers here is subscribed in
    /// NATS. NATS unreachable at start is not an error: local pub/sub works
    /// and the bridge retries; refused credentials are.
    #[arg(long, value_name = "URL[,URL...]", value_delimiter = ',')]
    pub nats: Vec<String>,

    /// Prefix of every NATS subject: empty, or tokens each ending in '.';
    /// a topic becomes one token after it (letters, digits, '-' and '_' as
    /// they are, other bytes as %XX).
    #[arg(long, default_value = "ringwave.", value_name = "PREFIX")]
    pub nats_prefix: String,

    /// NATS token (or put credentials in the URL: nats://user:pass@host).
    #[arg(long, value_name = "TOKEN", conflicts_with = "nats_user")]
    pub nats_token: Option<String>,

    /// NATS user (with --nats-password).
    #[arg(long, value_name = "USER", requires = "nats_password")]
    pub nats_user: Option<String>,

    /// NATS password (with --nats-user).
    #[arg(long, value_name = "PASSWORD", requires = "nats_user")]
    pub nats_password: Option<String>,

    /// Publications that may wait for the NATS bridge; beyond this they are
    /// dropped and counted (ringwave_nats_dropped_total{reason="queue_full"}).
    #[arg(long, default_value_t = ringwave::bridge::DEFAULT_QUEUE, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=(1 << 24)))]
    pub nats_queue: usize,

    /// Keep the history of topics with --history in NATS JetStream (the
    /// nats-server runs with -js): a stream per topic (named after its
    /// subject, '.' as '_'), created with the topic's retention if missing,
    /// numbers its publications for every node, so a position taken on one
    /// node recovers on any other and after restarts. This node's
    /// publications on those topics reach even its own subscribers through
    /// JetStream (dropped and counted while NATS is unreachable).
    #[arg(long, requires = "nats")]
    pub nats_jetstream: bool,

    /// Log level: error, warn, info, debug, trace or off, or a tracing
    /// filter of TARGET=LEVEL directives (ringwave=debug,info). Without
    /// it, RUST_LOG if set, else info. Colours only on a terminal, and
    /// never with NO_COLOR set.
    #[arg(long)]
    pub log_level: Option<String>,

    /// Log format: text (a line per event) or json (an object per line:
    /// timestamp, level, target, message and the event's fields, such as
    /// worker and index).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A size in bytes: digits, then optionally a unit, k/KiB, M/MiB or G/GiB
/// (powers of 1024; KB, MB and GB are read the same), within MIN..=MAX.
fn size_in<const MIN: u64, const MAX: u64>(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a size: a number, then k, KiB, M, MiB, G or GiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            let u = unit.trim();
            return Err(format!(
                "{u:?} is not a unit: k, KiB, M, MiB, G or GiB (powers of 1024)"
            ));
        }
    };
    let bytes = n
        .checked_mul(1 << shift)
        .filter(|b| (MIN..=MAX).contains(b))
        .ok_or_else(|| format!("{s} is outside {MIN} to {MAX} bytes"))?;
    Ok(bytes)
}

/// A log filter: levels and TARGET=LEVEL directives. A bare word that is
/// not a level is refused (tracing would read it as a target and turn
/// every other log off: `--log-level loud`).
pub fn log_filter(s: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    for d in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !d.contains('=') && !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(d)) {
            return Err(format!(
                "invalid --log-level {s:?}: {d:?} is not a level (error, warn, info, debug, trace, off) nor a TARGET=LEVEL directive"
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(s).map_err(|e| format!("invalid --log-level {s:?}: {e}"))
}

/// The log filter in effect: `--log-level`, else `RUST_LOG` (tracing's
/// own syntax, where a bare word is a target), else info. The NATS client
/// logs every attempt and event itself and the bridge says what matters
/// once, so it is held to warnings unless the filter names it.
pub fn effective_log_filter(level: Option<&str>) -> Result<tracing_subscriber::EnvFilter, String> {
    let (level, parsed) = match (level, std::env::var("RUST_LOG")) {
        (Some(l), _) => (l.to_string(), log_filter(l)),
        (None, Ok(l)) if !l.trim().is_empty() => {
            let parsed = tracing_subscriber::EnvFilter::try_new(&l)
                .map_err(|e| format!("invalid RUST_LOG {l:?}: {e}"));
            (l, parsed)
        }
        (None, _) => ("info".to_string(), log_filter("info")),
    };
    let filter = parsed?;
    Ok(match level.contains("async_nats") {
        true => filter,
        false => filter.add_directive("async_nats=warn".parse().map_err(|e| format!("{e}"))?),
    })
}

/// `--listen`: the addresses to serve, in the resolver's order, each once.
#[derive(Debug, Clone)]
pub struct Listen(pub Vec<SocketAddr>);

fn parse_listen(s: &str) -> Result<Listen, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(Listen(vec![a]));
    }
    let example = "e.g. 127.0.0.1:9001, [::1]:9001, 0.0.0.0:9001 or localhost:9001";
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} has no port: expected HOST:PORT, {example}"))?;
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "{port:?} is not a port (0 to 65535): expected HOST:PORT, {example}"
        ));
    }
    if host.is_empty() {
        return Err(format!("{s:?} has no host: expected HOST:PORT, {example}"));
    }
    use std::net::ToSocketAddrs as _;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in s
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?
    {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    match addrs.is_empty() {
        true => Err(format!("{host:?} resolves to no address")),
        false => Ok(Listen(addrs)),
    }
}

/// A clap error's message: its first line without "error: " (no usage).
pub fn clap_message(e: &clap::Error) -> String {
    let e = e.to_string();
    e.lines()
        .next()
        .unwrap_or(&e)
        .trim_start_matches("error: ")
        .to_string()
}

/// What a start, and a reload, make of parsed options: every check the
/// server's start runs but the listeners' (the feed simulator, the
/// configuration with its JWT keys, `Config::validate`, the log filter).
pub struct Settled {
    pub cli: Cli,
    pub config: Config,
    pub sim: Option<SimSpec>,
    pub filter: tracing_subscriber::EnvFilter,
}

/// [`Settled`] from `matches`, or the first error.
pub fn settle(matches: &clap::ArgMatches) -> Result<Settled, String> {
    use clap::FromArgMatches as _;
    let cli = Cli::from_arg_matches(matches).map_err(|e| clap_message(&e))?;
    let sim = feed_sim(&cli.feed_sim)?;
    let config = config(&cli)?;
    // The rules library users meet too, with the same messages.
    config.validate().map_err(|e| e.to_string())?;
    let filter = effective_log_filter(cli.log_level.as_deref())?;
    Ok(Settled {
        cli,
        config,
        sim,
        filter,
    })
}

/// `--feed-sim`: SYMBOLS:RATE, or off.
pub fn feed_sim(s: &str) -> Result<Option<SimSpec>, String> {
    match s {
        "off" | "none" | "0" => Ok(None),
        s => s
            .parse()
            .map(Some)
            .map_err(|e| format!("invalid --feed-sim: {e} (or \"off\")")),
    }
}

fn parse_history(s: &str) -> Result<(String, Retention), String> {
    let (topic, keep) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?}: expected TOPIC=COUNT[,SECS], e.g. ticks=1000,300"))?;
    if topic != "*" && !ringwave::pubsub::valid_topic(topic) {
        return Err(format!("{topic:?} is not a valid topic"));
    }
    Ok((topic.to_string(), keep.parse()?))
}

fn parse_topic_policy(s: &str) -> Result<(String, Policy), String> {
    let (topic, policy) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?}: expected TOPIC=POLICY, e.g. ticks=conflate"))?;
    if !ringwave::pubsub::valid_topic(topic) {
        return Err(format!("{topic:?} is not a valid topic"));
    }
    Ok((topic.to_string(), policy.parse()?))
}

/// The server's configuration from the command line (checked by
/// `Config::validate`, as a library user's is).
pub fn config(cli: &Cli) -> Result<Config, String> {
    let jwt = match cli.jwt_keys.is_empty() {
        true => None,
        false => Some(
            JwtKeys::load(JwtConfig {
                keys: cli.jwt_keys.clone(),
                audience: cli.jwt_audience.clone(),
                issuer: cli.jwt_issuer.clone(),
                leeway: Duration::from_secs(cli.jwt_leeway),
            })
            .map_err(|e| format!("--jwt-key {e}"))?,
        ),
    };
    if cli.tls_certs.len() != cli.tls_keys.len() {
        return Err(format!(
            "{} --tls-cert but {} --tls-key: give one key per certificate, in the same order",
            cli.tls_certs.len(),
            cli.tls_keys.len()
        ));
    }
    let tls = (!cli.tls_certs.is_empty()).then(|| TlsConfig {
        listen: cli.tls_listen,
        certs: cli
            .tls_certs
            .iter()
            .zip(&cli.tls_keys)
            .map(|(cert, key)| CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            })
            .collect(),
    });
    let max_message = cli.max_message as usize;
    Ok(Config {
        engine: EngineConfig {
            listen: cli.listen.0[0],
            also_listen: cli.listen.0[1..].to_vec(),
            threads: cli.threads.map_or_else(
                || std::thread::available_parallelism().map_or(1, |n| n.get()),
                |n| n as usize,
            ),
            backend: cli.backend,
            limits: Limits {
                max_handshake_bytes: cli.max_handshake_bytes as usize,
                max_frame_payload: cli.max_frame.map_or(max_message, |f| f as usize),
                max_message_size: max_message,
            },
            deflate: cli.deflate.then(DeflateConfig::default),
            max_buffered: cli.max_buffered as usize,
            max_message_rate: cli.max_message_rate,
            max_connections_per_ip: cli.max_connections_per_ip,
            new_connections_per_ip: cli.new_connections_per_ip,
            handshake_timeout: Duration::from_secs(cli.handshake_timeout),
            ping_interval: Duration::from_secs(cli.ping_interval),
            idle_timeout: Duration::from_secs(cli.idle_timeout),
            drain: Duration::from_secs(cli.drain_seconds),
            shutdown_grace: Duration::from_secs(cli.shutdown_grace),
            max_connections: cli.max_connections,
            pin_threads: true,
            slow_consumer: cli.slow_consumer,
            trust_proxy: cli.trust_proxy,
            http2: !cli.no_http2,
            topic_policies: {
                let mut m = std::collections::HashMap::new();
                m.insert(feedsim::TOPIC.to_string(), Policy::Conflate);
                m.extend(cli.topic_policies.iter().cloned());
                m
            },
        },
        allowed_origins: cli.allowed_origins.clone(),
        token: cli.token.clone(),
        jwt,
        metrics_token: cli.metrics_token.clone(),
        feed_path: Some("/feed".to_string()),
        routes: BuiltinRoutes::ALL,
        subscribe_guard: None,
        allow_client_publish: cli.allow_client_publish,
        publish_token: cli.publish_token.clone(),
        api_token: cli.api_token.clone(),
        sse_lifetime: (cli.sse_lifetime > 0).then(|| Duration::from_secs(cli.sse_lifetime)),
        max_lifetime: (cli.max_lifetime > 0).then(|| Duration::from_secs(cli.max_lifetime)),
        history: {
            let mut h = HistoryConfig::default();
            for (topic, keep) in &cli.history {
                match topic.as_str() {
                    "*" => h.default = Some(*keep),
                    t => {
                        h.topics.insert(t.to_string(), *keep);
                    }
                }
            }
            h
        },
        tls,
        nats: (!cli.nats.is_empty()).then(|| NatsConfig {
            urls: cli.nats.clone(),
            prefix: cli.nats_prefix.clone(),
            auth: match (&cli.nats_token, &cli.nats_user, &cli.nats_password) {
                (Some(t), _, _) => NatsAuth::Token(t.clone()),
                (None, Some(u), Some(p)) => NatsAuth::UserPassword {
                    user: u.clone(),
                    password: p.clone(),
                },
                _ => NatsAuth::None,
            },
            queue: cli.nats_queue,
            jetstream: cli.nats_jetstream,
        }),
    })
}
