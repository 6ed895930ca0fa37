//! The connection state machine: every invalid-frame rule with its close code,
//! control frames inside fragmented messages, UTF-8 fail-fast inside a frame
//! split across reads, limits, and the close handshake.

mod common;
use common::*;
use ringwave::proto::ws::conn::PONG_BACKLOG;
use ringwave::proto::{
    CloseCode, CloseState, Conn, DeflateParams, Limits, MessageKind, OpCode, Role, SendError,
};

/// Feed `bytes` to a fresh server and expect the connection to fail with
/// `code`, with a close frame carrying `code` queued for the peer.
fn server_fails(bytes: &[u8], code: u16) {
    server_fails_with(server(), bytes, code)
}

fn server_fails_with(mut s: Conn, bytes: &[u8], code: u16) {
    let (_, err) = feed(&mut s, bytes);
    let err = err.unwrap_or_else(|| panic!("expected failure {code} for {bytes:02x?}"));
    assert_eq!(err.code.0, code, "{err}");
    assert_eq!(last_close(s.output()), Some(code));
    assert_eq!(s.close_state(), CloseState::Closed);
    // Nothing more is read.
    let (events, err) = feed(&mut s, &masked(0x1, true, b"more"));
    assert!(events.is_empty() && err.is_none());
}

fn deflate_server() -> Conn {
    let p = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    Conn::new(Role::Server, Limits::default(), Some((p, 1, 0)))
}

#[test]
fn reserved_opcodes_are_1002() {
    for op in (0x3..=0x7).chain(0xB..=0xF) {
        server_fails(&masked(op, true, b""), 1002);
    }
}

#[test]
fn reserved_bits_without_extension_are_1002() {
    for rsv in 1..8 {
        server_fails(&raw_frame(0x1, true, rsv, Some([1, 2, 3, 4]), b"x"), 1002);
    }
}

#[test]
fn rsv1_with_deflate_only_on_first_data_frame() {
    // RSV2/3 stay invalid with deflate.
    server_fails_with(
        deflate_server(),
        &raw_frame(0x2, true, 0b010, Some([1, 2, 3, 4]), b""),
        1002,
    );
    // RSV1 on a control frame.
    server_fails_with(
        deflate_server(),
        &raw_frame(0x9, true, 0b100, Some([1, 2, 3, 4]), b""),
        1002,
    );
    // RSV1 on a continuation frame.
    let mut b = masked(0x1, false, b"a");
    b.extend(raw_frame(0x0, true, 0b100, Some([1, 2, 3, 4]), b"b"));
    server_fails_with(deflate_server(), &b, 1002);
}

#[test]
fn mask_direction_is_enforced() {
    server_fails(&raw_frame(0x1, true, 0, None, b"unmasked"), 1002);
    let mut c = client();
    let (_, err) = feed(&mut c, &masked(0x1, true, b"masked"));
    assert_eq!(err.unwrap().code.0, 1002);
}

#[test]
fn control_frame_rules() {
    // Fragmented control frames.
    for op in [0x8, 0x9, 0xA] {
        server_fails(&masked(op, false, b""), 1002);
    }
    // Control frames with more than 125 bytes.
    for op in [0x8, 0x9, 0xA] {
        server_fails(&masked(op, true, &[b'a'; 126]), 1002);
    }
    // 125 is fine.
    let mut s = server();
    let (events, err) = feed(&mut s, &masked(0x9, true, &[b'a'; 125]));
    assert!(err.is_none());
    assert_eq!(events, vec![Owned::Ping(vec![b'a'; 125])]);
}

#[test]
fn length_top_bit_is_1002() {
    let mut b = vec![0x82, 0xff];
    b.extend_from_slice(&(1u64 << 63).to_be_bytes());
    b.extend_from_slice(&[1, 2, 3, 4]);
    server_fails(&b, 1002);
}

