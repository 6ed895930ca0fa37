//! Streaming UTF-8 validation agrees with the standard library wherever the
//! input is cut.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringwave::proto::ws::utf8::Utf8Validator;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let step = data[0] as usize % 7 + 1;
    let data = &data[1..];
    let mut v = Utf8Validator::new();
    let streamed = data.chunks(step).all(|c| v.feed(c).is_ok()) && v.finish().is_ok();
    assert_eq!(streamed, std::str::from_utf8(data).is_ok());
});
