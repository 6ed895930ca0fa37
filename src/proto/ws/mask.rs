//! Masking (RFC 6455 §5.3): XOR a payload with a 4-byte key, in place.
//!
//! A frame can arrive split across reads, so every function takes the key
//! `offset`: the position within the key of `buf[0]` (the payload byte index
//! modulo 4). The fast path picks AVX2 or SSE2 on x86-64 at run time, NEON on
//! aarch64, and finishes with a word-at-a-time scalar tail.
//!
//! This is the only file of `proto` with `unsafe`: the SIMD intrinsics.

/// Rotate `key` so that index 0 of the result applies to payload position
/// `offset`.
#[inline]
fn rotated(key: [u8; 4], offset: usize) -> [u8; 4] {
    let o = offset & 3;
    [key[o], key[(o + 1) & 3], key[(o + 2) & 3], key[(o + 3) & 3]]
}

/// The shape of every masking function: buffer, key, key offset.
pub type MaskFn = fn(&mut [u8], [u8; 4], usize);

/// Byte-at-a-time reference implementation. Tests and benches compare the fast
/// path against it.
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(offset + i) & 3];
    }
}

/// Word-at-a-time scalar implementation (8 bytes per step), used for the tail
/// of the SIMD paths and on targets without SIMD.
pub fn apply_mask_scalar(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let k = rotated(key, offset);
    let word = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let v = u64::from_ne_bytes(w) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    let rest = chunks.into_remainder();
    // Bytes consumed by whole words are a multiple of 8, hence of 4: the
    // remainder starts at key index 0 of the rotated key.
    for (i, b) in rest.iter_mut().enumerate() {
        *b ^= k[i & 3];
    }
}

/// XOR `buf` with `key`, where `buf[0]` is payload byte number `offset` (only
/// `offset % 4` matters). Applying it twice restores the input.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    if buf.len() < 32 {
        return apply_mask_scalar(buf, key, offset);
    }
    simd::apply_mask(buf, key, offset)
}

#[cfg(target_arch = "x86_64")]
mod simd {
    #[cfg(test)]
    use super::MaskFn;
    use super::{apply_mask_scalar, rotated};
    use std::arch::x86_64::*;
    use std::sync::atomic::{AtomicU8, Ordering};

    const UNKNOWN: u8 = 0;
    const SSE2: u8 = 1;
    const AVX2: u8 = 2;
    static LEVEL: AtomicU8 = AtomicU8::new(UNKNOWN);

    #[inline]
    fn level() -> u8 {
        match LEVEL.load(Ordering::Relaxed) {
            UNKNOWN => {
                let l = if std::is_x86_feature_detected!("avx2") {
                    AVX2
                } else {
                    SSE2
                };
                LEVEL.store(l, Ordering::Relaxed);
                l
            }
            l => l,
        }
    }

    pub(super) fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
        if level() == AVX2 {
            // SAFETY: `level()` returned AVX2 only after
            // `is_x86_feature_detected!("avx2")` confirmed the CPU has it.
            unsafe { apply_mask_avx2(buf, key, offset) }
        } else {
            // SSE2 is part of the x86-64 baseline.
            apply_mask_sse2(buf, key, offset)
        }
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn apply_mask_avx2(buf: &mut [u8], key: [u8; 4], offset: usize) {
        let k = rotated(key, offset);
        let k32 = i32::from_ne_bytes(k);
        let vkey = _mm256_set1_epi32(k32);
        let mut chunks = buf.chunks_exact_mut(32);
        for chunk in &mut chunks {
            let p = chunk.as_mut_ptr() as *mut __m256i;
            // SAFETY: `chunk` is exactly 32 valid, writable bytes; the
            // unaligned load/store intrinsics have no alignment requirement.
            unsafe {
                let v = _mm256_loadu_si256(p);
                _mm256_storeu_si256(p, _mm256_xor_si256(v, vkey));
            }
        }
        // Whole chunks are a multiple of 4 bytes, so the tail starts at
        // rotated-key index 0.
        apply_mask_scalar(chunks.into_remainder(), k, 0);
    }

