//! The loop core under a fake driver and a fake clock: no socket, no
//! thread, no sleep. Each test drives [`Core`] with the completions a driver
//! would report and with `now` values it chooses, and reads what the core
//! asked the driver to send, half-close and close.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::driver::{offsets_in, Completion, Driver, Part, Reply, Token, Wake, Waker};
use crate::metrics::Stats;
use crate::proto::http::HttpRequest;
use crate::proto::ws::handshake::UpgradeRequest;
use crate::proto::{CloseCode, MessageKind};
use crate::pubsub::{Publication, SubscribeOptions};

use super::app::{App, Ends, EngineConfig, RequestCx, Response, Route, Settings};
use super::clock::Epoch;
use super::core::Core;
use super::mailbox::{Control, Mailbox};
use super::ws::{AppTag, ConnId, Msg, Ws};
use super::Shared;

/// A driver that takes bytes into a per-connection log, up to an optional
/// room per connection (0 left: "not now", as a full socket).
#[derive(Default)]
struct FakeDriver {
    sent: HashMap<u32, Vec<u8>>,
    room: HashMap<u32, usize>,
    shut: Vec<u32>,
    closed: Vec<u32>,
    stopped_accepting: bool,
    /// Each `pause_reading` call: (token, paused).
    paused: Vec<(u32, bool)>,
    /// With `hold`, every byte taken counts in `held`, the driver's
    /// [`Driver::send_backlog`], until a test clears it (as completions
    /// would give the memory back).
    hold: bool,
    held: usize,
}

struct NoWake;

impl Wake for NoWake {
    fn wake(&self) {}
}

