//! A whole HTTP/2 server connection (`proto::h2::session`) on arbitrary
//! bytes after the preface and a SETTINGS frame, cut into reads at
//! arbitrary points, with every request answered: it never panics, its
//! output is always whole, valid frames, and once it has failed (GOAWAY)
//! it reads nothing more.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringwave::proto::h2::session::{Config, Event, Session};
use ringwave::proto::h2::{self, MAX_MAX_FRAME_SIZE, PREFACE};

fuzz_target!(|data: &[u8]| {
    let (cuts, body) = data.split_at(data.len().min(4));
    let cfg = Config {
        max_concurrent_streams: 8,
        max_header_list: 1024,
        max_header_block: 4096,
        max_control_per_tick: 64,
        max_resets_per_tick: 16,
        ..Config::default()
    };
    let mut s = Session::new(cfg);
    // The preface and an empty SETTINGS (RFC 9113 §3.4: anything else
    // first is a connection error), so the input goes past the handshake.
    let mut input = PREFACE.to_vec();
    input.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    input.extend_from_slice(body);
    let mut events = Vec::new();
    let mut pos = 0;
    let mut failed = false;
    for (i, &c) in cuts.iter().chain(std::iter::once(&255)).enumerate() {
        let end = if i == cuts.len() { input.len() } else { (pos + c as usize).min(input.len()) };
        events.clear();
        let r = s.read(&input[pos..end], i as u64 / 2, &mut events);
        pos = end;
        if failed {
            assert!(events.is_empty(), "read after GOAWAY");
        }
        failed |= r.is_err();
        let data = s.take_data();
        for ev in &events {
            match ev {
                Event::Request(req) => {
                    s.send_headers(req.stream, 200, &[("x", b"y")], false);
                    s.send_data(req.stream, &[0; 100], true);
                }
                Event::Data { range, stream, .. } => {
                    assert!(range.end <= data.len());
                    s.send_data(*stream, &data[range.clone()], false);
                }
                _ => {}
            }
        }
        s.restore_data(data);
    }
    // The output is whole frames that decode.
    let mut out = s.output();
    while !out.is_empty() {
        let (_, n) = h2::decode(out, MAX_MAX_FRAME_SIZE)
            .expect("valid frames")
            .expect("whole frames");
        out = &out[n..];
    }
});
