//! The server connection fed arbitrary bytes in arbitrary pieces, with and
//! without deflate: never panics, and the events do not depend on where the
//! reads cut the stream.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringwave::proto::{Conn, DeflateParams, Event, Limits, Role};

#[derive(Debug, PartialEq)]
enum Seen {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>),
    Error(u16),
}

fn run(data: &[u8], step: usize, deflate: bool) -> (Vec<Seen>, Vec<u8>) {
    let limits = Limits { max_frame_payload: 1 << 16, max_message_size: 1 << 17, ..Limits::default() };
    let p = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let mut conn = Conn::new(Role::Server, limits, deflate.then_some((p, 1, 0)));
    let mut seen = Vec::new();
    'outer: for chunk in data.chunks(step) {
        let mut buf = chunk.to_vec();
        let mut pos = 0;
        while pos < buf.len() {
            match conn.read(&mut buf[pos..]) {
                Ok((n, ev)) => {
                    pos += n;
                    match ev {
                        Some(Event::Text(s)) => seen.push(Seen::Text(s.to_string())),
                        Some(Event::Binary(b)) => seen.push(Seen::Binary(b.to_vec())),
                        Some(Event::Ping(b)) => seen.push(Seen::Ping(b.to_vec())),
                        Some(Event::Pong(b)) => seen.push(Seen::Pong(b.to_vec())),
                        Some(Event::Close { code, .. }) => seen.push(Seen::Close(code.map(|c| c.0))),
                        None => break,
                    }
                }
                Err(e) => {
                    seen.push(Seen::Error(e.code.0));
                    break 'outer;
                }
            }
        }
    }
    (seen, conn.output().to_vec())
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let step = data[0] as usize % 64 + 1;
    let deflate = data[1] & 1 == 1;
    let data = &data[2..];
    let whole = run(data, data.len().max(1), deflate);
    let split = run(data, step, deflate);
    assert_eq!(whole, split);
});
