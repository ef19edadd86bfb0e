//! Shards rewritten as one run's tables, without decoding anything again.
//!
//! `analyze --follow` publishes a growing dump as shards (see
//! [`crate::follow`]); when it stops, the shards are rewritten into the files
//! one batch run over the same snapshots writes, byte for byte. That needs
//! the one writer's decisions replayed from the rows alone:
//! - per-snapshot tables: the rows in snapshot order, cut into batches where
//!   the writer cuts them (a batch's rows, or its text; a snapshot's strings
//!   split when their text fills a batch), each batch through the same
//!   [`TableFile`], which rolls parts over where a run does;
//! - lifetime tables: the pieces of a lifetime cut by a shard's end
//!   (`continues`, or `live` at a dump's end then) joined to the piece that
//!   starts the next shard (`open_start` at its first snapshot), their columns
//!   folded as the tracker folds sightings ([`super::lifetimes`]); a piece
//!   nothing continues ended at the shard's last snapshot, named as the run
//!   would have named it (`freed` or `swept` from the `snapshots` table's
//!   collection figures); then each row emitted when the run would have
//!   emitted it (at the next decoded snapshot, or at the end) in key order.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Int64Type, SchemaRef};

use super::writer::{
    batch, parse_part_name, OutputLayout, TableFile, BATCH_ROWS, BATCH_TEXT_BYTES, SUMMARY_BATCH_ROWS,
};
use super::TableSet;
use crate::error::{Error, Result};

/// Rewrites the tables of `set` in `out`, whose shards `shards` tile
/// `0..end`, into `staging` as one run over `0..end`; with `dump_end`,
/// what the last shard left open is `live` (the run reaches the dump's end).
/// Returns the files written.
pub fn rewrite(
    out: &Path,
    staging: &Path,
    shards: &[Range<u64>],
    set: TableSet,
    layout: OutputLayout,
    dump_end: bool,
) -> Result<Vec<PathBuf>> {
    let range = tiled(out, shards)?;
    let history = History::read(out, &range)?;
    let mut files = Vec::new();
    let token = mark_of(shards);
    let o = Out { out, staging, layout, range: &range, token: &token };
    let per_snapshot: [PerSnapshot; 8] = [
        ("snapshots", true, BATCH_ROWS, None, super::per_snapshot::snapshots_schema),
        ("blocks", set.blocks, BATCH_ROWS, None, super::per_snapshot::blocks_schema),
        ("edges", set.edges, BATCH_ROWS, None, super::per_snapshot::edges_schema),
        ("qstrs", set.qstrs, BATCH_ROWS, None, super::per_snapshot::qstrs_schema),
        ("strings", set.strings, BATCH_ROWS, Some("text"), super::per_snapshot::strings_schema),
        ("free_runs", set.free_runs, BATCH_ROWS, None, super::per_snapshot::free_runs_schema),
        ("type_histogram", set.type_histogram, SUMMARY_BATCH_ROWS, None, super::summaries::type_histogram_schema),
        (
            "free_run_histogram",
            set.free_run_histogram,
            SUMMARY_BATCH_ROWS,
            None,
            super::summaries::free_run_histogram_schema,
        ),
    ];
    for (name, on, batch_rows, text, schema) in per_snapshot {
        if on && !o.rewritten(name) {
            files.extend(o.marked(name, o.rows(name, schema(), Cut { batch_rows, text })?)?);
        }
    }
    if set.retainers && !o.rewritten("retainers") {
        files.extend(o.marked("retainers", o.retainers(shards, &history)?)?);
    }
    let lifetimes =
        [(Entity::Allocation, set.allocations), (Entity::Edge, set.edge_history), (Entity::Qstr, set.qstr_history)];
    for (entity, on) in lifetimes {
        if on && !o.rewritten(entity.name()) {
            files.extend(o.marked(entity.name(), o.lifetimes(entity, shards, &history, dump_end)?)?);
        }
    }
    Ok(files)
}

/// A per-snapshot table: its name, whether the set has it, the rows of a
/// batch, the column whose text counts, and its schema.
type PerSnapshot = (&'static str, bool, usize, Option<&'static str>, fn() -> SchemaRef);

/// The range `shards` tile, from snapshot 0 with no gap or overlap.
fn tiled(out: &Path, shards: &[Range<u64>]) -> Result<Range<u64>> {
    let mut end = 0;
    for s in shards {
        if s.start != end || s.end < s.start {
            return Err(Error::OutputConflict {
                dir: out.to_path_buf(),
                found: format!("its complete ranges do not run on from snapshot 0 (at {}..{})", s.start, s.end),
                advice: "only a folder whose shards cover 0..N without gaps can be rewritten as one run".into(),
            });
        }
        end = s.end;
    }
    Ok(0..end)
}

/// Per snapshot: whether its lifetimes were applied (decoded), and whether
/// it was logged by a collection (what vanished around it was swept).
struct History {
    decoded: Vec<bool>,
    collecting: Vec<bool>,
}

