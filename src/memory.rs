//! Bounds-checked views of target memory.
//!
//! Every byte of a dump or a flash image is untrusted, so the decoder never indexes
//! into them directly: it asks a [`Region`] (one contiguous range of the target's
//! address space) or a [`Memory`] (RAM plus flash) for a word or a slice at a target
//! address, and gets `None`/an error instead of a panic when the range is not there.

use crate::decode::reads::Tracker;
use crate::error::ReadError;

/// One contiguous range of the target's address space backed by bytes we hold.
#[derive(Clone, Copy, Debug)]
pub struct Region<'a> {
    pub base: u64,
    pub bytes: &'a [u8],
}

impl<'a> Region<'a> {
    pub fn new(base: u64, bytes: &'a [u8]) -> Self {
        Region { base, bytes }
    }

    /// First address past the region.
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.bytes.len() as u64)
    }

    pub fn contains(&self, address: u64) -> bool {
        address >= self.base && address < self.end()
    }

    /// `len` bytes at `address`, or `None` if any of them lies outside the region.
    pub fn slice(&self, address: u64, len: u64) -> Option<&'a [u8]> {
        let start = address.checked_sub(self.base)?;
        let end = start.checked_add(len)?;
        if end > self.bytes.len() as u64 {
            return None;
        }
        self.bytes.get(start as usize..end as usize)
    }

    /// Little-endian word of `word_bytes` (4 or 8) bytes at `address`.
    pub fn word(&self, address: u64, word_bytes: u32) -> Option<u64> {
        let b = self.slice(address, word_bytes as u64)?;
        Some(le_word(b))
    }

    pub fn u8(&self, address: u64) -> Option<u8> {
        self.slice(address, 1).and_then(|b| b.first().copied())
    }
}

/// Bytes [`each_differing`] compares at once before it looks closer.
const COARSE: usize = 4096;

/// Calls `differs(offset, len)`, in order, for each stretch of `fine` bytes
/// (counted from the start; the last may be shorter) where `a` and `b` differ.
/// Two consecutive snapshots differ in a few places: `COARSE` bytes are
/// compared at once first (one `memcmp`, at the speed of reading them), and
/// only a part that differs is compared `fine` bytes at a time. (Comparing
/// every 64 bytes on their own cost a call each: a busy SAMD51 snapshot's pool
/// took 14 µs against 11.) Bytes past the shorter slice are not compared.
pub fn each_differing(a: &[u8], b: &[u8], fine: usize, mut differs: impl FnMut(usize, usize)) {
    let fine = fine.max(1);
    // A whole number of fine stretches, so that they start where they would.
    let coarse = COARSE.div_ceil(fine) * fine;
    let len = a.len().min(b.len());
    let mut at = 0;
    while at < len {
        let end = at.saturating_add(coarse).min(len);
        if a[at..end] != b[at..end] {
            let mut k = at;
            while k < end {
                let e = k.saturating_add(fine).min(end);
                if !same_bytes(&a[k..e], &b[k..e]) {
                    differs(k, e - k);
                }
                k = e;
            }
        }
        at = end;
    }
}

/// `a == b`, inline: the slices compared are a few blocks long, where a call to
/// `memcmp` costs more than the compare.
#[inline]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    const STEP: usize = 16;
    if a.len() != b.len() {
        return false;
    }
    let (ca, cb) = (a.chunks_exact(STEP), b.chunks_exact(STEP));
    // (Byte by byte: `==` on slices calls `memcmp` even when they are empty.)
    let tails_match = ca.remainder().iter().zip(cb.remainder()).all(|(x, y)| x == y);
    let word = |c: &[u8]| <[u8; STEP]>::try_from(c).map(u128::from_ne_bytes).ok();
    tails_match && ca.zip(cb).all(|(x, y)| word(x) == word(y))
}

/// Little-endian unsigned integer from up to 8 bytes (shorter slices are zero-extended).
#[inline]
pub fn le_word(bytes: &[u8]) -> u64 {
    // The common cases first: one load instead of a byte loop.
    if let Ok(b) = <[u8; 4]>::try_from(bytes) {
        return u32::from_le_bytes(b) as u64;
    }
    if let Ok(b) = <[u8; 8]>::try_from(bytes) {
        return u64::from_le_bytes(b);
    }
    let mut v = 0u64;
    for (i, b) in bytes.iter().take(8).enumerate() {
        v |= (*b as u64) << (8 * i);
    }
    v
}

