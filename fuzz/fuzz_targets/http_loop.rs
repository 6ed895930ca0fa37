//! One worker's whole loop fed by up to three peers at once: HTTP/1.1 heads
//! with publish bodies, the feed, SSE, HTTP/2 with bodies and WebSocket
//! streams, a peer that never reads, time passing. Each step is a byte
//! `h` naming connection `h & 3` and, by `h >> 2 & 3`: a read of the next
//! `(h >> 4)² + 1` bytes (0 and 1), its peer hanging up (2; on connection
//! 3: a wait of `h >> 4` seconds instead), or an accept (3; of a peer that
//! never reads when `h >> 4` is odd).
//! Never panics, never sends to a closed connection, and holds no more for
//! one connection than `Loop::held_limit` (see `ringwave::server::fuzzing`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringwave::server::fuzzing::Loop;

fuzz_target!(|data: &[u8]| {
    let mut l = Loop::new();
    l.accept(0, true);
    let mut rest = data;
    while let Some((&h, tail)) = rest.split_first() {
        rest = tail;
        let t = u32::from(h & 3);
        let n = usize::from(h >> 4);
        match h >> 2 & 3 {
            0 | 1 => {
                let (chunk, tail) = rest.split_at((n * n + 1).min(rest.len()));
                rest = tail;
                l.read(t, chunk);
            }
            2 if t == 3 => l.wait(n as u64),
            2 => l.hang_up(t),
            _ => l.accept(t, n % 2 == 0),
        }
    }
});
