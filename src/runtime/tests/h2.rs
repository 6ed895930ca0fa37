//! HTTP/2 connections under the fake driver and clock: the handshake
//! deadline, frame deadlines, and a peer that does not read.

use std::time::Duration;

use super::Harness;
use crate::runtime::app::{EngineConfig, Settings};

/// The HTTP/2 frames in `b`: (type, payload), after the server's preface
/// (its SETTINGS is the first frame).
fn h2_frames(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 9 {
        let len = u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize;
        out.push((b[3], b[9..9 + len].to_vec()));
        b = &b[9 + len..];
    }
    out
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const H2_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
const H2_GOAWAY: u8 = 7;
/// A PING frame with 8 bytes of payload.
const H2_PING: &[u8] = &[0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];

fn h2_settings() -> Settings {
    Settings::new(EngineConfig {
        handshake_timeout: Duration::from_secs(2),
        ping_interval: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(20),
        ..EngineConfig::default()
    })
}

/// A harness with connection 0 accepted at 0.1 s and `first` read from it.
fn h2_connection(cfg: Settings, first: &[&[u8]]) -> Harness {
    let mut h = Harness::new(cfg);
    h.accept(0);
    h.turn(0.1);
    h.data(0, &first.concat());
    h
}

#[test]
fn a_trickled_http2_preface_is_closed_at_the_handshake_timeout() {
    let mut h = h2_connection(h2_settings(), &[&H2_PREFACE[..4]]);
    // One more byte every 0.4 s: none of them moves the deadline.
    let mut at = 0.1;
    for b in &H2_PREFACE[4..11] {
        at += 0.4;
        h.turn(at);
        h.data(0, &[*b]);
    }
    assert!(!h.closed(0), "closed before its timeout");
    h.turn(3.0);
    assert!(
        h.closed(0),
        "a trickled preface outlived the handshake timeout"
    );
    assert_eq!(
        h.core.stats.rejects[crate::metrics::REJECT_REASONS.len() - 1].get(),
        1,
        "counted as a timeout"
    );
}

#[test]
fn an_http2_handshake_in_time_lives_until_the_idle_timeout() {
    let mut h = h2_connection(h2_settings(), &[H2_PREFACE, H2_SETTINGS]);
    h.turn(3.0);
    assert!(!h.closed(0));
    let goaway = |h: &Harness| h2_frames(h.sent(0)).iter().any(|f| f.0 == H2_GOAWAY);
    h.turn(19.0);
    assert!(!goaway(&h), "GOAWAY before the idle timeout");
    h.turn(22.0);
    assert!(goaway(&h), "no GOAWAY after the idle timeout");
}

#[test]
fn frames_before_settings_or_a_trickled_frame_do_not_keep_http2_alive() {
    // Anything but SETTINGS after the preface is a connection error.
    let mut h = h2_connection(h2_settings(), &[H2_PREFACE, H2_PING]);
    h.turn(0.2);
    assert!(h2_frames(h.sent(0)).iter().any(|f| f.0 == H2_GOAWAY));
    // A PING's bytes but its last, one a second after the handshake: the
    // idle deadline, set by the last whole frame, does not move.
    let mut h = h2_connection(h2_settings(), &[H2_PREFACE, H2_SETTINGS]);
    for (i, b) in H2_PING[..H2_PING.len() - 1].iter().enumerate() {
        h.turn(1.0 + i as f64);
        h.data(0, &[*b]);
    }
    h.turn(22.0);
    assert!(
        h2_frames(h.sent(0)).iter().any(|f| f.0 == H2_GOAWAY),
        "a trickled frame kept the connection past its idle timeout"
    );
}

#[test]
fn an_http2_peer_that_does_not_read_its_acks_is_closed() {
    // 1,000 PINGs a second (the control-frame limit) whose acks are never
    // read: the output would grow 17 bytes a PING for as long as it lasts.
    let run = |reads: bool| {
        let mut cfg = h2_settings();
        cfg.engine.max_buffered = 10_000;
        let mut h = h2_connection(cfg, &[H2_PREFACE, H2_SETTINGS]);
        h.turn(0.2);
        if !reads {
            h.driver.room.insert(0, 0);
        }
        let second: Vec<u8> = H2_PING.repeat(1000);
        for s in 1..=10 {
            h.turn(s as f64);
            h.data(0, &second);
            h.turn(s as f64 + 0.5);
        }
        h
    };
    let h = run(false);
    assert!(h.closed(0), "a peer that never reads kept its connection");
    assert_eq!(h.core.stats.h2_errors[9].get(), 1, "counted as unread");
    let h = run(true);
    assert!(!h.closed(0), "a peer that reads was closed");
    let acks = h2_frames(h.sent(0)).iter().filter(|f| f.0 == 6).count();
    assert_eq!(acks, 10_000);
}
