//! The io_uring driver's connection lifecycle under completions a test
//! hands it (accept, recv, short and failed sends, a close while a send is
//! in flight, cancelled and stale ops), and failure paths no peer can bring
//! about on purpose, reached by a failure injected into the driver.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::IntoRawFd;
use std::time::{Duration, Instant};

use super::op::{OpKind, UserData};
use super::slot::Sending;
use super::UringDriver;
use crate::driver::{Completion, Driver, Token};

/// A short write whose rest cannot be queued (as when `io_uring_enter`
/// fails on a full submission queue) fails its connection: it is reported
/// Closed and keeps no send in flight, so the send's memory goes back
/// instead of staying with a slot that waits for a completion that will
/// never come.
#[test]
fn a_short_write_whose_rest_cannot_be_queued_fails_the_connection() {
    // The peer reads nothing: 64 MiB fit neither its window nor the
    // socket's send buffer, so the send completes short.
    let (mut d, token, _peer) = connected();
    d.fail_resubmit = true;
    let len = 64 << 20;
    let mut buf = vec![7u8; len];
    assert_eq!(d.send_owned(token, &mut buf, 0).unwrap(), len);
    let mut closed = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !closed {
        assert!(Instant::now() < deadline, "no Closed within 5 s");
        d.turn(Some(Duration::from_millis(10)), &mut |c| {
            if let Completion::Closed(t) = c {
                assert_eq!(t, token);
                closed = true;
            }
        })
        .unwrap();
    }
    assert!(!d.fail_resubmit, "the rest was never queued again");
    let slot = &d.slots[token.index()];
    assert!(slot.failed());
    assert!(matches!(slot.sending, Sending::Idle));
}

// The connection lifecycle under fake completions: each test queues real
// SQEs (never submitted, but where a close submits them) and hands the
// driver the CQEs the kernel would return, in an order the test chooses.

/// `IORING_CQE_F_BUFFER` and `IORING_CQE_F_MORE` (io_uring.h); the buffer
/// id sits in the upper 16 bits.
const F_BUFFER: u32 = 1;
const F_MORE: u32 = 2;

/// What the driver reported, owned.
#[derive(Debug, PartialEq)]
enum Seen {
    Accepted(u32, Option<SocketAddr>, usize),
    Data(u32, Vec<u8>),
    Writable(u32),
    Closed(u32),
    Woken,
}

/// Hand `d` one completion; what it reported.
fn cqe(d: &mut UringDriver, user_data: u64, res: i32, flags: u32) -> Vec<Seen> {
    let mut seen = Vec::new();
    d.on_cqe(user_data, res, flags, &mut |c| {
        seen.push(match c {
            Completion::Accepted(t, peer, l) => Seen::Accepted(t.0, peer, l),
            Completion::Data(t, data, _) => Seen::Data(t.0, data.to_vec()),
            Completion::Writable(t) => Seen::Writable(t.0),
            Completion::Closed(t) => Seen::Closed(t.0),
            Completion::Woken => Seen::Woken,
        })
    });
    seen
}

/// The `user_data` of a `kind` op on `token`'s slot as it is now.
fn op(d: &UringDriver, kind: OpKind, token: Token) -> u64 {
    UserData {
        kind,
        generation: d.slots[token.index()].generation,
        index: token.0,
    }
    .encode()
}

/// A connected pair: (the server's side, the client's side).
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (server, client)
}

/// A driver without listeners, with a connection adopted (its multishot
/// recv queued): the driver, the connection, its peer.
fn connected() -> (UringDriver, Token, TcpStream) {
    let mut d = UringDriver::new(Vec::new()).unwrap();
    let (server, client) = pair();
    let token = d.adopt(server).unwrap();
    (d, token, client)
}

#[test]
fn the_test_flags_are_the_kernels() {
    assert!(io_uring::cqueue::more(F_MORE));
    assert_eq!(io_uring::cqueue::buffer_select(F_BUFFER | 7 << 16), Some(7));
}

#[test]
fn an_accept_completion_opens_a_slot_with_its_recv_armed() {
    let mut d = UringDriver::new(Vec::new()).unwrap();
    // Regular descriptors: the completion's result is the new socket.
    d.direct = false;
    let (server, client) = pair();
    let fd = server.into_raw_fd();
    let seen = cqe(&mut d, UserData::accept(OpKind::Accept, 0, 0), fd, 0);
    let [Seen::Accepted(index, peer, 0)] = seen[..] else {
        panic!("{seen:?}");
    };
    assert_eq!(peer, Some(client.local_addr().unwrap()));
    let slot = &d.slots[index as usize];
    assert!(slot.live() && slot.recv_armed);
    assert_eq!(slot.inflight(), 1, "the recv");
    assert!(d.fresh_recvs, "its recv is submitted in this turn");
    // A failed accept opens nothing and reports nothing.
    assert_eq!(
        cqe(
            &mut d,
            UserData::accept(OpKind::Accept, 0, 0),
            -libc::ECONNABORTED,
            0
        ),
        []
    );
    assert_eq!(d.slots.len(), 1);
}

#[test]
fn a_recv_reports_its_bytes_and_eof_fails_the_slot_until_closed() {
    let (mut d, token, _peer) = connected();
    d.recv.data(0, 5).copy_from_slice(b"hello");
    let recv = op(&d, OpKind::Recv, token);
    assert_eq!(
        cqe(&mut d, recv, 5, F_BUFFER | F_MORE),
        [Seen::Data(token.0, b"hello".to_vec())]
    );
    assert!(d.slots[token.index()].recv_armed, "multishot: still armed");
    // The peer's EOF, the recv's last completion.
    assert_eq!(cqe(&mut d, recv, 0, 0), [Seen::Closed(token.0)]);
    let slot = &d.slots[token.index()];
    assert!(slot.failed() && !slot.live() && !slot.recv_armed);
    assert_eq!(slot.inflight(), 0);
    assert!(
        d.slots.contains(token.index()),
        "kept until the runtime closes"
    );
    assert!(d.send(token, b"x").is_err(), "a failed slot takes no sends");
    d.close(token);
    assert!(!d.slots.contains(token.index()), "nothing in flight: freed");
}

