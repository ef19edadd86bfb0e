//! The morning after on one screen (`heapvis summary OUT`): the run's span, how
//! full the heap got, how close it came to a MemoryError and when, collections,
//! MemoryErrors, fragmentation at its worst, leak suspects and the allocations
//! that split the free space. Every figure comes from the tables `analyze`
//! wrote; each names the snapshot it was seen at, and one that cannot be known
//! from the tables is `None`, never a guess.

use std::path::Path;

use serde::Serialize;

use super::culprits::{self, Culprits};
use super::leaks::{self, Suspect};
use super::{floats, ints, read_columns, texts};
use crate::error::{Error, Result};

/// A figure and the snapshot it was seen at.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct At<T> {
    /// The figure.
    pub value: T,
    /// The snapshot where it was reached.
    pub snapshot: u64,
}

/// A MemoryError of the run (from the capture's sidecar) and what caused it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemoryError {
    /// The snapshot the capture took when the allocation failed.
    pub snapshot: u64,
    /// The size the failing allocation asked for, when the sidecar says.
    pub requested_bytes: Option<u64>,
    /// Free bytes then.
    pub free_bytes: u64,
    /// The largest run of free blocks then, in bytes.
    pub largest_free_bytes: u64,
    /// `fragmentation` (enough was free, not in one run), `exhaustion` (not
    /// enough was free at all) or `unknown` (the request's size is not known).
    pub cause: &'static str,
}

/// One screen of answers about a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Snapshots decoded (`ok`), and the range they span.
    pub snapshots: u64,
    /// The first decoded snapshot.
    pub first_snapshot: u64,
    /// The last decoded snapshot.
    pub last_snapshot: u64,
    /// Snapshots that could not be decoded, or were suspect.
    pub bad_snapshots: u64,
    /// Host seconds from the first snapshot to the last (from the sidecar).
    pub time_span_seconds: Option<f64>,
    /// The heap's size (its blocks' bytes).
    pub heap_bytes: u64,
    /// The most bytes in use.
    pub peak_used_bytes: At<u64>,
    /// The fewest bytes free.
    pub min_free_bytes: At<u64>,
    /// The smallest largest run of free blocks: the biggest allocation the
    /// heap could have given at its worst moment (before a collection).
    pub min_largest_free_bytes: At<u64>,
    /// At that moment, a request of this many bytes or more would have needed
    /// a collection to free a long enough run, and failed without one.
    pub smallest_failing_request_bytes: u64,
    /// `1 − largest free / free` at its highest.
    pub max_fragmentation: Option<At<f64>>,
    /// Garbage collections during the run.
    pub collections: u64,
    /// Where `collections` was counted: `sidecar` (its `collect_start` events)
    /// or `marks` (runs of snapshots logged during a collection).
    pub collections_from: &'static str,
    /// `None` without a sidecar naming events.
    pub memory_errors: Option<Vec<MemoryError>>,
    /// Allocations whose request was larger than the largest free run: each
    /// needed a collection first (a MemoryError unless it freed enough). `None`
    /// without requested sizes in the sidecar.
    pub requests_over_largest_free: Option<u64>,
    /// Owners whose retained bytes grow steadily after warm-up, most first;
    /// `None` without a `retainers` table (`--no-retention`).
    pub leak_suspects: Option<Vec<Suspect>>,
    /// Where the warm-up ended.
    pub warm_up_until: Option<u64>,
    /// The allocations splitting the free space at the worst snapshots.
    pub culprits: Vec<Culprits>,
    /// Why there are no culprits, when the folder cannot tell them (no
    /// `allocations` table: `--metrics-only`).
    pub culprits_unknown: Option<String>,
}

impl Summary {
    /// The growth of the top leak suspect per 1,000 snapshots (0 with none).
    pub fn leak_bytes_per_1000_snapshots(&self) -> Option<f64> {
        let s = self.leak_suspects.as_ref()?;
        Some(s.first().map_or(0.0, |s| s.bytes_per_1000.max(0.0)))
    }

    /// The growth of the top leak suspect per hour (0 with none; `None` when
    /// the sidecar gives no time).
    pub fn leak_bytes_per_hour(&self) -> Option<f64> {
        let s = self.leak_suspects.as_ref()?;
        match s.first() {
            Some(top) => top.bytes_per_hour,
            None => self.time_span_seconds.map(|_| 0.0),
        }
    }