/// What the decoder can read of the target: one RAM snapshot and the flash image.
/// With a tracker, every read of RAM through it is written down (see
/// [`crate::decode::reads`]).
#[derive(Clone, Copy, Debug)]
pub struct Memory<'a> {
    pub ram: Region<'a>,
    pub flash: Region<'a>,
    pub word_bytes: u32,
    pub tracker: Option<Tracker<'a>>,
}

impl<'a> Memory<'a> {
    /// The region that holds `address`, RAM first.
    fn region_of(&self, address: u64) -> Option<&Region<'a>> {
        if self.ram.contains(address) {
            Some(&self.ram)
        } else if self.flash.contains(address) {
            Some(&self.flash)
        } else {
            None
        }
    }

    pub fn bytes(&self, address: u64, len: u64, what: &'static str) -> Result<&'a [u8], ReadError> {
        if let Some(t) = &self.tracker {
            // Only reads that succeed read anything (and are bounded by RAM).
            if self.ram.slice(address, len).is_some() {
                t.record(address, len, what);
            }
        }
        self.region_of(address).and_then(|r| r.slice(address, len)).ok_or(ReadError { what, address, len })
    }

    pub fn word(&self, address: u64, what: &'static str) -> Result<u64, ReadError> {
        self.bytes(address, self.word_bytes as u64, what).map(le_word)
    }

    pub fn u8(&self, address: u64, what: &'static str) -> Result<u8, ReadError> {
        self.bytes(address, 1, what).map(|b| b.first().copied().unwrap_or(0))
    }

    /// The same memory, its reads pinned to `consumer` (see [`crate::decode::reads`]).
    pub fn pinned(&self, consumer: u32) -> Memory<'a> {
        let tracker = self.tracker.map(|t| Tracker { log: t.log, pinned: Some(consumer) });
        Memory { tracker, ..*self }
    }

    /// Writes down a lookup of the allocation covering `address`: it depends on
    /// that block as a read of it does.
    pub fn note_lookup(&self, address: u64, what: &'static str) {
        if let Some(t) = &self.tracker {
            if self.ram.contains(address) {
                t.record(address, 1, what);
            }
        }
    }

    pub fn in_ram(&self, address: u64) -> bool {
        self.ram.contains(address)
    }

    pub fn in_flash(&self, address: u64) -> bool {
        self.flash.contains(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The stretches found are exactly those a stretch-by-stretch compare
        /// finds, for lengths that are and are not whole stretches or whole
        /// coarse parts, and differences anywhere (the first and last byte too).
        #[test]
        fn each_differing_finds_every_differing_stretch(
            len in 0usize..3 * COARSE + 200,
            fine in proptest::sample::select(vec![1usize, 16, 64, 100]),
            changes in proptest::collection::vec((0usize..3 * COARSE + 200, 1u8..255), 0..12),
        ) {
            let a: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut b = a.clone();
            for (at, by) in changes {
                if let Some(x) = b.get_mut(at) {
                    *x = x.wrapping_add(by);
                }
            }
            let mut found = Vec::new();
            each_differing(&a, &b, fine, |from, n| found.push((from, n)));
            let expected: Vec<(usize, usize)> = (0..len)
                .step_by(fine)
                .map(|from| (from, fine.min(len - from)))
                .filter(|&(from, n)| a[from..from + n] != b[from..from + n])
                .collect();
            proptest::prop_assert_eq!(found, expected);
        }
    }

    #[test]
    fn reads_stop_at_region_edges() {
        let bytes = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let r = Region::new(0x2000_0000, &bytes);
        assert_eq!(r.word(0x2000_0000, 4), Some(0x0403_0201));
        assert_eq!(r.word(0x2000_0004, 4), Some(0x0807_0605));
        assert_eq!(r.word(0x2000_0005, 4), None, "word crossing the end");
        assert_eq!(r.word(0x1fff_ffff, 4), None, "word before the start");
        assert_eq!(r.slice(u64::MAX - 1, 4), None, "no overflow near u64::MAX");
        assert_eq!(r.word(0x2000_0000, 8), Some(0x0807_0605_0403_0201));
    }
}
