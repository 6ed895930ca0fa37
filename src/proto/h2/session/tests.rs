use super::*;
use crate::proto::h2::{encode_frame, flag, kind, MAX_MAX_FRAME_SIZE};

/// A client: frames out, the server's frames back.
struct Client {
    enc: loona_hpack::Encoder<'static>,
    dec: loona_hpack::Decoder<'static>,
    s: Session,
    events: Vec<Event>,
}

/// A frame the server sent, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Settings {
        ack: bool,
        params: Vec<(u16, u32)>,
    },
    Ping(bool),
    GoAway(ErrorCode),
    Window {
        stream: u32,
        increment: u32,
    },
    Rst {
        stream: u32,
        code: ErrorCode,
    },
    Headers {
        stream: u32,
        end: bool,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
    },
    Data {
        stream: u32,
        end: bool,
        data: Vec<u8>,
    },
}

impl Client {
    fn new(cfg: Config) -> Client {
        let mut c = Client {
            enc: loona_hpack::Encoder::new(),
            dec: loona_hpack::Decoder::new(),
            s: Session::new(cfg),
            events: Vec::new(),
        };
        let mut hello = PREFACE.to_vec();
        encode_settings(&mut hello, &[]);
        c.send(&hello).unwrap();
        let out = c.take();
        assert!(
            matches!(&out[0], Out::Settings { ack: false, params } if params.contains(&(setting::ENABLE_CONNECT_PROTOCOL, 1)))
        );
        assert!(out.contains(&Out::Settings {
            ack: true,
            params: vec![]
        }));
        c
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.s.read(bytes, 0, &mut self.events)
    }

    fn block(&mut self, fields: &[(&str, &str)]) -> Vec<u8> {
        self.enc
            .encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    fn get(&mut self, stream: u32, path: &str) -> Vec<u8> {
        let block = self.block(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "x"),
        ]);
        let mut b = Vec::new();
        encode_frame(
            &mut b,
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            stream,
            &block,
        );
        b
    }

    /// What the server wrote since the last call.
    fn take(&mut self) -> Vec<Out> {
        let bytes = self.s.output().to_vec();
        self.s.advance_output(bytes.len());
        let mut pos = 0;
        let mut out = Vec::new();
        while let Some((f, n)) = decode(&bytes[pos..], MAX_MAX_FRAME_SIZE).unwrap() {
            pos += n;
            out.push(match f {
                Frame::Settings { ack, params } => Out::Settings {
                    ack,
                    params: settings(params).collect(),
                },
                Frame::Ping { ack, .. } => Out::Ping(ack),
                Frame::GoAway { code, .. } => Out::GoAway(code),
                Frame::WindowUpdate { stream, increment } => Out::Window { stream, increment },
                Frame::RstStream { stream, code } => Out::Rst { stream, code },
                Frame::Headers {
                    stream,
                    end_stream,
                    block,
                    ..
                } => Out::Headers {
                    stream,
                    end: end_stream,
                    fields: self.dec.decode(block).unwrap(),
                },
                Frame::Data {
                    stream,
                    end_stream,
                    data,
                    ..
                } => Out::Data {
                    stream,
                    end: end_stream,
                    data: data.to_vec(),
                },
                other => panic!("unexpected {other:?}"),
            });
        }
        assert_eq!(pos, bytes.len());
        out
    }
}

/// The `:status` of `out`, which must be a response head on `stream` with
/// END_STREAM as `end`.
fn head_status(out: &Out, stream: u32, end: bool) -> &[u8] {
    match out {
        Out::Headers {
            stream: s,
            end: e,
            fields,
        } if *s == stream && *e == end => &fields[0].1,
        other => panic!("expected HEADERS on {stream} (end {end}), got {other:?}"),
    }
}

