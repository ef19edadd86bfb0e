//! Where a table's rows go on disk: [`TableFile`], a folder of Parquet part files
//! rolled over every [`PART_ROW_GROUPS`] row groups (the default), or one file.
//!
//! Each part is an `ArrowWriter` with explicit properties. A
//! Parquet writer keeps every row group's metadata until it writes the footer at
//! close, so one file per table holds memory that grows with the dump; parts bound
//! it, and are what lets shards of one dump share a folder.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{Error, Result};

/// Rows buffered in Arrow builders before they become a record batch, and so a
/// row group: a batch holds whole snapshots, so it can be a little longer.
pub const BATCH_ROWS: usize = 4 * 1024;
/// The same for the narrow per-snapshot summaries, a few dozen rows a snapshot:
/// each row group's column chunks start a compressor of their own, which costs
/// more than encoding a few thousand such rows.
pub const SUMMARY_BATCH_ROWS: usize = 16 * 1024;
/// Text (string contents) buffered before the rows become a batch however few.
pub const BATCH_TEXT_BYTES: usize = 8 << 20;
/// A batch longer than this (one snapshot of many rows) is split into row groups.
const MAX_ROW_GROUP_ROWS: usize = 16 * BATCH_ROWS;
/// Row groups per part file: the footer a part holds in memory until it is
/// closed is about 5 KB per row group, so a few hundred KB per table.
pub const PART_ROW_GROUPS: usize = 64;

/// How each table is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputLayout {
    /// `OUT/<table>/part-<start>-<end>.parquet`: the rows written while the run
    /// was at snapshots `start..end`, a new part every `row_groups` row groups
    /// ([`PART_ROW_GROUPS`] by default). Several processes can each write a range
    /// of one dump into one folder, and DuckDB, Polars, Spark or Trino read each
    /// folder as one table.
    Parts {
        /// Row groups per part file.
        row_groups: usize,
    },
    /// `OUT/<table>.parquet`, one file however long the dump. Its footer (about
    /// 5 KB per batch of rows) stays in memory until the end of the run.
    Files,
}

impl OutputLayout {
    /// Parts of [`PART_ROW_GROUPS`] row groups.
    pub const fn parts() -> Self {
        OutputLayout::Parts { row_groups: PART_ROW_GROUPS }
    }
}

impl Default for OutputLayout {
    fn default() -> Self {
        OutputLayout::parts()
    }
}

/// A part's file name, from its snapshot range: zero-padded so names sort by range.
pub fn part_name(range: &Range<u64>) -> String {
    format!("part-{:010}-{:010}.parquet", range.start, range.end)
}

/// The snapshot range a part file's name gives, if it is one of ours.
pub fn parse_part_name(name: &str) -> Option<Range<u64>> {
    let (start, end) = name.strip_prefix("part-")?.strip_suffix(".parquet")?.split_once('-')?;
    let (start, end) = (start.parse().ok()?, end.parse().ok()?);
    (start <= end).then_some(start..end)
}

/// One table's output: a single file, or parts rolled over as it grows.
pub struct TableFile {
    schema: SchemaRef,
    target: Target,
    /// The file being written, and (for parts) the first snapshot it covers.
    open: Option<(u64, ParquetFile)>,
    done: Vec<PathBuf>,
}

enum Target {
    File,
    Parts { dir: PathBuf, end: u64, next_start: u64, row_groups: usize },
}

impl TableFile {
    /// Creates the table `name` under `dir` (a run's staging folder: see
    /// [`crate::outdir`], which replaces an earlier run's parts when this run
    /// is complete) for the snapshots `range`.
    pub fn create(dir: &Path, name: &str, schema: SchemaRef, layout: OutputLayout, range: &Range<u64>) -> Result<Self> {
        let (target, path) = match layout {
            OutputLayout::Files => (Target::File, dir.join(format!("{name}.parquet"))),
            OutputLayout::Parts { row_groups } => {
                let dir = dir.join(name);
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                let path = in_progress_path(&dir, range.start);
                let row_groups = row_groups.max(1);
                (Target::Parts { dir, end: range.end, next_start: range.start, row_groups }, path)
            }
        };
        let file = ParquetFile::create(&path, Arc::clone(&schema))?;
        Ok(TableFile { schema, target, open: Some((range.start, file)), done: Vec::new() })
    }