#[test]
fn fragmentation_rules() {
    // Continuation with nothing to continue.
    server_fails(&masked(0x0, true, b"x"), 1002);
    // A new message inside a fragmented one.
    let mut b = masked(0x1, false, b"a");
    b.extend(masked(0x2, true, b"b"));
    server_fails(&b, 1002);
    let mut b = masked(0x2, false, b"a");
    b.extend(masked(0x1, false, b"b"));
    server_fails(&b, 1002);
}

#[test]
fn control_frames_inside_fragmented_messages() {
    let mut b = masked(0x1, false, b"Hel");
    b.extend(masked(0x9, true, b"ping"));
    b.extend(masked(0x0, false, b"lo, "));
    b.extend(masked(0xA, true, b"pong"));
    b.extend(masked(0x0, true, "wörld".as_bytes()));
    let expect = vec![
        Owned::Ping(b"ping".to_vec()),
        Owned::Pong(b"pong".to_vec()),
        Owned::Text("Hello, wörld".into()),
    ];
    for a in 0..=b.len() {
        for step in [1, 3, 7] {
            let cuts: Vec<usize> = (a..b.len()).step_by(step).collect();
            let mut s = server();
            let (events, err) = feed_split(&mut s, &b, &cuts);
            assert_eq!(err, None, "cuts {cuts:?}");
            assert_eq!(events, expect, "cuts {cuts:?}");
            // The ping was answered.
            assert_eq!(&s.output()[..6], &[0x8a, 0x04, b'p', b'i', b'n', b'g']);
        }
    }
}

/// `release_idle` between reads, at every split point: what is in progress
/// (a partial header, a fragmented message, a frame spanning reads, a split
/// control frame) survives it, and the messages come out whole.
#[test]
fn release_idle_keeps_what_is_in_progress() {
    let mut b = masked(0x1, false, b"Hel");
    b.extend(masked(0x9, true, b"ping"));
    b.extend(masked(0x0, true, b"lo"));
    b.extend(masked(0x2, true, &[5u8; 300]));
    b.extend(masked(0x1, true, b"after"));
    let expect = vec![
        Owned::Ping(b"ping".to_vec()),
        Owned::Text("Hello".into()),
        Owned::Binary(vec![5u8; 300]),
        Owned::Text("after".into()),
    ];
    for k in 0..=b.len() {
        let mut s = server();
        s.release_idle();
        let (mut events, err) = feed(&mut s, &b[..k]);
        assert_eq!(err, None);
        s.release_idle();
        let (rest, err) = feed(&mut s, &b[k..]);
        assert_eq!(err, None, "split at {k}");
        events.extend(rest);
        assert_eq!(events, expect, "split at {k}");
        s.release_idle();
        // Still a working connection.
        let (events, err) = feed(&mut s, &masked(0x1, true, b"again"));
        assert_eq!((events, err), (vec![Owned::Text("again".into())], None));
    }
}

#[test]
fn invalid_utf8_is_1007() {
    server_fails(&masked(0x1, true, &[0xce, 0xba, 0xff]), 1007);
    // Across fragments: a sequence cut between frames stays valid...
    let mut b = masked(0x1, false, &[0xce]);
    b.extend(masked(0x0, true, &[0xba]));
    let mut s = server();
    assert_eq!(feed(&mut s, &b).0, vec![Owned::Text("κ".into())]);
    // ...but one left incomplete at the end of the message is not.
    let mut b = masked(0x1, false, b"ok");
    b.extend(masked(0x0, true, &[0xce]));
    server_fails(&b, 1007);
}