#[test]
fn a_get_is_a_request_and_its_answer_frames() {
    let mut c = Client::new(Config::default());
    let get = c.get(1, "/healthz?x=1");
    // Split mid-frame: the session buffers the rest.
    c.send(&get[..5]).unwrap();
    assert!(c.events.is_empty());
    c.send(&get[5..]).unwrap();
    let Event::Request(req) = c.events.remove(0) else {
        panic!()
    };
    assert_eq!(
        (
            req.method.as_str(),
            req.path.as_str(),
            req.authority.as_str()
        ),
        ("GET", "/healthz?x=1", "x")
    );
    assert!(req.end_stream && req.protocol.is_none());
    c.s.send_headers(1, 200, &[("content-type", b"text/plain")], false);
    assert_eq!(c.s.send_data(1, b"ok\n", true), 3);
    let out = c.take();
    assert_eq!(head_status(&out[0], 1, false), b"200");
    assert_eq!(
        out[1],
        Out::Data {
            stream: 1,
            end: true,
            data: b"ok\n".to_vec()
        }
    );
    assert_eq!(c.s.open_streams(), 0);
    // Ping is answered.
    let mut ping = Vec::new();
    encode_frame(&mut ping, kind::PING, 0, 0, &[0; 8]);
    c.send(&ping).unwrap();
    assert_eq!(c.take(), vec![Out::Ping(true)]);
}

#[test]
fn extended_connect_carries_its_protocol() {
    let mut c = Client::new(Config::default());
    let block = c.block(&[
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https"),
        (":path", "/chat"),
        (":authority", "x"),
        ("sec-websocket-version", "13"),
    ]);
    let mut b = Vec::new();
    encode_frame(&mut b, kind::HEADERS, flag::END_HEADERS, 1, &block);
    encode_frame(&mut b, kind::DATA, 0, 1, b"abc");
    c.send(&b).unwrap();
    let Event::Request(req) = &c.events[0] else {
        panic!()
    };
    assert_eq!(req.protocol.as_deref(), Some("websocket"));
    assert!(!req.end_stream);
    assert_eq!(
        req.headers,
        vec![("sec-websocket-version".into(), b"13".to_vec())]
    );
    let Event::Data {
        stream: 1,
        range,
        end_stream: false,
    } = c.events[1].clone()
    else {
        panic!()
    };
    assert_eq!(&c.s.take_data()[range], b"abc");
}

#[test]
fn sending_waits_for_the_peers_window() {
    let mut c = Client::new(Config::default());
    let mut s = Vec::new();
    encode_settings(&mut s, &[(setting::INITIAL_WINDOW_SIZE, 10)]);
    let get = c.get(1, "/");
    s.extend_from_slice(&get);
    c.send(&s).unwrap();
    c.take();
    c.s.send_headers(1, 200, &[], false);
    assert_eq!(c.s.send_data(1, &[7; 25], true), 10);
    assert_eq!(c.s.send_capacity(1), 0);
    assert_eq!(c.s.send_data(1, &[7; 15], true), 0);
    let mut w = Vec::new();
    encode_window_update(&mut w, 1, 100);
    assert!(!c.s.take_windows_opened());
    c.send(&w).unwrap();
    assert!(c.s.take_windows_opened());
    assert!(!c.s.take_windows_opened());
    assert_eq!(c.s.send_data(1, &[7; 15], true), 15);
    let out = c.take();
    assert_eq!(out.len(), 3);
    assert_eq!(
        out[2],
        Out::Data {
            stream: 1,
            end: true,
            data: vec![7; 15]
        }
    );
}

#[test]
fn data_past_the_window_is_a_flow_control_error() {
    let cfg = Config {
        initial_window: 65_535,
        ..Config::default()
    };
    let mut c = Client::new(cfg);
    let block = c.block(&[(":method", "POST"), (":scheme", "http"), (":path", "/p")]);
    let mut b = Vec::new();
    encode_frame(&mut b, kind::HEADERS, flag::END_HEADERS, 1, &block);
    for _ in 0..5 {
        encode_frame(&mut b, kind::DATA, 0, 1, &[0; 16_000]);
    }
    // The stream's window refills as it is read (a reader that keeps up):
    // the connection's is the one passed.
    let e = c.send(&b).unwrap_err();
    assert_eq!(e.code, ErrorCode::FLOW_CONTROL_ERROR);
    assert!(c
        .take()
        .contains(&Out::GoAway(ErrorCode::FLOW_CONTROL_ERROR)));
    assert!(c.s.finished());
}

