//! Per-snapshot summaries that answer the usual questions without a join: bytes and
//! count by kind, type and class (`type_histogram`), and free runs by size in
//! powers of two of blocks (`free_run_histogram`).

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Schema, SchemaRef};

use super::per_snapshot::report;
use super::per_snapshot::{arc, dict, f, IntColumn, RecurringDict};
use super::table::{Input, Rows};
use crate::decode::{Category, SnapshotReport};
use crate::firmware::Firmware;
use crate::retain::owners::Retained;
use crate::tables::writer::SUMMARY_BATCH_ROWS;

pub fn type_histogram_schema() -> SchemaRef {
    use DataType::*;
    Arc::new(Schema::new(vec![
        f("snapshot", Int64, false),
        f("kind", dict(), false),
        f("type_name", dict(), false),
        f("class", dict(), false),
        f("count", Int64, false),
        f("bytes", Int64, false),
    ]))
}

#[derive(Default)]
pub(crate) struct TypeHistogramRows {
    pub(crate) n: usize,
    snapshot: IntColumn,
    kind: RecurringDict,
    type_name: RecurringDict,
    class: RecurringDict,
    count: IntColumn,
    bytes: IntColumn,
}

/// One row of `type_histogram` before it is written: worked out by the decoding
/// worker, so the writer only appends it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TypeGroup<'f> {
    kind: &'static str,
    type_name: Option<&'f Arc<str>>,
    class: Option<Arc<str>>,
    count: u64,
    bytes: u64,
}

/// A group's key: kind, type name, class; rows come out in this order.
type GroupKey<'f> = (&'static str, Option<&'f Arc<str>>, Option<Arc<str>>);

/// The type histogram kept up to date one allocation at a time, for a run decoded
/// from one snapshot to the next: the same rows as [`type_groups`] on the whole
/// snapshot. Each group gets an id when first seen, so an allocation counted in
/// can be counted out again without looking its group up.
#[derive(Clone, Debug, Default)]
pub(crate) struct TypeCounts<'f> {
    ids: std::collections::BTreeMap<GroupKey<'f>, usize>,
    /// Count and bytes, by id.
    counts: Vec<(u64, u64)>,
}

impl<'f> TypeCounts<'f> {
    /// The id of the group of an allocation of `kind`, typed by `type_address`,
    /// of `class` when it is an instance.
    pub(crate) fn group(
        &mut self,
        kind: &'static str,
        type_address: Option<u64>,
        class: Option<&Arc<str>>,
        fw: &'f Firmware,
    ) -> usize {
        let type_name = type_address.and_then(|t| fw.flash_names.get(&t));
        let key = (kind, type_name, class.cloned());
        let next = self.counts.len();
        let id = *self.ids.entry(key).or_insert(next);
        if id == next {
            self.counts.push((0, 0));
        }
        id
    }

    pub(crate) fn add(&mut self, group: usize, bytes: u64) {
        if let Some(c) = self.counts.get_mut(group) {
            c.0 += 1;
            c.1 += bytes;
        }
    }

    pub(crate) fn remove(&mut self, group: usize, bytes: u64) {
        if let Some(c) = self.counts.get_mut(group) {
            c.0 = c.0.saturating_sub(1);
            c.1 = c.1.saturating_sub(bytes);
        }
    }

    /// The non-empty groups, in [`type_groups`]' order.
    pub(crate) fn groups(&self) -> Vec<TypeGroup<'f>> {
        let group = |((kind, type_name, class), &id): (&GroupKey<'f>, &usize)| {
            let &(count, bytes) = self.counts.get(id)?;
            (count > 0).then(|| TypeGroup { kind, type_name: *type_name, class: class.clone(), count, bytes })
        };
        self.ids.iter().filter_map(group).collect()
    }
}

