//! permessage-deflate inflation of arbitrary bytes in arbitrary pieces: never
//! panics, never grows past the limit; and compress→inflate is the identity.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringwave::proto::ws::deflate::PerMessageDeflate;
use ringwave::proto::DeflateParams;

const LIMIT: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let params = DeflateParams {
        server_no_context_takeover: data[0] & 1 == 1,
        client_no_context_takeover: data[0] & 2 == 2,
        server_max_window_bits: 9 + (data[0] >> 2) % 7,
        client_max_window_bits: 15,
    };
    let step = data[1] as usize % 32 + 1;
    let data = &data[2..];

    // Arbitrary input: bounded output, errors are values.
    let mut rx = PerMessageDeflate::new(&params, false, 1, 0);
    let mut out = Vec::new();
    let mut ok = true;
    for chunk in data.chunks(step) {
        if rx.inflate(chunk, &mut out, LIMIT).is_err() {
            ok = false;
            break;
        }
        assert!(out.len() <= LIMIT + 1);
    }
    if ok {
        let _ = rx.finish_message(&mut out, LIMIT);
    }
    assert!(out.len() <= LIMIT + 1);

    // Round trip: two messages, to exercise context takeover.
    let mut tx = PerMessageDeflate::new(&params, true, 6, 0);
    let mut rx = PerMessageDeflate::new(&params, false, 1, 0);
    for msg in [data, &data[data.len() / 2..]] {
        let c = tx.compress_message(msg).to_vec();
        let mut out = Vec::new();
        for chunk in c.chunks(step) {
            rx.inflate(chunk, &mut out, 1 << 20).expect("own output inflates");
        }
        rx.finish_message(&mut out, 1 << 20).expect("own output inflates");
        assert_eq!(out, msg);
    }
});
