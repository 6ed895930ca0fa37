//! HPACK blocks from arbitrary bytes, several on one connection's decoder:
//! never a panic, and a list that is returned is within the limit. Each
//! block is also read as one Huffman string, where ringwave's decoder must
//! agree with loona-hpack's.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringwave::proto::hpack::{huffman, Block, Decoder, FIELD_OVERHEAD};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    // The first byte picks the limits; 0xfe splits the rest into blocks.
    let table = [0usize, 64, 4096][first as usize % 3];
    let max_list = 64 + (first as usize >> 2) * 64;
    let mut d = Decoder::new(table, max_list);
    for block in rest.split(|&b| b == 0xfe) {
        let mut ours = Vec::new();
        let ours = huffman::decode(block, &mut ours).map(|()| ours);
        let theirs = loona_hpack::huffman::HuffmanDecoder::new().decode(block);
        assert_eq!(ours.ok(), theirs.ok());
        match d.decode(block) {
            Ok(Block::Fields(f)) => {
                let size: usize = f
                    .iter()
                    .map(|(n, v)| n.len() + v.len() + FIELD_OVERHEAD)
                    .sum();
                assert!(size <= max_list);
            }
            Ok(Block::TooLarge { size }) => assert!(size > max_list),
            // The tables no longer agree: the connection ends here.
            Err(_) => return,
        }
    }
});