/// Count and bytes of a snapshot's blocks by (kind, type name, class), in that order.
pub(crate) fn type_groups<'f>(r: &SnapshotReport, fw: &'f Firmware) -> Vec<TypeGroup<'f>> {
    let bpb = r.geometry.bytes_per_block;
    // Instances are grouped by their class: that is where leaks show.
    fn class_of(b: &crate::decode::BlockRow) -> Option<&Arc<str>> {
        if b.category == Category::Instance {
            b.name.as_ref()
        } else {
            None
        }
    }
    // Group on integers first (the type's address, the class name's pointer: a
    // snapshot's equal names mostly share an `Arc`); a heap has a few dozen groups,
    // so a linear search beats sorting its blocks. Equal names are merged below.
    let mut groups: Vec<(&'static str, Option<u64>, usize, TypeGroup<'f>)> = Vec::new();
    for b in &r.blocks {
        let class = class_of(b);
        let key = (b.kind, b.type_address, class.map_or(0, |c| Arc::as_ptr(c) as *const u8 as usize));
        match groups.iter_mut().find(|g| (g.0, g.1, g.2) == key) {
            Some(g) => {
                g.3.count += 1;
                g.3.bytes += b.blocks * bpb;
            }
            None => {
                let type_name = b.type_address.and_then(|t| fw.flash_names.get(&t));
                let group =
                    TypeGroup { kind: b.kind, type_name, class: class.cloned(), count: 1, bytes: b.blocks * bpb };
                groups.push((key.0, key.1, key.2, group));
            }
        }
    }
    let mut groups: Vec<TypeGroup<'f>> = groups.into_iter().map(|g| g.3).collect();
    // By name now; groups whose names agree (two types of one name, two equal class
    // names in different allocations) become one.
    groups.sort_by(|a, b| (a.kind, a.type_name, &a.class).cmp(&(b.kind, b.type_name, &b.class)));
    let mut merged: Vec<TypeGroup<'f>> = Vec::with_capacity(groups.len());
    for g in groups {
        match merged.last_mut() {
            Some(m) if m.kind == g.kind && m.type_name == g.type_name && m.class == g.class => {
                m.count += g.count;
                m.bytes += g.bytes;
            }
            _ => merged.push(g),
        }
    }
    merged
}

impl TypeHistogramRows {
    pub(crate) fn push(&mut self, index: u64, groups: &[TypeGroup]) {
        for g in groups {
            self.snapshot.append_value(index);
            // '' for no type or no class: a group key without NULLs joins as is.
            self.kind.append_static(g.kind);
            match g.type_name {
                Some(type_name) => self.type_name.append_shared(Some(type_name)),
                None => self.type_name.append_value(""),
            }
            match &g.class {
                Some(class) => self.class.append_shared(Some(class)),
                None => self.class.append_value(""),
            }
            self.count.append_value(g.count);
            self.bytes.append_value(g.bytes);
            self.n += 1;
        }
    }

    pub(crate) fn finish(&mut self) -> Vec<ArrayRef> {
        self.n = 0;
        let cols = vec![
            arc(self.snapshot.finish()),
            self.kind.finish(),
            self.type_name.finish(),
            self.class.finish(),
            arc(self.count.finish()),
            arc(self.bytes.finish()),
        ];
        // The next batch's room at once, not grown row by row (see `BATCH_ROOM`).
        for b in [&mut self.snapshot, &mut self.count, &mut self.bytes] {
            *b = IntColumn::with_capacity(BATCH_ROOM);
        }
        for d in [&mut self.kind, &mut self.type_name, &mut self.class] {
            d.reserve(BATCH_ROOM);
        }
        cols
    }
}

/// Rows a summary's builders make room for after each batch: a batch is
/// [`SUMMARY_BATCH_ROWS`] rows and the rest of the snapshot that reached them.
/// Grown row by row instead, each column's buffer was reallocated a dozen times
/// a batch, into fresh pages: a fifth of the writer's time.
const BATCH_ROOM: usize = SUMMARY_BATCH_ROWS + 1024;

pub fn free_run_histogram_schema() -> SchemaRef {
    use DataType::*;
    Arc::new(Schema::new(vec![
        f("snapshot", Int64, false),
        f("min_blocks", Int64, false),
        f("max_blocks", Int64, false),
        f("runs", Int64, false),
        f("blocks", Int64, false),
        f("bytes", Int64, false),
    ]))
}

#[derive(Default)]
pub(crate) struct FreeRunHistogramRows {
    pub(crate) n: usize,
    snapshot: IntColumn,
    min_blocks: IntColumn,
    max_blocks: IntColumn,
    runs: IntColumn,
    blocks: IntColumn,
    bytes: IntColumn,
}

impl FreeRunHistogramRows {
    /// Buckets of `2^k` to `2^(k+1) - 1` blocks; only non-empty buckets get a row.
    pub(crate) fn push(&mut self, r: &SnapshotReport) {
        let mut buckets = [(0u64, 0u64); 64];
        for run in &r.free_runs {
            let k = 63 - run.blocks.max(1).leading_zeros() as usize;
            buckets[k].0 += 1;
            buckets[k].1 += run.blocks;
        }
        for (k, (runs, blocks)) in buckets.iter().enumerate().filter(|(_, b)| b.0 > 0) {
            self.snapshot.append_value(r.index);
            self.min_blocks.append_value(1u64 << k);
            self.max_blocks.append_value((1u64 << k) * 2 - 1);
            self.runs.append_value(*runs);
            self.blocks.append_value(*blocks);
            self.bytes.append_value(blocks * r.geometry.bytes_per_block);
            self.n += 1;
        }
    }

