//! Reads stop while a connection's unsent bytes are over its limit (a peer
//! that does not read what its own requests ask for), and resume once they
//! drain.

use super::{client_frame, Harness};
use crate::driver::{Completion, Token};
use crate::runtime::app::{EngineConfig, Settings};

#[test]
fn reads_stop_while_the_output_is_over_the_limit_and_resume_once_it_drains() {
    let mut h = Harness::new(Settings::new(EngineConfig {
        max_buffered: 1000,
        ..EngineConfig::default()
    }));
    h.open(0, 0.0);
    h.open(1, 0.0);
    // Connection 0's peer reads nothing and sends 20 pings of 100 bytes:
    // 20 pongs of 102 bytes wait, over the limit.
    h.driver.room.insert(0, 0);
    let pings: Vec<u8> = (0..20).flat_map(|_| client_frame(0x9, &[1; 100])).collect();
    h.data(0, &pings);
    h.data(1, &client_frame(0x9, &[1; 100]));
    h.turn(0.1);
    assert_eq!(
        h.driver.paused,
        vec![(0, true)],
        "only the one over its limit"
    );
    // More turns change nothing while it stays over.
    h.turn(0.2);
    assert_eq!(h.driver.paused, vec![(0, true)]);
    // Its peer reads: the pongs go, and so does the pause.
    h.driver.room.insert(0, usize::MAX);
    h.core
        .on_completion(Completion::Writable(Token(0)), h.clock);
    h.turn(0.3);
    assert_eq!(h.driver.paused, vec![(0, true), (0, false)]);
    assert_eq!(h.frames(0).len(), 20, "every pong went out");
}
