//! Failure paths of the io_uring driver that no peer can bring about on
//! purpose, reached by a failure injected into the driver.

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::{Sending, UringDriver};
use crate::driver::{Completion, Driver};

/// A short write whose rest cannot be queued (as when `io_uring_enter`
/// fails on a full submission queue) fails its connection: it is reported
/// Closed and keeps no send in flight, so the send's memory goes back
/// instead of staying with a slot that waits for a completion that will
/// never come.
#[test]
fn a_short_write_whose_rest_cannot_be_queued_fails_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    // The peer reads nothing: 64 MiB fit neither its window nor the
    // socket's send buffer, so the send completes short.
    let (_peer, _) = listener.accept().unwrap();
    let mut d = UringDriver::new(Vec::new()).unwrap();
    let token = d.adopt(client).unwrap();
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
    assert!(slot.dead);
    assert!(matches!(slot.sending, Sending::Idle));
}