#[test]
fn utf8_fails_fast_inside_a_frame_split_across_reads() {
    // A 1000-byte text frame whose 11th byte is invalid; only the first 30
    // bytes of the frame arrive in the first read.
    let mut payload = vec![b'a'; 1000];
    payload[10] = 0xff;
    let frame = masked(0x1, true, &payload);
    let mut s = server();
    let mut first = frame[..30].to_vec();
    let err = s
        .read(&mut first)
        .expect_err("fails before the frame is complete");
    assert_eq!(err.code.0, 1007);
    assert_eq!(last_close(s.output()), Some(1007));

    // The same inside a fragmented message, the bad byte in the middle of the
    // second fragment, cut into reads of 5 bytes.
    let mut payload2 = vec![b'b'; 500];
    payload2[200] = 0xc0; // never valid
    let mut b = masked(0x1, false, b"start");
    b.extend(masked(0x0, true, &payload2));
    let mut s = server();
    let mut consumed = 0;
    let mut failed_at = None;
    for chunk in b.chunks(5) {
        let mut c = chunk.to_vec();
        match s.read(&mut c) {
            Ok(_) => consumed += chunk.len(),
            Err(e) => {
                assert_eq!(e.code.0, 1007);
                failed_at = Some(consumed);
                break;
            }
        }
    }
    let at = failed_at.expect("must fail");
    assert!(at < b.len() - 200, "failed at byte {at}, not at the end");
}

#[test]
fn frame_and_message_limits_are_1009() {
    let limits = Limits {
        max_frame_payload: 100,
        max_message_size: 150,
        ..Limits::default()
    };
    let fresh = || Conn::new(Role::Server, limits, None);
    // One frame over the frame limit: refused from its header alone.
    let frame = masked(0x2, true, &[0; 101]);
    let mut s = fresh();
    let mut head = frame[..8].to_vec();
    assert_eq!(s.read(&mut head).unwrap_err().code.0, 1009);
    // Fragments within the frame limit that add up past the message limit.
    let mut b = masked(0x2, false, &[0; 100]);
    b.extend(masked(0x0, true, &[0; 51]));
    server_fails_with(fresh(), &b, 1009);
    // Exactly at the limits is fine.
    let mut b = masked(0x2, false, &[0; 100]);
    b.extend(masked(0x0, true, &[0; 50]));
    let mut s = fresh();
    assert_eq!(feed(&mut s, &b).0, vec![Owned::Binary(vec![0; 150])]);
}

#[test]
fn limits_past_4_gib_count_as_4_gib() {
    let limits = Limits {
        max_frame_payload: usize::MAX,
        max_message_size: usize::MAX,
        ..Limits::default()
    };
    // A header announcing 2^32 payload bytes: over the clamped limit, refused
    // from the header alone.
    let mut head = vec![0x82, 0xFF];
    head.extend_from_slice(&(1u64 << 32).to_be_bytes());
    head.extend_from_slice(&[1, 2, 3, 4]);
    let mut s = Conn::new(Role::Server, limits, None);
    assert_eq!(s.read(&mut head).unwrap_err().code.0, 1009);
    // One byte less is taken, and its payload counted in 32 bits.
    let mut head = vec![0x82, 0xFF];
    head.extend_from_slice(&(u32::MAX as u64).to_be_bytes());
    head.extend_from_slice(&[1, 2, 3, 4]);
    let mut s = Conn::new(Role::Server, limits, None);
    assert_eq!(s.read(&mut head).unwrap().0, head.len());
}

#[test]
fn decompression_bomb_is_1009() {
    let p = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let limits = Limits {
        max_message_size: 64 * 1024,
        ..Limits::default()
    };
    // A client that compresses 1 MiB of zeros into a few KiB.
    let mut c = Conn::client_with_seed(Limits::default(), Some((p, 9, 0)), 1);
    c.send_binary(&vec![0u8; 1 << 20]).unwrap();
    let wire = c.output().to_vec();
    assert!(wire.len() < 10_000);
    let s = Conn::new(Role::Server, limits, Some((p, 1, 0)));
    server_fails_with(s, &wire, 1009);
}

