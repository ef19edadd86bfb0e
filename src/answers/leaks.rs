//! Leak suspects: the owners whose retained bytes grow steadily after warm-up.
//!
//! For each top-level owner of the `retainers` table (a module global, a class
//! attribute, a root field, the stack), its retained bytes are followed over
//! the run, sampled evenly after the warm-up, and fitted by least squares: the
//! slope is the growth, R² its steadiness. The warm-up is found from the data:
//! it ends at the first snapshot showing a collection (MARK bits or a sweep's
//! tails in `snapshots`), when the program has filled the heap once and what it
//! made at start-up is in place. Owners that grow steadily (R² at least
//! [`MIN_R2`], and better than one jump between two levels fits the samples:
//! an owner that moves under another holder and back is not a leak) rank by
//! growth. When the capture's sidecar gives each
//! snapshot's host time, the same samples are fitted over time too: the growth
//! per hour of the soak test.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{floats, ints, read_columns, read_table, texts};
use crate::error::{Error, Result};

/// The least steadiness a suspect's growth must have.
pub const MIN_R2: f64 = 0.6;

/// Samples of each owner's series fitted, at most.
const SAMPLES: u64 = 512;

/// One owner's growth.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suspect {
    /// The owner, as Python would name it (`__main__.history`, `stack`).
    pub owner: String,
    /// Growth of retained bytes and allocations per 1,000 snapshots.
    pub bytes_per_1000: f64,
    /// Growth of retained bytes per hour of host time (`None` without times).
    pub bytes_per_hour: Option<f64>,
    /// Growth of retained allocations per 1,000 snapshots.
    pub allocations_per_1000: f64,
    /// How steady the bytes' growth is (1: a straight line).
    pub r2: f64,
    /// Retained bytes at the end of the warm-up and at the last snapshot.
    pub bytes_from: u64,
    /// Retained bytes at the last snapshot.
    pub bytes_to: u64,
    /// The kinds beneath it that grow, with their bytes per 1,000 snapshots.
    pub growing_kinds: Vec<(String, f64)>,
    /// One allocation it holds at the last snapshot, of the kind that grows
    /// most, with the path that holds it (see [`add_examples`]).
    pub example: Option<Example>,
}

/// An allocation a suspect holds, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Example {
    /// The snapshot it is held at (the last).
    pub snapshot: u64,
    /// Its address.
    pub address: u64,
    /// Its kind.
    pub kind: String,
    /// As Python would write it (`__main__.history[77]`).
    pub path: String,
}

/// The leak suspects of output folder `out`, most growth first, and the
/// snapshot where the warm-up ended.
pub fn suspects(out: &Path) -> Result<(Vec<Suspect>, u64)> {
    let (last, warm, times) = run_span(out)?;
    let changes = owner_changes(out)?;
    let by_index = |s: u64| Some(s as f64);
    let by_time = |s: u64| times.get(times.partition_point(|t| t.0 < s)).filter(|t| t.0 == s).map(|t| t.1);
    let mut found = Vec::new();
    for (owner, kinds) in &changes {
        let total = total_series(kinds);
        let Some((slope, r2)) = fit(&total, warm, last, by_index, |v| v.0 as f64) else { continue };
        if slope <= 0.0 || r2 < MIN_R2 || one_jump_r2(&total, warm, last) >= r2 {
            continue;
        }
        let (alloc_slope, _) = fit(&total, warm, last, by_index, |v| v.1 as f64).unwrap_or((0.0, 0.0));
        let per_second = fit(&total, warm, last, by_time, |v| v.0 as f64).map(|(s, _)| s);
        let mut growing: Vec<(String, f64)> = kinds
            .iter()
            .filter_map(|(k, s)| Some((k.clone(), fit(s, warm, last, by_index, |v| v.0 as f64)?.0 * 1000.0)))
            .filter(|(_, g)| *g > 0.0)
            .collect();
        growing.sort_by(|a, b| b.1.total_cmp(&a.1));
        found.push(Suspect {
            owner: owner.clone(),
            bytes_per_1000: slope * 1000.0,
            bytes_per_hour: per_second.map(|s| s * 3600.0),
            allocations_per_1000: alloc_slope * 1000.0,
            r2,
            bytes_from: value_at(&total, warm).0,
            bytes_to: value_at(&total, last).0,
            growing_kinds: growing,
            example: None,
        });
    }
    found.sort_by(|a, b| b.bytes_per_1000.total_cmp(&a.bytes_per_1000).then(a.owner.cmp(&b.owner)));
    Ok((found, warm))
}

