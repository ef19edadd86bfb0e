//! One snapshot's per-snapshot tables as Arrow batches in memory, for a caller
//! that holds one decoded snapshot (the library's [`crate::Snapshot`], the
//! Python package) rather than writing a run of them. The rows are the ones
//! the writer would put in the same tables' files: the same `Rows` build both.

use arrow::record_batch::RecordBatch;

use super::per_snapshot::{BlocksRows, EdgesRows, FreeRunsRows, QstrsRows, SnapshotsRows, StringsRows};
use super::table::{Input, Rows};
use super::writer::batch;
use super::{Preparer, TableSet};
use crate::decode::SnapshotReport;
use crate::error::Result;
use crate::firmware::Firmware;
use crate::sidecar::Event;

/// The tables one snapshot fills, in the order [`of_snapshot`] returns them.
pub const SNAPSHOT_TABLES: [&str; 6] = ["snapshots", "blocks", "edges", "qstrs", "strings", "free_runs"];

/// `report`'s rows of each of [`SNAPSHOT_TABLES`], in that order, as batches
/// (one each, but `strings` splits as the writer's batches do when the texts
/// are large).
pub fn of_snapshot(
    report: SnapshotReport,
    dump_offset: u64,
    firmware: &Firmware,
    event: Option<&Event>,
) -> Result<Vec<(&'static str, Vec<RecordBatch>)>> {
    let set = TableSet { blocks: true, edges: true, qstrs: true, strings: true, free_runs: true, ..TableSet::METRICS };
    let index = report.index;
    let outcome = Preparer::new(set, firmware).prepare(Ok(report));
    let input = Input { index, dump_offset, outcome: &outcome, firmware, event };
    Ok(vec![
        ("snapshots", batches_of::<SnapshotsRows>(&input)?),
        ("blocks", batches_of::<BlocksRows>(&input)?),
        ("edges", batches_of::<EdgesRows>(&input)?),
        ("qstrs", batches_of::<QstrsRows>(&input)?),
        ("strings", batches_of::<StringsRows>(&input)?),
        ("free_runs", batches_of::<FreeRunsRows>(&input)?),
    ])
}

/// One table's rows of `input`: a batch, or more where the rows stop early.
fn batches_of<R: Rows>(input: &Input) -> Result<Vec<RecordBatch>> {
    let schema = R::schema();
    let mut rows = R::new();
    let mut batches = Vec::new();
    let mut from = 0;
    loop {
        let stopped = rows.push(input, from);
        batches.push(batch(R::NAME, &schema, rows.finish())?);
        match stopped {
            // A fresh batch always takes a row, so this moves on.
            Some(at) if at > from => from = at,
            _ => return Ok(batches),
        }
    }
}