#[test]
fn a_short_send_sends_the_rest_then_reports_writable() {
    let (mut d, token, _peer) = connected();
    assert_eq!(d.send(token, &[1u8; 100]).unwrap(), 100);
    assert!(!d.send_ready(token));
    assert_eq!(d.send(token, b"more").unwrap(), 0, "one send in flight");
    let send = op(&d, OpKind::Send, token);
    assert_eq!(cqe(&mut d, send, 40, 0), [], "the rest goes out first");
    match &d.slots[token.index()].sending {
        Sending::InFlight { op, .. } => assert_eq!((op.offset, op.len), (40, 100)),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.sends.taken(), 1);
    assert_eq!(cqe(&mut d, send, 60, 0), [Seen::Writable(token.0)]);
    assert!(d.send_ready(token));
    assert_eq!(d.sends.taken(), 0, "the send's buffer went back");
    assert_eq!(d.slots[token.index()].inflight(), 1, "the recv");
}

#[test]
fn a_failed_send_reports_closed_and_gives_its_memory_back() {
    let (mut d, token, _peer) = connected();
    assert_eq!(d.send(token, &[1u8; 100]).unwrap(), 100);
    let send = op(&d, OpKind::Send, token);
    assert_eq!(cqe(&mut d, send, -libc::EPIPE, 0), [Seen::Closed(token.0)]);
    let slot = &d.slots[token.index()];
    assert!(slot.failed() && matches!(slot.sending, Sending::Idle));
    assert_eq!(d.sends.taken(), 0);
}

#[test]
fn a_close_while_a_send_is_in_flight_waits_for_it_and_for_the_cancelled_recv() {
    let (mut d, token, _peer) = connected();
    assert_eq!(d.send(token, &[1u8; 100]).unwrap(), 100);
    let (send, recv) = (op(&d, OpKind::Send, token), op(&d, OpKind::Recv, token));
    d.close(token);
    let slot = &d.slots[token.index()];
    assert!(slot.closing());
    assert!(slot.fd.is_some(), "the send in flight needs the socket");
    // The send completes: nothing is reported to a closed slot, the
    // socket is closed, the slot waits for its recv's cancellation.
    assert_eq!(cqe(&mut d, send, 100, 0), []);
    assert_eq!(d.sends.taken(), 0);
    let slot = &d.slots[token.index()];
    assert!(slot.fd.is_none());
    assert_eq!(slot.inflight(), 1);
    assert_eq!(cqe(&mut d, recv, -libc::ECANCELED, 0), []);
    assert!(
        !d.slots.contains(token.index()),
        "freed with nothing in flight"
    );
}

#[test]
fn a_stale_completion_touches_nothing() {
    let (mut d, old, _peer) = connected();
    let (old_recv, old_send) = (op(&d, OpKind::Recv, old), op(&d, OpKind::Send, old));
    d.close(old);
    assert_eq!(cqe(&mut d, old_recv, -libc::ECANCELED, 0), []);
    assert!(!d.slots.contains(old.index()));
    // The index is taken again, with a new generation.
    let (server, _client) = pair();
    let new = d.adopt(server).unwrap();
    assert_eq!(new.index(), old.index());
    assert_eq!(d.send(new, &[2u8; 10]).unwrap(), 10);
    // The old connection's completions: data and a send's end.
    d.recv.data(3, 4).copy_from_slice(b"late");
    assert_eq!(cqe(&mut d, old_recv, 4, F_BUFFER | 3 << 16), []);
    assert_eq!(cqe(&mut d, old_send, 10, 0), []);
    let slot = &d.slots[new.index()];
    assert!(slot.live() && slot.recv_armed && slot.send_in_flight());
}

#[test]
fn a_paused_connection_cancels_its_recv_and_arms_it_again_when_resumed() {
    let (mut d, token, _peer) = connected();
    let recv = op(&d, OpKind::Recv, token);
    let queued = |d: &mut UringDriver| d.ring.submission().len();
    let before = queued(&mut d);
    d.pause_reading(token, true);
    assert_eq!(queued(&mut d), before + 1, "a cancel of the recv");
    // Bytes already on their way are still reported.
    d.recv.data(0, 2).copy_from_slice(b"hi");
    assert_eq!(
        cqe(&mut d, recv, 2, F_BUFFER | F_MORE),
        [Seen::Data(token.0, b"hi".to_vec())]
    );
    // The recv ends cancelled: not armed again while paused.
    assert_eq!(cqe(&mut d, recv, -libc::ECANCELED, 0), []);
    let slot = &d.slots[token.index()];
    assert!(slot.live() && !slot.recv_armed && slot.inflight() == 0);
    d.pause_reading(token, false);
    assert!(d.slots[token.index()].recv_armed, "resumed: armed again");
    // Paused and resumed before the cancel completes: armed again when the
    // cancelled recv ends.
    d.pause_reading(token, true);
    d.pause_reading(token, false);
    assert_eq!(cqe(&mut d, recv, -libc::ECANCELED, 0), []);
    assert!(d.slots[token.index()].recv_armed, "armed after the cancel");
    // A close of a paused connection waits for nothing more.
    d.pause_reading(token, true);
    assert_eq!(cqe(&mut d, recv, -libc::ECANCELED, 0), []);
    d.close(token);
    assert!(!d.slots.contains(token.index()), "freed: nothing in flight");
}