#[test]
fn a_continuation_flood_costs_the_connection() {
    let mut c = Client::new(Config::default());
    let block = c.block(&[(":method", "GET"), (":scheme", "http"), (":path", "/")]);
    let mut b = Vec::new();
    encode_frame(&mut b, kind::HEADERS, 0, 1, &block);
    for _ in 0..100 {
        encode_frame(&mut b, kind::CONTINUATION, 0, 1, &[0x40; 1000]);
    }
    let e = c.send(&b).unwrap_err();
    assert_eq!(e.code, ErrorCode::ENHANCE_YOUR_CALM);
    // Another frame between HEADERS and CONTINUATION is a protocol error.
    let mut c = Client::new(Config::default());
    let mut b = Vec::new();
    encode_frame(&mut b, kind::HEADERS, 0, 1, &block);
    encode_frame(&mut b, kind::PING, 0, 0, &[0; 8]);
    assert_eq!(c.send(&b).unwrap_err().code, ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn rapid_reset_is_counted_per_tick() {
    let mut c = Client::new(Config::default());
    let mut b = Vec::new();
    let mut stream = 1;
    for _ in 0..150 {
        b.extend_from_slice(&c.get(stream, "/"));
        encode_frame(
            &mut b,
            kind::RST_STREAM,
            0,
            stream,
            &ErrorCode::CANCEL.0.to_be_bytes(),
        );
        stream += 2;
    }
    c.send(&b).unwrap();
    assert_eq!(
        c.events
            .iter()
            .filter(|e| matches!(e, Event::Reset { .. }))
            .count(),
        150
    );
    // The next tick has a fresh allowance; 250 in one tick is a flood.
    let mut b = Vec::new();
    for _ in 0..250 {
        b.extend_from_slice(&c.get(stream, "/"));
        encode_frame(
            &mut b,
            kind::RST_STREAM,
            0,
            stream,
            &ErrorCode::CANCEL.0.to_be_bytes(),
        );
        stream += 2;
    }
    let e = c.s.read(&b, 1, &mut c.events).unwrap_err();
    assert_eq!(e.code, ErrorCode::ENHANCE_YOUR_CALM);
}

#[test]
fn ping_and_settings_floods_cost_the_connection() {
    for k in [kind::PING, kind::SETTINGS] {
        let mut c = Client::new(Config::default());
        let mut b = Vec::new();
        for _ in 0..1001 {
            let payload: &[u8] = if k == kind::PING { &[0; 8] } else { &[] };
            encode_frame(&mut b, k, 0, 0, payload);
        }
        assert_eq!(c.send(&b).unwrap_err().code, ErrorCode::ENHANCE_YOUR_CALM);
        // The answers queued before the limit are bounded by it.
        assert!(c.s.output().len() < 1001 * 17 + 100);
    }
}

#[test]
fn streams_past_the_limit_are_refused_and_large_heads_get_431() {
    let cfg = Config {
        max_concurrent_streams: 2,
        max_header_list: 200,
        ..Config::default()
    };
    let mut c = Client::new(cfg);
    let mut b = Vec::new();
    for stream in [1, 3, 5] {
        b.extend_from_slice(&c.get(stream, "/"));
    }
    c.send(&b).unwrap();
    assert_eq!(
        c.events
            .iter()
            .filter(|e| matches!(e, Event::Request(_)))
            .count(),
        2
    );
    assert!(c.take().contains(&Out::Rst {
        stream: 5,
        code: ErrorCode::REFUSED_STREAM
    }));
    let big = "v".repeat(300);
    let block = c.block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        ("x-big", &big),
    ]);
    let mut b = Vec::new();
    encode_frame(
        &mut b,
        kind::HEADERS,
        flag::END_HEADERS | flag::END_STREAM,
        7,
        &block,
    );
    c.events.clear();
    c.s.send_headers(1, 204, &[], true);
    c.send(&b).unwrap();
    assert_eq!(
        c.events,
        vec![Event::Refused {
            violation: Violation::HeaderList,
            reason: "header list too large"
        }]
    );
    let out = c.take();
    assert_eq!(head_status(&out[1], 7, true), b"431");
    // The connection goes on.
    let get = c.get(9, "/");
    c.send(&get).unwrap();
    assert!(matches!(c.events.last(), Some(Event::Request(r)) if r.stream == 9));
}

