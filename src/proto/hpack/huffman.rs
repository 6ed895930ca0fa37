//! The HPACK Huffman code (RFC 7541 §5.2, Appendix B), decoded four bits at
//! a time by a state machine built at compile time.
//!
//! The code is canonical: Appendix B's codes are what its lengths give when
//! codes of each length are handed out in symbol order, shorter lengths
//! first. So the lengths alone are written here, and the codes, the tree and
//! the state machine are derived from them. A state is an inner node of the
//! tree (a code read part way); a step reads one nibble from a state, emits
//! at most one symbol (no code is shorter than five bits) and lands on the
//! next state. A string may end on the root or part way down the all-ones
//! path (EOS's first bits) at most seven bits deep; EOS itself is an error.

/// Code length of each symbol, 0–255 and EOS (256), from Appendix B.
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 16
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // ' '
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // '0'
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // '@'
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 'P'
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // '`'
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 'p'
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240
    30, // EOS
];

const EOS: u16 = 256;
const MAX_LENGTH: u8 = 30;

/// The canonical code of each symbol, right-aligned in its length.
pub(crate) const CODES: [u32; 257] = codes();

const fn codes() -> [u32; 257] {
    let mut codes = [0u32; 257];
    let mut code = 0u32;
    let mut len = 1;
    while len <= MAX_LENGTH {
        let mut sym = 0;
        while sym < 257 {
            if LENGTHS[sym] == len {
                codes[sym] = code;
                code += 1;
            }
            sym += 1;
        }
        code <<= 1;
        len += 1;
    }
    codes
}

/// A child in the tree: an inner node's index, or `LEAF | symbol`.
const LEAF: u16 = 1 << 15;
/// 257 leaves make 256 inner nodes; node 0 is the root.
const NODES: usize = 256;

struct Tree {
    children: [[u16; 2]; NODES],
    /// Nodes on the all-ones path at most seven bits deep (and the root):
    /// where a string may end.
    accepts: [bool; NODES],
}

const fn tree() -> Tree {
    let mut t = Tree {
        children: [[0; 2]; NODES],
        accepts: [false; NODES],
    };
    t.accepts[0] = true;
    let mut used = 1;
    let mut sym = 0;
    while sym < 257 {
        let (code, len) = (CODES[sym], LENGTHS[sym]);
        let mut node = 0;
        let mut bit = len;
        while bit > 0 {
            bit -= 1;
            let b = ((code >> bit) & 1) as usize;
            if bit == 0 {
                t.children[node][b] = LEAF | sym as u16;
            } else {
                if t.children[node][b] == 0 {
                    t.children[node][b] = used as u16;
                    // Depth len - bit, all ones so far: a valid padding.
                    let depth = len - bit;
                    let ones = code >> bit == (1 << depth) - 1;
                    t.accepts[used] = ones && depth <= 7;
                    used += 1;
                }
                node = t.children[node][b] as usize;
            }
        }
        sym += 1;
    }
    t
}

/// One nibble read from one state.
#[derive(Clone, Copy)]
struct Step {
    next: u8,
    /// `EMIT`, `FAIL` (EOS was read).
    flags: u8,
    symbol: u8,
}

const EMIT: u8 = 1;
const FAIL: u8 = 2;

struct Machine {
    steps: [[Step; 16]; NODES],
    accepts: [bool; NODES],
}

const fn machine() -> Machine {
    let t = tree();
    let none = Step {
        next: 0,
        flags: 0,
        symbol: 0,
    };
    let mut steps = [[none; 16]; NODES];
    let mut state = 0;
    while state < NODES {
        let mut nibble = 0;
        while nibble < 16 {
            let mut step = none;
            let mut node = state;
            let mut bit = 4;
            while bit > 0 {
                bit -= 1;
                let child = t.children[node][(nibble >> bit) & 1];
                if child & LEAF == 0 {
                    node = child as usize;
                } else if child & !LEAF == EOS {
                    step.flags = FAIL;
                } else {
                    step.flags |= EMIT;
                    step.symbol = (child & !LEAF) as u8;
                    node = 0;
                }
            }
            step.next = node as u8;
            steps[state][nibble] = step;
            nibble += 1;
        }
        state += 1;
    }
    Machine {
        steps,
        accepts: t.accepts,
    }
}

static MACHINE: Machine = machine();

