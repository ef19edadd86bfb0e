//! Fragmentation culprits: at a snapshot, the allocations that split the free
//! space, and how long a free run their going would make.
//!
//! A snapshot's live allocations are the `allocations` rows whose lifetime
//! covers it; the free runs are the gaps between them in the pool. Taking away
//! K allocations next to one another merges the gaps around them into one run:
//! for each K up to [`MAX_K`], the K whose going makes the longest run are the
//! culprits ("if these K were gone, the largest free run would be X bytes").
//! The longest gap is checked against the snapshot's own longest free run; a
//! disagreement (an allocation the table does not have) is said, not hidden.

use std::path::Path;

use serde::Serialize;

use super::instances::{instances, Instance};
use super::summary::SnapshotFigures;
use crate::error::Result;

/// Culprit sets are listed for 1 to this many allocations.
pub const MAX_K: usize = 3;

/// One allocation in the way.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Culprit {
    /// Its address.
    pub address: u64,
    /// Its size.
    pub bytes: u64,
    /// Its kind.
    pub kind: String,
    /// Its type's symbol, when it has one.
    pub type_name: Option<String>,
    /// Its Python name or class, when known.
    pub name: Option<String>,
    /// Snapshots since it was made (at least this many when `age_at_least`:
    /// it was there before the analysed range).
    pub age_snapshots: u64,
    /// Whether it was already there at the first analysed snapshot.
    pub age_at_least: bool,
    /// What held it at its last sighting: a root's name, or the holding
    /// allocation's kind and address.
    pub holder: Option<String>,
}

/// Removing `allocations` would make a free run of `largest_free_bytes_if_gone`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Removal {
    /// The allocations (1 to [`MAX_K`]).
    pub allocations: Vec<Culprit>,
    /// The largest free run, in bytes, were they gone.
    pub largest_free_bytes_if_gone: u64,
}

/// The culprits of one snapshot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Culprits {
    /// The snapshot.
    pub snapshot: u64,
    /// Why this snapshot: `tightest` (the smallest largest free run),
    /// `most_fragmented`, `memory_error`.
    pub moments: Vec<&'static str>,
    /// Its free bytes.
    pub free_bytes: u64,
    /// Its largest free run, in bytes.
    pub largest_free_bytes: u64,
    /// For 1, 2, … [`MAX_K`] allocations.
    pub removals: Vec<Removal>,
    /// Set when the answer may not be the whole truth (a split heap's later
    /// areas, gaps that disagree with the snapshot's own figures).
    pub note: Option<String>,
}

/// The culprits at each of `snapshots` (those of `figures` only).
pub fn at_snapshots(out: &Path, figures: &[SnapshotFigures], snapshots: &[u64]) -> Result<Vec<Culprits>> {
    if !figures.iter().any(|f| snapshots.contains(&f.snapshot)) {
        return Ok(Vec::new());
    }
    Ok(among(&instances(out)?, figures, snapshots))
}

/// [`at_snapshots`], from the folder's allocation instances `all`.
pub fn among(all: &[Instance], figures: &[SnapshotFigures], snapshots: &[u64]) -> Vec<Culprits> {
    let wanted = figures.iter().filter(|f| snapshots.contains(&f.snapshot));
    wanted.map(|f| at(all, f)).collect()
}