#[test]
fn malformed_requests_are_reset_not_the_connection() {
    let mut c = Client::new(Config::default());
    for fields in [
        &[(":method", "GET"), (":path", "/")][..],
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            ("connection", "close"),
        ][..],
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            ("Upper", "x"),
        ][..],
        &[
            (":method", "GET"),
            (":protocol", "websocket"),
            (":scheme", "http"),
            (":path", "/"),
        ][..],
    ] {
        let block = c.block(fields);
        let stream = c.s.last_stream.max(1) + if c.s.last_stream == 0 { 0 } else { 2 };
        let mut b = Vec::new();
        encode_frame(
            &mut b,
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            stream,
            &block,
        );
        c.events.clear();
        c.send(&b).unwrap();
        assert!(
            matches!(
                c.events[..],
                [Event::Refused {
                    violation: Violation::Malformed,
                    ..
                }]
            ),
            "{fields:?}"
        );
        assert_eq!(
            c.take(),
            vec![Out::Rst {
                stream,
                code: ErrorCode::PROTOCOL_ERROR
            }]
        );
    }
    // HEADERS on a stream this side reset is ignored (trailers may have
    // been in flight, RFC 9113 §5.1 "closed")...
    let get = c.get(1, "/");
    c.send(&get).unwrap();
    assert!(c.take().is_empty());
    // ...but on a stream both sides ended it is a connection error.
    let n = c.s.last_stream + 2;
    let get = c.get(n, "/");
    c.send(&get).unwrap();
    c.s.send_headers(n, 204, &[], true);
    c.take();
    assert_eq!(c.send(&get).unwrap_err().code, ErrorCode::STREAM_CLOSED);
}

#[test]
fn a_wrong_preface_and_a_smaller_peer_table() {
    let mut s = Session::new(Config::default());
    let e = s
        .read(b"GET / HTTP/1.1\r\n", 0, &mut Vec::new())
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::PROTOCOL_ERROR);
    // A peer with no dynamic table gets a size update first.
    let mut c = Client::new(Config::default());
    let mut b = Vec::new();
    encode_settings(&mut b, &[(setting::HEADER_TABLE_SIZE, 0)]);
    b.extend_from_slice(&c.get(1, "/"));
    c.send(&b).unwrap();
    c.take();
    c.s.send_headers(1, 200, &[("x-a", b"1")], true);
    let bytes = c.s.output().to_vec();
    assert_eq!(bytes[9], 0x20, "a table size update to 0 leads the block");
    let mut d = loona_hpack::Decoder::new();
    d.set_max_allowed_table_size(0);
    let Some((Frame::Headers { block, .. }, _)) = decode(&bytes, MAX_MAX_FRAME_SIZE).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        d.decode(block).unwrap()[1],
        (b"x-a".to_vec(), b"1".to_vec())
    );
}

/// A stream's state, as the table below sets it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Idle,
    Open,
    HalfClosedRemote,
    HalfClosedLocal,
    /// Both sides sent END_STREAM.
    ClosedEnded,
    /// The peer sent RST_STREAM.
    ClosedByPeer,
    /// This side sent RST_STREAM.
    ClosedByUs,
}

/// A frame the peer sends on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum In {
    Data,
    DataEnd,
    Trailers,
    Priority,
    PrioritySelf,
    Rst,
    Window,
    Continuation,
}