/// Candidates tried per suspect for an example, at most (each is a search
/// from the roots).
const EXAMPLE_TRIES: usize = 256;

/// Gives each suspect an example: at the folder's last decoded snapshot, an
/// allocation of the kind that grows most beneath it whose path from the
/// roots starts at the suspect (`__main__.history[77]` for
/// `__main__.history`), newest first. `session` is the folder's capture (see
/// [`super::capture::reopen`]). Owners that are no Python name (`stack`,
/// `roots`) get none.
pub fn add_examples(out: &Path, suspects: &mut [Suspect], session: &crate::pipeline::Session) -> Result<()> {
    let (rows, _) = super::summary::snapshot_figures(out)?;
    let Some(last) = rows.last().map(|r| r.snapshot) else { return Ok(()) };
    let report = session.decode_one(last)?;
    let (Some(roots), Some(ret)) = (session.roots().of(last), report.retention.as_ref()) else { return Ok(()) };
    for s in suspects.iter_mut() {
        let Some((kind, _)) = s.growing_kinds.first() else { continue };
        let mut candidates: Vec<usize> =
            (0..report.blocks.len()).filter(|&i| report.blocks[i].kind == kind.as_str() && ret.reachable[i]).collect();
        // The newest are last in a growing list: try from the top of the heap down.
        candidates.sort_by_key(|&i| std::cmp::Reverse(report.blocks[i].address));
        for i in candidates.into_iter().take(EXAMPLE_TRIES) {
            let Some(w) = crate::retain::why::why(&report, &roots, report.blocks[i].address) else { continue };
            let Some(path) = w.python.filter(|p| held_by(p, &s.owner)) else { continue };
            s.example = Some(Example { snapshot: last, address: w.target.address, kind: kind.clone(), path });
            break;
        }
    }
    Ok(())
}