impl History {
    fn read(out: &Path, range: &Range<u64>) -> Result<Self> {
        // At most one entry per snapshot of the range, which the dump holds.
        let n = range.end as usize;
        let mut h = History { decoded: vec![false; n], collecting: vec![false; n] };
        for_each_batch(out, "snapshots", |b| {
            let snap = int_column(b, "snapshot")?;
            let status = plain_text(b, "status")?;
            let (marked, orphans) = (int_column(b, "marked_blocks")?, int_column(b, "orphan_tail_blocks")?);
            for i in 0..b.num_rows() {
                let s = usize::try_from(snap.value(i)).ok().filter(|s| *s < n).ok_or_else(|| bad_rows("snapshots"))?;
                h.decoded[s] = status.value(i) == "ok";
                h.collecting[s] = marked.value(i) > 0 || orphans.value(i) > 0;
            }
            Ok(())
        })?;
        Ok(h)
    }

    /// The first decoded snapshot after `s`, if any.
    fn next_decoded(&self, s: u64) -> Option<u64> {
        let from = usize::try_from(s).ok()?.checked_add(1)?;
        self.decoded.get(from..)?.iter().position(|d| *d).map(|k| (from + k) as u64)
    }
}

fn bad_rows(table: &str) -> Error {
    Error::WrongInput {
        path: PathBuf::from(table),
        expected: "rows of the snapshots the folder's manifest lists",
        found: "a snapshot outside them".into(),
    }
}

/// Where a per-snapshot table's writer cuts batches.
#[derive(Clone, Copy)]
struct Cut<'a> {
    batch_rows: usize,
    /// The column whose text counts toward [`BATCH_TEXT_BYTES`].
    text: Option<&'a str>,
}

struct Out<'a> {
    out: &'a Path,
    staging: &'a Path,
    layout: OutputLayout,
    range: &'a Range<u64>,
    /// Names this rewrite: its shards.
    token: &'a str,
}

/// A hidden file in a rewritten table's folder naming the rewrite: a rewrite
/// cut short after swapping some tables' folders (the process killed) is
/// finished by the next without rewriting those again from what is no longer
/// shards.
const REWRITE_MARK: &str = ".heapvis-rewrite";

/// What a rewritten table's mark holds: the shards rewritten. (Not whether
/// the rewrite reaches the dump's end: one finished after the dump grew ends
/// its remaining tables `continues`, which the next rewrite joins all the same.)
#[doc(hidden)]
pub fn mark_of(shards: &[Range<u64>]) -> String {
    format!("{shards:?}\n")
}

/// The mark's file name in a table's folder.
#[doc(hidden)]
pub const MARK_FILE: &str = REWRITE_MARK;

/// Whether a rewrite of `out` was cut short: some table is marked.
pub fn interrupted(out: &Path) -> bool {
    super::TABLE_NAMES.iter().any(|t| out.join(t).join(REWRITE_MARK).is_file())
}

/// Removes the marks of a finished rewrite from `out`'s tables.
pub fn clear_marks(out: &Path) {
    for t in super::TABLE_NAMES {
        let _ = std::fs::remove_file(out.join(t).join(REWRITE_MARK));
    }
}

/// Rows waiting to be written as one batch, as slices of the batches read.
struct Pending {
    name: &'static str,
    schema: SchemaRef,
    slices: Vec<RecordBatch>,
    rows: usize,
    text: usize,
}

impl Pending {
    fn new(name: &'static str, schema: SchemaRef) -> Self {
        Pending { name, schema, slices: Vec::new(), rows: 0, text: 0 }
    }

    fn push(&mut self, b: RecordBatch, text: usize) {
        self.rows += b.num_rows();
        self.text += text;
        self.slices.push(b);
    }

    fn take(&mut self) -> Result<RecordBatch> {
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for (k, field) in self.schema.fields().iter().enumerate() {
            let parts: Vec<&dyn Array> = self.slices.iter().map(|s| s.column(k).as_ref()).collect();
            let col = arrow::compute::concat(&parts).map_err(|source| Error::Arrow { table: self.name, source })?;
            columns.push(cast_to(col, field.data_type(), self.name)?);
        }
        (self.slices, self.rows, self.text) = (Vec::new(), 0, 0);
        batch(self.name, &self.schema, columns)
    }
}

fn cast_to(col: ArrayRef, t: &DataType, table: &'static str) -> Result<ArrayRef> {
    if col.data_type() == t {
        return Ok(col);
    }
    arrow::compute::cast(&col, t).map_err(|source| Error::Arrow { table, source })
}

