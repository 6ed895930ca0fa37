//! The HTTP/2 frame codec on arbitrary bytes: it never panics, always
//! makes progress, agrees with itself wherever the input is cut, and what
//! it decodes re-encodes to frames that decode the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringwave::proto::h2::{self, Frame, DEFAULT_MAX_FRAME_SIZE};

fn frames(mut data: &[u8]) -> (Vec<Frame<'_>>, Option<h2::FrameError>, usize) {
    let mut out = Vec::new();
    let mut used = 0;
    loop {
        match h2::decode(data, DEFAULT_MAX_FRAME_SIZE) {
            Ok(Some((f, n))) => {
                assert!(n >= h2::HEAD_LEN && n <= data.len());
                out.push(f);
                data = &data[n..];
                used += n;
            }
            Ok(None) => return (out, None, used),
            Err(e) => return (out, Some(e), used),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (all, err, used) = frames(data);
    // A prefix decodes to a prefix of the frames.
    let cut = data.len() / 2;
    let (some, _, _) = frames(&data[..cut]);
    assert!(some.len() <= all.len());
    assert_eq!(&all[..some.len()], &some[..]);
    if err.is_none() {
        assert!(data.len() - used < h2::HEAD_LEN + DEFAULT_MAX_FRAME_SIZE as usize);
    }
    for f in &all {
        let mut again = Vec::new();
        match *f {
            Frame::Data { stream, end_stream, data, flow_len } => {
                assert!(data.len() as u32 <= flow_len);
                let fl = if end_stream { h2::flag::END_STREAM } else { 0 };
                h2::encode_frame(&mut again, h2::kind::DATA, fl, stream, data);
            }
            Frame::Settings { ack, params } => {
                assert_eq!(params.len() % 6, 0);
                let fl = if ack { h2::flag::ACK } else { 0 };
                h2::encode_frame(&mut again, h2::kind::SETTINGS, fl, 0, params);
            }
            Frame::Ping { ack, data } => {
                let fl = if ack { h2::flag::ACK } else { 0 };
                h2::encode_frame(&mut again, h2::kind::PING, fl, 0, &data);
            }
            Frame::GoAway { last_stream, code, debug } => {
                h2::encode_goaway(&mut again, last_stream, code, debug);
            }
            Frame::WindowUpdate { stream, increment } => {
                h2::encode_window_update(&mut again, stream, increment);
            }
            _ => continue,
        }
        let (back, e, _) = frames(&again);
        assert!(e.is_none());
        match (f, back.as_slice()) {
            (Frame::Data { stream, end_stream, data, .. }, [Frame::Data { stream: s2, end_stream: e2, data: d2, .. }]) => {
                assert_eq!((stream, end_stream, data), (s2, e2, d2));
            }
            (_, [b]) => assert_eq!(f, b),
            other => panic!("{other:?}"),
        }
    }
});
