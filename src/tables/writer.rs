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
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{Error, Result};

/// Rows buffered in Arrow builders before they become a record batch, and so a
/// row group: a batch holds whole snapshots, so it can be a little longer.
/// Each row group's column chunks start a compressor (and Parquet's codec a
/// decompressor beside it), and a dictionary page of their own: with a row per
/// allocation of every snapshot, 4,096-row groups spent a tenth of the run
/// creating codecs and wrote each address's dictionary entry again every
/// snapshot or two. 16,384 rows hold about six busy snapshots, and made
/// `--per-snapshot` files half as large; 32,768 rows saved another 10% of
/// them, but peaked 20 MiB higher, and 13% higher again over 10 GiB.
pub const BATCH_ROWS: usize = 16 * 1024;
/// The same for the narrow per-snapshot summaries, a few dozen rows a snapshot:
/// each row group's column chunks start a compressor of their own, which costs
/// more than encoding a few thousand such rows. (Kept apart from [`BATCH_ROWS`],
/// which was 4,096 when this was chosen, because their batches are sized by
/// their own reserve, `summaries::BATCH_ROOM`.)
pub const SUMMARY_BATCH_ROWS: usize = 16 * 1024;
/// Text (string contents) buffered before the rows become a batch however few.
pub const BATCH_TEXT_BYTES: usize = 8 << 20;
/// A batch longer than this (its last snapshot of many rows) is split into row groups.
const MAX_ROW_GROUP_ROWS: usize = 2 * BATCH_ROWS;
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

/// One table's output: a single file, or parts rolled over as it grows. Its
/// batches are encoded where they are written, or on a thread of the table's
/// own ([`TableFile::on_own_thread`]).
pub struct TableFile(Encoding);

enum Encoding {
    Here(Box<Parts>),
    Away(EncoderThread),
}

/// The files of one table, written on the thread that calls it.
struct Parts {
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
        Parts::create(dir, name, schema, layout, range).map(|p| TableFile(Encoding::Here(Box::new(p))))
    }

    /// Moves the encoding to a thread of the table's own, `name`d after it:
    /// `write` then hands it the batch and returns once it has taken it. For
    /// the tables with a row per allocation, edge or string of every snapshot,
    /// whose Parquet encoding is most of the writer's work; the bytes written
    /// are the same.
    pub fn on_own_thread(self, name: &str) -> Result<Self> {
        match self.0 {
            Encoding::Here(parts) => EncoderThread::spawn(*parts, name).map(|t| TableFile(Encoding::Away(t))),
            away => Ok(TableFile(away)),
        }
    }

    /// Writes a batch holding rows of snapshots up to `through` (inclusive); no
    /// later batch may hold rows of an earlier snapshot. A full part is closed.
    pub fn write(&mut self, batch: &RecordBatch, through: u64) -> Result<()> {
        match &mut self.0 {
            Encoding::Here(parts) => parts.write(batch, through),
            Encoding::Away(thread) => thread.send(Job::Through(batch.clone(), through)),
        }
    }

    /// Writes a batch of part of a snapshot's rows: the part stays open, since
    /// the rest of that snapshot's rows must go in it too.
    pub fn write_within(&mut self, batch: &RecordBatch) -> Result<()> {
        match &mut self.0 {
            Encoding::Here(parts) => parts.write_within(batch),
            Encoding::Away(thread) => thread.send(Job::Within(batch.clone())),
        }
    }

    /// Closes the table and returns the files it wrote. A table always has at
    /// least one file, even with no rows, so readers find its schema.
    pub fn finish(self) -> Result<Vec<PathBuf>> {
        match self.0 {
            Encoding::Here(parts) => parts.finish(),
            Encoding::Away(thread) => thread.finish(),
        }
    }
}

impl Parts {
    fn create(dir: &Path, name: &str, schema: SchemaRef, layout: OutputLayout, range: &Range<u64>) -> Result<Self> {
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
        Ok(Parts { schema, target, open: Some((range.start, file)), done: Vec::new() })
    }

    fn write(&mut self, batch: &RecordBatch, through: u64) -> Result<()> {
        self.write_within(batch)?;
        if let (Some((_, file)), Target::Parts { row_groups, .. }) = (&self.open, &self.target) {
            if file.row_groups() >= *row_groups {
                self.close_part(through + 1)?;
            }
        }
        Ok(())
    }

