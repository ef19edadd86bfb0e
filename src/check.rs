//! The capture checked as a whole, before anything is decoded: do the dump and
//! the firmware inputs (map or ELF, RAM bounds, layout profile) belong together?
//!
//! A dump cut into snapshots of the wrong size, or read with another build's
//! layout, decodes into rows that look fine and are wrong. Two facts of the
//! firmware tell: `gc_init` leaves a GC state in `mp_state_ctx.mem` that adds up
//! (see [`AreaState::area`]), and that state's geometry words stay the same for
//! the whole run, so in a dump they recur once per snapshot. Where the state is
//! found, and how often it recurs, give the RAM bounds the dump was made with;
//! which shipped profile reads it gives the layout.

use std::ops::Range;
use std::path::Path;

use crate::decode::AreaState;
use crate::dump::Dump;
use crate::error::{Error, Result};
use crate::firmware::Firmware;
use crate::memory::Region;
use crate::profile::{self, Profile};

/// Snapshots, spread over the dump, whose GC state is checked: if none adds up,
/// the inputs do not fit the dump (a few bad snapshots are each flagged instead).
const SAMPLES: u64 = 9;
/// How far into the dump the state is looked for, and its recurrence: well past
/// any MCU's RAM, and a bounded amount of work.
const SEARCH_BYTES: u64 = 16 << 20;
/// Recurrences of the state a period must show (when the dump is that long).
const CONFIRMATIONS: u64 = 8;

/// Checks the dump against the firmware and profile; the error says what was
/// found and what to pass instead. Profiles that do not read the GC state are
/// not checked (nothing in the dump can be held against them).
pub fn check_capture(dump: &Dump, firmware: &Firmware, profile: &Profile, symbols_file: &Path) -> Result<()> {
    if !profile.state.gc.read {
        return Ok(());
    }
    let snapshot_bytes = dump.snapshot_bytes();
    let ram = firmware.ram_start..firmware.ram_end;
    let state_offset = firmware.state_address - firmware.ram_start;
    let last = dump.count().saturating_sub(1);
    let mut samples = (0..SAMPLES).map(|k| k * last / (SAMPLES - 1));
    let adds_up =
        |i: u64| dump.snapshot(i).is_some_and(|snap| state_at(profile, &ram, snap, firmware.state_address).is_some());
    let Some(good) = samples.find(|&i| adds_up(i)) else {
        return Err(diagnose(dump, firmware, profile, symbols_file));
    };
    let base = good * snapshot_bytes + state_offset;
    // The shortest period, not whether the map's size is one: a snapshot twice
    // as long as the real one repeats too.
    match Recurrence::new(dump.bytes(), base, profile).and_then(|r| r.period()) {
        Some(p) if p != snapshot_bytes => Err(mismatch(
            dump,
            format!(
                "the GC state recurs every {p} bytes in the dump, but {} makes a snapshot {snapshot_bytes} bytes \
                 (0x{:08x}..0x{:08x})",
                symbols_file.display(),
                ram.start,
                ram.end
            ),
            bounds_advice(ram.start, Some(p)),
        )),
        _ => Ok(()),
    }
}

/// The GC state at `state_address` in `snap`, taken as RAM from `ram.start`,
/// if it adds up (bounds checked against `ram`).
fn state_at(profile: &Profile, ram: &Range<u64>, snap: &[u8], state_address: u64) -> Option<AreaState> {
    let region = Region::new(ram.start, snap);
    AreaState::read(&region, state_address, &profile.state.gc, &profile.heap)
        .filter(|s| s.area(ram, &profile.heap, 0).is_some())
}

/// The GC state's geometry words at dump offset `base`, and where they recur.
struct Recurrence<'d> {
    dump: &'d [u8],
    base: u64,
    word: u64,
    offsets: [u64; 4],
    pattern: [u64; 4],
}

impl<'d> Recurrence<'d> {
    fn new(dump: &'d [u8], base: u64, profile: &Profile) -> Option<Self> {
        let gc = &profile.state.gc;
        let offsets = [gc.alloc_table_start, gc.alloc_table_byte_len, gc.pool_start, gc.pool_end];
        let mut r = Recurrence { dump, base, word: profile.heap.word_bytes as u64, offsets, pattern: [0; 4] };
        r.pattern = r.words_at(base)?;
        Some(r)
    }

