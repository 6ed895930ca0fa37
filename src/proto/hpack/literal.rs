//! A header block with its Huffman strings written out raw, before
//! loona-hpack decodes it.
//!
//! loona-hpack builds its Huffman table (maps of maps) afresh for every
//! Huffman string and looks each bit up in it: a request whose `:path` came
//! Huffman-coded cost five times one that did not, which makes Huffman
//! strings a peer's cheap way to spend this server's time. The walk here
//! reads only the block's framing (RFC 7541 §6: integers and string
//! headers, no table), decodes each Huffman string with `huffman`'s state
//! machine and copies everything else as it is; the table logic stays the
//! crate's. A block without a Huffman string is returned as it came.

use std::borrow::Cow;

use super::huffman;

/// The block cannot be framed: cut short, an integer too long, or a string
/// the Huffman code cannot produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// `block` with every Huffman string raw.
pub fn raw(block: &[u8]) -> Result<Cow<'_, [u8]>, Malformed> {
    let mut w = Rewrite {
        block,
        out: Vec::new(),
        copied: 0,
    };
    let mut at = 0;
    while at < block.len() {
        let b = block[at];
        // §6: indexed (1), literal with indexing (01), table size update
        // (001), literal without or never indexed (000x). A literal whose
        // name index is 0 carries the name as a string before its value.
        let (prefix, literal) = match b.leading_zeros() {
            0 => (7, false),
            1 => (6, true),
            2 => (5, false),
            _ => (4, true),
        };
        let (index, next) = integer(block, at, prefix)?;
        at = next;
        if literal {
            if index == 0 {
                at = w.string(at)?;
            }
            at = w.string(at)?;
        }
    }
    Ok(w.finish())
}

struct Rewrite<'a> {
    block: &'a [u8],
    out: Vec<u8>,
    /// `block[..copied]` is in `out` already, rewritten.
    copied: usize,
}

impl<'a> Rewrite<'a> {
    /// The string at `at`; returns where it ends.
    fn string(&mut self, at: usize) -> Result<usize, Malformed> {
        let huffman = self.block.get(at).ok_or(Malformed("block cut short"))? & 0x80 != 0;
        let (len, start) = integer(self.block, at, 7)?;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= self.block.len())
            .ok_or(Malformed("string past the block's end"))?;
        if huffman {
            self.out.extend_from_slice(&self.block[self.copied..at]);
            let mut raw = Vec::new();
            huffman::decode(&self.block[start..end], &mut raw)
                .map_err(|e| Malformed(e.message()))?;
            put_integer(&mut self.out, raw.len(), 7);
            self.out.extend_from_slice(&raw);
            self.copied = end;
        }
        Ok(end)
    }

    fn finish(mut self) -> Cow<'a, [u8]> {
        if self.copied == 0 {
            return Cow::Borrowed(self.block);
        }
        self.out.extend_from_slice(&self.block[self.copied..]);
        Cow::Owned(self.out)
    }
}

/// An integer with an N-bit prefix (§5.1) at `at`: its value and where it
/// ends. Past 2^28 it is refused (no field or table is that large).
fn integer(block: &[u8], at: usize, prefix: u32) -> Result<(usize, usize), Malformed> {
    let short = Malformed("block cut short");
    let max = (1usize << prefix) - 1;
    let first = *block.get(at).ok_or(short.clone())? as usize & max;
    if first < max {
        return Ok((first, at + 1));
    }
    let mut value = max;
    let mut shift = 0;
    let mut i = at + 1;
    loop {
        let b = *block.get(i).ok_or(short.clone())?;
        i += 1;
        value += ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            return Ok((value, i));
        }
        shift += 7;
        if shift > 21 {
            return Err(Malformed("integer too long"));
        }
    }
}

/// A raw string's length (H = 0) with its 7-bit prefix.
fn put_integer(out: &mut Vec<u8>, value: usize, prefix: u32) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(value as u8);
        return;
    }
    out.push(max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7541_c4_1_request_is_written_raw() {
        // C.4.1 (Huffman) becomes C.3.1 (raw), byte for byte.
        let huffman = b"\x82\x86\x84\x41\x8c\xf1\xe3\xc2\xe5\xf2\x3a\x6b\xa0\xab\x90\xf4\xff";
        let raw_block = b"\x82\x86\x84\x41\x0fwww.example.com";
        assert_eq!(raw(huffman).unwrap().as_ref(), raw_block);
        assert!(matches!(raw(raw_block).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn names_and_values_of_every_literal_kind_are_rewritten() {
        let name = huffman::encode(b"custom-key");
        let value = huffman::encode(b"custom-value");
        let mut block = Vec::new();
        // Size update, then the three literal kinds with a new name.
        block.push(0x3f);
        block.push(0x01);
        for first in [0x40u8, 0x00, 0x10] {
            block.push(first);
            block.push(0x80 | name.len() as u8);
            block.extend_from_slice(&name);
            block.push(0x80 | value.len() as u8);
            block.extend_from_slice(&value);
        }
        let mut want = vec![0x3f, 0x01];
        for first in [0x40u8, 0x00, 0x10] {
            want.push(first);
            want.push(10);
            want.extend_from_slice(b"custom-key");
            want.push(12);
            want.extend_from_slice(b"custom-value");
        }
        assert_eq!(raw(&block).unwrap().as_ref(), want);
    }

    #[test]
    fn a_long_string_keeps_its_length_integer_right() {
        let value = vec![b'a'; 300];
        let coded = huffman::encode(&value);
        let mut block = vec![0x04]; // literal without indexing, :path
        block.push(0xff);
        put_integer_tail(&mut block, coded.len() - 127);
        block.extend_from_slice(&coded);
        let mut want = vec![0x04, 0x7f];
        put_integer_tail(&mut want, 300 - 127);
        want.extend_from_slice(&value);
        assert_eq!(raw(&block).unwrap().as_ref(), want);
    }

    fn put_integer_tail(out: &mut Vec<u8>, mut rest: usize) {
        while rest >= 0x80 {
            out.push((rest as u8 & 0x7f) | 0x80);
            rest >>= 7;
        }
        out.push(rest as u8);
    }

    #[test]
    fn cut_blocks_and_bad_strings_are_malformed() {
        assert!(raw(b"\x41").is_err()); // name index 1, no value
        assert!(raw(b"\x41\x85ab").is_err()); // value past the end
        assert!(raw(b"\x7f\xff\xff\xff\xff\x01").is_err()); // integer too long
        assert!(raw(b"\x41\x81\x00").is_err()); // bad padding
    }
}
