//! Per-snapshot summaries that answer the usual questions without a join: bytes and
//! count by kind, type and class (`type_histogram`), and free runs by size in
//! powers of two of blocks (`free_run_histogram`).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, UInt64Builder};
use arrow::datatypes::{DataType, Schema, SchemaRef};

use super::per_snapshot::{arc, dict, f, Dict};
use crate::decode::{Kind, SnapshotReport};
use crate::firmware::Firmware;

pub fn type_histogram_schema() -> SchemaRef {
    use DataType::*;
    Arc::new(Schema::new(vec![
        f("snapshot", UInt64, false),
        f("kind", dict(), false),
        f("type_name", dict(), true),
        f("class", dict(), true),
        f("count", UInt64, false),
        f("bytes", UInt64, false),
    ]))
}

#[derive(Default)]
pub(crate) struct TypeHistogramRows {
    pub(crate) n: usize,
    snapshot: UInt64Builder,
    kind: Dict,
    type_name: Dict,
    class: Dict,
    count: UInt64Builder,
    bytes: UInt64Builder,
}

impl TypeHistogramRows {
    pub(crate) fn push(&mut self, r: &SnapshotReport, fw: &Firmware) {
        let bpb = r.geometry.bytes_per_block;
        // (kind, type name, class) → (count, bytes)
        type Group<'a> = (Kind, Option<&'a str>, Option<&'a str>);
        let mut groups: BTreeMap<Group, (u64, u64)> = BTreeMap::new();
        for b in &r.blocks {
            let type_name = b.type_address.and_then(|t| fw.flash_names.get(&t)).map(String::as_str);
            // Instances are grouped by their class: that is where leaks show.
            let class = if b.kind == Kind::Instance { b.name.as_deref() } else { None };
            let g = groups.entry((b.kind, type_name, class)).or_default();
            g.0 += 1;
            g.1 += b.blocks * bpb;
        }
        for ((kind, type_name, class), (count, bytes)) in groups {
            self.snapshot.append_value(r.index);
            self.kind.append_value(kind.name());
            self.type_name.append_option(type_name);
            self.class.append_option(class);
            self.count.append_value(count);
            self.bytes.append_value(bytes);
            self.n += 1;
        }
    }

    pub(crate) fn finish(&mut self) -> Vec<ArrayRef> {
        self.n = 0;
        vec![
            arc(self.snapshot.finish()),
            arc(self.kind.finish()),
            arc(self.type_name.finish()),
            arc(self.class.finish()),
            arc(self.count.finish()),
            arc(self.bytes.finish()),
        ]
    }
}

pub fn free_run_histogram_schema() -> SchemaRef {
    use DataType::*;
    Arc::new(Schema::new(vec![
        f("snapshot", UInt64, false),
        f("min_blocks", UInt64, false),
        f("max_blocks", UInt64, false),
        f("runs", UInt64, false),
        f("blocks", UInt64, false),
    ]))
}

#[derive(Default)]
pub(crate) struct FreeRunHistogramRows {
    pub(crate) n: usize,
    snapshot: UInt64Builder,
    min_blocks: UInt64Builder,
    max_blocks: UInt64Builder,
    runs: UInt64Builder,
    blocks: UInt64Builder,
}

impl FreeRunHistogramRows {
    /// Buckets `[2^k, 2^(k+1))` blocks; only non-empty buckets get a row.
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
            self.n += 1;
        }
    }

    pub(crate) fn finish(&mut self) -> Vec<ArrayRef> {
        self.n = 0;
        vec![
            arc(self.snapshot.finish()),
            arc(self.min_blocks.finish()),
            arc(self.max_blocks.finish()),
            arc(self.runs.finish()),
            arc(self.blocks.finish()),
        ]
    }
}
