//! permessage-deflate (RFC 7692): negotiation and the per-connection
//! compressor/decompressor.
//!
//! Negotiation follows §7.1: the server takes the first acceptable offer and
//! declines offers with unknown, duplicated or malformed parameters. Raw
//! deflate cannot use a window of 8 bits (zlib's lower bound is 9), so an offer
//! that limits the server to 8 bits is declined rather than violated.
//!
//! Inflation is bounded: the caller passes the room left in the message, and a
//! message that inflates past it is reported as [`InflateError::TooBig`]
//! (close 1009) before more memory than that is allocated.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::fmt::Write as _;

use super::extension::ExtensionOffer;

/// The trailer a sender strips from each compressed message and a receiver
/// appends back (RFC 7692 §7.2.1, §7.2.2).
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The extension token.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// What this endpoint is willing to do, before negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Ask the server to reset its compressor after every message (client
    /// role: offer it; server role: impose it on ourselves).
    pub server_no_context_takeover: bool,
    /// Ask the client to reset its compressor after every message.
    pub client_no_context_takeover: bool,
    /// Largest LZ77 window (9–15) the server may use.
    pub server_max_window_bits: u8,
    /// Largest LZ77 window (9–15) the client may use.
    pub client_max_window_bits: u8,
    /// zlib compression level 0–9.
    pub level: u32,
    /// Messages shorter than this are sent uncompressed.
    pub min_compress_size: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            level: 1,
            min_compress_size: 32,
        }
    }
}

