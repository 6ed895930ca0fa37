//! Protocol-core benchmarks, all with `Throughput::Bytes`:
//! unmask (SIMD vs word-at-a-time vs byte-at-a-time), UTF-8 validation, frame
//! decode of a buffer of many small frames, handshake parse, deflate round
//! trip, and an HTTP/2 request's HPACK block with Huffman strings (ringwave's
//! decoder against loona-hpack's alone).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringwave::proto::hpack::{self, huffman};
use ringwave::proto::http::RequestParser;
use ringwave::proto::ws::deflate::PerMessageDeflate;
use ringwave::proto::ws::frame::encode_frame;
use ringwave::proto::ws::handshake::UpgradeRequest;
use ringwave::proto::ws::mask::{apply_mask, apply_mask_bytewise, apply_mask_scalar};
use ringwave::proto::ws::utf8::Utf8Validator;
use ringwave::proto::{Conn, DeflateParams, Event, Limits, OpCode, Role};

fn unmask(c: &mut Criterion) {
    let mut g = c.benchmark_group("unmask");
    let key = [0x37, 0xfa, 0x21, 0x3d];
    for size in [20usize, 1024, 64 * 1024] {
        let mut buf = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("simd", size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), key, 1))
        });
        g.bench_with_input(BenchmarkId::new("scalar_word", size), &size, |b, _| {
            b.iter(|| apply_mask_scalar(black_box(&mut buf), key, 1))
        });
        g.bench_with_input(BenchmarkId::new("bytewise", size), &size, |b, _| {
            b.iter(|| apply_mask_bytewise(black_box(&mut buf), key, 1))
        });
    }
    g.finish();
}

fn utf8(c: &mut Criterion) {
    let mut g = c.benchmark_group("utf8");
    let ascii = "market tick AAPL 123.45 ".repeat(2731).into_bytes(); // ~64 KiB
    let mixed = "κόσμε 😀 prix 12,5 € — ".repeat(2000).into_bytes();
    for (name, data) in [("ascii_64k", &ascii), ("mixed_64k", &mixed)] {
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(BenchmarkId::new("streaming_1k_chunks", name), |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                for chunk in data.chunks(1024) {
                    v.feed(black_box(chunk)).unwrap();
                }
                v.finish().unwrap();
            })
        });
        g.bench_function(BenchmarkId::new("std", name), |b| {
            b.iter(|| std::str::from_utf8(black_box(data)).unwrap().len())
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    // 1000 masked 20-byte binary frames in one buffer, as one read. A zero
    // key keeps the buffer unchanged by unmasking in place, so the same
    // buffer can be fed again without a copy; the XOR still runs.
    let mut wire = Vec::new();
    for i in 0..1000u32 {
        let mut p = [0u8; 20];
        p[..4].copy_from_slice(&i.to_le_bytes());
        encode_frame(&mut wire, OpCode::Binary, true, false, Some([0; 4]), &p);
    }
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("server_1000x20B_frames", |b| {
        let mut conn = Conn::new(Role::Server, Limits::default(), None);
        b.iter(|| {
            let mut pos = 0;
            let mut n = 0usize;
            while pos < wire.len() {
                let (used, ev) = conn.read(&mut wire[pos..]).unwrap();
                pos += used;
                if let Some(Event::Binary(p)) = ev {
                    n += p.len();
                }
            }
            assert_eq!(n, 20_000);
        })
    });
    g.finish();
}

fn handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    let req = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
Sec-WebSocket-Version: 13\r\nUser-Agent: bench\r\nAccept-Encoding: gzip\r\n\r\n";
    g.throughput(Throughput::Bytes(req.len() as u64));
    g.bench_function("parse_validate_respond", |b| {
        let limits = Limits::default();
        b.iter(|| {
            let mut p = RequestParser::new(&limits);
            let parsed = p.read(black_box(req)).unwrap().unwrap();
            let up = UpgradeRequest::from_http(parsed.request).unwrap();
            up.accept_response(up.choose_protocol(&["chat"]), None)
                .len()
        })
    });
    g.finish();
}

fn deflate(c: &mut Criterion) {
    let mut g = c.benchmark_group("deflate");
    let params = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let json: Vec<u8> = (0..)
        .map(|i| {
            format!(
                "{{\"sym\":\"S{:03}\",\"px\":{}.{:02},\"qty\":{}}}\n",
                i % 500,
                100 + i % 37,
                i % 100,
                i % 1000
            )
        })
        .flat_map(String::into_bytes)
        .take(64 * 1024)
        .collect();
    for size in [1024usize, 64 * 1024] {
        let msg = &json[..size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("round_trip_level1", size), |b| {
            let mut tx = PerMessageDeflate::new(&params, true, 1, 0);
            let mut rx = PerMessageDeflate::new(&params, false, 1, 0);
            let mut out = Vec::with_capacity(size + 64);
            b.iter(|| {
                out.clear();
                let c = tx.compress_message(black_box(msg));
                rx.inflate(c, &mut out, 1 << 20).unwrap();
                rx.finish_message(&mut out, 1 << 20).unwrap();
                assert_eq!(out.len(), size);
            })
        });
    }
    g.finish();
}

/// A browser-like request block, every string Huffman-coded and sent as a
/// literal without indexing (so each decode starts from the same table).
fn hpack_request() -> Vec<u8> {
    let mut b = vec![0x82, 0x87]; // GET, https
    let fields: [(u8, &[u8]); 5] = [
        (4, b"/sse/ticks?since=1234"),
        (1, b"market.example.com"),
        (
            58,
            b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0",
        ),
        (19, b"text/event-stream"),
        (16, b"gzip, deflate, br, zstd"),
    ];
    for (index, value) in fields {
        if index < 15 {
            b.push(index);
        } else {
            b.extend_from_slice(&[0x0f, index - 15]);
        }
        let coded = huffman::encode(value);
        b.push(0x80 | coded.len() as u8);
        b.extend_from_slice(&coded);
    }
    b
}

fn hpack_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("hpack_huffman_request");
    let block = hpack_request();
    g.throughput(Throughput::Bytes(block.len() as u64));
    g.bench_function("ringwave", |b| {
        let mut d = hpack::Decoder::new(4096, 16 << 10);
        b.iter(|| d.decode(black_box(&block)).unwrap())
    });
    g.bench_function("loona_hpack", |b| {
        let mut d = loona_hpack::Decoder::new();
        b.iter(|| d.decode(black_box(&block)).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    unmask,
    utf8,
    decode,
    handshake,
    deflate,
    hpack_decode
);
criterion_main!(benches);
