//! The logs: retention, recovery, snapshots, a broker's offsets, order.

use super::*;
use crate::proto::MessageKind;

fn history(count: usize, secs: Option<u64>) -> History {
    History::new(HistoryConfig {
        default: None,
        topics: [(
            "t".to_string(),
            Retention {
                count,
                max_age: secs.map(Duration::from_secs),
            },
        )]
        .into(),
    })
}

fn publish(h: &History, key: Option<&str>, body: &str, now: Instant) -> Arc<Publication> {
    h.record(
        Publication::new("t", key, MessageKind::Text, body.as_bytes()),
        now,
    )
}

fn offsets(v: &[Arc<Publication>]) -> Vec<u64> {
    v.iter().map(|p| p.position().unwrap().offset).collect()
}

#[test]
fn set_retention_changes_amounts_but_not_which_topics_keep() {
    let h = history(5, None);
    let t0 = Instant::now();
    let ps: Vec<_> = (0..5)
        .map(|i| publish(&h, None, &i.to_string(), t0))
        .collect();
    let epoch = ps[0].position().unwrap().epoch;
    let from = |offset| h.recover("t", Position { epoch, offset }, 6, t0).recovered;
    assert!(from(1));
    let new = |topic: &str, count| HistoryConfig {
        default: None,
        topics: [(
            topic.to_string(),
            Retention {
                count,
                max_age: None,
            },
        )]
        .into(),
    };
    // Down to 2: trimmed at once, 4 and 5 kept.
    h.set_retention(&new("t", 2));
    assert_eq!(h.retention("t").map(|r| r.count), Some(2));
    assert!(!from(2) && from(3));
    // A topic the new configuration adds gets no history; one it leaves
    // out keeps what it had.
    h.set_retention(&new("u", 9));
    assert!(!h.keeps("u"));
    assert_eq!(h.retention("t").map(|r| r.count), Some(2));
    assert_eq!(offsets(&[publish(&h, None, "x", t0)]), [6]);
}

#[test]
fn offsets_count_up_and_the_log_keeps_count_and_age() {
    let h = history(3, Some(10));
    let t0 = Instant::now();
    let ps: Vec<_> = (0..5)
        .map(|i| publish(&h, None, &i.to_string(), t0))
        .collect();
    assert_eq!(offsets(&ps), [1, 2, 3, 4, 5]);
    let epoch = ps[0].position().unwrap().epoch;
    // Up to 5 delivered (next 6): from 2 recovers 3..=5, all kept.
    let r = h.recover("t", Position { epoch, offset: 2 }, 6, t0);
    assert!(r.recovered);
    assert_eq!(offsets(&r.replay), [3, 4, 5]);
    // From 1: offset 2 is gone (count 3 keeps 3..=5).
    assert!(
        !h.recover("t", Position { epoch, offset: 1 }, 6, t0)
            .recovered
    );
    // Another epoch, or a position never reached.
    assert!(
        !h.recover(
            "t",
            Position {
                epoch: epoch ^ 1,
                offset: 4
            },
            6,
            t0
        )
        .recovered
    );
    assert!(
        !h.recover("t", Position { epoch, offset: 9 }, 6, t0)
            .recovered
    );
    // 11 s later every entry is too old: 4 cannot be recovered...
    let later = t0 + Duration::from_secs(11);
    assert!(
        !h.recover("t", Position { epoch, offset: 4 }, 6, later)
            .recovered
    );
    // ...but the newest position still is (nothing was missed).
    assert!(
        h.recover("t", Position { epoch, offset: 5 }, 6, later)
            .recovered
    );
    // The payload is the queues' own: one allocation, shared.
    assert!(Arc::strong_count(&ps[4]) >= 2);
}

#[test]
fn a_worker_behind_replays_only_what_it_delivered() {
    let h = history(100, None);
    let now = Instant::now();
    let ps: Vec<_> = (0..6)
        .map(|i| publish(&h, None, &i.to_string(), now))
        .collect();
    let epoch = ps[0].position().unwrap().epoch;
    // This worker delivered 1..=3; 4..=6 are on their way to it.
    let r = h.recover("t", Position { epoch, offset: 1 }, 4, now);
    assert_eq!(
        (r.recovered, offsets(&r.replay), r.floor),
        (true, vec![2, 3], 0)
    );
    // A subscriber ahead of this worker (at 5): nothing replayed, and
    // live 4 and 5 are skipped for it.
    let r = h.recover("t", Position { epoch, offset: 5 }, 4, now);
    assert_eq!((r.recovered, r.replay.len(), r.floor), (true, 0, 5));
}

#[test]
fn order_delivers_each_offset_once_in_order() {
    let h = history(100, None);
    let now = Instant::now();
    let ps: Vec<_> = (0..5)
        .map(|i| publish(&h, None, &i.to_string(), now))
        .collect();
    let mut o = Order::default();
    let mut out = Vec::new();
    for i in [1, 0, 3, 0, 2, 4] {
        o.admit(&ps[i], &mut out);
    }
    assert_eq!(offsets(&out), [1, 2, 3, 4, 5]);
    assert_eq!(o.next("t"), 6);
    assert_eq!(o.next("other"), 1);
}