#[test]
fn close_frame_payload_rules() {
    server_fails(&masked(0x8, true, &[0x03]), 1002);
    server_fails(&masked(0x8, true, &1005u16.to_be_bytes()), 1002);
    server_fails(&masked(0x8, true, &999u16.to_be_bytes()), 1002);
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend_from_slice(&[0xff, 0xfe]);
    server_fails(&masked(0x8, true, &p), 1007);
}

#[test]
fn close_handshake_initiated_by_peer() {
    let mut s = server();
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend_from_slice(b"bye");
    let mut bytes = masked(0x8, true, &p);
    bytes.extend(masked(0x1, true, b"after close"));
    let (events, err) = feed(&mut s, &bytes);
    assert!(err.is_none());
    assert_eq!(events, vec![Owned::Close(Some(1000), "bye".into())]);
    assert_eq!(s.output(), &[0x88, 0x02, 0x03, 0xe8]);
    assert_eq!(s.send_text("late"), Err(SendError::Closing));
    assert!(!s.is_done());
    let n = s.output().len();
    s.advance_output(n);
    assert!(s.is_done());

    // An empty close is answered with an empty close.
    let mut s = server();
    let (events, _) = feed(&mut s, &masked(0x8, true, b""));
    assert_eq!(events, vec![Owned::Close(None, String::new())]);
    assert_eq!(s.output(), &[0x88, 0x00]);

    // Every valid code is echoed.
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        let mut s = server();
        let (events, _) = feed(&mut s, &masked(0x8, true, &code.to_be_bytes()));
        assert_eq!(events, vec![Owned::Close(Some(code), String::new())]);
        assert_eq!(last_close(s.output()), Some(code));
    }
}

#[test]
fn close_handshake_initiated_by_us() {
    let mut s = server();
    s.close(code(1001), "going away").unwrap();
    assert_eq!(s.close_state(), CloseState::CloseSent);
    assert_eq!(last_close(s.output()), Some(1001));
    assert_eq!(s.send_binary(b"x"), Err(SendError::Closing));
    assert_eq!(s.ping(b""), Err(SendError::Closing));
    let out_len = s.output().len();
    // Data still arriving before the peer's close is delivered; the peer's
    // close completes the handshake without a second close frame.
    let mut bytes = masked(0x2, true, b"in flight");
    bytes.extend(masked(0x8, true, &1001u16.to_be_bytes()));
    let (events, err) = feed(&mut s, &bytes);
    assert!(err.is_none());
    assert_eq!(
        events,
        vec![
            Owned::Binary(b"in flight".to_vec()),
            Owned::Close(Some(1001), String::new())
        ]
    );
    assert_eq!(s.output().len(), out_len, "no second close frame");
    assert_eq!(s.close_state(), CloseState::Closed);
}

#[test]
fn send_side_rules() {
    let mut s = server();
    assert_eq!(s.ping(&[0; 126]), Err(SendError::ControlTooLong));
    assert_eq!(
        s.send_frame(OpCode::Ping, false, b""),
        Err(SendError::ControlTooLong)
    );
    // Client frames are masked with a fresh key each time.
    let mut c = client();
    c.send_text("same").unwrap();
    c.send_text("same").unwrap();
    let out = c.output().to_vec();
    assert_eq!(out.len(), 2 * (2 + 4 + 4));
    assert_eq!(out[1], 0x84);
    assert_ne!(out[2..6], out[12..16], "keys differ");
    let mut s = server();
    assert_eq!(
        feed(&mut s, &out).0,
        vec![Owned::Text("same".into()), Owned::Text("same".into())]
    );
}