    /// Every figure a `--fail-if` condition may name, with its value (`None`:
    /// not known for this run).
    pub fn figures(&self) -> Vec<(&'static str, Option<f64>)> {
        let n = |v: u64| Some(v as f64);
        vec![
            ("snapshots", n(self.snapshots)),
            ("bad_snapshots", n(self.bad_snapshots)),
            ("time_span_seconds", self.time_span_seconds),
            ("heap_bytes", n(self.heap_bytes)),
            ("peak_used_bytes", n(self.peak_used_bytes.value)),
            ("min_free_bytes", n(self.min_free_bytes.value)),
            ("min_largest_free_bytes", n(self.min_largest_free_bytes.value)),
            ("max_fragmentation", self.max_fragmentation.map(|f| f.value)),
            ("collections", n(self.collections)),
            ("memory_errors", self.memory_errors.as_ref().map(|m| m.len() as f64)),
            ("requests_over_largest_free", self.requests_over_largest_free.map(|v| v as f64)),
            ("leak_suspects", self.leak_suspects.as_ref().map(|s| s.len() as f64)),
            ("leak_bytes_per_1000_snapshots", self.leak_bytes_per_1000_snapshots()),
            ("leak_bytes_per_hour", self.leak_bytes_per_hour()),
        ]
    }
}

/// One decoded snapshot's row of `snapshots`, as far as the summary needs it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotFigures {
    /// Its index.
    pub snapshot: u64,
    /// The heap's bytes.
    pub total: u64,
    /// Bytes in use.
    pub used: u64,
    /// Bytes free.
    pub free: u64,
    /// The longest run of FREE blocks (the firmware's own count without a
    /// listing of free runs, `--metrics-only`).
    pub largest_free: u64,
    /// `1 − largest free / free`.
    pub fragmentation: Option<f64>,
    /// Logged during a collection (MARK heads or a sweep's orphan tails).
    pub in_collection: bool,
    /// Logged mid-sweep: it has orphan tails, blocks neither free nor in an
    /// allocation, a heap no allocation sees (the sweep ends first).
    pub sweeping: bool,
    /// Host seconds (the sidecar's `time`).
    pub time: Option<f64>,
    /// The event the capture broke at (`alloc`, `memory_error`, …).
    pub event: Option<String>,
    /// The size the allocation asked for, when the sidecar says.
    pub requested: Option<u64>,
    /// The events the capture broke at (the sidecar's `watched`).
    pub watched: Option<String>,
    /// The pool's first address.
    pub pool_start: u64,
    /// The address just past the pool.
    pub pool_end: u64,
    /// Bytes per block.
    pub block_bytes: u64,
    /// How many heap areas (more than one: a split heap).
    pub heap_areas: u64,
}

const SNAPSHOT_COLUMNS: &[&str] = &[
    "snapshot",
    "status",
    "total_bytes",
    "used_bytes",
    "free_bytes",
    "gc_max_free_bytes",
    "longest_free_run_bytes",
    "fragmentation",
    "marked_blocks",
    "orphan_tail_blocks",
    "time",
    "event",
    "requested_bytes",
    "watched",
    "pool_start",
    "pool_end",
    "block_bytes",
    "heap_areas",
];

