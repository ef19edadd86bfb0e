//! What the report shows, gathered from the output folder's tables: the
//! series of its charts at the sampled snapshots, and the heap-layout frames
//! of its scrubber. Tables that grow with the run are streamed a batch at a
//! time and kept only at the sampled snapshots.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;

use super::chart::{Series, XAxis};
use crate::answers::instances::Instance;
use crate::answers::leaks::{owner_changes, value_at};
use crate::answers::summary::SnapshotFigures;
use crate::answers::{for_each_batch, ints, texts};
use crate::error::{Error, Result};

/// The snapshots the charts plot, and their x.
pub struct Timeline {
    pub rows: Vec<SnapshotFigures>,
    pub x: Vec<f64>,
    pub x_axis: XAxis,
}

/// At most `max` of `n` items, evenly spread, the first and last included.
pub fn sample(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    if max < 2 {
        return (n - max..n).collect();
    }
    let mut picked: Vec<usize> =
        (0..max).map(|k| ((k as u128 * (n - 1) as u128) / (max - 1) as u128) as usize).collect();
    picked.dedup();
    picked
}

/// The decoded snapshots `rows`, sampled to at most `max` points, over host
/// time when every one has a time, else over snapshots.
pub fn timeline(rows: &[SnapshotFigures], max: usize) -> Timeline {
    let rows: Vec<SnapshotFigures> = sample(rows.len(), max).into_iter().map(|i| rows[i].clone()).collect();
    let t0 = rows.first().and_then(|r| r.time);
    let timed = t0.is_some() && rows.iter().all(|r| r.time.is_some_and(f64::is_finite));
    let x = if timed {
        rows.iter().map(|r| r.time.unwrap_or(0.0) - t0.unwrap_or(0.0)).collect()
    } else {
        rows.iter().map(|r| r.snapshot as f64).collect()
    };
    Timeline { rows, x, x_axis: if timed { XAxis::Seconds } else { XAxis::Snapshot } }
}

impl Timeline {
    /// Column of each sampled snapshot.
    fn columns(&self) -> HashMap<u64, usize> {
        self.rows.iter().enumerate().map(|(i, r)| (r.snapshot, i)).collect()
    }
}

/// A colour per series, fixed by rank.
pub const COLORS: [&str; 10] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/// The `top` groups with the most bytes at some sampled snapshot, by their
/// largest, and the rest as `other`.
fn top_series(mut by: BTreeMap<String, Vec<f64>>, top: usize, n: usize) -> Vec<Series> {
    let mut order: Vec<(String, f64)> =
        by.iter().map(|(k, v)| (k.clone(), v.iter().copied().fold(0.0, f64::max))).collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut series = Vec::new();
    for (rank, (name, _)) in order.iter().take(top).enumerate() {
        let values = by.remove(name).unwrap_or_default();
        series.push(Series { name: name.clone(), color: COLORS[rank % COLORS.len()].to_string(), values });
    }
    if !by.is_empty() {
        let mut rest = vec![0.0; n];
        for v in by.values() {
            rest.iter_mut().zip(v).for_each(|(r, x)| *r += x);
        }
        series.push(Series { name: "other".into(), color: "#c7c7c7".into(), values: rest });
    }
    series
}

/// Bytes allocated by kind at each sampled snapshot (`type_histogram`).
pub fn by_kind(out: &Path, t: &Timeline, top: usize) -> Result<Vec<Series>> {
    let columns = t.columns();
    let n = t.rows.len();
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for_each_batch(out, "type_histogram", Some(&["snapshot", "kind", "bytes"]), |b| {
        let (snap, kind, bytes) = (ints(&b, "snapshot")?, texts(&b, "kind")?, ints(&b, "bytes")?);
        for i in 0..b.num_rows() {
            let Some(&c) = snap[i].and_then(|s| columns.get(&(s.max(0) as u64))) else { continue };
            let k = kind[i].clone().unwrap_or_default();
            by.entry(k).or_insert_with(|| vec![0.0; n])[c] += bytes[i].unwrap_or(0).max(0) as f64;
        }
        Ok(())
    })?;
    Ok(top_series(by, top, n))
}

