//! The slow-consumer policies: a subscriber whose socket takes nothing
//! while publications pass its `max_buffered` is closed (close), skipped
//! for, and told so when it asked (drop), or sent the newest per key once
//! it drains (conflate).

use super::{client_frame, close_code, Harness};
use crate::driver::{Completion, Token};
use crate::pubsub::Policy;
use crate::runtime::app::{EngineConfig, Settings};

/// A subscriber whose socket takes nothing, with `max_buffered` 1,000 and
/// 20 publications of 100 bytes; then the socket opens up.
fn slow_subscriber(policy: Policy, keyed: bool) -> Harness {
    let mut h = Harness::new(Settings::new(EngineConfig {
        max_buffered: 1000,
        slow_consumer: policy,
        ..EngineConfig::default()
    }));
    h.open(0, 0.0);
    h.driver.room.insert(0, 0);
    for i in 0..20u8 {
        let mut payload = vec![b'a' + i; 100];
        payload[0] = b'0' + i % 10;
        h.publish(0.5, keyed.then_some("k"), &payload);
        h.turn(0.5);
    }
    h
}

/// Let the slow subscriber's socket take everything again.
fn unstall(h: &mut Harness, secs: f64) {
    h.driver.room.insert(0, usize::MAX);
    h.core
        .on_completion(Completion::Writable(Token(0)), h.clock);
    h.turn(secs);
}

#[test]
fn the_close_policy_closes_a_slow_subscriber_with_1008() {
    let mut h = slow_subscriber(Policy::Close, false);
    assert_eq!(h.core.stats.slow_closes.get(), 1);
    unstall(&mut h, 0.6);
    let frames = h.frames(0);
    let (op, payload) = frames.last().unwrap();
    assert_eq!((*op, close_code(payload)), (0x8, 1008));
    // What was queued and not started was discarded with the close.
    assert!(frames.len() <= 11, "{} frames", frames.len());
    h.data(0, &client_frame(0x8, &1008u16.to_be_bytes()));
    h.turn(0.7);
    assert!(h.closed(0));
}

/// Two subscribers that do not read while 20 publications of 100 bytes
/// pass their `max_buffered` of 1,000, under the drop policy; connection
/// 0 asked for gap notices, connection 1 did not. Then both read, and one
/// more publication comes.
#[test]
fn a_subscriber_that_asked_is_told_what_the_drop_policy_skipped() {
    let mut h = Harness::new(Settings::new(EngineConfig {
        max_buffered: 1000,
        slow_consumer: Policy::Drop,
        ..EngineConfig::default()
    }));
    h.open_path(0, 0.0, "/gaps");
    h.open(1, 0.0);
    for t in [0, 1] {
        h.driver.room.insert(t, 0);
    }
    for i in 0..20u8 {
        h.publish(0.5, None, &[b'a' + i; 100]);
        h.turn(0.5);
    }
    for t in [0, 1] {
        h.driver.room.insert(t, usize::MAX);
        h.core
            .on_completion(Completion::Writable(Token(t)), h.clock);
    }
    h.turn(0.6);
    h.publish(0.7, None, b"after");
    h.turn(0.7);
    let asked = h.frames(0);
    let (last, notice) = (asked.len() - 1, asked.len() - 2);
    assert_eq!(asked[last].1, b"after");
    let gap: serde_json::Value = serde_json::from_slice(&asked[notice].1).expect("JSON");
    let delivered = notice as u64;
    assert!(delivered < 20, "nothing was dropped");
    assert_eq!(
        gap,
        serde_json::json!({"event": "gap", "topic": "t", "dropped": 20 - delivered}),
        "right before the next publication"
    );
    // The publications before it are the first ones, in order.
    for (i, f) in asked[..notice].iter().enumerate() {
        assert_eq!(f.1, [b'a' + i as u8; 100]);
    }
    // The other subscriber got the same publications and no notice.
    let other = h.frames(1);
    assert_eq!(other.len(), asked.len() - 1);
    assert_eq!(other[other.len() - 1].1, b"after");
    assert_eq!(h.core.stats.gap_notices.get(), 1);
    // Told once: the next publication comes alone.
    h.publish(0.8, None, b"again");
    h.turn(0.8);
    assert_eq!(h.frames(0).len(), asked.len() + 1);
}

