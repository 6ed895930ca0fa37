//! RFC 6455 §5.7 examples, byte for byte, decoded at every split point and
//! encoded exactly.

mod common;
use common::*;
use ringwave::proto::ws::frame::encode_frame;
use ringwave::proto::OpCode;

const HELLO_UNMASKED: &[u8] = &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
const HELLO_MASKED: &[u8] = &[
    0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];
const FRAGMENTED: &[u8] = &[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
const PING_UNMASKED: &[u8] = &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
const PONG_MASKED: &[u8] = &[
    0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];

/// Every way to cut `bytes` into two or three reads.
fn all_splits(bytes: &[u8]) -> Vec<Vec<usize>> {
    let mut v = vec![vec![]];
    for a in 0..=bytes.len() {
        for b in a..=bytes.len() {
            v.push(vec![a, b]);
        }
    }
    v
}

fn check_decode(client_side: bool, bytes: &[u8], expect: &[Owned]) {
    for cuts in all_splits(bytes) {
        let mut c = if client_side { client() } else { server() };
        let (events, err) = feed_split(&mut c, bytes, &cuts);
        assert_eq!(err, None, "cuts {cuts:?}");
        assert_eq!(events, expect, "cuts {cuts:?}");
    }
    // And one byte at a time.
    let mut c = if client_side { client() } else { server() };
    let cuts: Vec<usize> = (1..bytes.len()).collect();
    assert_eq!(feed_split(&mut c, bytes, &cuts).0, expect);
}

#[test]
fn single_frame_unmasked_text() {
    check_decode(true, HELLO_UNMASKED, &[Owned::Text("Hello".into())]);
    let mut s = server();
    s.send_text("Hello").unwrap();
    assert_eq!(s.output(), HELLO_UNMASKED);
}

#[test]
fn single_frame_masked_text() {
    check_decode(false, HELLO_MASKED, &[Owned::Text("Hello".into())]);
    let mut out = Vec::new();
    encode_frame(
        &mut out,
        OpCode::Text,
        true,
        false,
        Some([0x37, 0xfa, 0x21, 0x3d]),
        b"Hello",
    );
    assert_eq!(out, HELLO_MASKED);
}

#[test]
fn fragmented_unmasked_text() {
    check_decode(true, FRAGMENTED, &[Owned::Text("Hello".into())]);
    let mut s = server();
    s.send_frame(OpCode::Text, false, b"Hel").unwrap();
    s.send_frame(OpCode::Continuation, true, b"lo").unwrap();
    assert_eq!(s.output(), FRAGMENTED);
}

#[test]
fn unmasked_ping_and_masked_pong() {
    check_decode(true, PING_UNMASKED, &[Owned::Ping(b"Hello".to_vec())]);
    let mut s = server();
    s.ping(b"Hello").unwrap();
    assert_eq!(s.output(), PING_UNMASKED);

    check_decode(false, PONG_MASKED, &[Owned::Pong(b"Hello".to_vec())]);
    let mut out = Vec::new();
    encode_frame(
        &mut out,
        OpCode::Pong,
        true,
        false,
        Some([0x37, 0xfa, 0x21, 0x3d]),
        b"Hello",
    );
    assert_eq!(out, PONG_MASKED);
}

#[test]
fn ping_is_answered_with_the_same_payload() {
    let mut s = server();
    let (events, _) = feed(&mut s, &masked(0x9, true, b"Hello"));
    assert_eq!(events, vec![Owned::Ping(b"Hello".to_vec())]);
    assert_eq!(s.output(), &[0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
}

#[test]
fn binary_256_bytes_uses_16_bit_length() {
    let payload: Vec<u8> = (0..=255u8).collect();
    let mut frame = vec![0x82, 0x7e, 0x01, 0x00];
    frame.extend_from_slice(&payload);
    let mut c = client();
    assert_eq!(feed(&mut c, &frame).0, vec![Owned::Binary(payload.clone())]);
    let mut s = server();
    s.send_binary(&payload).unwrap();
    assert_eq!(s.output(), &frame[..]);
}

#[test]
fn binary_64k_uses_64_bit_length() {
    let payload = vec![0xabu8; 65536];
    let mut frame = vec![0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00];
    frame.extend_from_slice(&payload);
    for cuts in [vec![], vec![5], vec![10], vec![1000, 40_000]] {
        let mut c = client();
        assert_eq!(
            feed_split(&mut c, &frame, &cuts).0,
            vec![Owned::Binary(payload.clone())]
        );
    }
    let mut s = server();
    s.send_binary(&payload).unwrap();
    assert_eq!(s.output(), &frame[..]);
}
