//! The request parser and upgrade checks, fed in pieces: never panics, and
//! splitting the input never changes the outcome.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringwave::proto::http::RequestParser;
use ringwave::proto::ws::handshake::UpgradeRequest;
use ringwave::proto::{DeflateConfig, Limits};

fn outcome(data: &[u8], step: usize) -> Option<Result<(String, Vec<u8>), u16>> {
    let limits = Limits { max_handshake_bytes: 2048, ..Limits::default() };
    let mut p = RequestParser::new(&limits);
    for chunk in data.chunks(step.max(1)) {
        match p.read(chunk) {
            Ok(None) => continue,
            Ok(Some(parsed)) => {
                let r = UpgradeRequest::from_http(parsed.request).map(|req| {
                    let d = req.negotiate_deflate(Some(&DeflateConfig::default()));
                    let resp = req.accept_response(req.choose_protocol(&["chat"]), d.as_ref());
                    (String::from_utf8(resp).expect("response is text"), parsed.rest)
                });
                return Some(match r {
                    Ok((resp, _)) => Ok((resp, Vec::new())),
                    Err(e) => {
                        let _ = e.response().to_http1(false);
                        Err(e.status)
                    }
                });
            }
            Err(e) => return Some(Err(e.status)),
        }
    }
    None
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let step = data[0] as usize % 16 + 1;
    let data = &data[1..];
    let whole = outcome(data, data.len().max(1));
    let split = outcome(data, step);
    assert_eq!(whole, split);
});