    fn write_within(&mut self, batch: &RecordBatch) -> Result<()> {
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

    fn finish(mut self) -> Result<Vec<PathBuf>> {
        let end = match &self.target {
            Target::File => 0,
            Target::Parts { end, .. } => *end,
        };
        self.close_part(end)?;
        Ok(self.done)
    }
}

/// What the writer hands a table's encoder thread, in order.
enum Job {
    /// [`TableFile::write_within`].
    Within(RecordBatch),
    /// [`TableFile::write`].
    Through(RecordBatch, u64),
    /// [`TableFile::finish`]. A table dropped without it (the run failed)
    /// leaves its part in progress unnamed, as one written here does.
    Finish,
}

/// A table's [`Parts`] on a thread of their own. The channel holds no batch:
/// `send` waits until the thread takes it, so at most one batch is encoded
/// while the next is built, and memory stays bounded.
struct EncoderThread {
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<Result<Vec<PathBuf>>>>,
}

impl EncoderThread {
    fn spawn(parts: Parts, name: &str) -> Result<Self> {
        let (jobs, queue) = sync_channel(0);
        let thread = std::thread::Builder::new()
            .name(format!("heapvis-{name}"))
            .spawn(move || encode(parts, queue))
            .map_err(|e| Error::ThreadPool { threads: 1, message: e.to_string() })?;
        Ok(EncoderThread { jobs: Some(jobs), thread: Some(thread) })
    }

    /// Hands the thread a job; if it has stopped on an error, that error.
    fn send(&mut self, job: Job) -> Result<()> {
        let sent = self.jobs.as_ref().is_some_and(|jobs| jobs.send(job).is_ok());
        if sent {
            return Ok(());
        }
        // The thread only stops early on an error (or a panic), which is this one.
        self.jobs = None;
        self.join().and(Err(Error::WriterPanicked))
    }

    fn finish(mut self) -> Result<Vec<PathBuf>> {
        self.send(Job::Finish)?;
        self.jobs = None;
        self.join()
    }

    /// Waits for the thread: what it wrote, or why it stopped.
    fn join(&mut self) -> Result<Vec<PathBuf>> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(done)) => done,
            Some(Err(_panic)) => Err(Error::WriterPanicked),
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for EncoderThread {
    /// Stops the thread before the table's folder can be cleaned up under it.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The encoder thread: writes each batch it is handed until told to finish.
fn encode(mut parts: Parts, queue: Receiver<Job>) -> Result<Vec<PathBuf>> {
    for job in queue {
        match job {
            Job::Within(batch) => parts.write_within(&batch)?,
            Job::Through(batch, through) => parts.write(&batch, through)?,
            Job::Finish => return parts.finish(),
        }
    }
    Ok(Vec::new())
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
    use arrow::array::{ArrayRef, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("snapshot", DataType::Int64, false)]))
    }

    /// Snapshot `i`'s rows: `i` a few times.
    fn rows(i: u64) -> RecordBatch {
        let column: ArrayRef = Arc::new(Int64Array::from(vec![i as i64; 3 + i as usize % 5]));
        RecordBatch::try_new(schema(), vec![column]).unwrap()
    }

    /// Writes snapshots 0..10 (snapshot 4 in two batches) as parts of two row
    /// groups, here or on a thread; the part names and their bytes.
    fn written(dir: &Path, away: bool) -> Vec<(String, Vec<u8>)> {
        let layout = OutputLayout::Parts { row_groups: 2 };
        let mut file = TableFile::create(dir, "t", schema(), layout, &(0..10)).unwrap();
        if away {
            file = file.on_own_thread("t").unwrap();
        }
        for i in 0..10 {
            if i == 4 {
                file.write_within(&rows(i)).unwrap();
            }
            file.write(&rows(i), i).unwrap();
        }
        let mut done: Vec<_> = file.finish().unwrap().iter().map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(p).unwrap())).collect();
        done.sort();
        done
    }

    #[test]
    fn a_table_encoded_on_its_own_thread_writes_the_same_parts_byte_for_byte() {
        let (here, away) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (here, away) = (written(here.path(), false), written(away.path(), true));
        let names: Vec<&str> = here.iter().map(|(n, _)| n.as_str()).collect();
        // Two row groups a part: snapshot 4's two batches make one part.
        let ranges = [0..2, 2..4, 4..5, 5..7, 7..9, 9..10].map(|r| part_name(&r));
        assert_eq!(names, ranges);
        assert_eq!(here, away);
    }

    #[test]
    fn an_encoder_threads_error_reaches_the_writer_and_no_part_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OutputLayout::Parts { row_groups: 1 };
        let mut file = TableFile::create(dir.path(), "t", schema(), layout, &(0..10)).unwrap().on_own_thread("t").unwrap();
        file.write(&rows(0), 0).unwrap();
        // The next part cannot be created once its folder is gone.
        std::fs::remove_dir_all(dir.path().join("t")).unwrap();
        let failed = (1..10).find_map(|i| file.write(&rows(i), i).err());
        let failed = failed.unwrap_or_else(|| file.finish().expect_err("the part cannot be written"));
        assert!(matches!(failed, Error::Io { .. } | Error::Parquet { .. }), "{failed:?}");
    }

    #[test]
    fn a_table_dropped_unfinished_on_its_thread_leaves_its_part_unnamed() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = TableFile::create(dir.path(), "t", schema(), OutputLayout::parts(), &(0..10)).unwrap().on_own_thread("t").unwrap();
        file.write(&rows(0), 0).unwrap();
        drop(file);
        let names: Vec<String> = std::fs::read_dir(dir.path().join("t")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, [".part-0000000000.parquet.tmp"]);
    }

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