/// The decoded snapshots of `out` in order, and how many were not decoded.
pub fn snapshot_figures(out: &Path) -> Result<(Vec<SnapshotFigures>, u64)> {
    let (mut rows, mut bad) = (Vec::new(), 0u64);
    let u = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
    for b in read_columns(out, "snapshots", Some(SNAPSHOT_COLUMNS))? {
        let (snap, status) = (ints(&b, "snapshot")?, texts(&b, "status")?);
        let (total, used, free) = (ints(&b, "total_bytes")?, ints(&b, "used_bytes")?, ints(&b, "free_bytes")?);
        let (gc_max, longest) = (ints(&b, "gc_max_free_bytes")?, ints(&b, "longest_free_run_bytes")?);
        let (marked, orphans) = (ints(&b, "marked_blocks")?, ints(&b, "orphan_tail_blocks")?);
        let (frag, time) = (floats(&b, "fragmentation")?, floats(&b, "time")?);
        let (mut event, requested) = (texts(&b, "event")?, ints(&b, "requested_bytes")?);
        // Folders of heapvis before `watched` have no such column: none said.
        let mut watched = texts(&b, "watched").unwrap_or_else(|_| vec![None; b.num_rows()]);
        let (pool_start, pool_end) = (ints(&b, "pool_start")?, ints(&b, "pool_end")?);
        let (block_bytes, areas) = (ints(&b, "block_bytes")?, ints(&b, "heap_areas")?);
        for i in 0..b.num_rows() {
            let Some(s) = snap[i] else { continue };
            if status[i].as_deref() != Some("ok") || total[i].is_none() {
                bad += 1;
                continue;
            }
            rows.push(SnapshotFigures {
                snapshot: s.max(0) as u64,
                total: u(total[i]),
                used: u(used[i]),
                free: u(free[i]),
                largest_free: u(longest[i].or(gc_max[i])),
                fragmentation: frag[i],
                in_collection: u(marked[i]) > 0 || u(orphans[i]) > 0,
                sweeping: u(orphans[i]) > 0,
                time: time[i],
                event: event[i].take(),
                requested: requested[i].map(|r| r.max(0) as u64),
                watched: watched[i].take(),
                pool_start: u(pool_start[i]),
                pool_end: u(pool_end[i]),
                block_bytes: u(block_bytes[i]),
                heap_areas: u(areas[i]),
            });
        }
    }
    rows.sort_by_key(|r| r.snapshot);
    Ok((rows, bad))
}

/// How many suspects and worst moments the summary lists at most.
pub const TOP: usize = 5;

/// The summary of output folder `out`.
pub fn summary(out: &Path) -> Result<Summary> {
    let (rows, bad) = snapshot_figures(out)?;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Err(Error::WrongInput {
            path: out.to_path_buf(),
            expected: "an output folder with decoded snapshots",
            found: format!("no snapshot with status `ok` ({bad} not decoded)"),
        });
    };
    let best = |key: &dyn Fn(&SnapshotFigures) -> u64, most: bool| best(&rows, key, most);
    let tightest = tightest(&rows);
    let worst_fragmented = most_fragmented(&rows);
    let memory_errors = memory_errors(&rows);
    let (leak_suspects, warm_up_until) = match leaks::suspects(out) {
        Ok((s, warm)) => (Some(s.into_iter().take(TOP).collect()), Some(warm)),
        Err(Error::MissingInput { .. }) => (None, None),
        Err(e) => return Err(e),
    };
    let (culprits, culprits_unknown) =
        match worst_moments_culprits(out, &rows, memory_errors.as_deref().unwrap_or(&[]), TOP) {
            Ok(c) => (c, None),
            Err(Error::MissingInput { .. }) => {
                (Vec::new(), Some("the folder has no `allocations` table (a --metrics-only run)".to_string()))
            }
            Err(e) => return Err(e),
        };
    let (collections, collections_from) = collections(&rows);
    Ok(Summary {
        snapshots: rows.len() as u64,
        first_snapshot: first.snapshot,
        last_snapshot: last.snapshot,
        bad_snapshots: bad,
        time_span_seconds: first.time.zip(last.time).map(|(a, b)| b - a).filter(|t| t.is_finite()),
        heap_bytes: rows.iter().map(|r| r.total).max().unwrap_or(0),
        peak_used_bytes: best(&|r| r.used, true),
        min_free_bytes: best(&|r| r.free, false),
        min_largest_free_bytes: tightest,
        smallest_failing_request_bytes: tightest.value.saturating_add(1),
        max_fragmentation: worst_fragmented,
        collections,
        collections_from,
        memory_errors,
        requests_over_largest_free: requests_over_largest_free(&rows),
        leak_suspects,
        warm_up_until,
        culprits,
        culprits_unknown,
    })
}

/// The first snapshot of `rows` where `key` is least (or most), and its value.
fn best(rows: &[SnapshotFigures], key: &dyn Fn(&SnapshotFigures) -> u64, most: bool) -> At<u64> {
    let pick = rows.iter().reduce(|a, b| {
        let better = if most { key(b) > key(a) } else { key(b) < key(a) };
        if better {
            b
        } else {
            a
        }
    });
    pick.map(|r| At { value: key(r), snapshot: r.snapshot }).unwrap_or(At { value: 0, snapshot: 0 })
}

/// The snapshots an allocation could have met: those not logged mid-sweep
/// (all of them when every one is).
fn outside_sweeps(rows: &[SnapshotFigures]) -> impl Iterator<Item = &SnapshotFigures> {
    let all_sweeping = rows.iter().all(|r| r.sweeping);
    rows.iter().filter(move |r| all_sweeping || !r.sweeping)
}

