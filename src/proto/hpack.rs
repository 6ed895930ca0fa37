//! HPACK (RFC 7541) header blocks for HTTP/2, decoded with the limits a
//! server needs. The decoding is `loona-hpack`'s, the maintained fork of
//! the `hpack` crate used by the loona HTTP/2 server (fuzzed there, no
//! `unsafe`); this layer adds what it leaves to its caller:
//!
//! - the dynamic table is capped at what this side announced
//!   (`SETTINGS_HEADER_TABLE_SIZE`): a block that asks for more is a
//!   compression error;
//! - the header list is capped (`SETTINGS_MAX_HEADER_LIST_SIZE`, counted as
//!   RFC 9113 §6.5.2 counts it: name, value and 32 bytes per field). A block
//!   past the cap is still decoded to its end, so the table stays in step
//!   with the peer's, but its fields are dropped: the stream is refused,
//!   not the connection.
//!
//! - Huffman strings are decoded here (`huffman`, a table built at compile
//!   time) and handed to the crate raw (`literal`): its own Huffman decoder
//!   builds a table for every string.
//!
//! The caller bounds the block itself (HEADERS plus CONTINUATIONs) before
//! decoding it.

use std::fmt;

pub mod huffman;
mod literal;

/// What a block's fields cost against the header list limit.
pub const FIELD_OVERHEAD: usize = 32;

/// A block that cannot be decoded: a connection error (COMPRESSION_ERROR),
/// since the peer's table and ours no longer agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressionError(String);

impl fmt::Display for CompressionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HPACK: {}", self.0)
    }
}

impl std::error::Error for CompressionError {}

/// One decoded header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// The fields, in order.
    Fields(Vec<(Vec<u8>, Vec<u8>)>),
    /// The list passed the limit: `size` is what it would have been.
    TooLarge {
        /// Its size as RFC 9113 counts it.
        size: usize,
    },
}

/// The decoding side of one connection.
pub struct Decoder {
    inner: loona_hpack::Decoder<'static>,
    max_list: usize,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("max_list", &self.max_list)
            .finish()
    }
}

impl Decoder {
    /// A decoder for a connection that announced `table_size` and
    /// `max_header_list`.
    pub fn new(table_size: usize, max_header_list: usize) -> Decoder {
        let mut inner = loona_hpack::Decoder::new();
        inner.set_max_allowed_table_size(table_size);
        inner.set_max_table_size(table_size);
        Decoder {
            inner,
            max_list: max_header_list,
        }
    }

    /// Decode one whole header block.
    pub fn decode(&mut self, block: &[u8]) -> Result<Block, CompressionError> {
        let mut fields = Vec::new();
        let mut size = 0usize;
        let max = self.max_list;
        let block = literal::raw(block).map_err(|e| CompressionError(e.0.to_string()))?;
        self.inner
            .decode_with_cb(&block, |name, value| {
                size = size.saturating_add(name.len() + value.len() + FIELD_OVERHEAD);
                if size <= max {
                    fields.push((name.into_owned(), value.into_owned()));
                } else {
                    fields = Vec::new();
                }
            })
            .map_err(|e| CompressionError(e.to_string()))?;
        if size > max {
            return Ok(Block::TooLarge { size });
        }
        Ok(Block::Fields(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
        loona_hpack::Encoder::new().encode(fields.iter().copied())
    }

    #[test]
    fn rfc7541_c3_requests_share_the_dynamic_table() {
        // RFC 7541 C.3.1 and C.3.2: the second request refers to the first's
        // :authority through the dynamic table.
        let mut d = Decoder::new(4096, 16 << 10);
        let first = b"\x82\x86\x84\x41\x0fwww.example.com";
        let Block::Fields(f) = d.decode(first).unwrap() else {
            panic!()
        };
        assert_eq!(f[3], (b":authority".to_vec(), b"www.example.com".to_vec()));
        let second = b"\x82\x86\x84\xbe\x58\x08no-cache";
        let Block::Fields(f) = d.decode(second).unwrap() else {
            panic!()
        };
        assert_eq!(f[3], (b":authority".to_vec(), b"www.example.com".to_vec()));
        assert_eq!(f[4], (b"cache-control".to_vec(), b"no-cache".to_vec()));
    }

    #[test]
    fn a_list_past_the_limit_is_refused_but_keeps_the_table_in_step() {
        let mut d = Decoder::new(4096, 100);
        let mut enc = loona_hpack::Encoder::new();
        let big = [b'v'; 200];
        // Indexed into the table by the encoder, refused here by size.
        let block = enc.encode([(&b"x-big"[..], &big[..])]);
        assert_eq!(d.decode(&block), Ok(Block::TooLarge { size: 5 + 200 + 32 }));
        // The next block refers to the entry: the decoder's table has it.
        let small = enc.encode([(&b"x-small"[..], &b"1"[..])]);
        assert!(matches!(d.decode(&small), Ok(Block::Fields(_))));
        let again = enc.encode([(&b"x-big"[..], &big[..])]);
        assert!(again.len() < 5, "the encoder indexes it: {again:?}");
        assert!(matches!(d.decode(&again), Ok(Block::TooLarge { .. })));
        let list = encode(&[(b":method", b"GET"), (b":path", b"/")]);
        assert_eq!(
            d.decode(&list),
            Ok(Block::Fields(vec![
                (b":method".to_vec(), b"GET".to_vec()),
                (b":path".to_vec(), b"/".to_vec())
            ]))
        );
    }

    #[test]
    fn a_table_larger_than_announced_is_a_compression_error() {
        let mut d = Decoder::new(4096, 16 << 10);
        // Dynamic table size update to 8192 (001 prefix, 5-bit integer).
        let mut block = vec![0x3f, 0xe1, 0x3f];
        block.extend_from_slice(b"\x82");
        assert!(d.decode(&block).is_err());
        // Garbage: an index past both tables.
        let mut d = Decoder::new(4096, 16 << 10);
        assert!(d.decode(b"\xff\xff\xff\x0f").is_err());
        // An update within the limit is fine.
        let mut d = Decoder::new(4096, 16 << 10);
        assert!(matches!(d.decode(b"\x20\x82"), Ok(Block::Fields(_))));
    }
}