    fn words_at(&self, at: u64) -> Option<[u64; 4]> {
        let region = Region::new(0, self.dump);
        let mut w = [0; 4];
        for (slot, o) in w.iter_mut().zip(self.offsets) {
            *slot = region.word(at.checked_add(o)?, self.word as u32)?;
        }
        Some(w)
    }

    /// Whether the words recur at most multiples of `d`, up to [`CONFIRMATIONS`]
    /// as far as the dump goes: a few bad snapshots (each flagged on its own
    /// later) must not make the period look like another.
    fn every(&self, d: u64) -> bool {
        let at = |k: u64| self.base.checked_add(d.checked_mul(k)?);
        let region = Region::new(0, self.dump);
        let word = self.word as u32;
        // The positions the dump holds whole: its farthest word is readable.
        let farthest = self.offsets.iter().copied().max().unwrap_or(0);
        let holds = |k: &u64| at(*k).and_then(|a| region.word(a.checked_add(farthest)?, word)).is_some();
        let seen = (1..=CONFIRMATIONS).take_while(holds).count() as u64;
        // Up to 4M candidates are tried on a dump whose state never recurs, so
        // each is dropped once it can no longer have a majority, and a
        // position's first word is read before the rest (most differ there).
        let (mut matches, mut missed) = (0u64, 0u64);
        for a in (1..=seen).filter_map(at) {
            let first = a.checked_add(self.offsets[0]).and_then(|f| region.word(f, word));
            if first == Some(self.pattern[0]) && self.words_at(a) == Some(self.pattern) {
                matches += 1;
            } else {
                missed += 1;
                if 2 * (seen - missed) <= seen {
                    return false;
                }
            }
        }
        matches > 0 && 2 * matches > seen
    }

    /// The shortest distance (a multiple of the word) at which the words recur.
    fn period(&self) -> Option<u64> {
        let limit = SEARCH_BYTES.min(self.dump.len() as u64);
        (1..=limit / self.word).map(|k| k * self.word).find(|&d| self.every(d))
    }
}

/// Why no sampled snapshot's state adds up: the state found elsewhere (RAM
/// bounds off), found with a shipped profile (another layout), or not at all.
fn diagnose(dump: &Dump, firmware: &Firmware, profile: &Profile, symbols_file: &Path) -> Error {
    let expected = format!(
        "no snapshot's GC state adds up at `{}` (0x{:08x}) with the layout profile `{}`",
        profile.symbols.state, firmware.state_address, profile.name
    );
    if let Some(found) = find_state(dump.bytes(), firmware.state_address, profile) {
        if let Some(error) = other_build(dump, firmware, &found, symbols_file, &expected) {
            return error;
        }
        let (ram_start, p) = (found.ram_start, found.period);
        let bounds = format!(
            "it adds up {} bytes into the dump, so the dump starts at 0x{ram_start:08x}{}; {} says 0x{:08x}..0x{:08x}",
            found.offset,
            p.map_or(String::new(), |p| format!(" and its snapshots are {p} bytes")),
            symbols_file.display(),
            firmware.ram_start,
            firmware.ram_end
        );
        return mismatch(dump, format!("{expected}; {bounds}"), bounds_advice(ram_start, p));
    }
    let others: Vec<&str> = profile::shipped()
        .filter(|(_, p)| p.name != profile.name && find_state(dump.bytes(), firmware.state_address, p).is_some())
        .map(|(name, _)| name)
        .collect();
    let advice = match others.as_slice() {
        [] => "this dump is not of this build, or the build's layout is not the profile's: pass the build's ELF \
               (`heapvis analyze ram.bin firmware.elf`, the layout from its debug info), or `--profile FILE` \
               (`heapvis profile firmware.elf > FILE` makes one)"
            .to_string(),
        names => format!("the dump reads with the shipped profile {}: pass `--profile {}`", names.join(", "), names[0]),
    };
    mismatch(dump, format!("{expected}, nor anywhere in its first snapshot"), advice)
}

/// When the state found puts the heap elsewhere than the firmware's heap
/// symbol, the firmware is another build's (RAM bounds would not help).
fn other_build(
    dump: &Dump,
    firmware: &Firmware,
    found: &FoundState,
    symbols_file: &Path,
    expected: &str,
) -> Option<Error> {
    let heap = firmware.heap_start..firmware.heap_start.saturating_add(firmware.heap_bytes);
    let inside = heap.contains(&found.alloc_table_start) && found.pool_end <= heap.end;
    if firmware.heap_bytes == 0 || inside {
        return None;
    }
    Some(mismatch(
        dump,
        format!(
            "{expected}; a GC state {} bytes into the dump puts the heap at 0x{:08x}..0x{:08x}, outside {}'s \
             heap symbol (0x{:08x}..0x{:08x})",
            found.offset,
            found.alloc_table_start,
            found.pool_end,
            symbols_file.display(),
            heap.start,
            heap.end
        ),
        "these firmware files are not the dump's build: give the build's own map and firmware.bin, or its ELF"
            .to_string(),
    ))
}