/// The culprits of snapshot `f`, from every allocation row.
fn at(all: &[Instance], f: &SnapshotFigures) -> Culprits {
    let s = f.snapshot;
    let area = f.pool_start..f.pool_end;
    let mut live: Vec<&Instance> = all.iter().filter(|r| r.alive_at(s) && area.contains(&r.address)).collect();
    live.sort_by_key(|r| r.address);
    // gaps[i] is the free run before live[i]; the last one runs to the pool's end.
    let mut gaps = Vec::with_capacity(live.len() + 1);
    let mut at = f.pool_start;
    for r in &live {
        gaps.push(r.address.saturating_sub(at));
        at = at.max(r.address.saturating_add(r.bytes));
    }
    gaps.push(f.pool_end.saturating_sub(at));
    let largest = gaps.iter().copied().max().unwrap_or(0);
    let mut notes = Vec::new();
    if f.heap_areas > 1 {
        notes.push(format!("the first of {} heap areas only", f.heap_areas));
    }
    if largest != f.largest_free {
        notes.push(format!(
            "the allocations table leaves a longest gap of {largest} bytes where the snapshot's longest free run is {}",
            f.largest_free
        ));
    }
    let removals = (1..=MAX_K.min(live.len())).map(|k| best_window(&live, &gaps, k, largest, f)).collect();
    Culprits {
        snapshot: s,
        moments: Vec::new(),
        free_bytes: f.free,
        largest_free_bytes: largest,
        removals,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

/// The `k` consecutive live allocations whose going makes the longest run.
fn best_window(live: &[&Instance], gaps: &[u64], k: usize, largest: u64, f: &SnapshotFigures) -> Removal {
    // The run made by removing live[i..i + k]: the gaps around and between
    // them and their own bytes, summed as a sliding window.
    let run_at = |i: usize| -> u64 {
        let bytes: u64 = live[i..i + k].iter().map(|r| r.bytes).sum();
        let between: u64 = gaps[i..=i + k].iter().sum();
        bytes + between
    };
    let (best, run) = (0..=live.len() - k).map(|i| (i, run_at(i))).fold((0, 0), |a, b| if b.1 > a.1 { b } else { a });
    let by_address = |a: u64| live.binary_search_by_key(&a, |r| r.address).ok().map(|i| live[i]);
    let allocations = live[best..best + k]
        .iter()
        .map(|r| Culprit {
            address: r.address,
            bytes: r.bytes,
            kind: r.kind.clone(),
            type_name: r.type_name.clone(),
            name: r.label().map(str::to_string),
            age_snapshots: f.snapshot - r.first,
            age_at_least: r.open_start,
            holder: holder(r, &by_address),
        })
        .collect();
    Removal { allocations, largest_free_bytes_if_gone: run.max(largest) }
}

fn holder<'a>(r: &Instance, by_address: &dyn Fn(u64) -> Option<&'a Instance>) -> Option<String> {
    if let Some(root) = &r.holder_root {
        return Some(root.clone());
    }
    let a = r.holder_address?;
    Some(match by_address(a) {
        Some(h) => format!("{} at 0x{a:08x}", h.kind),
        None => format!("0x{a:08x}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(address: u64, bytes: u64, first: u64) -> Instance {
        Instance { address, bytes, blocks: bytes / 16, kind: "str".into(), first, last: 10, ..Instance::default() }
    }

    /// A pool of 160 bytes at 0x1000 (16-byte blocks), worked by hand:
    /// | free 16 | A 16 | free 16 | B 32 | free 32 | C 16 | free 32 |.
    #[test]
    fn a_hand_worked_heap() {
        let all = vec![row(0x1010, 16, 1), row(0x1030, 32, 2), row(0x1070, 16, 3), row(0x2000, 16, 0)];
        let f = SnapshotFigures {
            snapshot: 5,
            free: 96,
            largest_free: 32,
            pool_start: 0x1000,
            pool_end: 0x10a0,
            heap_areas: 1,
            ..SnapshotFigures::default()
        };
        let c = at(&all, &f);
        assert_eq!((c.largest_free_bytes, c.note.as_deref()), (32, None));
        let runs: Vec<u64> = c.removals.iter().map(|r| r.largest_free_bytes_if_gone).collect();
        // Without B: 16 + 32 + 32 = 80 (without C: 32 + 16 + 32 = 80 too; the
        // first wins). Without A and B: 16+16+16+32+32 = 112; without B and C:
        // 16+32+32+16+32 = 128. All three: the whole pool, 160.
        assert_eq!(runs, [80, 128, 160]);
        let addresses: Vec<Vec<u64>> =
            c.removals.iter().map(|r| r.allocations.iter().map(|a| a.address).collect()).collect();
        assert_eq!(addresses, [vec![0x1030], vec![0x1030, 0x1070], vec![0x1010, 0x1030, 0x1070]]);
        assert_eq!(c.removals[0].allocations[0].age_snapshots, 3);
        // A snapshot whose own figures disagree with the table says so.
        let c = at(&all, &SnapshotFigures { largest_free: 48, ..f });
        assert!(c.note.is_some_and(|n| n.contains("48")));
    }
}
