//! The drivers on their own: adopted outgoing connections, zero-timeout
//! turns (a busy loop must still see completions), sends and closes,
//! vectored sends and lent replies of every shape, and several listeners,
//! each accepted connection naming its own.

use std::io::{IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use ringwave::driver::{build, Chosen, Completion, Part};

mod server;

use server::until;

/// The driver a backend's CLI name stands for.
fn chosen(backend: &str) -> Chosen {
    match backend {
        "uring" => Chosen::Uring,
        _ => Chosen::Poll,
    }
}

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
    until(|| {
        d.turn(Some(timeout), &mut |c| {
            if let Completion::Data(t, buf, _) = c {
                assert_eq!(t, token);
                got.extend_from_slice(buf);
            }
        })
        .unwrap();
        match got.len() {
            12.. => Ok(()),
            n => Err(format!(
                "{chosen}: {n} of 12 bytes, turns with timeout {timeout:?}"
            )),
        }
    });
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

both_backends!(zero_timeout_turns_see_completions, |b| {
    adopted_connection_round_trip(chosen(b), Duration::ZERO)
});

both_backends!(blocking_turns_see_completions, |b| {
    adopted_connection_round_trip(chosen(b), Duration::from_millis(50))
});

/// Two listeners in one driver: each accepted connection is reported with
/// the position of the listener it came through, and reads on it.
/// Writes of these part lengths, each part filled with its own byte: one
/// part, a few small ones (a header and a payload), small ones adding up to
/// exactly 4096 bytes and to one more, and large ones.
const SHAPES: &[&[usize]] = &[
    &[20],
    &[2, 20],
    &[0, 4, 1024, 0],
    &[2, 2046, 2, 2046],
    &[2, 2046, 2, 2047],
    &[1, 3, 5, 7, 11, 13, 17, 19, 23, 29],
    &[10, 16384],
    &[3000, 3000, 3000],
];

/// The parts of `shape` (`fill` numbers their bytes) and the bytes they
/// make in order.
fn shaped(shape: &[usize], fill: &mut u8) -> (Vec<Vec<u8>>, Vec<u8>) {
    let parts: Vec<Vec<u8>> = shape
        .iter()
        .map(|&n| {
            *fill = fill.wrapping_add(1);
            vec![*fill; n]
        })
        .collect();
    let whole = parts.concat();
    (parts, whole)
}

/// Every shape through `send_vectored` and through the reply lent with a
/// read: the peer reads each write's bytes whole and in order.
fn vectored_writes_arrive_in_order(chosen: Chosen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut d = build(chosen, Vec::new()).expect("driver");
    let token = d.adopt(client).expect("adopt");
    let mut fill = 0u8;
    for shape in SHAPES {
        let (parts, whole) = shaped(shape, &mut fill);
        let borrowed: Vec<Part<'_>> = parts.iter().map(|p| Part::borrowed(p)).collect();
        let sent = until(|| {
            let sent = d.send_vectored(token, &borrowed).unwrap();
            d.turn(Some(Duration::from_millis(1)), &mut |_| {}).unwrap();
            match sent {
                0 => Err(format!("{chosen}: {shape:?} not taken")),
                n => Ok(n),
            }
        });
        assert_eq!(sent, whole.len(), "{chosen}: {shape:?} taken in part");
        let mut got = vec![0u8; whole.len()];
        peer.read_exact(&mut got).unwrap();
        assert!(
            got == whole,
            "{chosen}: send_vectored {shape:?} arrived changed"
        );
    }
    // Lent replies: each read of one byte is answered from the completion,
    // once the write before it has completed (a reply is refused while the
    // connection has a send in flight).
    for shape in SHAPES {
        let (parts, whole) = shaped(shape, &mut fill);
        let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        until(|| match d.send_ready(token) {
            true => Ok(()),
            false => {
                d.turn(Some(Duration::from_millis(1)), &mut |_| {}).unwrap();
                Err(format!("{chosen}: send never completed"))
            }
        });
        peer.write_all(b"?").unwrap();
        let replied = until(|| {
            let mut replied = None;
            d.turn(Some(Duration::from_millis(1)), &mut |c| {
                if let Completion::Data(_, _, reply) = c {
                    replied = Some(reply.map(|r| r.reply(&slices).unwrap()));
                }
            })
            .unwrap();
            replied.ok_or_else(|| format!("{chosen}: no read for {shape:?}"))
        });
        let Some(n) = replied else {
            panic!("{chosen}: a read came without its socket lent");
        };
        assert_eq!(n, whole.len(), "{chosen}: reply {shape:?} taken in part");
        // A driver may queue the reply for its next turn's submission.
        d.turn(Some(Duration::ZERO), &mut |_| {}).unwrap();
        let mut got = vec![0u8; whole.len()];
        peer.read_exact(&mut got).unwrap();
        assert!(got == whole, "{chosen}: reply {shape:?} arrived changed");
    }
}

both_backends!(vectored_writes_arrive_in_order, |b| {
    vectored_writes_arrive_in_order(chosen(b))
});

/// An echo made the way the runtime makes one: each read changed in place
/// (as a payload is unmasked) and replied from the read buffer itself as
/// one run. io_uring sends such a reply of 4 KiB or more from its receive
/// buffer, kept out of the ring until the send completes, while the peer
/// keeps writing into the ring's other buffers: 300 writes of about 8 KiB
/// (more than the ring has buffers) come back whole, in order, as changed.
fn replies_from_the_read_buffer_arrive_as_changed(chosen: Chosen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (peer, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut d = build(chosen, Vec::new()).expect("driver");
    let token = d.adopt(client).expect("adopt");
    let chunks: Vec<Vec<u8>> = (0..300)
        .map(|r: usize| (0..8192 + r % 7).map(|i| (i * 31 + r) as u8).collect())
        .collect();
    let total: usize = chunks.iter().map(Vec::len).sum();
    let expected: Vec<u8> = chunks.concat().iter().map(|b| b ^ 0x5a).collect();
    let mut writer = peer.try_clone().unwrap();
    let writing = std::thread::spawn(move || {
        for c in &chunks {
            writer.write_all(c).unwrap();
        }
    });
    let mut reader = peer;
    let reading = std::thread::spawn(move || {
        let mut got = vec![0u8; total];
        reader.read_exact(&mut got).map(|_| got)
    });
    // Bytes the lent socket did not take: sent the usual way, in order.
    let mut pending: Vec<u8> = Vec::new();
    let mut echoed = 0;
    until(|| {
        d.turn(Some(Duration::from_millis(1)), &mut |c| {
            if let Completion::Data(_, buf, reply) = c {
                for b in buf.iter_mut() {
                    *b ^= 0x5a;
                }
                echoed += buf.len();
                let mut taken = 0;
                if pending.is_empty() {
                    let reply = reply.expect("socket lent");
                    taken = reply.reply(&[IoSlice::new(buf)]).unwrap();
                }
                pending.extend_from_slice(&buf[taken..]);
            }
        })
        .unwrap();
        if !pending.is_empty() && d.send_ready(token) {
            let n = d.send(token, &pending).unwrap();
            pending.drain(..n);
        }
        match echoed < total || !pending.is_empty() {
            false => Ok(()),
            true => Err(format!(
                "{chosen}: {echoed} of {total} bytes echoed, {} pending",
                pending.len()
            )),
        }
    });
    writing.join().unwrap();
    while !reading.is_finished() {
        d.turn(Some(Duration::from_millis(1)), &mut |_| {}).unwrap();
    }
    let got = reading
        .join()
        .unwrap()
        .expect("the peer read every byte back");
    let first_wrong = got.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(first_wrong, None, "{chosen}: the echo arrived changed");
}

both_backends!(replies_from_the_read_buffer_arrive_as_changed, |b| {
    replies_from_the_read_buffer_arrive_as_changed(chosen(b))
});

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
    until(|| {
        d.turn(Some(Duration::from_millis(50)), &mut |c| match c {
            Completion::Accepted(t, peer, listener) => {
                assert!(peer.is_some());
                listener_of.insert(t, listener);
            }
            Completion::Data(t, buf, _) => said.push((t, buf.to_vec())),
            _ => {}
        })
        .unwrap();
        match said.len() {
            3.. => Ok(()),
            _ => Err(format!("{chosen}: saw {said:?}")),
        }
    });
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

both_backends!(
    accepts_name_their_listener,
    |b| accepts_name_their_listener(chosen(b))
);

/// A connection half-closed and closed in one turn, while the next one
/// waits to be accepted: the next connection must not inherit the first
/// one's half-close. On io_uring with direct descriptors, a `SHUTDOWN`
/// looks up its fixed slot only when an io-wq worker runs it, and the
/// accept that runs in the same turn takes the slot the close just freed.
fn half_close_stays_with_its_connection(chosen: Chosen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut d = build(chosen, vec![listener]).expect("driver");
    for round in 0..200 {
        // Each client says its tag; wait for the server side to hear it.
        let hear = |d: &mut Box<dyn ringwave::driver::Driver>, tag: &[u8]| {
            until(|| {
                let mut token = None;
                d.turn(Some(Duration::from_millis(50)), &mut |c| {
                    if let Completion::Data(t, buf, _) = c {
                        if buf == tag {
                            token = Some(t);
                        }
                    }
                })
                .unwrap();
                token.ok_or_else(|| format!("{chosen} round {round}: no {tag:?}"))
            })
        };
        let mut a = TcpStream::connect(addr).unwrap();
        a.write_all(b"a").unwrap();
        let ta = hear(&mut d, b"a");
        // b is in the listener's queue before a is let go.
        let mut b = TcpStream::connect(addr).unwrap();
        b.write_all(b"b").unwrap();
        d.shutdown_write(ta);
        d.close(ta);
        let tb = hear(&mut d, b"b");
        until(|| {
            let sent = d.send(tb, b"ok").unwrap_or(0);
            d.turn(Some(Duration::from_millis(1)), &mut |_| {}).unwrap();
            match sent {
                0 => Err(format!("{chosen} round {round}: cannot send")),
                _ => Ok(()),
            }
        });
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 2];
        let mut got = 0;
        while got < 2 {
            // Keep the driver turning while the client waits.
            d.turn(Some(Duration::ZERO), &mut |_| {}).unwrap();
            match b.read(&mut buf[got..]) {
                Ok(0) => panic!(
                    "{chosen} round {round}: the second connection was half-closed \
                     (the first one's shutdown reached it)"
                ),
                Ok(n) => got += n,
                Err(e) => panic!("{chosen} round {round}: {e}"),
            }
        }
        assert_eq!(&buf, b"ok");
        // The first one did get its end.
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(a.read(&mut buf).unwrap_or(0), 0);
        d.close(tb);
    }
}

both_backends!(half_close_stays_with_its_connection, |b| {
    half_close_stays_with_its_connection(chosen(b))
});
