//! The drivers on their own: adopted outgoing connections, zero-timeout
//! turns (a busy loop must still see completions), sends and closes, and
//! several listeners, each accepted connection naming its own.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use ringwave::driver::{build, Chosen, Completion};

fn adopted_connection_round_trip(chosen: Chosen, timeout: Duration) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    let mut d = build(chosen, Vec::new()).expect("driver");
    let token = d.adopt(client).expect("adopt");
    // One turn first, so the receive is armed and waiting in the kernel when
    // the data arrives (not completed inline at submission).
    d.turn(Some(Duration::from_millis(1)), &mut |_| {}).unwrap();
    peer.write_all(b"hello driver").unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 12 {
        assert!(
            Instant::now() < deadline,
            "{chosen}: no data after 5 s of turns with timeout {timeout:?}"
        );
        d.turn(Some(timeout), &mut |c| {
            if let Completion::Data(t, buf) = c {
                assert_eq!(t, token);
                got.extend_from_slice(buf);
            }
        })
        .unwrap();
    }
    assert_eq!(got, b"hello driver");
    // And the other way.
    let mut sent = 0;
    while sent == 0 {
        sent = d.send(token, b"hello peer").unwrap();
        d.turn(Some(Duration::from_millis(1)), &mut |_| {}).unwrap();
    }
    assert_eq!(sent, 10);
    let mut buf = [0u8; 10];
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    peer.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello peer");
    // Closing reaches the peer as EOF.
    d.close(token);
    for _ in 0..10 {
        d.turn(Some(Duration::from_millis(1)), &mut |_| {}).unwrap();
    }
    assert_eq!(peer.read(&mut buf).unwrap(), 0);
}

#[test]
fn uring_zero_timeout_turns_see_completions() {
    adopted_connection_round_trip(Chosen::Uring, Duration::ZERO);
}

#[test]
fn uring_blocking_turns_see_completions() {
    adopted_connection_round_trip(Chosen::Uring, Duration::from_millis(50));
}

#[test]
fn poll_zero_timeout_turns_see_completions() {
    adopted_connection_round_trip(Chosen::Poll, Duration::ZERO);
}

#[test]
fn poll_blocking_turns_see_completions() {
    adopted_connection_round_trip(Chosen::Poll, Duration::from_millis(50));
}

/// Two listeners in one driver: each accepted connection is reported with
/// the position of the listener it came through, and reads on it.
fn accepts_name_their_listener(chosen: Chosen) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let (addr_a, addr_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let mut d = build(chosen, vec![a, b]).expect("driver");
    let mut clients = Vec::new();
    for (addr, tag) in [(addr_b, b"B"), (addr_a, b"A"), (addr_b, b"B")] {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(tag).unwrap();
        clients.push(c);
    }
    // Which listener each token came through, and what each token said.
    let mut listener_of = std::collections::HashMap::new();
    let mut said = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while said.len() < 3 {
        assert!(Instant::now() < deadline, "{chosen}: saw {said:?}");
        d.turn(Some(Duration::from_millis(50)), &mut |c| match c {
            Completion::Accepted(t, peer, listener) => {
                assert!(peer.is_some());
                listener_of.insert(t, listener);
            }
            Completion::Data(t, buf) => said.push((t, buf.to_vec())),
            _ => {}
        })
        .unwrap();
    }
    for (t, bytes) in said {
        let want = if bytes == b"A" { 0 } else { 1 };
        assert_eq!(
            listener_of[&t],
            want,
            "{chosen}: {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn uring_accepts_name_their_listener() {
    accepts_name_their_listener(Chosen::Uring);
}

#[test]
fn poll_accepts_name_their_listener() {
    accepts_name_their_listener(Chosen::Poll);
}