/// A string the code cannot produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuffmanError {
    /// EOS inside the string.
    Eos,
    /// Padding longer than seven bits, or not EOS's first bits.
    Padding,
}

impl HuffmanError {
    /// What went wrong, in words.
    pub fn message(self) -> &'static str {
        match self {
            HuffmanError::Eos => "EOS in a Huffman string",
            HuffmanError::Padding => "invalid Huffman padding",
        }
    }
}

/// Decode one Huffman-coded string onto `out`.
pub fn decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    // Every symbol takes at least five bits.
    out.reserve(input.len() * 8 / 5);
    let mut state = 0usize;
    for &byte in input {
        for nibble in [byte >> 4, byte & 0x0f] {
            let step = MACHINE.steps[state][nibble as usize];
            if step.flags & FAIL != 0 {
                return Err(HuffmanError::Eos);
            }
            if step.flags & EMIT != 0 {
                out.push(step.symbol);
            }
            state = step.next as usize;
        }
    }
    if !MACHINE.accepts[state] {
        return Err(HuffmanError::Padding);
    }
    Ok(())
}

/// Huffman-code `input` (a test and fuzz aid: this server's encoder sends
/// raw strings).
pub fn encode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut bits, mut n) = (0u64, 0u32);
    for &byte in input {
        let len = LENGTHS[byte as usize] as u32;
        bits = (bits << len) | CODES[byte as usize] as u64;
        n += len;
        while n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    if n > 0 {
        // Pad with EOS's first bits: ones.
        out.push(((bits << (8 - n)) as u8) | (0xff >> n));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decoded(input: &[u8]) -> Result<Vec<u8>, HuffmanError> {
        let mut out = Vec::new();
        decode(input, &mut out).map(|()| out)
    }

    #[test]
    fn rfc7541_appendix_c4_strings() {
        let www = b"\xf1\xe3\xc2\xe5\xf2\x3a\x6b\xa0\xab\x90\xf4\xff";
        assert_eq!(decoded(www).unwrap(), b"www.example.com");
        assert_eq!(encode(b"www.example.com"), www);
        assert_eq!(decoded(b"\xa8\xeb\x10\x64\x9c\xbf").unwrap(), b"no-cache");
        assert_eq!(
            decoded(b"\x25\xa8\x49\xe9\x5b\xa9\x7d\x7f").unwrap(),
            b"custom-key"
        );
        assert_eq!(decoded(b"").unwrap(), b"");
    }

    #[test]
    fn codes_are_appendix_b() {
        // A few rows of the RFC's table, by hand: ' ', '0', 'a', 0, EOS.
        assert_eq!((CODES[32], LENGTHS[32]), (0x14, 6));
        assert_eq!((CODES[48], LENGTHS[48]), (0x0, 5));
        assert_eq!((CODES[97], LENGTHS[97]), (0x3, 5));
        assert_eq!((CODES[0], LENGTHS[0]), (0x1ff8, 13));
        assert_eq!((CODES[256], LENGTHS[256]), (0x3fffffff, 30));
    }

    #[test]
    fn bad_endings_and_eos_are_errors() {
        // Eight bits of padding: the whole byte is ones.
        let mut s = encode(b"0");
        s.push(0xff);
        assert_eq!(decoded(&s), Err(HuffmanError::Padding));
        // Padding that is not ones: '0' is 00000, then 000.
        assert_eq!(decoded(&[0x00]), Err(HuffmanError::Padding));
        // EOS, all 30 ones, in full.
        assert_eq!(decoded(&[0xff, 0xff, 0xff, 0xfc]), Err(HuffmanError::Eos));
    }

    proptest! {
        #[test]
        fn round_trips(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(decoded(&encode(&input)).unwrap(), input);
        }

        /// The state machine agrees with loona-hpack's bit-by-bit decoder,
        /// which holds Appendix B as its own table, on any bytes.
        #[test]
        fn agrees_with_loona(input in proptest::collection::vec(any::<u8>(), 0..40)) {
            let theirs = loona_hpack::huffman::HuffmanDecoder::new().decode(&input);
            prop_assert_eq!(decoded(&input).ok(), theirs.ok());
        }

        #[test]
        fn agrees_with_loona_on_valid_strings(input in proptest::collection::vec(any::<u8>(), 0..100)) {
            let theirs = loona_hpack::huffman::HuffmanDecoder::new().decode(&encode(&input));
            prop_assert_eq!(theirs.ok(), Some(input));
        }
    }
}