impl Client {
    /// Stream 1 in `state` (a server never reserves one: push is off).
    fn in_state(state: St) -> Client {
        let mut c = Client::new(Config::default());
        let post = |c: &mut Client, end: bool| {
            let block = c.block(&[
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/p"),
                (":authority", "x"),
            ]);
            let mut b = Vec::new();
            let f = flag::END_HEADERS | if end { flag::END_STREAM } else { 0 };
            encode_frame(&mut b, kind::HEADERS, f, 1, &block);
            c.send(&b).unwrap();
        };
        match state {
            St::Idle => {}
            St::Open | St::ClosedByPeer | St::ClosedByUs => post(&mut c, false),
            St::HalfClosedRemote | St::ClosedEnded => post(&mut c, true),
            St::HalfClosedLocal => post(&mut c, false),
        }
        match state {
            St::HalfClosedLocal | St::ClosedEnded => c.s.send_headers(1, 204, &[], true),
            St::ClosedByPeer => {
                let mut b = Vec::new();
                encode_frame(
                    &mut b,
                    kind::RST_STREAM,
                    0,
                    1,
                    &ErrorCode::CANCEL.0.to_be_bytes(),
                );
                c.send(&b).unwrap();
            }
            St::ClosedByUs => c.s.reset(1, ErrorCode::CANCEL),
            _ => {}
        }
        c.take();
        c.events.clear();
        c
    }

    /// Send `frame` on stream 1: the frames the server sent back, or the
    /// connection error's code.
    fn frame_on_1(&mut self, frame: In) -> Answer {
        let mut b = Vec::new();
        match frame {
            In::Data => encode_frame(&mut b, kind::DATA, 0, 1, b"abc"),
            In::DataEnd => encode_frame(&mut b, kind::DATA, flag::END_STREAM, 1, b"abc"),
            In::Trailers => {
                let block = self.block(&[("x-trailer", "1")]);
                encode_frame(
                    &mut b,
                    kind::HEADERS,
                    flag::END_HEADERS | flag::END_STREAM,
                    1,
                    &block,
                );
            }
            In::Priority => encode_frame(&mut b, kind::PRIORITY, 0, 1, &[0, 0, 0, 3, 15]),
            In::PrioritySelf => encode_frame(&mut b, kind::PRIORITY, 0, 1, &[0, 0, 0, 1, 15]),
            In::Rst => encode_frame(
                &mut b,
                kind::RST_STREAM,
                0,
                1,
                &ErrorCode::CANCEL.0.to_be_bytes(),
            ),
            In::Window => encode_frame(&mut b, kind::WINDOW_UPDATE, 0, 1, &100u32.to_be_bytes()),
            In::Continuation => encode_frame(&mut b, kind::CONTINUATION, flag::END_HEADERS, 1, &[]),
        }
        match self.send(&b) {
            Ok(()) => Ok(self.take()),
            Err(e) => Err(e.code),
        }
    }
}

/// The frames the server sent back, or its connection error's code.
type Answer = Result<Vec<Out>, ErrorCode>;

