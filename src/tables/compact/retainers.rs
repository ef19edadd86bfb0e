//! The `retainers` table across shard boundaries. It is written as changes:
//! a row for each (owner, kind) whose figures differ from the snapshot
//! before's, a row of zeros for one gone, and every pair at a range's first
//! snapshot. So a shard's first snapshot lists every pair, where one run
//! lists only what changed there: its rows are made again as the change
//! from the figures the shards before left.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringDictionaryBuilder};
use arrow::datatypes::Int32Type;

use super::{for_each_batch, int_column, plain_text, History, Out};
use crate::error::Result;
use crate::tables::summaries::retainers_schema;
use crate::tables::writer::{batch, TableFile, SUMMARY_BATCH_ROWS};

/// One row: its snapshot, (owner, kind) and figures (allocations, bytes).
type Row = (u64, (String, String), (i64, i64));

impl Out<'_> {
    pub(super) fn retainers(&self, shards: &[Range<u64>], history: &History) -> Result<Vec<PathBuf>> {
        let schema = retainers_schema();
        let mut file = self.file("retainers", Arc::clone(&schema))?;
        // The first decoded snapshot of each shard after the first.
        let mut starts: Vec<u64> = shards
            .iter()
            .skip(1)
            .filter_map(|s| (s.start..s.end).find(|i| history.decoded.get(*i as usize).copied().unwrap_or(false)))
            .collect();
        starts.reverse(); // popped in order
        let mut replay = Replay { before: BTreeMap::new(), pending: Vec::new(), file: &mut file, starts };
        let mut group: Vec<Row> = Vec::new();
        for_each_batch(self.out, "retainers", |b| {
            let (snap, owner, kind) = (int_column(b, "snapshot")?, plain_text(b, "owner")?, plain_text(b, "kind")?);
            let (allocations, bytes) = (int_column(b, "allocations")?, int_column(b, "bytes")?);
            for i in 0..b.num_rows() {
                let s = snap.value(i) as u64;
                if group.first().is_some_and(|g| g.0 != s) {
                    replay.snapshot(std::mem::take(&mut group))?;
                }
                let pair = (owner.value(i).to_string(), kind.value(i).to_string());
                group.push((s, pair, (allocations.value(i), bytes.value(i))));
            }
            Ok(())
        })?;
        replay.snapshot(group)?;
        replay.starts_before(u64::MAX)?;
        if !replay.pending.is_empty() {
            let b = rows_batch(&std::mem::take(&mut replay.pending))?;
            replay.file.write(&b, self.range.end.saturating_sub(1))?;
        }
        file.finish()
    }
}

struct Replay<'f> {
    /// The figures as of the last snapshot replayed.
    before: BTreeMap<(String, String), (i64, i64)>,
    pending: Vec<Row>,
    file: &'f mut TableFile,
    starts: Vec<u64>,
}

impl Replay<'_> {
    /// One snapshot's rows as read (a shard's first lists every pair).
    fn snapshot(&mut self, rows: Vec<Row>) -> Result<()> {
        let Some(s) = rows.first().map(|r| r.0) else { return Ok(()) };
        self.starts_before(s)?;
        let rows = if self.starts.last() == Some(&s) {
            self.starts.pop();
            self.changes(s, rows)
        } else {
            rows
        };
        self.apply(s, rows)
    }

    /// Shard starts before `s` with no rows: every pair there went away.
    fn starts_before(&mut self, s: u64) -> Result<()> {
        while let Some(&t) = self.starts.last().filter(|t| **t < s) {
            self.starts.pop();
            let rows = self.changes(t, Vec::new());
            self.apply(t, rows)?;
        }
        Ok(())
    }

    /// The rows one run writes at `s` for the full listing `now` (sorted by pair).
    fn changes(&self, s: u64, now: Vec<Row>) -> Vec<Row> {
        let now: BTreeMap<(String, String), (i64, i64)> = now.into_iter().map(|(_, p, f)| (p, f)).collect();
        let pairs: BTreeSet<&(String, String)> = self.before.keys().chain(now.keys()).collect();
        pairs
            .into_iter()
            .filter_map(|p| match (self.before.get(p), now.get(p)) {
                (Some(b), Some(n)) if b == n => None,
                (_, Some(n)) => Some((s, p.clone(), *n)),
                (Some(_), None) => Some((s, p.clone(), (0, 0))),
                (None, None) => None,
            })
            .collect()
    }

    /// Writes a snapshot's rows, flushing as the writer does after it.
    fn apply(&mut self, s: u64, rows: Vec<Row>) -> Result<()> {
        for (_, pair, figures) in &rows {
            if *figures == (0, 0) {
                self.before.remove(pair);
            } else {
                self.before.insert(pair.clone(), *figures);
            }
        }
        self.pending.extend(rows);
        if self.pending.len() >= SUMMARY_BATCH_ROWS {
            let b = rows_batch(&std::mem::take(&mut self.pending))?;
            self.file.write(&b, s)?;
        }
        Ok(())
    }
}

fn rows_batch(rows: &[Row]) -> Result<arrow::record_batch::RecordBatch> {
    let ints = |f: &dyn Fn(&Row) -> i64| Arc::new(Int64Array::from_iter_values(rows.iter().map(f))) as ArrayRef;
    let dict = |f: &dyn Fn(&Row) -> &str| {
        let mut b = StringDictionaryBuilder::<Int32Type>::new();
        rows.iter().for_each(|r| b.append_value(f(r)));
        Arc::new(b.finish()) as ArrayRef
    };
    let columns =
        vec![ints(&|r| r.0 as i64), dict(&|r| &r.1 .0), dict(&|r| &r.1 .1), ints(&|r| r.2 .0), ints(&|r| r.2 .1)];
    batch("retainers", &retainers_schema(), columns)
}