    /// Writes a batch holding rows of snapshots up to `through` (inclusive); no
    /// later batch may hold rows of an earlier snapshot. A full part is closed.
    pub fn write(&mut self, batch: &RecordBatch, through: u64) -> Result<()> {
        self.write_within(batch)?;
        if let (Some((_, file)), Target::Parts { row_groups, .. }) = (&self.open, &self.target) {
            if file.row_groups() >= *row_groups {
                self.close_part(through + 1)?;
            }
        }
        Ok(())
    }

    /// Writes a batch of part of a snapshot's rows: the part stays open, since
    /// the rest of that snapshot's rows must go in it too.
    pub fn write_within(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.open.is_none() {
            if let Target::Parts { dir, next_start, .. } = &self.target {
                let file = ParquetFile::create(&in_progress_path(dir, *next_start), Arc::clone(&self.schema))?;
                self.open = Some((*next_start, file));
            }
        }
        match self.open.as_mut() {
            Some((_, file)) => file.write(batch),
            None => Ok(()),
        }
    }

    /// Closes the open part as covering snapshots up to `end` (exclusive).
    fn close_part(&mut self, end: u64) -> Result<()> {
        let Some((start, file)) = self.open.take() else { return Ok(()) };
        let written = file.finish()?;
        let path = match &mut self.target {
            Target::File => written,
            Target::Parts { dir, next_start, .. } => {
                *next_start = end;
                let path = dir.join(part_name(&(start..end)));
                std::fs::rename(&written, &path).map_err(|e| Error::io(&path, e))?;
                path
            }
        };
        self.done.push(path);
        Ok(())
    }

    /// Closes the table and returns the files it wrote. A table always has at
    /// least one file, even with no rows, so readers find its schema.
    pub fn finish(mut self) -> Result<Vec<PathBuf>> {
        let end = match &self.target {
            Target::File => 0,
            Target::Parts { end, .. } => *end,
        };
        self.close_part(end)?;
        Ok(self.done)
    }
}

/// Where a part is written until it is closed and named by its range: a hidden
/// name that `*.parquet` globs do not match, so readers never see half a part.
fn in_progress_path(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!(".part-{start:010}.parquet.tmp"))
}

/// One Parquet file: an `ArrowWriter` with explicit properties, a row group per batch.
pub struct ParquetFile {
    path: PathBuf,
    writer: ArrowWriter<File>,
}

impl ParquetFile {
    pub fn create(path: &Path, schema: SchemaRef) -> Result<Self> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
            .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_created_by(format!("heapvis {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(file, schema, Some(props))
            .map_err(|source| Error::Parquet { path: path.into(), source })?;
        Ok(ParquetFile { path: path.into(), writer })
    }

    /// Writes a batch as one row group. Closing the row group at once drops its
    /// column writers, each with its own compression context: kept open between
    /// batches, they were most of the writer's memory.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|source| Error::Parquet { path: self.path.clone(), source })?;
        self.writer.flush().map_err(|source| Error::Parquet { path: self.path.clone(), source })
    }

    /// Row groups written so far (the one in progress not counted).
    fn row_groups(&self) -> usize {
        self.writer.flushed_row_groups().len()
    }

    /// Writes the footer and closes the file, returning its path.
    pub fn finish(self) -> Result<PathBuf> {
        self.writer.close().map_err(|source| Error::Parquet { path: self.path.clone(), source })?;
        Ok(self.path)
    }
}

/// Builds a record batch, naming the table if the columns do not fit the schema.
pub fn batch(table: &'static str, schema: &SchemaRef, columns: Vec<arrow::array::ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|source| Error::Arrow { table, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_round_trip_and_sort_by_range() {
        assert_eq!(part_name(&(7..1234)), "part-0000000007-0000001234.parquet");
        assert_eq!(parse_part_name(&part_name(&(7..1234))), Some(7..1234));
        assert!(part_name(&(9..10)) < part_name(&(10..11)));
        for bad in ["part-1-x.parquet", "part-5-3.parquet", "part-1.parquet", "x-1-2.parquet", "part-1-2.parquet.tmp"] {
            assert_eq!(parse_part_name(bad), None, "{bad}");
        }
    }
}