/// Whether Python path `path` starts at owner `owner` (`__main__.history[3]`
/// at `__main__.history`, not at `__main__.h`).
fn held_by(path: &str, owner: &str) -> bool {
    path.strip_prefix(owner).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// A series: (snapshot, (bytes, allocations)) at each change, in order.
pub(crate) type Series = Vec<(u64, (u64, u64))>;

/// Per owner, per kind, its series from the `retainers` table.
pub(crate) fn owner_changes(out: &Path) -> Result<BTreeMap<String, BTreeMap<String, Series>>> {
    let mut changes: BTreeMap<String, BTreeMap<String, Series>> = BTreeMap::new();
    for b in read_table(out, "retainers")? {
        let (snap, owner, kind) = (ints(&b, "snapshot")?, texts(&b, "owner")?, texts(&b, "kind")?);
        let (allocs, bytes) = (ints(&b, "allocations")?, ints(&b, "bytes")?);
        for i in 0..b.num_rows() {
            let (Some(s), Some(o), Some(k)) = (snap[i], &owner[i], &kind[i]) else { continue };
            let v = (bytes[i].unwrap_or(0).max(0) as u64, allocs[i].unwrap_or(0).max(0) as u64);
            changes.entry(o.clone()).or_default().entry(k.clone()).or_default().push((s.max(0) as u64, v));
        }
    }
    for kinds in changes.values_mut() {
        for s in kinds.values_mut() {
            s.sort_by_key(|x| x.0);
        }
    }
    Ok(changes)
}

/// An owner's total over its kinds, at each snapshot any of them changed.
fn total_series(kinds: &BTreeMap<String, Series>) -> Series {
    let mut at: Vec<u64> = kinds.values().flat_map(|s| s.iter().map(|x| x.0)).collect();
    at.sort_unstable();
    at.dedup();
    at.into_iter()
        .map(|snap| {
            let (mut b, mut a) = (0u64, 0u64);
            for s in kinds.values() {
                let v = value_at(s, snap);
                b = b.saturating_add(v.0);
                a = a.saturating_add(v.1);
            }
            (snap, (b, a))
        })
        .collect()
}

/// A series' value at `snapshot`: its last change at or before it.
pub(crate) fn value_at(series: &Series, snapshot: u64) -> (u64, u64) {
    let k = series.partition_point(|x| x.0 <= snapshot);
    if k == 0 {
        (0, 0)
    } else {
        series[k - 1].1
    }
}

/// Least-squares slope (of `y` per unit of `x`) and R² of the series sampled
/// evenly in snapshots `from..=to` (`x` of a snapshot: its index, or its time;
/// samples without one are left out); `None` with fewer than 3 samples or no
/// variance.
fn fit(
    series: &Series,
    from: u64,
    to: u64,
    x: impl Fn(u64) -> Option<f64>,
    y: impl Fn((u64, u64)) -> f64,
) -> Option<(f64, f64)> {
    if to <= from + 1 {
        return None;
    }
    let points: Vec<(f64, f64)> = sample_snapshots(from, to)
        .filter_map(|s| Some((x(s).filter(|x| x.is_finite())?, y(value_at(series, s)))))
        .collect();
    if points.len() < 3 {
        return None;
    }
    let m = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / m, points.iter().map(|p| p.1).sum::<f64>() / m);
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some((sxy / sxx, sxy * sxy / (sxx * syy)))
}

/// The snapshots of `from..=to` a fit samples: evenly, [`SAMPLES`] at most.
fn sample_snapshots(from: u64, to: u64) -> impl Iterator<Item = u64> {
    let n = SAMPLES.min(to.saturating_sub(from) + 1);
    (0..n).map(move |k| from + (to - from) * k / (n - 1).max(1))
}

/// R² of the best fit of the series' retained bytes, sampled as [`fit`]
/// samples them in snapshots `from..=to`, by one jump: a level before some
/// sample and another from it on. A leak grows all along, and a line fits
/// it better than any one jump does (a jump fits a straight line with R² 0.75
/// at best); an owner whose bytes moved once, because what it holds came to
/// be held otherwise or a structure was made once, fits one jump better.
fn one_jump_r2(series: &Series, from: u64, to: u64) -> f64 {
    let ys: Vec<f64> = sample_snapshots(from, to).map(|s| value_at(series, s).0 as f64).collect();
    let (n, total) = (ys.len() as f64, ys.iter().sum::<f64>());
    let mean = total / n.max(1.0);
    let syy: f64 = ys.iter().map(|y| (y - mean).powi(2)).sum();
    if ys.len() < 2 || syy == 0.0 {
        return 0.0;
    }
    // Between-level sum of squares of each split, from running sums.
    let mut best: f64 = 0.0;
    let mut before = 0.0;
    for (k, y) in ys.iter().enumerate().take(ys.len() - 1) {
        before += y;
        let (m, rest) = ((k + 1) as f64, n - (k + 1) as f64);
        let (mean_a, mean_b) = (before / m, (total - before) / rest);
        best = best.max(m * (mean_a - mean).powi(2) + rest * (mean_b - mean).powi(2));
    }
    best / syy
}

/// Host seconds of each snapshot that has a time, by snapshot.
type Times = Vec<(u64, f64)>;