#[test]
fn every_frame_in_every_stream_state_as_rfc_9113_says() {
    use ErrorCode as E;
    let rst = |code| Ok(vec![Out::Rst { stream: 1, code }]);
    let nothing = || Ok(vec![]);
    let idle_err = Err(E::PROTOCOL_ERROR);
    // §5.1 and each frame's section: what the server answers. (Trailers on
    // an idle stream open it as a request without pseudo-headers:
    // malformed, §8.1.1.)
    #[rustfmt::skip]
    let table: [(St, [Answer; 8]); 7] = [
        //                    DATA                      DATA+END_STREAM           trailers                  PRIORITY   PRIORITY on itself        RST_STREAM      WINDOW_UPDATE             CONTINUATION alone
        (St::Idle,             [idle_err.clone(),         idle_err.clone(),         rst(E::PROTOCOL_ERROR),   nothing(), rst(E::PROTOCOL_ERROR),   idle_err.clone(), idle_err.clone(),       Err(E::PROTOCOL_ERROR)]),
        (St::Open,             [nothing(),                nothing(),                nothing(),                nothing(), rst(E::PROTOCOL_ERROR),   nothing(),      nothing(),                Err(E::PROTOCOL_ERROR)]),
        (St::HalfClosedRemote, [rst(E::STREAM_CLOSED),    rst(E::STREAM_CLOSED),    rst(E::STREAM_CLOSED),    nothing(), rst(E::PROTOCOL_ERROR),   nothing(),      nothing(),                Err(E::PROTOCOL_ERROR)]),
        (St::HalfClosedLocal,  [nothing(),                nothing(),                nothing(),                nothing(), rst(E::PROTOCOL_ERROR),   nothing(),      nothing(),                Err(E::PROTOCOL_ERROR)]),
        (St::ClosedEnded,      [rst(E::STREAM_CLOSED),    rst(E::STREAM_CLOSED),    Err(E::STREAM_CLOSED),    nothing(), rst(E::PROTOCOL_ERROR),   nothing(),      nothing(),                Err(E::PROTOCOL_ERROR)]),
        (St::ClosedByPeer,     [rst(E::STREAM_CLOSED),    rst(E::STREAM_CLOSED),    rst(E::STREAM_CLOSED),    nothing(), rst(E::PROTOCOL_ERROR),   nothing(),      rst(E::STREAM_CLOSED),    Err(E::PROTOCOL_ERROR)]),
        (St::ClosedByUs,       [nothing(),                nothing(),                nothing(),                nothing(), rst(E::PROTOCOL_ERROR),   nothing(),      nothing(),                Err(E::PROTOCOL_ERROR)]),
    ];
    let frames = [
        In::Data,
        In::DataEnd,
        In::Trailers,
        In::Priority,
        In::PrioritySelf,
        In::Rst,
        In::Window,
        In::Continuation,
    ];
    for (state, row) in table {
        for (frame, want) in frames.iter().zip(row) {
            let mut c = Client::in_state(state);
            let got = c.frame_on_1(*frame);
            assert_eq!(got, want, "{frame:?} on a stream {state:?}");
        }
    }
}

#[test]
fn a_body_must_add_up_to_its_content_length() {
    let post = |c: &mut Client, cl: &str, end: bool| {
        let block = c.block(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/p"),
            (":authority", "x"),
            ("content-length", cl),
        ]);
        let mut b = Vec::new();
        let f = flag::END_HEADERS | if end { flag::END_STREAM } else { 0 };
        encode_frame(&mut b, kind::HEADERS, f, 1, &block);
        c.send(&b).unwrap();
    };
    let data = |c: &mut Client, bytes: &[u8], end: bool| {
        let mut b = Vec::new();
        encode_frame(
            &mut b,
            kind::DATA,
            if end { flag::END_STREAM } else { 0 },
            1,
            bytes,
        );
        c.send(&b).unwrap();
        c.take()
    };
    let reset = vec![Out::Rst {
        stream: 1,
        code: ErrorCode::PROTOCOL_ERROR,
    }];
    // Longer in one frame, longer summed over two, shorter at END_STREAM.
    for frames in [&[&b"abcd"[..]][..], &[b"ab", b"cd"], &[b"a", b""]] {
        let mut c = Client::new(Config::default());
        post(&mut c, "3", false);
        c.events.clear();
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            out = data(&mut c, f, i == frames.len() - 1);
            if !out.is_empty() {
                break;
            }
        }
        assert_eq!(out, reset, "{frames:?}");
        assert!(
            c.events.contains(&Event::Reset { stream: 1 }),
            "{:?}",
            c.events
        );
    }
    // Exactly its length: a body.
    let mut c = Client::new(Config::default());
    post(&mut c, "3", false);
    assert!(data(&mut c, b"ab", false).is_empty());
    assert!(data(&mut c, b"c", true).is_empty());
    // A head that ends the stream with a length above 0, and lengths that
    // are not one number: malformed.
    for (cl, end) in [("3", true), ("x", false), ("1, 2", false)] {
        let mut c = Client::new(Config::default());
        post(&mut c, cl, end);
        assert_eq!(c.take(), reset, "{cl} {end}");
    }
}