impl Out<'_> {
    /// Whether table `name` in the folder is already this rewrite's.
    fn rewritten(&self, name: &str) -> bool {
        std::fs::read_to_string(self.out.join(name).join(REWRITE_MARK)).is_ok_and(|t| t == self.token)
    }

    /// Marks the staged table `name` as this rewrite's; passes its files on.
    fn marked(&self, name: &str, files: Vec<PathBuf>) -> Result<Vec<PathBuf>> {
        let mark = self.staging.join(name).join(REWRITE_MARK);
        std::fs::write(&mark, self.token).map_err(|e| Error::io(&mark, e))?;
        Ok(files)
    }

    fn file(&self, name: &str, schema: SchemaRef) -> Result<TableFile> {
        TableFile::create(self.staging, name, schema, self.layout, self.range)
    }

    /// A per-snapshot table, cut as its writer cuts it.
    fn rows(&self, name: &'static str, schema: SchemaRef, cut: Cut) -> Result<Vec<PathBuf>> {
        let mut file = self.file(name, Arc::clone(&schema))?;
        let mut pending = Pending::new(name, Arc::clone(&schema));
        let mut at: Option<u64> = None;
        for_each_batch(self.out, name, |b| {
            let b = conform(b.clone(), &schema, name)?;
            let snap = int_column(&b, "snapshot")?.clone();
            let text = cut.text.map(|t| plain_text(&b, t)).transpose()?;
            let mut i = 0;
            while i < b.num_rows() {
                let s = snap.value(i) as u64;
                if at != Some(s) {
                    // The snapshot before is written: the writer flushes if due.
                    if let Some(prev) = at {
                        flush_due(&mut pending, &mut file, cut, prev)?;
                    }
                    at = Some(s);
                }
                // This snapshot's rows from `i`, up to where its text fills a batch.
                let mut j = i;
                let mut bytes = 0;
                while j < b.num_rows() && snap.value(j) as u64 == s {
                    if pending.text + bytes >= BATCH_TEXT_BYTES && text.is_some() {
                        break;
                    }
                    bytes += text.as_ref().map_or(0, |t| t.value(j).len());
                    j += 1;
                }
                if j > i {
                    pending.push(b.slice(i, j - i), bytes);
                }
                if j < b.num_rows() && snap.value(j) as u64 == s {
                    // Within the snapshot: a batch, the part kept open.
                    file.write_within(&pending.take()?)?;
                }
                i = j;
            }
            Ok(())
        })?;
        if let Some(prev) = at {
            flush_due(&mut pending, &mut file, cut, prev)?;
        }
        if pending.rows > 0 {
            file.write(&pending.take()?, self.range.end.saturating_sub(1))?;
        }
        file.finish()
    }
}

fn flush_due(pending: &mut Pending, file: &mut TableFile, cut: Cut, at: u64) -> Result<()> {
    if pending.rows >= cut.batch_rows || (cut.text.is_some() && pending.text >= BATCH_TEXT_BYTES) {
        file.write(&pending.take()?, at)?;
    }
    Ok(())
}

/// `b` with `schema`'s column types (a reader may hand back another string type).
fn conform(b: RecordBatch, schema: &SchemaRef, name: &'static str) -> Result<RecordBatch> {
    if b.schema().fields().len() != schema.fields().len() {
        return Err(Error::WrongInput {
            path: PathBuf::from(name),
            expected: "a table of this heapvis's schema",
            found: format!("{} columns", b.num_columns()),
        });
    }
    let mut cols = Vec::with_capacity(b.num_columns());
    for (c, f) in b.columns().iter().zip(schema.fields()) {
        cols.push(cast_to(Arc::clone(c), f.data_type(), name)?);
    }
    batch(name, schema, cols)
}

/// Calls `f` on every batch of table `name`'s part files, in range order.
fn for_each_batch(out: &Path, name: &str, mut f: impl FnMut(&RecordBatch) -> Result<()>) -> Result<()> {
    for (_, path) in parts(out, name)? {
        batches_of(&path, |b| f(&b))?;
    }
    Ok(())
}

/// Calls `f` on every batch of the Parquet file at `path`.
fn batches_of(path: &Path, mut f: impl FnMut(RecordBatch) -> Result<()>) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let bad = |e: parquet::errors::ParquetError| Error::WrongInput {
        path: path.to_path_buf(),
        expected: "a Parquet file heapvis wrote",
        found: e.to_string(),
    };
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(bad)?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(bad)?;
    for b in reader {
        f(b.map_err(|source| Error::Arrow { table: "compact", source })?)?;
    }
    Ok(())
}

/// The part files of table `name` in `out`, by range.
fn parts(out: &Path, name: &str) -> Result<Vec<(Range<u64>, PathBuf)>> {
    let dir = out.join(name);
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut parts: Vec<(Range<u64>, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((parse_part_name(&e.file_name().to_string_lossy())?, e.path())))
        .collect();
    parts.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(parts)
}

fn int_column<'b>(b: &'b RecordBatch, name: &str) -> Result<&'b Int64Array> {
    b.column_by_name(name).and_then(|c| c.as_primitive_opt::<Int64Type>()).ok_or_else(|| missing(name))
}

fn plain_text(b: &RecordBatch, name: &str) -> Result<StringArray> {
    let col = b.column_by_name(name).ok_or_else(|| missing(name))?;
    let plain = arrow::compute::cast(col, &DataType::Utf8).map_err(|_| missing(name))?;
    Ok(plain.as_string::<i32>().clone())
}

fn missing(name: &str) -> Error {
    Error::WrongInput {
        path: PathBuf::from(name),
        expected: "a column heapvis writes",
        found: "none, or another type".into(),
    }
}

mod retainers;
mod stitch;
use stitch::Entity;