impl Driver for FakeDriver {
    fn turn(
        &mut self,
        _timeout: Option<Duration>,
        _sink: &mut dyn FnMut(Completion<'_>),
    ) -> io::Result<()> {
        Ok(())
    }

    fn send(&mut self, token: Token, data: &[u8]) -> io::Result<usize> {
        self.send_vectored(token, &[Part::borrowed(data)])
    }

    fn send_vectored(&mut self, token: Token, parts: &[Part<'_>]) -> io::Result<usize> {
        assert!(!self.closed.contains(&token.0), "send after close");
        let room = self.room.entry(token.0).or_insert(usize::MAX);
        let log = self.sent.entry(token.0).or_default();
        let mut n = 0;
        for p in parts {
            let take = p.bytes().len().min(*room - n);
            log.extend_from_slice(&p.bytes()[..take]);
            n += take;
        }
        *room -= n;
        if self.hold {
            self.held += n;
        }
        Ok(n)
    }

    fn send_backlog(&self) -> usize {
        self.held
    }

    fn adopt(&mut self, _stream: std::net::TcpStream) -> io::Result<Token> {
        Err(io::Error::other("not in tests"))
    }

    fn shutdown_write(&mut self, token: Token) {
        self.shut.push(token.0);
    }

    fn close(&mut self, token: Token) {
        self.closed.push(token.0);
    }

    fn stop_accepting(&mut self) {
        self.stopped_accepting = true;
    }

    fn pause_reading(&mut self, token: Token, paused: bool) {
        self.paused.push((token.0, paused));
    }

    fn waker(&self) -> Waker {
        Arc::new(NoWake)
    }
}

/// A socket lent with a read: takes up to `room` bytes into `taken`, and
/// notes where each call's parts lay: at which offset of the read's buffer
/// (`buffer`), or elsewhere (`None`).
struct FakeReply {
    taken: Vec<u8>,
    room: usize,
    buffer: std::ops::Range<usize>,
    calls: Vec<Vec<(Option<usize>, usize)>>,
}

impl FakeReply {
    fn new(room: usize) -> FakeReply {
        FakeReply {
            taken: Vec::new(),
            room,
            buffer: 0..0,
            calls: Vec::new(),
        }
    }
}

impl Reply for FakeReply {
    fn reply(&mut self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        let at = |p: &IoSlice<'_>| offsets_in(&self.buffer, p).map(|r| r.start);
        let call = parts.iter().map(|p| (at(p), p.len())).collect();
        self.calls.push(call);
        let mut n = 0;
        for p in parts {
            let take = p.len().min(self.room - n);
            self.taken.extend_from_slice(&p[..take]);
            n += take;
        }
        self.room -= n;
        Ok(n)
    }
}

/// What the test app saw.
#[derive(Default)]
struct Seen {
    closes: Vec<(u32, CloseCode)>,
}

/// Upgrades every WebSocket request and subscribes it to "t"; answers
/// other requests 404; echoes messages.
struct TestApp {
    seen: Rc<RefCell<Seen>>,
}

impl App for TestApp {
    fn route(&mut self, http: HttpRequest, cx: &RequestCx<'_>) -> Route {
        if http.method == "POST" {
            return Route::Publish {
                topic: "t".into(),
                key: None,
                len: http.content_length().ok().flatten().unwrap_or(0),
                continue_first: http.has_token("expect", "100-continue"),
                batch: None,
            };
        }
        if !http.wants_websocket() {
            return Route::Respond(Response::text(404, "no\n"));
        }
        // `/ends-in-3s`: its life ends 3 s after the request (a token's
        // expiry).
        let ends = Ends {
            token: (http.path == "/ends-in-3s").then(|| cx.now + Duration::from_secs(3)),
            lifetime: None,
        };
        // `/gaps`: subscribed with gap notices (tag 1).
        let tag = AppTag(u8::from(http.path == "/gaps"));
        match UpgradeRequest::from_http(http) {
            Ok(req) => Route::Upgrade {
                req,
                protocol: None,
                tag,
                ends,
                identity: None,
            },
            Err(e) => Route::Respond(e.response()),
        }
    }

    fn on_open(&mut self, ws: &mut Ws<'_>) {
        let opts = SubscribeOptions {
            gaps: ws.tag() == AppTag(1),
            ..SubscribeOptions::default()
        };
        ws.subscribe_with("t", &opts).expect("subscribe");
    }

    fn on_message(&mut self, ws: &mut Ws<'_>, msg: Msg<'_>) {
        match msg.as_bytes().strip_prefix(b"publish ") {
            Some(rest) => ws.publish("t", MessageKind::Text, rest),
            None => {
                ws.send(msg.kind(), msg.as_bytes());
            }
        }
    }

    fn on_drain(&mut self, _ws: &mut Ws<'_>) {}

    fn on_close(&mut self, id: ConnId, _tag: AppTag, code: CloseCode, _reason: &str) {
        self.seen.borrow_mut().closes.push((id.index, code));
    }
}

const UPGRADE: &[u8] = b"GET /x HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

struct Harness {
    core: Core<TestApp>,
    /// Worker 0's mailbox, the core's.
    mailbox: Arc<Mailbox>,
    driver: FakeDriver,
    seen: Rc<RefCell<Seen>>,
    t0: Instant,
    /// The fake clock: the last turn's moment, which completions share.
    clock: Instant,
}

impl Harness {
    fn new(cfg: Settings) -> Harness {
        let seen = Rc::new(RefCell::new(Seen::default()));
        let t0 = Instant::now();
        let mailbox = Arc::new(Mailbox::new(16, Arc::new(NoWake)));
        let core = Core::new(
            0,
            TestApp { seen: seen.clone() },
            Arc::new(cfg),
            mailbox.clone(),
            Arc::new(OnceLock::new()),
            Arc::new(Stats::default()),
            Epoch {
                at: t0,
                wall: std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            },
        );
        Harness {
            core,
            mailbox,
            driver: FakeDriver::default(),
            seen,
            t0,
            clock: t0,
        }
    }

    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    /// The rest of a loop turn at `secs` on the fake clock.
    fn turn(&mut self, secs: f64) {
        let now = self.at(secs);
        self.clock = now;
        self.core.after_io(&mut self.driver, now);
    }

    fn accept(&mut self, t: u32) {
        self.core
            .on_completion(Completion::Accepted(Token(t), None, 0), self.clock);
    }

    fn data(&mut self, t: u32, bytes: &[u8]) {
        let mut b = bytes.to_vec();
        self.core
            .on_completion(Completion::Data(Token(t), &mut b, None), self.clock);
    }

    /// Bytes read from `t` with its socket lent as `reply`.
    fn data_lent(&mut self, t: u32, bytes: &[u8], reply: &mut FakeReply) {
        let mut b = bytes.to_vec();
        let r = b.as_ptr_range();
        reply.buffer = r.start as usize..r.end as usize;
        self.core
            .on_completion(Completion::Data(Token(t), &mut b, Some(reply)), self.clock);
    }

    /// Accept `t` and upgrade it at `secs`.
    fn open(&mut self, t: u32, secs: f64) {
        self.open_path(t, secs, "/x");
    }

    /// Open a WebSocket on `path` (see [`TestApp::route`]).
    fn open_path(&mut self, t: u32, secs: f64, path: &str) {
        self.accept(t);
        let upgrade = String::from_utf8_lossy(UPGRADE).replacen("/x", path, 1);
        self.data(t, upgrade.as_bytes());
        self.turn(secs);
        assert!(
            self.sent(t).starts_with(b"HTTP/1.1 101"),
            "{:?}",
            String::from_utf8_lossy(self.sent(t))
        );
        self.driver.sent.remove(&t);
    }

    fn sent(&self, t: u32) -> &[u8] {
        self.driver.sent.get(&t).map_or(&[], |v| &v[..])
    }

    fn frames(&self, t: u32) -> Vec<(u8, Vec<u8>)> {
        server_frames(self.sent(t))
    }

    fn closed(&self, t: u32) -> bool {
        self.driver.closed.contains(&t)
    }

    fn publish(&mut self, secs: f64, key: Option<&str>, payload: &[u8]) {
        let p = Publication::new("t", key, MessageKind::Text, payload);
        let now = self.at(secs);
        self.core.control(Control::Publish(p), now);
    }
}

/// Unmasked server frames: (opcode, payload).
fn server_frames(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 2 {
        let op = b[0] & 0x0f;
        let (len, at) = match b[1] & 0x7f {
            126 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        assert!(b[1] & 0x80 == 0, "server frames are unmasked");
        out.push((op, b[at..at + len].to_vec()));
        b = &b[at + len..];
    }
    assert!(b.is_empty(), "a partial frame");
    out
}

/// A client frame, masked with a zero key.
fn client_frame(op: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | op, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}

fn close_code(payload: &[u8]) -> u16 {
    u16::from_be_bytes([payload[0], payload[1]])
}

#[test]
fn a_handshake_not_done_within_the_timeout_is_closed_and_counted() {
    let mut h = Harness::new(Settings::new(EngineConfig {
        handshake_timeout: Duration::from_secs(2),
        ..EngineConfig::default()
    }));
    h.accept(0);
    h.data(0, b"GET /x HTTP/1.1\r\nHost: t\r\n");
    // A complete handshake in time stays open.
    h.accept(1);
    h.data(1, UPGRADE);
    h.turn(0.5);
    assert!(h.sent(1).starts_with(b"HTTP/1.1 101"));
    // At least the whole timeout: the accept's tick began up to a second
    // before the accept, so the deadline is one tick more.
    h.turn(2.9);
    assert!(!h.closed(0), "closed before its timeout");
    h.turn(3.0);
    assert!(h.closed(0), "a trickling handshake outlived its timeout");
    assert!(!h.closed(1));
    assert!(
        h.sent(0).is_empty(),
        "a timed-out handshake is closed without an answer"
    );
    assert_eq!(
        h.core.stats.rejects[crate::metrics::REJECT_REASONS.len() - 1].get(),
        1,
        "counted as a timeout"
    );
}

#[test]
fn a_silent_websocket_is_pinged_every_interval_then_closed_with_1001() {
    let mut h = Harness::new(Settings::new(EngineConfig {
        handshake_timeout: Duration::from_secs(3),
        ping_interval: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(5),
        ..EngineConfig::default()
    }));
    h.open(0, 0.0);
    h.open(1, 0.0);
    h.turn(1.9);
    assert!(h.frames(0).is_empty(), "pinged before the interval");
    h.turn(2.0);
    assert_eq!(h.frames(0), vec![(0x9, b"ringwave".to_vec())]);
    // Connection 1 answers its ping: traffic starts the interval again.
    h.data(1, &client_frame(0xA, b"ringwave"));
    h.turn(3.0);
    h.turn(4.0);
    assert_eq!(h.frames(0).len(), 2, "pinged again after another interval");
    assert_eq!(h.frames(0)[1].0, 0x9);
    h.turn(4.9);
    assert!(
        h.frames(0).iter().all(|f| f.0 == 0x9),
        "closed before the idle timeout"
    );
    h.turn(5.0);
    let last = h.frames(0).pop().unwrap();
    assert_eq!((last.0, close_code(&last.1)), (0x8, 1001));
    assert_eq!(&last.1[2..], b"idle timeout");
    let pongs_answered = h.frames(1);
    assert!(
        pongs_answered.iter().all(|f| f.0 == 0x9),
        "the connection that answered was not closed: {pongs_answered:?}"
    );
    // No close reply: the close handshake gets the handshake timeout, then
    // the transport goes.
    h.turn(7.9);
    assert!(!h.closed(0));
    h.turn(8.0);
    assert!(h.closed(0));
    assert_eq!(h.seen.borrow().closes, vec![(0, CloseCode::GOING_AWAY)]);
    assert!(!h.closed(1));
}

#[test]
fn a_drain_spreads_its_1001_closes_over_the_drain_period() {
    let mut h = Harness::new(Settings::new(EngineConfig {
        drain: Duration::from_secs(4),
        ..EngineConfig::default()
    }));
    for t in 0..10 {
        h.open(t, 0.0);
    }
    let told = |h: &Harness| {
        (0..10u32)
            .filter(|&t| {
                h.frames(t)
                    .iter()
                    .any(|f| f.0 == 0x8 && close_code(&f.1) == 1001)
            })
            .count()
    };
    let now = h.at(10.0);
    h.core.control(Control::Shutdown, now);
    let mut counts = Vec::new();
    for s in [10.0, 11.0, 12.0, 13.0, 14.0] {
        h.turn(s);
        counts.push(told(&h));
        assert_eq!(h.driver.stopped_accepting, s >= 14.0, "at {s} s");
    }
    // floor(10 * elapsed / 4) by each step, all by the end of the period.
    assert_eq!(counts, vec![0, 2, 5, 7, 10]);
    // The clients answer the close: every connection is closed.
    for t in 0..10 {
        h.data(t, &client_frame(0x8, &1001u16.to_be_bytes()));
    }
    h.turn(14.5);
    assert!((0..10).all(|t| h.closed(t)));
}

#[test]
fn a_refused_request_is_answered_then_half_closed_until_the_peer_leaves() {
    let mut h = Harness::new(Settings::default());
    h.accept(0);
    h.accept(1);
    h.data(0, b"GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n");
    h.data(1, b"GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n");
    h.turn(0.5);
    for t in [0, 1] {
        assert!(h.sent(t).starts_with(b"HTTP/1.1 404"));
        assert!(h.driver.shut.contains(&t), "half-closed after the answer");
        assert!(!h.closed(t), "not closed at once: the peer may be sending");
    }
    // Peer 0 sees the answer and leaves; peer 1 never does.
    h.core.on_completion(Completion::Closed(Token(0)), h.clock);
    h.turn(0.6);
    assert!(h.closed(0));
    h.turn(1.0);
    assert!(!h.closed(1), "the linger lasts two ticks");
    h.turn(2.0);
    assert!(h.closed(1), "closed when the linger ran out");
}

#[test]
fn a_publication_from_another_worker_goes_before_a_later_local_one() {
    let mut h = Harness::new(Settings::default());
    let other = Arc::new(Mailbox::new(16, Arc::new(NoWake)));
    let mailboxes: Arc<[Arc<Mailbox>]> = Arc::new([h.mailbox.clone(), other.clone()]);
    let shared = Shared {
        mailboxes: mailboxes.clone(),
        stats: vec![Arc::new(Stats::default()), Arc::new(Stats::default())],
        connections: AtomicUsize::new(0),
        tls: None,
        uplink: None,
        history: None,
        clients: super::clients::Clients::new(0, 0),
    };
    assert!(h.core.peers.share(shared));
    h.open(0, 0.0);
    h.open(1, 0.0);
    // Worker 1 published and answered its publisher, who now publishes
    // here; worker 0 has not been woken for the first one yet.
    let earlier = Publication::new("t", None, MessageKind::Text, b"earlier");
    assert!(h.mailbox.send(Control::Publish(earlier)).is_ok());
    h.data(1, &client_frame(0x1, b"publish later"));
    h.turn(0.1);
    let texts = |t| -> Vec<Vec<u8>> { h.frames(t).into_iter().map(|f| f.1).collect() };
    assert_eq!(texts(0), [b"earlier".to_vec(), b"later".to_vec()]);
    assert_eq!(texts(1), [b"earlier".to_vec(), b"later".to_vec()]);
    // Forwarded to worker 1, once.
    let mut out = Vec::new();
    other.drain(&mut out);
    assert!(matches!(&out[..], [Control::Publish(p)] if p.payload() == b"later"));
}

/// One read with two messages the app echoes, a ping between them and a
/// close after them; what the server answers, in order.
fn echo_read() -> (Vec<u8>, Vec<(u8, Vec<u8>)>) {
    let mut read = client_frame(0x1, b"hello");
    read.extend(client_frame(0x9, b"p"));
    read.extend(client_frame(0x2, &[7; 100]));
    read.extend(client_frame(0x8, &1000u16.to_be_bytes()));
    let answer = vec![
        (0x1, b"hello".to_vec()),
        (0xA, b"p".to_vec()),
        (0x2, vec![7; 100]),
        (0x8, 1000u16.to_be_bytes().to_vec()),
    ];
    (read, answer)
}

#[test]
fn replies_from_the_read_buffer_keep_the_wire_order_whatever_the_socket_takes() {
    let (read, answer) = echo_read();
    // 2+5, 2+1, 2+100, 2+2: the socket takes none, each split, or all.
    let total = 116;
    for room in 0..=total {
        let mut h = Harness::new(Settings::default());
        h.open(0, 0.0);
        let before = h.core.stats.bytes_out.get();
        let mut lent = FakeReply::new(room);
        h.data_lent(0, &read, &mut lent);
        assert_eq!(
            lent.taken.len(),
            room,
            "the socket took what it had room for"
        );
        h.turn(0.1);
        let mut wire = lent.taken.clone();
        wire.extend_from_slice(h.sent(0));
        assert_eq!(server_frames(&wire), answer, "room {room}");
        assert_eq!(
            h.core.stats.bytes_out.get() - before,
            total as u64,
            "room {room}"
        );
    }
}

#[test]
fn a_lone_reply_goes_out_as_one_run_of_the_read_buffer() {
    let mut h = Harness::new(Settings::default());
    h.open(0, 0.0);
    // Each case: the frames read at once, where each part of the one reply
    // lay (offset in the read, or elsewhere) and its length, and the frames
    // that went out.
    type Parts = Vec<(Option<usize>, usize)>;
    type Frames = Vec<(u8, Vec<u8>)>;
    let cases: [(&str, Vec<u8>, Parts, Frames); 3] = [
        (
            // Its header written over the consumed frame header, in front
            // of the payload, so the driver may send it from the buffer.
            "one message",
            client_frame(0x2, &[9; 100]),
            vec![(Some(6 - 2), 2 + 100)],
            vec![(0x2, vec![9; 100])],
        ),
        (
            // The bytes in front of the second's payload are the second
            // frame's header: each goes out as header and payload parts.
            "two messages",
            [client_frame(0x1, b"one"), client_frame(0x1, b"two")].concat(),
            vec![(None, 2), (Some(6), 3), (None, 2), (Some(9 + 6), 3)],
            vec![(0x1, b"one".to_vec()), (0x1, b"two".to_vec())],
        ),
        (
            // A pong queued in the output first: the reply follows it.
            "a pong, then a message",
            [client_frame(0x9, b"p"), client_frame(0x2, b"after")].concat(),
            vec![(None, 3), (None, 2), (Some(7 + 6), 5)],
            vec![(0xA, b"p".to_vec()), (0x2, b"after".to_vec())],
        ),
    ];
    for (name, read, parts, frames) in cases {
        let mut lent = FakeReply::new(usize::MAX);
        h.data_lent(0, &read, &mut lent);
        assert_eq!(lent.calls, vec![parts], "{name}");
        assert_eq!(server_frames(&lent.taken), frames, "{name}");
    }

    // Half taken: the rest is queued and goes out next, in order.
    let mut lent = FakeReply::new(50);
    h.data_lent(0, &client_frame(0x2, &[5; 100]), &mut lent);
    h.turn(0.1);
    let mut wire = lent.taken.clone();
    wire.extend_from_slice(h.sent(0));
    assert_eq!(server_frames(&wire), vec![(0x2, vec![5; 100])]);
}

#[test]
fn more_replies_than_one_read_holds_go_out_in_order() {
    let mut read = Vec::new();
    for i in 0..40u8 {
        read.extend(client_frame(0x2, &[i; 3]));
    }
    let mut h = Harness::new(Settings::default());
    h.open(0, 0.0);
    let mut lent = FakeReply::new(usize::MAX);
    h.data_lent(0, &read, &mut lent);
    h.turn(0.1);
    // The first ones from the buffer, the rest copied, all in one write.
    assert!(h.sent(0).is_empty());
    let got = server_frames(&lent.taken);
    assert_eq!(got.len(), 40);
    for (i, (op, payload)) in got.iter().enumerate() {
        assert_eq!((*op, &payload[..]), (0x2, &[i as u8; 3][..]));
    }
}

#[test]
fn a_partly_written_publication_goes_out_before_a_reply() {
    let mut h = Harness::new(Settings::default());
    h.open(0, 0.0);
    // A publication the socket takes 3 bytes of.
    h.driver.room.insert(0, 3);
    h.publish(0.1, None, b"published");
    h.turn(0.1);
    let mut lent = FakeReply::new(usize::MAX);
    h.data_lent(0, &client_frame(0x1, b"echo"), &mut lent);
    assert!(lent.taken.is_empty(), "wrote past the publication's rest");
    h.driver.room.insert(0, usize::MAX);
    h.turn(0.2);
    assert_eq!(
        h.frames(0),
        vec![(0x1, b"published".to_vec()), (0x1, b"echo".to_vec())]
    );
}

mod output {
    //! How a connection's unsent bytes are laid out for one send.

    use super::super::flush::{gather, MAX_PARTS};
    use super::super::session::websocket::WebSocket;
    use super::super::session::{Lag, Session, Slot};
    use super::super::ws::AppTag;
    use crate::driver::Part;
    use crate::proto::{Conn, Event, Limits, MessageKind, Role};
    use crate::pubsub::{Publication, Subscriber};
    use std::time::{Duration, Instant};

    fn open_slot(sub: Subscriber) -> Slot {
        let conn = Conn::new(Role::Server, Limits::default(), None);
        let ws = WebSocket::new(conn, AppTag(0), 0);
        let mut slot = Slot::new(1, Session::WebSocket(ws), 0);
        slot.sub = Some(Box::new(sub));
        slot
    }

    /// A client's ping (masked with a zero key), answered by the server's
    /// `Conn` with a pong in its own output.
    fn receive_ping(slot: &mut Slot, payload: &[u8]) {
        let Session::WebSocket(ws) = &mut slot.session else {
            panic!("not open");
        };
        let mut frame = vec![0x89, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        let len = frame.len();
        let (used, ev) = ws.conn.read(&mut frame).expect("a valid ping");
        assert_eq!(used, len);
        assert!(matches!(ev, Some(Event::Ping(_))), "{ev:?}");
    }

    fn laid_out(slot: &Slot) -> (Vec<(Vec<u8>, bool)>, bool) {
        let mut parts = [Part::borrowed(&[]); MAX_PARTS];
        let (n, front_partial) = gather(slot, &mut parts);
        let parts = parts[..n]
            .iter()
            .map(|p| (p.bytes().to_vec(), p.owner().is_some()))
            .collect();
        (parts, front_partial)
    }

    #[test]
    fn a_pong_goes_ahead_of_queued_publications_after_the_frame_in_progress() {
        let pubs: Vec<_> = (0..3u8)
            .map(|i| Publication::new("t", None, MessageKind::Binary, &[i; 10]))
            .collect();
        let mut sub = Subscriber::default();
        for p in &pubs {
            sub.push(p.clone(), p.frame().len());
        }
        // The first publication is partly written: its frame must finish.
        sub.front_pos = 5;
        sub.queued_bytes -= 5;
        let mut slot = open_slot(sub);
        receive_ping(&mut slot, b"hb");
        let pong = b"\x8a\x02hb".to_vec();

        let (parts, front_partial) = laid_out(&slot);
        assert!(front_partial);
        let expect = vec![
            (pubs[0].frame()[5..].to_vec(), true),
            (pong.clone(), false),
            (pubs[1].frame().to_vec(), true),
            (pubs[2].frame().to_vec(), true),
        ];
        assert_eq!(parts, expect, "publications are shared, the pong is copied");

        // A send that took the rest of the first frame, the pong and 4 bytes
        // of the second frame.
        let rest = pubs[0].frame().len() - 5;
        // Each publication counts in the lag once, when its last byte goes.
        let t0 = Instant::now();
        for p in &pubs {
            p.arrive(t0);
        }
        let hist = crate::metrics::Histogram::default();
        let lag = Lag {
            now: t0 + Duration::from_millis(3),
            hist: &hist,
        };
        slot.consume(rest + pong.len() + 4, true, &lag);
        assert_eq!(hist.count(), 1);
        assert!(slot.own_output().is_empty());
        let (parts, front_partial) = laid_out(&slot);
        assert!(front_partial);
        assert_eq!(parts[0].0, pubs[1].frame()[4..]);
        assert_eq!(parts[1].0, pubs[2].frame());
        assert_eq!(
            slot.queued(),
            pubs[1].frame().len() - 4 + pubs[2].frame().len()
        );

        // A new ping while publications are queued and none is in progress:
        // its pong leads.
        slot.consume(pubs[1].frame().len() - 4, true, &lag);
        assert_eq!(hist.count(), 2);
        receive_ping(&mut slot, b"hb");
        let (parts, front_partial) = laid_out(&slot);
        assert!(!front_partial);
        assert_eq!(parts, vec![(pong, false), (pubs[2].frame().to_vec(), true)]);
    }

    #[test]
    fn a_run_of_publications_is_one_frame_sequence() {
        let pubs: Vec<_> = (0..3u8)
            .map(|i| Publication::new("t", None, MessageKind::Text, &[b'a' + i; 3]))
            .collect();
        let run = Publication::run(&pubs);
        assert_eq!(run.frame(), b"\x81\x03aaa\x81\x03bbb\x81\x03ccc");
        assert_eq!(run.topic(), "t");
    }
}

#[test]
fn an_unsent_100_continue_goes_out_before_the_answer() {
    // The socket takes nothing while the body arrives: the interim answer
    // is still queued when the body is whole, and goes out first.
    let mut h = Harness::new(Settings::default());
    h.accept(0);
    h.driver.room.insert(0, 0);
    h.data(
        0,
        b"POST /p HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    h.turn(0.1);
    assert!(h.sent(0).is_empty());
    h.data(0, b"hello");
    h.driver.room.insert(0, usize::MAX);
    h.turn(0.2);
    let sent = String::from_utf8_lossy(h.sent(0)).into_owned();
    assert!(
        sent.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\n"),
        "{sent:?}"
    );
    assert!(sent.ends_with("published\n"), "{sent:?}");
}

mod h2;
mod lifetime;
mod pause;
mod slow;

/// A WebSocket's slot stays as small as it was (a million of them are
/// held): what few connections have (a close reason, an identity) lives
/// behind one pointer.
#[test]
fn a_slot_stays_within_160_bytes() {
    let slot = std::mem::size_of::<crate::runtime::session::Slot>();
    assert!(slot <= 160, "a slot is {slot} bytes");
}