#[test]
fn snapshot_is_the_newest_per_key_delivered_here() {
    let h = history(2, None);
    let now = Instant::now();
    for (k, v) in [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4"), ("b", "5")] {
        publish(&h, Some(k), v, now);
    }
    let snap = h.snapshot("t", 6);
    let got: Vec<_> = snap
        .iter()
        .map(|p| (p.key().unwrap().to_string(), p.payload().to_vec()))
        .collect();
    assert_eq!(
        got,
        [
            ("a".into(), b"3".to_vec()),
            ("c".into(), b"4".to_vec()),
            ("b".into(), b"5".to_vec())
        ]
    );
    // Delivered only up to 4 here: b's newest (5) comes live.
    assert_eq!(offsets(&h.snapshot("t", 5)), [3, 4]);
}

#[test]
fn topics_past_the_log_limit_keep_no_history() {
    let h = History::new(HistoryConfig {
        default: Some(Retention {
            count: 1,
            max_age: None,
        }),
        topics: HashMap::new(),
    });
    for i in 0..MAX_LOGS {
        assert!(h.position(&format!("t{i}"), 1).is_some());
    }
    let p = h.record(
        Publication::new("one-more", None, MessageKind::Text, b"x"),
        Instant::now(),
    );
    assert_eq!(p.position(), None);
    assert_eq!(h.position("one-more", 1), None);
    assert!(h.position("t7", 1).is_some(), "the old ones keep theirs");
}

fn relayed(topic: &str, body: &str, epoch: u32, offset: u64) -> Arc<Publication> {
    let p = Publication::new(topic, Some(body), MessageKind::Text, body.as_bytes());
    p.set_relayed_position(Position { epoch, offset });
    p
}

#[test]
fn a_brokers_log_is_served_once_its_backfill_is_in() {
    let h = History::with_source(history(100, None).config().clone(), true);
    let now = Instant::now();
    assert!(h.relays("t") && !h.relays("other"));
    // Backfill 5..=7 (the stream no longer held 1..=4): not served yet.
    for o in 5..=7 {
        assert!(h.adopt(relayed("t", &o.to_string(), 9, o), now).is_some());
    }
    assert_eq!(h.start("t"), None, "no position while the backfill runs");
    h.open("t", 9, 8);
    assert_eq!(h.start("t"), Some((9, 8)));
    assert_eq!(
        h.broker_next("t"),
        Some(Position {
            epoch: 9,
            offset: 8
        })
    );
    // Live 8, 9; a redelivery of 9 is dropped.
    for o in [8, 9] {
        assert!(h.adopt(relayed("t", "live", 9, o), now).is_some());
    }
    assert!(h.adopt(relayed("t", "again", 9, 9), now).is_none());
    // A worker that delivered up to 9 (next 10): from 5 recovers 6..=9;
    // from 3 does not (4 was never here).
    let r = h.recover(
        "t",
        Position {
            epoch: 9,
            offset: 5,
        },
        10,
        now,
    );
    assert_eq!((r.recovered, offsets(&r.replay)), (true, vec![6, 7, 8, 9]));
    assert!(
        !h.recover(
            "t",
            Position {
                epoch: 9,
                offset: 3
            },
            10,
            now
        )
        .recovered
    );
    // A jump (the stream lost 10..=11 meanwhile) is a gap: nothing
    // before it recovers across it.
    assert!(h.adopt(relayed("t", "after", 9, 12), now).is_some());
    assert!(
        !h.recover(
            "t",
            Position {
                epoch: 9,
                offset: 8
            },
            13,
            now
        )
        .recovered
    );
    assert!(
        h.recover(
            "t",
            Position {
                epoch: 9,
                offset: 12
            },
            13,
            now
        )
        .recovered
    );
    // The stream made anew: another epoch, served again once opened.
    assert!(h.adopt(relayed("t", "new", 4, 1), now).is_some());
    assert_eq!(h.start("t"), None);
    h.open("t", 4, 2);
    assert_eq!(h.start("t"), Some((4, 2)));
    assert!(
        !h.recover(
            "t",
            Position {
                epoch: 9,
                offset: 12
            },
            2,
            now
        )
        .recovered
    );
}

#[test]
fn order_takes_a_brokers_offsets_from_where_they_start() {
    let mut o = Order::default();
    let mut out = Vec::new();
    // Starts at 40, skips ahead over a gap, drops a repeat.
    for (e, off) in [(9, 40), (9, 41), (9, 45), (9, 44), (9, 46)] {
        o.admit(&relayed("t", "x", e, off), &mut out);
    }
    assert_eq!(offsets(&out), [40, 41, 45, 46]);
    assert_eq!(o.next_in("t", 9), Some(47));
    assert_eq!(o.next_in("t", 4), None);
    // Another epoch starts over.
    out.clear();
    o.admit(&relayed("t", "x", 4, 1), &mut out);
    assert_eq!((offsets(&out), o.next_in("t", 4)), (vec![1], Some(2)));
}

#[test]
fn retention_parses_count_and_seconds() {
    assert_eq!(
        "100,30".parse::<Retention>(),
        Ok(Retention {
            count: 100,
            max_age: Some(Duration::from_secs(30))
        })
    );
    assert_eq!("5".parse::<Retention>().map(|r| r.max_age), Ok(None));
    assert!("0".parse::<Retention>().is_err());
    assert!("x".parse::<Retention>().is_err());
    assert!("5,-1".parse::<Retention>().is_err());
    assert_eq!(
        Position::parse_id("0000abcd:42"),
        Some(Position {
            epoch: 0xabcd,
            offset: 42
        })
    );
    assert_eq!(Position::parse_id("abcd:42"), None);
    assert_eq!(
        Position {
            epoch: 0xabcd,
            offset: 42
        }
        .to_string(),
        "0000abcd:42"
    );
}