/// The agreed parameters of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// The server's compression window, in bits.
    pub server_max_window_bits: u8,
    /// The client's compression window, in bits.
    pub client_max_window_bits: u8,
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` value that states these parameters.
    pub fn header_value(&self) -> String {
        let mut s = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 {
            let _ = write!(
                s,
                "; server_max_window_bits={}",
                self.server_max_window_bits
            );
        }
        if self.client_max_window_bits < 15 {
            let _ = write!(
                s,
                "; client_max_window_bits={}",
                self.client_max_window_bits
            );
        }
        s
    }
}

/// The parameters of one permessage-deflate offer or response, checked for
/// shape: no duplicates, no unknown names, window bits 8–15.
#[derive(Debug, Default, Clone, Copy)]
struct ParsedParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in a client's offer).
    client_max_window_bits: Option<Option<u8>>,
}

fn parse_bits(v: Option<&str>) -> Option<u8> {
    let v = v?;
    // RFC 7692 §7.1.2.1: 1*DIGIT, no leading zero, 8..=15.
    if v.starts_with('0') || v.len() > 2 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u8 = v.parse().ok()?;
    (8..=15).contains(&n).then_some(n)
}

fn parse_params(offer: &ExtensionOffer) -> Option<ParsedParams> {
    let mut p = ParsedParams::default();
    for (name, value) in &offer.params {
        let value = value.as_deref();
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if !p.server_no_context_takeover && value.is_none() => {
                p.server_no_context_takeover = true
            }
            "client_no_context_takeover" if !p.client_no_context_takeover && value.is_none() => {
                p.client_no_context_takeover = true
            }
            "server_max_window_bits" if p.server_max_window_bits.is_none() => {
                p.server_max_window_bits = Some(parse_bits(value)?)
            }
            "client_max_window_bits" if p.client_max_window_bits.is_none() => {
                p.client_max_window_bits = Some(match value {
                    None => None,
                    Some(_) => Some(parse_bits(value)?),
                })
            }
            _ => return None,
        }
    }
    Some(p)
}

/// Server side (RFC 7692 §7.1): pick the first acceptable permessage-deflate
/// offer among `offers` and return the agreed parameters, or `None` to run
/// without compression.
pub fn negotiate_server(offers: &[ExtensionOffer], cfg: &DeflateConfig) -> Option<DeflateParams> {
    offers
        .iter()
        .filter(|o| o.name.eq_ignore_ascii_case(EXTENSION_NAME))
        .find_map(|o| {
            let p = parse_params(o)?;
            let server_bits = p
                .server_max_window_bits
                .unwrap_or(15)
                .min(cfg.server_max_window_bits);
            if server_bits < 9 {
                return None;
            }
            let client_bits = match p.client_max_window_bits {
                // The client did not say it can honour a limit: it uses 15.
                None => 15,
                Some(v) => v.unwrap_or(15).min(cfg.client_max_window_bits).max(9),
            };
            Some(DeflateParams {
                server_no_context_takeover: p.server_no_context_takeover
                    || cfg.server_no_context_takeover,
                client_no_context_takeover: p.client_no_context_takeover
                    || cfg.client_no_context_takeover,
                server_max_window_bits: server_bits,
                client_max_window_bits: client_bits,
            })
        })
}

/// Client side: the offer to send for `cfg`.
pub fn client_offer(cfg: &DeflateConfig) -> String {
    let mut s = String::from(EXTENSION_NAME);
    if cfg.server_no_context_takeover {
        s.push_str("; server_no_context_takeover");
    }
    if cfg.client_no_context_takeover {
        s.push_str("; client_no_context_takeover");
    }
    if cfg.server_max_window_bits < 15 {
        let _ = write!(s, "; server_max_window_bits={}", cfg.server_max_window_bits);
    }
    if cfg.client_max_window_bits < 15 {
        let _ = write!(s, "; client_max_window_bits={}", cfg.client_max_window_bits);
    } else {
        s.push_str("; client_max_window_bits");
    }
    s
}

/// Client side: check the server's response to [`client_offer`]. `None`
/// means the response is unacceptable and the client must fail the
/// connection (RFC 7692 §7.1).
pub fn accept_client(response: &ExtensionOffer, cfg: &DeflateConfig) -> Option<DeflateParams> {
    if !response.name.eq_ignore_ascii_case(EXTENSION_NAME) {
        return None;
    }
    let p = parse_params(response)?;
    let client_bits = match p.client_max_window_bits {
        None => cfg.client_max_window_bits,
        Some(None) => return None, // a response must carry a value
        Some(Some(v)) => v.min(cfg.client_max_window_bits),
    };
    let server_bits = p.server_max_window_bits.unwrap_or(15);
    if server_bits > cfg.server_max_window_bits || client_bits < 9 {
        return None;
    }
    if cfg.server_no_context_takeover && !p.server_no_context_takeover {
        return None;
    }
    Some(DeflateParams {
        server_no_context_takeover: p.server_no_context_takeover,
        client_no_context_takeover: p.client_no_context_takeover || cfg.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    })
}

/// Why an inflate failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// The message inflates past its limit: close 1009.
    TooBig,
    /// The compressed data is corrupt: close 1007.
    Corrupt,
}

/// One connection's compression state, built from the agreed parameters and
/// this endpoint's role.
pub struct PerMessageDeflate {
    compress: Compress,
    decompress: Decompress,
    reset_compress: bool,
    reset_decompress: bool,
    /// The peer ended its deflate stream (BFINAL) inside this message: the rest
    /// of the message's compressed bytes are ignored.
    stream_ended: bool,
    /// Compressed bytes received for the current message.
    message_bytes: usize,
    min_compress_size: usize,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for PerMessageDeflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerMessageDeflate")
            .field("reset_compress", &self.reset_compress)
            .field("reset_decompress", &self.reset_decompress)
            .finish_non_exhaustive()
    }
}

impl PerMessageDeflate {
    /// State for a server (`is_server`) or client endpoint.
    pub fn new(
        params: &DeflateParams,
        is_server: bool,
        level: u32,
        min_compress_size: usize,
    ) -> Self {
        let (own_bits, own_reset, peer_reset) = if is_server {
            (
                params.server_max_window_bits,
                params.server_no_context_takeover,
                params.client_no_context_takeover,
            )
        } else {
            (
                params.client_max_window_bits,
                params.client_no_context_takeover,
                params.server_no_context_takeover,
            )
        };
        PerMessageDeflate {
            compress: Compress::new_with_window_bits(
                Compression::new(level.min(9)),
                false,
                own_bits.clamp(9, 15),
            ),
            // Inflating with the largest window accepts any smaller one.
            decompress: Decompress::new_with_window_bits(false, 15),
            reset_compress: own_reset,
            reset_decompress: peer_reset,
            stream_ended: false,
            message_bytes: 0,
            min_compress_size,
            scratch: Vec::new(),
        }
    }

    /// Whether a message of `len` bytes is worth compressing.
    pub fn should_compress(&self, len: usize) -> bool {
        len >= self.min_compress_size
    }

    /// Compress one whole message. The result (without the trailer) is valid
    /// until the next call.
    pub fn compress_message(&mut self, input: &[u8]) -> &[u8] {
        self.scratch.clear();
        self.scratch.reserve(input.len() / 2 + 64);
        let start_in = self.compress.total_in();
        loop {
            if self.scratch.capacity() - self.scratch.len() < 64 {
                self.scratch.reserve(self.scratch.capacity().max(1024));
            }
            let consumed = (self.compress.total_in() - start_in) as usize;
            // Compressing memory to memory fails only on misuse of the stream,
            // which this loop does not commit; stop rather than spin if it did.
            if self
                .compress
                .compress_vec(&input[consumed..], &mut self.scratch, FlushCompress::Sync)
                .is_err()
            {
                break;
            }
            let consumed = (self.compress.total_in() - start_in) as usize;
            // zlib's sync flush is complete when it left output room unused.
            if consumed == input.len() && self.scratch.len() < self.scratch.capacity() {
                break;
            }
        }
        if self.scratch.ends_with(&TRAILER) {
            self.scratch.truncate(self.scratch.len() - TRAILER.len());
        }
        if self.scratch.is_empty() {
            // Nothing new to flush (an empty message after a flush): zlib
            // writes nothing, but the receiver appends the trailer, which only
            // forms an empty stored block behind a header byte (RFC 7692
            // §7.2.3.6).
            self.scratch.push(0x00);
        }
        if self.reset_compress {
            self.compress.reset();
        }
        &self.scratch
    }

    /// Inflate a chunk of a compressed message into `out`, allowing `out` to
    /// grow to at most `limit` bytes.
    pub fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        if input.is_empty() {
            return Ok(());
        }
        self.message_bytes += input.len();
        while !self.stream_ended {
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            // One byte of room past the limit tells "exactly at the limit"
            // from "over it".
            let room = limit + 1 - out.len();
            let chunk = room.min(64 * 1024).min((input.len() * 4).max(4096));
            let len = out.len();
            out.reserve_exact(chunk);
            out.resize(len + chunk, 0);
            let (in0, out0) = (self.decompress.total_in(), self.decompress.total_out());
            let status = self
                .decompress
                .decompress(input, &mut out[len..], FlushDecompress::None);
            let consumed = (self.decompress.total_in() - in0) as usize;
            let produced = (self.decompress.total_out() - out0) as usize;
            out.truncate(len + produced);
            input = &input[consumed..];
            match status {
                Err(_) => return Err(InflateError::Corrupt),
                Ok(Status::StreamEnd) => self.stream_ended = true,
                Ok(_) => {}
            }
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            if produced < chunk && (input.is_empty() || consumed == 0) {
                break;
            }
        }
        Ok(())
    }

    /// The message's last frame has been inflated: append the trailer and
    /// reset the window if the peer does not keep context.
    pub fn finish_message(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
        // A compressed message with no bytes at all is empty; the trailer
        // alone would leave the inflater inside a stored block header.
        let r = if self.message_bytes == 0 {
            Ok(())
        } else {
            self.inflate(&TRAILER, out, limit)
        };
        self.message_bytes = 0;
        if self.reset_decompress || self.stream_ended {
            self.decompress.reset(false);
        }
        self.stream_ended = false;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(s: &str) -> Vec<ExtensionOffer> {
        super::super::extension::parse_extensions(s).unwrap()
    }

    #[test]
    fn server_negotiation() {
        let cfg = DeflateConfig::default();
        let p = negotiate_server(&offer("permessage-deflate"), &cfg).unwrap();
        assert_eq!(p.header_value(), "permessage-deflate");
        let p = negotiate_server(
            &offer("permessage-deflate; client_max_window_bits; server_max_window_bits=10"),
            &cfg,
        )
        .unwrap();
        assert_eq!(p.server_max_window_bits, 10);
        assert_eq!(p.client_max_window_bits, 15);
        let p = negotiate_server(
            &offer("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            &cfg,
        )
        .unwrap();
        assert!(p.server_no_context_takeover && p.client_no_context_takeover);
        assert_eq!(
            p.header_value(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        // Malformed offers are declined; the next acceptable one is taken.
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_max_window_bits=8",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(negotiate_server(&offer(bad), &cfg), None, "{bad}");
        }
        let p = negotiate_server(
            &offer("permessage-deflate; foo, permessage-deflate; server_max_window_bits=12"),
            &cfg,
        )
        .unwrap();
        assert_eq!(p.server_max_window_bits, 12);
    }

    #[test]
    fn client_accepts_and_rejects_responses() {
        let cfg = DeflateConfig::default();
        assert!(client_offer(&cfg).contains("client_max_window_bits"));
        let ok = &offer("permessage-deflate; server_max_window_bits=10")[0];
        assert_eq!(accept_client(ok, &cfg).unwrap().server_max_window_bits, 10);
        let bad = &offer("permessage-deflate; client_max_window_bits")[0];
        assert!(accept_client(bad, &cfg).is_none());
    }

    #[test]
    fn round_trip_with_and_without_context() {
        for reset in [false, true] {
            let params = DeflateParams {
                server_no_context_takeover: reset,
                client_no_context_takeover: reset,
                server_max_window_bits: 10,
                client_max_window_bits: 15,
            };
            let mut server = PerMessageDeflate::new(&params, true, 6, 0);
            let mut client = PerMessageDeflate::new(&params, false, 6, 0);
            for msg in [
                &b"hello hello hello hello"[..],
                b"hello again",
                b"",
                b"hello again",
                &[7u8; 100_000],
            ] {
                // An empty inflated message and an empty compressed payload
                // both come out empty, without disturbing the context.
                let c = server.compress_message(msg).to_vec();
                let mut out = Vec::new();
                client.inflate(&c, &mut out, 1 << 20).unwrap();
                client.finish_message(&mut out, 1 << 20).unwrap();
                assert_eq!(out, msg);
            }
        }
    }

    #[test]
    fn decompression_bomb_is_bounded() {
        let params = DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        };
        let mut a = PerMessageDeflate::new(&params, true, 9, 0);
        let mut b = PerMessageDeflate::new(&params, false, 9, 0);
        let bomb = a.compress_message(&vec![0u8; 10 << 20]).to_vec();
        assert!(bomb.len() < 20_000);
        let mut out = Vec::new();
        assert_eq!(
            b.inflate(&bomb, &mut out, 1 << 20),
            Err(InflateError::TooBig)
        );
        assert!(
            out.capacity() <= (1 << 20) + 64 * 1024 + 1,
            "cap {}",
            out.capacity()
        );
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let params = DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        };
        let mut b = PerMessageDeflate::new(&params, false, 1, 0);
        let mut out = Vec::new();
        assert_eq!(
            b.inflate(&[0xff; 16], &mut out, 1000),
            Err(InflateError::Corrupt)
        );
    }
}

#[cfg(test)]
mod empty_payload_tests {
    use super::*;

    #[test]
    fn empty_compressed_payload_is_an_empty_message() {
        let params = DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        };
        let mut a = PerMessageDeflate::new(&params, true, 6, 0);
        let mut b = PerMessageDeflate::new(&params, false, 6, 0);
        let mut out = Vec::new();
        b.finish_message(&mut out, 100).unwrap();
        assert!(out.is_empty());
        let c = a.compress_message(b"after").to_vec();
        b.inflate(&c, &mut out, 100).unwrap();
        b.finish_message(&mut out, 100).unwrap();
        assert_eq!(out, b"after");
    }
}