#[test]
fn a_header_for_sending_the_payload_as_it_lies_is_what_send_would_queue() {
    for len in [0, 1, 125, 126, 300, 65_535, 65_536, 100_000] {
        let payload = vec![9; len];
        let mut queued = server();
        queued.send_binary(&payload).unwrap();
        let mut s = server();
        let h = s
            .sender()
            .header_for(MessageKind::Binary, len)
            .unwrap()
            .expect("a server sends the bytes as they are");
        let mut frame = Vec::new();
        h.encode_into(&mut frame);
        frame.extend_from_slice(&payload);
        assert_eq!(frame, queued.output(), "len {len}");
        assert!(s.output().is_empty(), "nothing queued");
    }
    // The bytes would change on the way: a client masks them, deflate
    // compresses them.
    assert_eq!(client().sender().header_for(MessageKind::Text, 4), Ok(None));
    assert_eq!(
        deflate_server().sender().header_for(MessageKind::Text, 4),
        Ok(None)
    );
    // Refused as send is, once closing.
    let mut s = server();
    s.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(
        s.sender().header_for(MessageKind::Text, 4),
        Err(SendError::Closing)
    );
}

#[test]
fn output_is_consumed_in_parts() {
    let mut s = server();
    s.send_binary(&[1; 300]).unwrap();
    s.send_text("tail").unwrap();
    let total = s.buffered_output();
    assert_eq!(total, 4 + 300 + 2 + 4);
    s.advance_output(100);
    assert_eq!(s.buffered_output(), total - 100);
    s.advance_output(total);
    assert_eq!(s.buffered_output(), 0);
    assert!(s.output().is_empty());
}

#[test]
fn compressed_text_faults_are_reported_in_stream_order_at_any_split() {
    // Found by the conn_server fuzz target: a compressed text frame whose
    // inflated bytes turn invalid UTF-8 before the deflate data turns
    // corrupt. Whole or in pieces, the first fault (invalid UTF-8) decides.
    let data = [
        0xc1, 0x8b, 0x37, 0xfa, 0x21, 0x3d, 0xfd, 0xb2, 0xec, 0xe4, 0xfe, 0xad, 0xe9, 0xfd, 0xb2,
        0xec, 0xf4,
    ];
    let expect = {
        let mut s = deflate_server();
        let (_, err) = feed(&mut s, &data);
        (err, s.output().to_vec())
    };
    assert_eq!(expect.0.as_ref().map(|e| e.code.0), Some(1007));
    for step in 1..data.len() {
        let mut s = deflate_server();
        let cuts: Vec<usize> = (step..data.len()).step_by(step).collect();
        let (_, err) = feed_split(&mut s, &data, &cuts);
        assert_eq!((err, s.output().to_vec()), expect, "step {step}");
    }
}

#[test]
fn past_the_backlog_unsent_pongs_are_replaced_by_the_latest() {
    // A burst of pings is answered in full.
    let mut s = server();
    let mut pings = Vec::new();
    for i in 0..10u8 {
        pings.extend(masked(0x9, true, &[i; 9]));
    }
    feed(&mut s, &pings);
    let want: Vec<u8> = (0..10u8)
        .flat_map(|i| raw_frame(0xA, true, 0, None, &[i; 9]))
        .collect();
    assert_eq!(s.output(), want);
    // A peer that pings and never reads: past PONG_BACKLOG unsent bytes each
    // new pong replaces the unsent one before it (RFC 6455 §5.5.3), so the
    // output stops growing, and ends with the latest ping's pong.
    let mut s = server();
    let mut pings = Vec::new();
    for i in 0..2000u32 {
        pings.extend(masked(0x9, true, &[i as u8; 125]));
    }
    let (_, err) = feed(&mut s, &pings);
    assert!(err.is_none());
    let pong = raw_frame(0xA, true, 0, None, &[1999u32 as u8; 125]);
    assert!(
        s.output().len() <= PONG_BACKLOG + 2 * pong.len(),
        "{}",
        s.output().len()
    );
    assert!(s.output().ends_with(&pong));
    // A pong that has started going out stays; the next one follows it.
    let len = s.output().len();
    s.advance_output(len - 1);
    feed(&mut s, &masked(0x9, true, b"b"));
    let mut want = pong[pong.len() - 1..].to_vec();
    want.extend(raw_frame(0xA, true, 0, None, b"b"));
    assert_eq!(s.output(), want);
}
