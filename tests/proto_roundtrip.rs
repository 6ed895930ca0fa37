//! Round trip property: random messages sent by one role are received
//! identically by the other, with and without permessage-deflate, whatever
//! the fragmentation and wherever the reads cut the stream.

mod common;
use common::*;
use proptest::prelude::*;
use ringwave::proto::{Conn, DeflateParams, Limits, Message, OpCode, Role};

#[derive(Debug, Clone)]
enum Item {
    Message(Message, /* fragment sizes */ Vec<usize>),
    Ping(Vec<u8>),
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        ".{0,300}".prop_map(Message::Text),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Message::Binary),
        // Large and compressible, past the 16-bit length form.
        (any::<u8>(), 60_000usize..70_000).prop_map(|(b, n)| Message::Binary(vec![b; n])),
        "[a-zα-ω😀]{1,40}".prop_map(|s| Message::Text(s.repeat(50))),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        8 => (message(), prop::collection::vec(1usize..200, 0..4)).prop_map(|(m, f)| Item::Message(m, f)),
        1 => prop::collection::vec(any::<u8>(), 0..=125).prop_map(Item::Ping),
    ]
}

fn deflate() -> impl Strategy<Value = Option<DeflateParams>> {
    prop::option::of((any::<bool>(), any::<bool>(), 9u8..=15, 9u8..=15).prop_map(
        |(a, b, sb, cb)| DeflateParams {
            server_no_context_takeover: a,
            client_no_context_takeover: b,
            server_max_window_bits: sb,
            client_max_window_bits: cb,
        },
    ))
}

/// Send `items` from `tx`; fragmented sends are uncompressed, the rest go
/// through `send` (compressed when deflate is on).
fn send_all(tx: &mut Conn, items: &[Item]) -> (Vec<u8>, Vec<Owned>) {
    let mut expect = Vec::new();
    for it in items {
        match it {
            Item::Ping(p) => {
                tx.ping(p).unwrap();
                expect.push(Owned::Ping(p.clone()));
            }
            Item::Message(m, frags) => {
                let bytes = m.as_bytes();
                if frags.is_empty() {
                    tx.send(m.kind(), bytes).unwrap();
                } else {
                    // Cut at the given sizes (they may cut UTF-8 sequences:
                    // only the whole message has to be valid).
                    let mut pos = 0;
                    let mut first = true;
                    let op = match m {
                        Message::Text(_) => OpCode::Text,
                        Message::Binary(_) => OpCode::Binary,
                    };
                    for &f in frags {
                        let end = (pos + f).min(bytes.len());
                        let o = if first { op } else { OpCode::Continuation };
                        tx.send_frame(o, false, &bytes[pos..end]).unwrap();
                        first = false;
                        pos = end;
                    }
                    let o = if first { op } else { OpCode::Continuation };
                    tx.send_frame(o, true, &bytes[pos..]).unwrap();
                }
                expect.push(match m {
                    Message::Text(s) => Owned::Text(s.clone()),
                    Message::Binary(b) => Owned::Binary(b.clone()),
                });
            }
        }
    }
    (tx.output().to_vec(), expect)
}

fn run(
    items: Vec<Item>,
    deflate: Option<DeflateParams>,
    cut_fracs: Vec<f64>,
    client_sends: bool,
    level: u32,
) {
    let limits = Limits::default();
    let d = deflate.map(|p| (p, level, 0));
    let (mut tx, mut rx) = if client_sends {
        (
            Conn::client_with_seed(limits, d, 42),
            Conn::new(Role::Server, limits, d),
        )
    } else {
        (
            Conn::new(Role::Server, limits, d),
            Conn::client_with_seed(limits, d, 42),
        )
    };
    let (wire, expect) = send_all(&mut tx, &items);
    let mut cuts: Vec<usize> = cut_fracs
        .iter()
        .map(|f| (f * wire.len() as f64) as usize)
        .collect();
    cuts.sort_unstable();
    let (events, err) = feed_split(&mut rx, &wire, &cuts);
    assert_eq!(err, None);
    assert_eq!(events.len(), expect.len());
    for (i, (got, want)) in events.iter().zip(&expect).enumerate() {
        assert!(got == want, "item {i} differs");
    }
    // The receiver answered every ping, and the sender understands the pongs.
    let pings = expect
        .iter()
        .filter(|e| matches!(e, Owned::Ping(_)))
        .count();
    let (answers, err) = feed(&mut tx, rx.output());
    assert_eq!(err, None);
    assert_eq!(answers.len(), pings);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(
        items in prop::collection::vec(item(), 1..8),
        deflate in deflate(),
        cuts in prop::collection::vec(0.0f64..1.0, 0..12),
        client_sends in any::<bool>(),
        level in 0u32..=9,
    ) {
        run(items, deflate, cuts, client_sends, level);
    }
}

#[test]
fn byte_at_a_time_with_deflate() {
    let p = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: true,
        server_max_window_bits: 12,
        client_max_window_bits: 15,
    };
    let items = vec![
        Item::Message(Message::Text("héllo ".repeat(30)), vec![]),
        Item::Ping(b"p".to_vec()),
        Item::Message(Message::Binary(vec![9; 1000]), vec![]),
        Item::Message(Message::Text(String::new()), vec![]),
    ];
    for client_sends in [true, false] {
        let limits = Limits::default();
        let mut tx = if client_sends {
            Conn::client_with_seed(limits, Some((p, 6, 0)), 3)
        } else {
            Conn::new(Role::Server, limits, Some((p, 6, 0)))
        };
        let mut rx = if client_sends {
            Conn::new(Role::Server, limits, Some((p, 6, 0)))
        } else {
            Conn::client_with_seed(limits, Some((p, 6, 0)), 3)
        };
        let (wire, expect) = send_all(&mut tx, &items);
        let cuts: Vec<usize> = (1..wire.len()).collect();
        let (events, err) = feed_split(&mut rx, &wire, &cuts);
        assert_eq!(err, None);
        assert_eq!(events, expect);
    }
}