/// The run's last snapshot, where its warm-up ended (the first snapshot
/// showing a collection; the first snapshot if none does), and the host time
/// of each snapshot that has one, by snapshot.
fn run_span(out: &Path) -> Result<(u64, u64, Times)> {
    let (mut first, mut last, mut warm) = (u64::MAX, 0u64, None::<u64>);
    let mut times = Vec::new();
    let columns = ["snapshot", "marked_blocks", "orphan_tail_blocks", "time"];
    for b in read_columns(out, "snapshots", Some(&columns))? {
        let (snap, marked, orphans) =
            (ints(&b, "snapshot")?, ints(&b, "marked_blocks")?, ints(&b, "orphan_tail_blocks")?);
        let time = floats(&b, "time")?;
        for i in 0..b.num_rows() {
            let Some(s) = snap[i].map(|s| s.max(0) as u64) else { continue };
            first = first.min(s);
            last = last.max(s);
            if let Some(t) = time[i] {
                times.push((s, t));
            }
            if marked[i].unwrap_or(0) > 0 || orphans[i].unwrap_or(0) > 0 {
                warm = Some(warm.map_or(s, |w: u64| w.min(s)));
            }
        }
    }
    if first == u64::MAX {
        return Err(Error::WrongInput {
            path: out.to_path_buf(),
            expected: "an output folder with snapshots",
            found: "an empty `snapshots` table".to_string(),
        });
    }
    times.sort_by_key(|t| t.0);
    Ok((last, warm.unwrap_or(first), times))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_example_path_starts_at_its_owner() {
        assert!(held_by("__main__.history[3]", "__main__.history"));
        assert!(held_by("__main__.history", "__main__.history"));
        assert!(held_by("Sensor.readings.x", "Sensor.readings"));
        assert!(!held_by("__main__.history2[0]", "__main__.history"));
        assert!(!held_by("__main__.cache['k']", "__main__.history"));
    }

    #[test]
    fn a_straight_line_fits_exactly_and_a_step_late_fits_badly() {
        let line: Series = (0..100).map(|s| (s, (1000 + 8 * s, s))).collect();
        let idx = |s: u64| Some(s as f64);
        let (slope, r2) = fit(&line, 10, 99, idx, |v| v.0 as f64).unwrap();
        assert!((slope - 8.0).abs() < 1e-9 && (r2 - 1.0).abs() < 1e-9, "{slope} {r2}");
        // Flat, then one jump at the very end: growth, but not steady.
        let step: Series = vec![(0, (100, 1)), (98, (5000, 2))];
        let (_, r2) = fit(&step, 0, 99, idx, |v| v.0 as f64).unwrap();
        assert!(r2 < MIN_R2, "{r2}");
        assert_eq!(value_at(&step, 50), (100, 1));
        assert_eq!(value_at(&step, 99), (5000, 2));
        assert!(fit(&step, 0, 1, idx, |v| v.0 as f64).is_none());
        // A jump in the middle fits a line with R² 0.75, over MIN_R2, and one
        // jump exactly: not a leak. A line fits one jump at 0.75 at best.
        let middle: Series = vec![(0, (100, 1)), (50, (212, 2))];
        let (_, r2) = fit(&middle, 0, 99, idx, |v| v.0 as f64).unwrap();
        assert!(r2 > MIN_R2 && (one_jump_r2(&middle, 0, 99) - 1.0).abs() < 1e-9, "{r2}");
        assert!(one_jump_r2(&line, 10, 99) < 0.76, "{}", one_jump_r2(&line, 10, 99));
        // Over time: two snapshots a second, 8 bytes a snapshot: 16 bytes a second.
        let (per_second, _) = fit(&line, 10, 99, |s| Some(s as f64 / 2.0), |v| v.0 as f64).unwrap();
        assert!((per_second - 16.0).abs() < 1e-9, "{per_second}");
        assert!(fit(&line, 10, 99, |_| None, |v| v.0 as f64).is_none());
    }

    #[test]
    fn an_owners_total_sums_its_kinds_as_of_each_change() {
        let mut kinds = BTreeMap::new();
        kinds.insert("str".to_string(), vec![(0, (16, 1)), (5, (32, 2))]);
        kinds.insert("list".to_string(), vec![(3, (64, 1))]);
        assert_eq!(total_series(&kinds), vec![(0, (16, 1)), (3, (80, 2)), (5, (96, 3))]);
    }
}