/// Bytes each owner retains at each sampled snapshot (`retainers`); `None`
/// without the table (`--no-retention`).
pub fn by_owner(out: &Path, t: &Timeline, top: usize) -> Result<Option<Vec<Series>>> {
    let changes = match owner_changes(out) {
        Ok(c) => c,
        Err(Error::MissingInput { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut by = BTreeMap::new();
    for (owner, kinds) in changes {
        let values: Vec<f64> =
            t.rows.iter().map(|r| kinds.values().map(|s| value_at(s, r.snapshot).0 as f64).sum()).collect();
        by.insert(owner, values);
    }
    let mut series = top_series(by, top, t.rows.len());
    series.retain(|s| s.name != "other");
    Ok(Some(series))
}

/// Free bytes in runs of each size class (`free_run_histogram`: 2^k blocks and
/// up), at each sampled snapshot: the heat map's rows, smallest first.
pub fn free_runs(out: &Path, t: &Timeline) -> Result<Vec<(String, Vec<f64>)>> {
    let columns = t.columns();
    let n = t.rows.len();
    let block_bytes = t.rows.first().map_or(16, |r| r.block_bytes.max(1));
    let mut by: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for_each_batch(out, "free_run_histogram", Some(&["snapshot", "min_blocks", "bytes"]), |b| {
        let (snap, min, bytes) = (ints(&b, "snapshot")?, ints(&b, "min_blocks")?, ints(&b, "bytes")?);
        for i in 0..b.num_rows() {
            let Some(&c) = snap[i].and_then(|s| columns.get(&(s.max(0) as u64))) else { continue };
            let m = min[i].unwrap_or(0).max(0) as u64;
            by.entry(m).or_insert_with(|| vec![0.0; n])[c] += bytes[i].unwrap_or(0).max(0) as f64;
        }
        Ok(())
    })?;
    Ok(by
        .into_iter()
        .map(|(m, v)| (super::chart::format_value(super::chart::Unit::Bytes, (m * block_bytes) as f64) + "+", v))
        .collect())
}

/// The heap-layout scrubber's data: the frames, and every allocation they
/// show once, with what hovering says of it.
#[derive(Serialize)]
pub struct Layout {
    pub pool_start: u64,
    pub pool_blocks: u64,
    pub block_bytes: u64,
    /// Category names, and their colours (the frames' palette).
    pub categories: Vec<&'static str>,
    pub colors: Vec<String>,
    /// Text shared by many allocations.
    pub strings: Vec<String>,
    /// Per allocation: address, blocks, category, kind, type, name, holder
    /// chain (string indices, -1 none), first and last snapshot.
    pub allocs: Vec<[i64; 9]>,
    pub frames: Vec<LayoutFrame>,
    /// Set when only the first area of a split heap is drawn.
    pub note: Option<String>,
}

#[derive(Serialize)]
pub struct LayoutFrame {
    pub snapshot: u64,
    pub free: u64,
    pub largest_free: u64,
    /// Why it was chosen, when it is a worst moment.
    pub moment: Option<String>,
    /// Indices into `allocs`, by address.
    pub allocs: Vec<u32>,
    /// Addresses to outline: the fragmentation culprits there.
    pub culprits: Vec<u64>,
}

/// Allocations listed in all frames together, at most: bounds the report's
/// size whatever the heap (about 12 bytes of JSON each).
pub const MAX_FRAME_ENTRIES: usize = 600_000;

/// Frames at `moments` (snapshot, why, culprits) and at most `max` more spread
/// over `rows`.
pub fn layout(all: &[Instance], rows: &[SnapshotFigures], moments: &[(u64, String, Vec<u64>)], max: usize) -> Layout {
    let first = rows.first().cloned().unwrap_or_default();
    let (pool_start, pool_end, bpb) = (first.pool_start, first.pool_end, first.block_bytes.max(1));
    let live_per_frame = rows.iter().map(|r| r.used / bpb.max(1)).max().unwrap_or(1).max(1) as usize;
    let max = max.min((MAX_FRAME_ENTRIES / live_per_frame).max(moments.len() + 2));
    let mut wanted: BTreeMap<u64, (Option<String>, Vec<u64>)> =
        sample(rows.len(), max).into_iter().map(|i| (rows[i].snapshot, (None, Vec::new()))).collect();
    for (s, why, culprits) in moments {
        let w = wanted.entry(*s).or_default();
        w.0 = Some(w.0.take().map_or(why.clone(), |m| format!("{m}, {why}")));
        w.1.extend(culprits);
    }
    let by_snapshot: HashMap<u64, &SnapshotFigures> = rows.iter().map(|r| (r.snapshot, r)).collect();
    let mut table = Strings::default();
    let mut ids: HashMap<usize, u32> = HashMap::new();
    let mut allocs = Vec::new();
    let holders = Holders::new(all);
    let mut frames = Vec::new();
    for (s, (moment, culprits)) in wanted {
        let Some(r) = by_snapshot.get(&s) else { continue };
        let mut list = Vec::new();
        for (i, a) in
            all.iter().enumerate().filter(|(_, a)| a.alive_at(s) && (pool_start..pool_end).contains(&a.address))
        {
            let id = *ids.entry(i).or_insert_with(|| {
                allocs.push(describe(a, &holders, &mut table));
                (allocs.len() - 1) as u32
            });
            list.push(id);
        }
        frames.push(LayoutFrame {
            snapshot: s,
            free: r.free,
            largest_free: r.largest_free,
            moment,
            allocs: list,
            culprits,
        });
    }
    let categories: Vec<&'static str> = crate::decode::Category::ALL.iter().map(|c| c.name()).collect();
    let colors = crate::decode::Category::ALL
        .iter()
        .map(|c| {
            let [r, g, b] = crate::render::palette::kind_rgb(*c);
            format!("rgb({r},{g},{b})")
        })
        .collect();
    Layout {
        pool_start,
        pool_blocks: pool_end.saturating_sub(pool_start) / bpb,
        block_bytes: bpb,
        categories,
        colors,
        strings: table.list,
        allocs,
        frames,
        note: (first.heap_areas > 1).then(|| format!("the first of {} heap areas", first.heap_areas)),
    }
}

#[derive(Default)]
struct Strings {
    list: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn of(&mut self, s: Option<&str>) -> i64 {
        let Some(s) = s else { return -1 };
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        self.list.push(s.to_string());
        self.index.insert(s.to_string(), self.list.len() as i64 - 1);
        self.list.len() as i64 - 1
    }
}

fn describe(a: &Instance, holders: &Holders, table: &mut Strings) -> [i64; 9] {
    let category = crate::decode::Category::ALL
        .iter()
        .position(|c| c.name() == a.category)
        .unwrap_or(crate::decode::Category::ALL.len() - 1);
    let chain = holders.chain(a);
    [
        a.address as i64,
        a.blocks as i64,
        category as i64,
        table.of(Some(&a.kind)),
        table.of(a.type_name.as_deref()),
        table.of(a.label()),
        table.of(chain.as_deref()),
        a.first as i64,
        a.last as i64,
    ]
}

/// Each allocation's holders, to name its chain of dominators.
struct Holders<'a> {
    all: &'a [Instance],
    /// Address → instances there, by first sighting.
    at: HashMap<u64, Vec<usize>>,
}

/// Steps of a holder chain named at most (a hostile table could loop).
const MAX_CHAIN: usize = 12;

impl<'a> Holders<'a> {
    fn new(all: &'a [Instance]) -> Self {
        let mut at: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, a) in all.iter().enumerate() {
            at.entry(a.address).or_default().push(i);
        }
        Holders { all, at }
    }

    /// Its dominators at its last sighting, outermost first: the root, then
    /// each holding allocation (`list@0x20001230`), as far as the table knows.
    fn chain(&self, a: &Instance) -> Option<String> {
        let mut steps = Vec::new();
        let mut cur = a;
        for _ in 0..MAX_CHAIN {
            if let Some(root) = &cur.holder_root {
                steps.push(root.clone());
                break;
            }
            let Some(h) = cur.holder_address else { break };
            let when = cur.last;
            let holder = self.at.get(&h).and_then(|v| v.iter().map(|&i| &self.all[i]).find(|x| x.alive_at(when)));
            let Some(holder) = holder else {
                steps.push(format!("0x{h:08x}"));
                break;
            };
            steps.push(format!("{}@0x{:08x}", holder.kind, holder.address));
            cur = holder;
        }
        if steps.is_empty() {
            return None;
        }
        steps.reverse();
        Some(steps.join(" › "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_spread_evenly_and_keep_the_ends() {
        assert_eq!(sample(5, 10), [0, 1, 2, 3, 4]);
        assert_eq!(sample(11, 3), [0, 5, 10]);
        assert_eq!(sample(0, 3), Vec::<usize>::new());
        let s = sample(1_000_000, 2000);
        assert_eq!((s.len(), s[0], *s.last().unwrap()), (2000, 0, 999_999));
    }
}