    fn apply_mask_sse2(buf: &mut [u8], key: [u8; 4], offset: usize) {
        let k = rotated(key, offset);
        let k32 = i32::from_ne_bytes(k);
        // SAFETY: SSE2 is always available on x86-64.
        let vkey = unsafe { _mm_set1_epi32(k32) };
        let mut chunks = buf.chunks_exact_mut(16);
        for chunk in &mut chunks {
            let p = chunk.as_mut_ptr() as *mut __m128i;
            // SAFETY: `chunk` is exactly 16 valid, writable bytes; unaligned
            // load/store has no alignment requirement; SSE2 is baseline.
            unsafe {
                let v = _mm_loadu_si128(p);
                _mm_storeu_si128(p, _mm_xor_si128(v, vkey));
            }
        }
        apply_mask_scalar(chunks.into_remainder(), k, 0);
    }

    #[cfg(test)]
    pub(super) fn variants() -> Vec<(&'static str, MaskFn)> {
        let mut v: Vec<(&'static str, MaskFn)> = vec![("sse2", apply_mask_sse2)];
        if std::is_x86_feature_detected!("avx2") {
            fn avx2(buf: &mut [u8], key: [u8; 4], offset: usize) {
                // SAFETY: only listed after the AVX2 feature check above.
                unsafe { apply_mask_avx2(buf, key, offset) }
            }
            v.push(("avx2", avx2));
        }
        v
    }
}

#[cfg(target_arch = "aarch64")]
mod simd {
    #[cfg(test)]
    use super::MaskFn;
    use super::{apply_mask_scalar, rotated};
    use std::arch::aarch64::*;

    pub(super) fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
        let k = rotated(key, offset);
        // SAFETY: NEON is part of the aarch64 baseline.
        let vkey = unsafe { vreinterpretq_u8_u32(vdupq_n_u32(u32::from_ne_bytes(k))) };
        let mut chunks = buf.chunks_exact_mut(16);
        for chunk in &mut chunks {
            let p = chunk.as_mut_ptr();
            // SAFETY: `chunk` is exactly 16 valid, writable bytes; vld1q/vst1q
            // accept unaligned pointers.
            unsafe { vst1q_u8(p, veorq_u8(vld1q_u8(p), vkey)) }
        }
        apply_mask_scalar(chunks.into_remainder(), k, 0);
    }

    #[cfg(test)]
    pub(super) fn variants() -> Vec<(&'static str, MaskFn)> {
        vec![("neon", apply_mask)]
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod simd {
    #[cfg(test)]
    use super::MaskFn;

    pub(super) fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
        super::apply_mask_scalar(buf, key, offset)
    }

    #[cfg(test)]
    pub(super) fn variants() -> Vec<(&'static str, MaskFn)> {
        vec![]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + 7) as u8).collect()
    }

    #[test]
    fn every_variant_equals_bytewise_for_every_length_and_offset() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut fns: Vec<(&str, MaskFn)> =
            vec![("scalar", apply_mask_scalar), ("dispatch", apply_mask)];
        fns.extend(simd::variants());
        for len in 0..=256 {
            for offset in 0..4 {
                // Also vary the buffer's alignment in memory.
                for align in 0..4 {
                    let mut expect = pattern(len + align);
                    apply_mask_bytewise(&mut expect[align..], key, offset);
                    for (name, f) in &fns {
                        let mut got = pattern(len + align);
                        f(&mut got[align..], key, offset);
                        assert_eq!(
                            got, expect,
                            "{name} len={len} offset={offset} align={align}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn split_masking_equals_whole() {
        let key = [1, 2, 3, 4];
        let data = pattern(300);
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for cut in 0..data.len() {
            let mut parts = data.clone();
            let (a, b) = parts.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            assert_eq!(parts, whole, "cut={cut}");
        }
    }

    #[test]
    fn rfc_example_hello() {
        // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
        let mut b = *b"Hello";
        apply_mask(&mut b, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(b, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }
}
