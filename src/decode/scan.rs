//! The pointer sieve: which words of a byte range could be pointers into the heap.
//!
//! Every word of every allocated block, and every word of RAM outside the heap, is
//! tested for being a block-aligned address in a range. That test runs on most of
//! a snapshot's bytes, so it is written to be cheap: when the block size is a power
//! of two, eight words at a time are tested without branches (the compiler turns
//! it into vector code) and only the few that pass are visited.

use std::ops::Range;

use crate::memory::le_word;

/// Calls `f(index, value)` for every little-endian word of `data` (`word_bytes`
/// each, a trailing partial word ignored) whose value is a multiple of `align`
/// and lies in `range`, in order.
pub(crate) fn candidates(data: &[u8], word_bytes: usize, align: u64, range: Range<u64>, mut f: impl FnMut(usize, u64)) {
    if range.is_empty() || align == 0 || word_bytes == 0 {
        return;
    }
    let (lo, span) = (range.start, range.end - range.start);
    let fits = |v: u64| v.wrapping_sub(lo) < span;
    if align.is_power_of_two() {
        let mask = align - 1;
        match word_bytes {
            // A 32-bit build's addresses are 32-bit: sixteen words per step in
            // 32-bit lanes, four times as many per vector instruction.
            4 if lo <= u32::MAX as u64 && align <= 1 << 31 => {
                let (lo32, hi) = (lo as u32, (lo + span).min(1 << 32));
                return match u32::try_from(hi - lo) {
                    Ok(span32) => sieve32(data, mask as u32, lo32, span32, f),
                    // The whole 32-bit space: only the alignment tests.
                    Err(_) => sieve::<4>(data, mask, lo, span, f),
                };
            }
            4 => return sieve::<4>(data, mask, lo, span, f),
            8 => return sieve::<8>(data, mask, lo, span, f),
            _ => {}
        }
    }
    for (k, chunk) in data.chunks_exact(word_bytes).enumerate() {
        let v = le_word(chunk);
        if v.is_multiple_of(align) && fits(v) {
            f(k, v);
        }
    }
}

/// Sixteen 32-bit words per step. Pointers are rare (a few dozen among thousands
/// of words), so a step first asks whether any word passes, in a form the
/// compiler vectorises, and only then finds which.
fn sieve32(data: &[u8], mask: u32, lo: u32, span: u32, mut f: impl FnMut(usize, u64)) {
    const STEP: usize = 16;
    let pass = |v: u32| (v & mask == 0) & (v.wrapping_sub(lo) < span);
    let chunks = data.chunks_exact(4 * STEP);
    let tail = chunks.remainder();
    let mut base = 0;
    for chunk in chunks {
        let mut words = [0u32; STEP];
        for (w, b) in words.iter_mut().zip(chunk.chunks_exact(4)) {
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        if words.iter().fold(false, |any, &v| any | pass(v)) {
            for (j, &v) in words.iter().enumerate() {
                if pass(v) {
                    f(base + j, v as u64);
                }
            }
        }
        base += STEP;
    }
    for (j, b) in tail.chunks_exact(4).enumerate() {
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if pass(v) {
            f(base + j, v as u64);
        }
    }
}

/// Eight words per step: a bit per word that passes, then a visit per set bit.
fn sieve<const W: usize>(data: &[u8], mask: u64, lo: u64, span: u64, mut f: impl FnMut(usize, u64)) {
    let word = |b: &[u8]| -> u64 {
        let mut v = [0u8; 8];
        v[..W].copy_from_slice(&b[..W]);
        u64::from_le_bytes(v)
    };
    let chunks = data.chunks_exact(8 * W);
    let tail = chunks.remainder();
    let mut base = 0;
    for chunk in chunks {
        let mut bits = 0u32;
        for j in 0..8 {
            let v = word(&chunk[j * W..]);
            let pass = (v & mask == 0) & (v.wrapping_sub(lo) < span);
            bits |= (pass as u32) << j;
        }
        while bits != 0 {
            let j = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            f(base + j, word(&chunk[j * W..]));
        }
        base += 8;
    }
    for (j, b) in tail.chunks_exact(W).enumerate() {
        let v = word(b);
        if v & mask == 0 && v.wrapping_sub(lo) < span {
            f(base + j, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(data: &[u8], word_bytes: usize, align: u64, range: Range<u64>) -> Vec<(usize, u64)> {
        data.chunks_exact(word_bytes)
            .map(le_word)
            .enumerate()
            .filter(|(_, v)| align != 0 && v % align == 0 && range.contains(v))
            .collect()
    }

    #[test]
    fn finds_exactly_the_aligned_words_in_range() {
        // Words around the range's ends and alignment, plus noise, at every length
        // (so every remainder of the eight-word steps is covered).
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for (word_bytes, align, range) in [
            (4usize, 16u64, 0x2000_0000u64..0x2000_8000u64),
            (4, 32, 0x2000_0001..0x2003_0000),
            (8, 32, 0x7f00_0000_0000..0x7f00_0010_0000),
            (4, 12, 0x100..0x10000), // not a power of two: the plain loop
            (4, 16, 0..u64::MAX),
            (4, 16, 5..5),
            // 32-bit words against ranges at and past the 32-bit space's end.
            (4, 16, 0xFFFF_FF00..0x1_0000_0100),
            (4, 1 << 31, 0..1 << 33),
            (4, 16, 0x1_0000_0000..0x2_0000_0000),
            (4, 8, 0..1 << 32),
            (3, 16, 0..1 << 20), // an odd word size
        ] {
            for len in 0..200 {
                let mut data = Vec::new();
                for _ in 0..len {
                    let r = next();
                    let v = match r % 4 {
                        0 => range.start.wrapping_add(r >> 40) / align.max(1) * align.max(1),
                        1 => range.end.wrapping_sub(r % 64),
                        2 => range.start.wrapping_add(r % 64),
                        _ => r,
                    };
                    data.extend_from_slice(&v.to_le_bytes()[..word_bytes]);
                }
                data.extend(std::iter::repeat_n(0xAB, len % 3)); // a partial word
                let mut got = Vec::new();
                candidates(&data, word_bytes, align, range.clone(), |k, v| got.push((k, v)));
                assert_eq!(got, naive(&data, word_bytes, align, range.clone()), "{word_bytes} {align} {range:?} {len}");
            }
        }
    }
}
