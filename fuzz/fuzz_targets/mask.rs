//! The SIMD mask equals the byte-at-a-time reference at any offset.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringwave::proto::ws::mask::{apply_mask, apply_mask_bytewise};

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let key = [data[0], data[1], data[2], data[3]];
    let offset = data[4] as usize;
    let mut a = data[5..].to_vec();
    let mut b = a.clone();
    apply_mask(&mut a, key, offset);
    apply_mask_bytewise(&mut b, key, offset);
    assert_eq!(a, b);
});