/// The first snapshot outside a sweep where the largest free run is least.
fn tightest(rows: &[SnapshotFigures]) -> At<u64> {
    outside_sweeps(rows)
        .reduce(|a, b| if b.largest_free < a.largest_free { b } else { a })
        .map_or(At { value: 0, snapshot: 0 }, |r| At { value: r.largest_free, snapshot: r.snapshot })
}

/// The first snapshot outside a sweep where fragmentation is highest.
fn most_fragmented(rows: &[SnapshotFigures]) -> Option<At<f64>> {
    outside_sweeps(rows)
        .filter_map(|r| Some((r.fragmentation?, r)))
        .reduce(|a, b| if b.0 > a.0 { b } else { a })
        .map(|(f, r)| At { value: f, snapshot: r.snapshot })
}

/// The culprits at the run's worst moments: the tightest (smallest largest
/// free run), the most fragmented, and the first `max_errors` MemoryErrors;
/// each says which of these it is.
pub fn worst_moments_culprits(
    out: &Path,
    rows: &[SnapshotFigures],
    errors: &[MemoryError],
    max_errors: usize,
) -> Result<Vec<Culprits>> {
    let worst = worst_moments(rows, errors, max_errors);
    let found = culprits::at_snapshots(out, rows, &snapshots_of(&worst))?;
    Ok(named_moments(found, &worst))
}