/// A GC state found by [`find_state`].
struct FoundState {
    /// Its offset in the dump, and the RAM start that puts it at its symbol.
    offset: u64,
    ram_start: u64,
    /// Where that state puts the (first) allocation table, and the pool's end.
    alloc_table_start: u64,
    pool_end: u64,
    /// How often it recurs, if it does.
    period: Option<u64>,
}

/// The first offset of the dump's first [`SEARCH_BYTES`] where a GC state adds
/// up, read as if the dump started at the address that puts that offset at
/// `state_address`.
fn find_state(dump: &[u8], state_address: u64, profile: &Profile) -> Option<FoundState> {
    let head = &dump[..dump.len().min(SEARCH_BYTES as usize)];
    let word = profile.heap.word_bytes as u64;
    let (offset, state) = (0..=head.len() as u64 / word).map(|k| k * word).find_map(|x| {
        let start = state_address.checked_sub(x)?;
        let ram = start..start.saturating_add(head.len() as u64);
        state_at(profile, &ram, head, state_address).map(|s| (x, s))
    })?;
    Some(FoundState {
        offset,
        ram_start: state_address - offset,
        alloc_table_start: state.alloc_table_start,
        pool_end: state.pool_end,
        period: Recurrence::new(dump, offset, profile).and_then(|r| r.period()),
    })
}

/// The options that read the dump with the bounds it was made with.
fn bounds_advice(ram_start: u64, period: Option<u64>) -> String {
    match period.and_then(|p| ram_start.checked_add(p)) {
        Some(end) => format!(
            "if these are the dump's firmware files, pass `--ram-start 0x{ram_start:08x} --ram-end 0x{end:08x}`; \
             else give the build's own map or ELF"
        ),
        None => format!(
            "if these are the dump's firmware files, pass `--ram-start 0x{ram_start:08x}` and the matching \
             `--ram-end`; else give the build's own map or ELF"
        ),
    }
}

fn mismatch(dump: &Dump, found: String, advice: String) -> Error {
    Error::CaptureMismatch { path: dump.path().to_path_buf(), found, advice }
}

#[cfg(test)]
mod tests {
    use super::{Recurrence, CONFIRMATIONS};

    /// [`Recurrence::every`] as first written: every position read whole.
    fn every_plainly(r: &Recurrence, d: u64) -> bool {
        let at = |k: u64| r.base.checked_add(d.checked_mul(k)?).and_then(|a| r.words_at(a));
        let (mut seen, mut matches) = (0u32, 0u32);
        for w in (1..=CONFIRMATIONS).map_while(at) {
            seen += 1;
            matches += (w == r.pattern) as u32;
        }
        matches > 0 && 2 * matches > seen
    }

    /// A state recurring every 64 bytes among noise, two of its next eight
    /// places spoiled (one in its first word, one in a later word): found at
    /// 64, and each candidate judged as reading every position whole judges it.
    #[test]
    fn the_period_is_the_majority_one_and_each_candidate_is_judged_as_plainly() {
        let (period, base, offsets) = (64u64, 8u64, [0u64, 4, 12, 20]);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut dump: Vec<u8> = (0..period * 12)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                (x >> 56) as u8
            })
            .collect();
        let pattern: [u32; 4] = [0x2000_1000, 0x0000_0400, 0x2000_1400, 0x2001_f000];
        for k in 0..12 {
            for (o, w) in offsets.iter().zip(pattern) {
                let at = (base + k * period + o) as usize;
                dump[at..at + 4].copy_from_slice(&w.to_le_bytes());
            }
        }
        dump[(base + 3 * period) as usize] ^= 0xff;
        dump[(base + 7 * period + 12) as usize] ^= 0xff;
        let mut r = Recurrence { dump: &dump, base, word: 4, offsets, pattern: [0; 4] };
        r.pattern = r.words_at(base).expect("the state");
        for d in (4..=dump.len() as u64 + 8).step_by(4) {
            assert_eq!(r.every(d), every_plainly(&r, d), "distance {d}");
        }
        assert_eq!(r.period(), Some(period));
    }
}
