//! A WebSocket whose life ends at a set moment (a token's expiry, a
//! lifetime): closed with its code at that moment, not before, whatever
//! traffic keeps it alive meanwhile.

use std::time::Duration;

use super::{client_frame, close_code, Harness, UPGRADE};
use crate::proto::CloseCode;
use crate::runtime::app::{EngineConfig, Settings, TOKEN_EXPIRED};

#[test]
fn a_websocket_is_closed_when_its_token_expires_and_not_before() {
    let mut h = Harness::new(Settings::new(EngineConfig {
        ping_interval: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(120),
        ..EngineConfig::default()
    }));
    // Connection 0's token expires 3 s after its upgrade at 0.5 s; 1 lives on.
    h.accept(0);
    let expiring = String::from_utf8_lossy(UPGRADE).replace("GET /x ", "GET /ends-in-3s ");
    h.data(0, expiring.as_bytes());
    h.turn(0.5);
    assert!(h.sent(0).starts_with(b"HTTP/1.1 101"));
    h.driver.sent.remove(&0);
    h.open(1, 0.5);
    // Traffic moves the keep-alive deadline, never past the end.
    for t in [1.0, 2.0, 3.0, 3.4] {
        h.data(0, &client_frame(0x9, b"still here"));
        h.turn(t);
    }
    assert!(
        h.frames(0).iter().all(|f| f.0 == 0xA),
        "closed before its token expired: {:?}",
        h.frames(0)
    );
    h.turn(4.0);
    h.turn(5.0);
    let last = h.frames(0).pop().expect("a close frame");
    assert_eq!((last.0, close_code(&last.1)), (0x8, TOKEN_EXPIRED.0));
    assert_eq!(&last.1[2..], b"no valid token");
    assert!(
        h.frames(1).is_empty(),
        "the other connection was told something"
    );
    // The close handshake completes: the connection goes, with its code.
    h.data(0, &client_frame(0x8, &TOKEN_EXPIRED.0.to_be_bytes()));
    h.turn(5.5);
    assert!(h.closed(0));
    assert_eq!(
        h.seen.borrow().closes,
        vec![(0, CloseCode(TOKEN_EXPIRED.0))]
    );
    assert!(!h.closed(1));
}