    pub(crate) fn finish(&mut self) -> Vec<ArrayRef> {
        self.n = 0;
        let builders = [
            &mut self.snapshot,
            &mut self.min_blocks,
            &mut self.max_blocks,
            &mut self.runs,
            &mut self.blocks,
            &mut self.bytes,
        ];
        builders
            .into_iter()
            .map(|b| {
                let col = arc(b.finish());
                *b = IntColumn::with_capacity(BATCH_ROOM);
                col
            })
            .collect()
    }
}

impl Rows for TypeHistogramRows {
    const NAME: &'static str = "type_histogram";
    fn schema() -> SchemaRef {
        type_histogram_schema()
    }
    fn new() -> Self {
        TypeHistogramRows::default()
    }
    /// The groups were counted by the worker that decoded the snapshot.
    fn push(&mut self, input: &Input, _from: usize) -> Option<usize> {
        if let Ok(p) = input.outcome {
            TypeHistogramRows::push(self, input.index, &p.type_groups);
        }
        None
    }
    fn finish(&mut self) -> Vec<ArrayRef> {
        TypeHistogramRows::finish(self)
    }
}

super::per_snapshot::decoded_rows!(
    FreeRunHistogramRows,
    "free_run_histogram",
    free_run_histogram_schema,
    FreeRunHistogramRows::default(),
    |rows, r, _input| rows.push(r)
);

pub fn retainers_schema() -> SchemaRef {
    use DataType::*;
    Arc::new(Schema::new(vec![
        f("snapshot", Int64, false),
        f("owner", dict(), false),
        f("kind", dict(), false),
        f("allocations", Int64, false),
        f("bytes", Int64, false),
    ]))
}

/// `retainers`: what each top-level owner retains, by kind (see
/// [`crate::retain::owners`]), written when it changes: a snapshot has a row
/// for each (owner, kind) whose figures differ from the snapshot before's
/// (all of them at the range's first snapshot), and a row of zeros for one that
/// is gone. The figures at snapshot N are each pair's last row at or before N.
#[derive(Default)]
pub(crate) struct RetainersRows {
    pub(crate) n: usize,
    snapshot: IntColumn,
    owner: RecurringDict,
    kind: RecurringDict,
    allocations: IntColumn,
    bytes: IntColumn,
    /// The figures as of the last snapshot written, sorted.
    before: Arc<Vec<Retained>>,
}

impl RetainersRows {
    pub(crate) fn push(&mut self, r: &SnapshotReport) {
        let Some(now) = &r.retainers else { return };
        // Both sorted by (owner, kind): a merge.
        let (mut old, mut new) = (self.before.iter().peekable(), now.iter().peekable());
        loop {
            let row = match (old.peek(), new.peek()) {
                (Some(o), Some(n)) if (&o.owner, o.kind) == (&n.owner, n.kind) => {
                    let (o, n) = (old.next(), new.next());
                    match (o, n) {
                        (Some(o), Some(n)) if o != n => n.clone(),
                        _ => continue,
                    }
                }
                (Some(o), n) if n.is_none_or(|n| (&o.owner, o.kind) < (&n.owner, n.kind)) => {
                    let Some(o) = old.next() else { break };
                    Retained { allocations: 0, bytes: 0, ..o.clone() }
                }
                (_, Some(_)) => match new.next() {
                    Some(n) => n.clone(),
                    None => break,
                },
                _ => break,
            };
            self.snapshot.append_value(r.index);
            self.owner.append_shared(Some(&row.owner));
            self.kind.append_static(row.kind);
            self.allocations.append_value(row.allocations);
            self.bytes.append_value(row.bytes);
            self.n += 1;
        }
        self.before = Arc::clone(now);
    }

    pub(crate) fn finish(&mut self) -> Vec<ArrayRef> {
        self.n = 0;
        vec![
            arc(self.snapshot.finish()),
            self.owner.finish(),
            self.kind.finish(),
            arc(self.allocations.finish()),
            arc(self.bytes.finish()),
        ]
    }
}

super::per_snapshot::decoded_rows!(
    RetainersRows,
    "retainers",
    retainers_schema,
    RetainersRows::default(),
    |rows, r, _input| rows.push(r)
);