/// The run's worst moments: each snapshot and why (`tightest`,
/// `most_fragmented`, `memory_error`: the first `max_errors` of `errors`).
fn worst_moments(rows: &[SnapshotFigures], errors: &[MemoryError], max_errors: usize) -> Vec<(u64, &'static str)> {
    let mut worst: Vec<(u64, &'static str)> = vec![(tightest(rows).snapshot, "tightest")];
    worst.extend(most_fragmented(rows).map(|w| (w.snapshot, "most_fragmented")));
    worst.extend(errors.iter().take(max_errors).map(|m| (m.snapshot, "memory_error")));
    worst
}

/// The snapshots of `worst`, in order, once each.
fn snapshots_of(worst: &[(u64, &'static str)]) -> Vec<u64> {
    let mut snapshots: Vec<u64> = worst.iter().map(|w| w.0).collect();
    snapshots.sort_unstable();
    snapshots.dedup();
    snapshots
}

/// `found` with each one's moments named from `worst`.
fn named_moments(mut found: Vec<Culprits>, worst: &[(u64, &'static str)]) -> Vec<Culprits> {
    for c in &mut found {
        c.moments = worst.iter().filter(|w| w.0 == c.snapshot).map(|w| w.1).collect();
    }
    found
}

/// Every MemoryError of output folder `out`, and the culprits at the run's
/// worst moments (see [`worst_moments_culprits`]): what the `memory_errors`
/// and `culprits` tables hold.
pub fn forensics(out: &Path) -> Result<(Option<Vec<MemoryError>>, Vec<Culprits>)> {
    // The two tables the culprits need are read back side by side (about
    // 5 ms each on a busy 1 GiB capture, at a run's end, where nothing else
    // is left to do).
    let (figures, all) = rayon::join(|| snapshot_figures(out), || super::instances::instances(out));
    let (rows, _) = figures?;
    if rows.is_empty() {
        return Ok((None, Vec::new()));
    }
    let errors = memory_errors(&rows);
    let worst = worst_moments(&rows, errors.as_deref().unwrap_or(&[]), usize::MAX);
    let culprits = named_moments(culprits::among(&all?, &rows, &snapshots_of(&worst)), &worst);
    Ok((errors, culprits))
}

/// Whether the capture would show each `event`: one is there, or its sidecar
/// says it watched for them. A capture script that did not break there shows
/// none, and none is then unknown, not 0.
fn seen(rows: &[SnapshotFigures], event: &str) -> bool {
    rows.iter().any(|r| {
        r.event.as_deref() == Some(event) || r.watched.as_deref().is_some_and(|w| w.split(',').any(|e| e == event))
    })
}

/// Collections: the sidecar's `collect_start` events when it names events,
/// else the runs of consecutive snapshots logged during one.
fn collections(rows: &[SnapshotFigures]) -> (u64, &'static str) {
    if seen(rows, "collect_start") {
        let n = rows.iter().filter(|r| r.event.as_deref() == Some("collect_start")).count() as u64;
        return (n, "sidecar");
    }
    let mut runs = 0;
    let mut before: Option<&SnapshotFigures> = None;
    for r in rows {
        let continues = before.is_some_and(|b| b.in_collection && b.snapshot + 1 == r.snapshot);
        if r.in_collection && !continues {
            runs += 1;
        }
        before = Some(r);
    }
    (runs, "marks")
}

/// The sidecar's `memory_error` events, each with its cause.
fn memory_errors(rows: &[SnapshotFigures]) -> Option<Vec<MemoryError>> {
    if !seen(rows, "memory_error") {
        return None;
    }
    let errors = rows.iter().filter(|r| r.event.as_deref() == Some("memory_error"));
    Some(
        errors
            .map(|r| MemoryError {
                snapshot: r.snapshot,
                requested_bytes: r.requested,
                free_bytes: r.free,
                largest_free_bytes: r.largest_free,
                cause: cause(r.requested, r.free, r.largest_free),
            })
            .collect(),
    )
}

/// Why a request of `requested` bytes failed with `free` bytes free, the
/// longest run `largest`.
pub fn cause(requested: Option<u64>, free: u64, largest: u64) -> &'static str {
    match requested {
        Some(n) if n > free => "exhaustion",
        Some(n) if n > largest => "fragmentation",
        Some(_) => "neither (the request fit: a limit of the port's own?)",
        None => "unknown",
    }
}

/// Allocation requests larger than the largest free run at their snapshot.
fn requests_over_largest_free(rows: &[SnapshotFigures]) -> Option<u64> {
    let asked = rows.iter().filter(|r| r.event.as_deref() == Some("alloc"));
    let known: Vec<(u64, u64)> = asked.filter_map(|r| Some((r.requested?, r.largest_free))).collect();
    if known.is_empty() {
        return None;
    }
    Some(known.iter().filter(|(n, largest)| n > largest).count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(snapshot: u64, event: &str, watched: Option<&str>) -> SnapshotFigures {
        SnapshotFigures {
            snapshot,
            event: Some(event.to_string()),
            watched: watched.map(str::to_string),
            in_collection: snapshot == 3,
            ..SnapshotFigures::default()
        }
    }

    /// A snapshot logged mid-sweep (orphan tails: blocks neither free nor in
    /// an allocation) is no moment an allocation met: the tightest and most
    /// fragmented are taken outside sweeps, unless every snapshot is in one.
    #[test]
    fn the_worst_moments_are_outside_sweeps() {
        let at = |snapshot, largest_free, fragmentation, sweeping| SnapshotFigures {
            snapshot,
            largest_free,
            fragmentation: Some(fragmentation),
            sweeping,
            ..SnapshotFigures::default()
        };
        let rows = vec![at(0, 400, 0.5, false), at(1, 96, 0.9, true), at(2, 160, 0.7, false), at(3, 320, 0.6, false)];
        assert_eq!(tightest(&rows), At { value: 160, snapshot: 2 });
        assert_eq!(most_fragmented(&rows).map(|m| m.snapshot), Some(2));
        let all_sweeping: Vec<_> = rows.iter().map(|r| SnapshotFigures { sweeping: true, ..r.clone() }).collect();
        assert_eq!(tightest(&all_sweeping), At { value: 96, snapshot: 1 });
        assert_eq!(most_fragmented(&all_sweeping).map(|m| m.snapshot), Some(1));
    }

    /// An event the capture did not watch for is unknown, not 0: a sidecar of
    /// allocations only says nothing of MemoryErrors or collections.
    #[test]
    fn an_event_not_watched_is_unknown() {
        let allocs_only: Vec<_> = (0..5).map(|s| row(s, "alloc", None)).collect();
        assert_eq!(memory_errors(&allocs_only), None);
        assert_eq!(collections(&allocs_only), (1, "marks"));
        let watched = Some("alloc,collect_start,memory_error");
        let all: Vec<_> = (0..5).map(|s| row(s, "alloc", watched)).collect();
        assert_eq!(memory_errors(&all), Some(Vec::new()));
        assert_eq!(collections(&all), (0, "sidecar"));
        // One seen is enough to know the capture shows them.
        let mut one = allocs_only.clone();
        one[2] = row(2, "memory_error", None);
        assert_eq!(memory_errors(&one).map(|m| m.len()), Some(1));
    }
}