#[test]
fn the_drop_policy_skips_publications_while_over_and_keeps_the_connection() {
    let mut h = slow_subscriber(Policy::Drop, false);
    let dropped = h.core.stats.slow_drops.get();
    assert!(dropped > 0, "nothing dropped");
    unstall(&mut h, 0.6);
    let got = h.frames(0);
    assert_eq!(
        got.len() as u64 + dropped,
        20,
        "each is delivered or dropped"
    );
    assert!(got.iter().all(|f| f.0 == 0x1), "no close: {got:?}");
    // Delivered in order, and the first ones (queued while under the limit).
    for (i, f) in got.iter().enumerate() {
        assert_eq!(f.1[1], b'a' + i as u8);
    }
    // Once drained, publications flow again.
    h.publish(0.7, None, b"after");
    h.turn(0.7);
    assert_eq!(h.frames(0).last().unwrap().1, b"after");
    assert!(!h.closed(0));
}

#[test]
fn the_conflate_policy_keeps_the_newest_per_key_and_sends_it_on_drain() {
    let mut h = slow_subscriber(Policy::Conflate, true);
    let held = h.core.stats.slow_conflated.get();
    assert!(held > 1, "nothing held back");
    assert_eq!(
        h.core.stats.slow_superseded.get(),
        held - 1,
        "one slot: key k"
    );
    unstall(&mut h, 0.6);
    let got = h.frames(0);
    // The queued ones, then only the newest of those held back.
    assert_eq!(got.len() as u64, 20 - held + 1);
    assert_eq!(got.last().unwrap().1[1], b'a' + 19, "the newest arrives");
    assert!(!h.closed(0));
}

/// Three subscribers and a publication bigger than a turn's send budget,
/// with a driver that holds what it takes (as io_uring holds a send's
/// buffer until the next turn reaps its completion): each turn writes to
/// one subscriber, the others stay queued and dirty for the next turns,
/// and all get it whole.
#[test]
fn a_turn_stops_taking_sends_past_its_budget_and_the_next_goes_on() {
    let big = crate::runtime::flush::TURN_SEND_BUDGET + 1;
    let mut h = Harness::new(Settings::new(EngineConfig {
        max_buffered: 4 * big,
        ..EngineConfig::default()
    }));
    for t in 0..3 {
        h.open(t, 0.0);
    }
    h.driver.hold = true;
    h.publish(0.5, None, &vec![b'x'; big]);
    let whole = |h: &Harness, t| h.frames(t).iter().any(|(_, p)| p.len() == big);
    for n in 1..=3 {
        h.turn(0.5);
        assert_eq!(
            (0..3).filter(|&t| whole(&h, t)).count(),
            n,
            "after turn {n}"
        );
        // /metrics shows what the driver holds.
        assert_eq!(h.core.stats.send_backlog.get(), h.driver.held as u64);
    }
    assert!(!h.core.conns.has_dirty());
}

/// Under the drop policy a turn's publications on a topic go to a
/// subscriber as one joined entry when they fit under its limit, and are
/// skipped whole when they do not (its queue keeps a few joined entries,
/// not one per publication up to the limit).
#[test]
fn the_drop_policy_skips_a_run_that_does_not_fit_whole() {
    let mut h = Harness::new(Settings::new(EngineConfig {
        max_buffered: 1000,
        slow_consumer: Policy::Drop,
        ..EngineConfig::default()
    }));
    h.open(0, 0.0);
    h.driver.room.insert(0, 0);
    for round in 0..2u8 {
        for i in 0..5u8 {
            h.publish(0.5, None, &[b'a' + 5 * round + i; 100]);
        }
        h.turn(0.5);
    }
    // Five of about 104 bytes queued; five more would pass 1,000.
    assert_eq!(h.core.stats.deliveries.get(), 5);
    assert_eq!(h.core.stats.slow_drops.get(), 5);
    unstall(&mut h, 0.6);
    let got: Vec<u8> = h.frames(0).iter().map(|(_, p)| p[0]).collect();
    assert_eq!(got, b"abcde");
}
