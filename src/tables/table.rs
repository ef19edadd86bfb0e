//! One trait for the tables written from each snapshot: a table is its rows'
//! builders ([`Rows`]: a name, a schema, what one snapshot adds, when that makes
//! a batch) and a file, which [`RowTable`] ties together for the one writer.
//! Adding such a table means writing its `Rows` and listing it in
//! [`super::TableSink::create`] (and giving it a flag in [`super::TableSet`]).
//!
//! The lifetime tables (`allocations`, `edge_history`, `qstr_history`) are not
//! among them: their rows come out of one shared tracker, which diffs each
//! snapshot against the one before, and `TableSink` drives it.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;

use super::writer::{batch, TableFile};
use super::{PendingRows, PreparedOutcome};
use crate::error::Result;
use crate::firmware::Firmware;

/// What a table is given of one snapshot, in snapshot order.
pub(crate) struct Input<'a, 'f> {
    pub index: u64,
    pub dump_offset: u64,
    /// The decoded snapshot, ready for the writer, or why it was not decoded.
    pub outcome: &'a PreparedOutcome<'f>,
    pub firmware: &'f Firmware,
    /// The snapshot's line of the capture's sidecar, when it has one.
    pub event: Option<&'a crate::sidecar::Event>,
}

/// The rows of one table, as Arrow builders.
pub(crate) trait Rows: PendingRows {
    /// The table's name: its folder (or file) in the output.
    const NAME: &'static str;
    /// Whether the table's batches are encoded on a thread of its own
    /// ([`TableFile::on_own_thread`]): for the tables with a row per
    /// allocation, edge or string of every snapshot.
    const OWN_ENCODER: bool = false;
    fn schema() -> SchemaRef;
    fn new() -> Self;
    /// Adds snapshot `input`'s rows from its `from`-th on; returns where it
    /// stopped when it stopped early because a batch was due (a snapshot can
    /// name more large texts than a batch holds), `None` once it is done.
    fn push(&mut self, input: &Input, from: usize) -> Option<usize>;
    /// The pending rows as columns, in [`Rows::schema`]'s order; the builders
    /// start afresh.
    fn finish(&mut self) -> Vec<ArrayRef>;
}

/// A table as the writer drives it.
pub(crate) trait Table<'f> {
    /// Takes one snapshot's rows, writing batches as they fill.
    fn write(&mut self, input: &Input<'_, 'f>) -> Result<()>;
    /// Writes the pending rows as a batch if one is due (or any, when `force`d);
    /// `at` is the snapshot the run is at (it names the part files).
    fn flush(&mut self, force: bool, at: u64) -> Result<()>;
    /// Closes the file: the paths written.
    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>>;
}

/// [`Rows`] and the file they go to.
pub(crate) struct RowTable<R: Rows> {
    schema: SchemaRef,
    file: TableFile,
    rows: R,
}

impl<R: Rows> RowTable<R> {
    pub(crate) fn open(file: impl FnOnce(&'static str, SchemaRef) -> Result<TableFile>) -> Result<Self> {
        let schema = R::schema();
        let mut file = file(R::NAME, Arc::clone(&schema))?;
        if R::OWN_ENCODER {
            file = file.on_own_thread(R::NAME)?;
        }
        Ok(RowTable { schema, file, rows: R::new() })
    }
}

impl<'f, R: Rows> Table<'f> for RowTable<R> {
    fn write(&mut self, input: &Input<'_, 'f>) -> Result<()> {
        let mut from = 0;
        while let Some(next) = self.rows.push(input, from) {
            // Within the snapshot: the part file is not closed between its rows.
            let b = batch(R::NAME, &self.schema, self.rows.finish())?;
            self.file.write_within(&b)?;
            from = next;
        }
        Ok(())
    }

    fn flush(&mut self, force: bool, at: u64) -> Result<()> {
        if self.rows.due() || (force && self.rows.pending() > 0) {
            let b = batch(R::NAME, &self.schema, self.rows.finish())?;
            self.file.write(&b, at)?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>> {
        self.file.finish()
    }
}
