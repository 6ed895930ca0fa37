//! One worker's whole loop (the route table, the feed, `POST /publish`,
//! SSE, HTTP/1.1 and HTTP/2, the WebSocket echo) over an in-memory driver,
//! for the `http_loop` fuzz target. Built only with `--cfg fuzzing`, which
//! cargo-fuzz sets.
//!
//! A peer's bytes may cost it its connection, never the process: the target
//! asserts no panic, no send to a connection after its close, and that no
//! connection ever holds more unsent bytes than [`Loop::held_limit`].

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::driver::{Completion, Driver, Part, Token, Wake, Waker};
use crate::metrics::Stats;
use crate::proto::Limits;
use crate::pubsub::{HistoryConfig, Retention};
use crate::runtime::mailbox::Mailbox;
use crate::runtime::{Core, Epoch};

use super::routes::Routes;
use super::{Config, Echo, EngineConfig};

/// Takes every byte sent to a connection with room, none to one without
/// (a peer that does not read).
#[derive(Default)]
struct Memory {
    full: HashSet<u32>,
    closed: HashSet<u32>,
    sent: HashMap<u32, usize>,
}

struct NoWake;

impl Wake for NoWake {
    fn wake(&self) {}
}

impl Driver for Memory {
    fn turn(&mut self, _: Option<Duration>, _: &mut dyn FnMut(Completion<'_>)) -> io::Result<()> {
        Ok(())
    }

    fn send(&mut self, token: Token, data: &[u8]) -> io::Result<usize> {
        self.send_vectored(token, &[Part::borrowed(data)])
    }

    fn send_vectored(&mut self, token: Token, parts: &[Part<'_>]) -> io::Result<usize> {
        assert!(!self.closed.contains(&token.0), "a send after the close");
        if self.full.contains(&token.0) {
            return Ok(0);
        }
        let n = parts.iter().map(|p| p.bytes().len()).sum();
        *self.sent.entry(token.0).or_default() += n;
        Ok(n)
    }

    fn adopt(&mut self, _: std::net::TcpStream) -> io::Result<Token> {
        Err(io::Error::other("no sockets here"))
    }

    fn shutdown_write(&mut self, token: Token) {
        assert!(
            !self.closed.contains(&token.0),
            "a half-close after the close"
        );
    }

    fn close(&mut self, token: Token) {
        assert!(self.closed.insert(token.0), "closed twice");
    }

    fn stop_accepting(&mut self) {}

    fn waker(&self) -> Waker {
        Arc::new(NoWake)
    }
}

/// A worker serving [`Echo`] with the feed, client publishes, history on
/// every topic and HTTP/2, its limits small so they are reached.
pub struct Loop {
    core: Core<Routes<Echo>>,
    driver: Memory,
    now: Instant,
    open: HashSet<u32>,
    limits: Limits,
    max_buffered: usize,
}

impl Default for Loop {
    fn default() -> Self {
        Self::new()
    }
}

impl Loop {
    /// The loop at its first moment, no connection yet.
    pub fn new() -> Loop {
        let limits = Limits {
            max_handshake_bytes: 2048,
            max_frame_payload: 4096,
            max_message_size: 8192,
        };
        let config = Config {
            engine: EngineConfig {
                max_buffered: 16 * 1024,
                http2: true,
                threads: 1,
                limits,
                ..EngineConfig::default()
            },
            allow_client_publish: true,
            routes: super::BuiltinRoutes::ALL,
            feed_path: Some("/feed".into()),
            history: HistoryConfig {
                default: Some(Retention {
                    count: 8,
                    max_age: None,
                }),
                topics: HashMap::new(),
            },
            ..Config::default()
        };
        let settings = config.settings().expect("no certificates to load");
        let now = Instant::now();
        let mailbox = Arc::new(Mailbox::new(16, Arc::new(NoWake)));
        let core = Core::new(
            0,
            Routes::new(Arc::new(config.clone()), Echo),
            Arc::new(settings),
            mailbox,
            Arc::new(OnceLock::new()),
            Arc::new(Stats::default()),
            Epoch {
                at: now,
                wall: std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            },
        );
        Loop {
            core,
            driver: Memory::default(),
            now,
            open: HashSet::new(),
            limits,
            max_buffered: config.max_buffered,
        }
    }

    /// Whether connection `t` is open (accepted and not closed since).
    pub fn is_open(&self, t: u32) -> bool {
        self.open.contains(&t) && !self.driver.closed.contains(&t)
    }

    /// A connection accepted as token `t` (a closed token is used again, as
    /// a driver does); `reads` false: its peer never reads.
    pub fn accept(&mut self, t: u32, reads: bool) {
        if self.is_open(t) {
            return;
        }
        self.driver.closed.remove(&t);
        if reads {
            self.driver.full.remove(&t);
        } else {
            self.driver.full.insert(t);
        }
        self.open.insert(t);
        let c = Completion::Accepted(Token(t), None, 0);
        self.core.on_completion(c, self.now);
        self.turn();
    }

    /// Bytes from connection `t`'s peer, then the rest of the turn.
    pub fn read(&mut self, t: u32, bytes: &[u8]) {
        if !self.is_open(t) || bytes.is_empty() {
            return;
        }
        let mut buf = bytes.to_vec();
        self.core
            .on_completion(Completion::Data(Token(t), &mut buf, None), self.now);
        self.turn();
    }

    /// Connection `t`'s peer went away.
    pub fn hang_up(&mut self, t: u32) {
        if !self.is_open(t) {
            return;
        }
        self.core
            .on_completion(Completion::Closed(Token(t)), self.now);
        self.turn();
        self.open.remove(&t);
    }

    /// Time passes: `secs` seconds, then a turn.
    pub fn wait(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        self.turn();
    }

    fn turn(&mut self) {
        self.core.after_io(&mut self.driver, self.now);
        let held = self.core.most_held();
        assert!(
            held <= self.held_limit(),
            "a connection holds {held} unsent bytes, over {}",
            self.held_limit()
        );
    }

    /// The most unsent bytes one connection may make the server hold: its
    /// buffer limit, one message past it, and the backlog of control
    /// replies (pongs, HTTP/2 acks) and of an HTTP/2 connection's frames.
    pub fn held_limit(&self) -> usize {
        self.max_buffered + self.limits.max_message_size + 256 * 1024
    }
}
