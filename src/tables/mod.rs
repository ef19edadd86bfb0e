//! The output tables and [`TableSink`], the one writer that stores decoded
//! snapshots, in snapshot order, as Parquet.
//!
//! By default a run writes `snapshots` (one row per snapshot), the lifetimes
//! `allocations`, `edge_history` and `qstr_history` (one row per object, pointer or
//! qstr instance, with its first and last snapshot), the per-snapshot summaries
//! `type_histogram` and `free_run_histogram`, and `symbols`. `--per-snapshot` adds
//! every block, edge, qstr, string and free run of every snapshot.
//!
//! Addresses are `Int64` integers (so joins on addresses work and hex is a
//! formatting choice); kinds and names are dictionary-encoded strings.

mod table;
crate::internal! {
    compact;
    lifetimes;
    one;
    per_snapshot;
    summaries;
    writer;
}

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::decode::SnapshotReport;
use crate::error::{DecodeError, Error, Result};
use crate::firmware::Firmware;
crate::internal_use!(lifetimes::After, writer::parse_part_name);
use lifetimes::{AllocationRows, EdgeHistoryRows, LifetimeChanges, LifetimeRows, Lifetimes, QstrHistoryRows, Wanted};
use per_snapshot::{arc, BlocksRows, EdgesRows, FreeRunsRows, IntColumn, QstrsRows, SnapshotsRows, StringsRows};
use summaries::{FreeRunHistogramRows, RetainersRows, TypeGroup, TypeHistogramRows};
use table::{Input, RowTable, Rows, Table};
pub use writer::OutputLayout;

/// Every table a run can write from the dump (`symbols` aside), in a fixed order.
pub const TABLE_NAMES: [&str; 12] = [
    "snapshots",
    "blocks",
    "edges",
    "qstrs",
    "strings",
    "free_runs",
    "allocations",
    "edge_history",
    "qstr_history",
    "type_histogram",
    "free_run_histogram",
    "retainers",
];
use rayon::prelude::*;
use writer::{batch, ParquetFile, TableFile, BATCH_ROWS, BATCH_TEXT_BYTES, SUMMARY_BATCH_ROWS};

/// One snapshot's outcome, as it leaves the decoder.
pub type SnapshotOutcome = std::result::Result<SnapshotReport, DecodeError>;

/// A decoded snapshot made ready for the writer by the worker that decoded it: the
/// rows the per-snapshot tables want, the lifetime changes since the snapshot
/// before, and the type histogram. What no table wants is already dropped, so the
/// writer's work, and what waits for it, is small.
pub struct Prepared<'f> {
    report: SnapshotReport,
    lifetimes: Option<LifetimeChanges>,
    type_groups: Vec<TypeGroup<'f>>,
}

/// A snapshot made ready for the writer, or why it was not decoded.
pub type PreparedOutcome<'f> = std::result::Result<Prepared<'f>, DecodeError>;

impl<'f> Prepared<'f> {
    /// A snapshot prepared elsewhere (see [`crate::incremental`]): `report` holds
    /// only what the per-snapshot tables read.
    pub(crate) fn new(
        report: SnapshotReport,
        lifetimes: Option<LifetimeChanges>,
        type_groups: Vec<TypeGroup<'f>>,
    ) -> Self {
        Prepared { report, lifetimes, type_groups }
    }
}

/// Prepares the snapshots of one run of consecutive snapshots, in order (one per
/// worker and run): each is diffed against the previous one it prepared.
pub struct Preparer<'f> {
    set: TableSet,
    firmware: &'f Firmware,
    prev: Option<LifetimeRows>,
}

impl<'f> Preparer<'f> {
    /// A preparer for the tables of `set`.
    pub fn new(set: TableSet, firmware: &'f Firmware) -> Self {
        Preparer { set, firmware, prev: None }
    }

    /// Makes `outcome` ready for the writer, diffing it against the one before.
    pub fn prepare(&mut self, outcome: SnapshotOutcome) -> PreparedOutcome<'f> {
        let mut report = outcome?;
        let set = self.set;
        let type_groups = if set.type_histogram { summaries::type_groups(&report, self.firmware) } else { Vec::new() };
        let want = set.lifetimes();
        let lifetimes = want.any().then(|| {
            let take = !(set.edges || set.qstrs);
            let rows = LifetimeRows::from_report(&mut report, want, take, self.firmware);
            let changes = rows.changes_since(self.prev.as_ref());
            self.prev = Some(rows);
            changes
        });
        // Drop what no table will read, here in the worker.
        if !set.blocks {
            report.blocks = Vec::new();
        }
        if !set.edges {
            report.edges = Vec::new();
        }
        if !set.qstrs {
            report.qstrs = Vec::new();
        }
        if !set.strings {
            report.strings = Vec::new();
        }
        Ok(Prepared { report, lifetimes, type_groups })
    }
}

/// Which tables a run writes (`snapshots` is always written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableSet {
    /// `blocks`: every allocation of every snapshot.
    pub blocks: bool,
    /// `edges`: every pointer of every snapshot.
    pub edges: bool,
    /// `qstrs`: every qstr of every snapshot.
    pub qstrs: bool,
    /// `strings`: every string's text of every snapshot.
    pub strings: bool,
    /// `free_runs`: every free run of every snapshot.
    pub free_runs: bool,
    /// `allocations`: each allocation's lifetime.
    pub allocations: bool,
    /// `edge_history`: each pointer's lifetime.
    pub edge_history: bool,
    /// `qstr_history`: each RAM qstr and when it appeared.
    pub qstr_history: bool,
    /// `type_histogram`: allocations by kind, type and class, per snapshot.
    pub type_histogram: bool,
    /// `free_run_histogram`: free runs by size, per snapshot.
    pub free_run_histogram: bool,
    /// What each owner retains (empty without retention).
    pub retainers: bool,
    /// `symbols`: the firmware's symbol table.
    pub symbols: bool,
}

impl TableSet {
    /// Lifetimes and summaries: what a soak test wants.
    pub const DEFAULT: TableSet = TableSet {
        blocks: false,
        edges: false,
        qstrs: false,
        strings: false,
        free_runs: false,
        allocations: true,
        edge_history: true,
        qstr_history: true,
        type_histogram: true,
        free_run_histogram: true,
        retainers: true,
        symbols: true,
    };
    /// Everything, including every row of every snapshot.
    pub const ALL: TableSet =
        TableSet { blocks: true, edges: true, qstrs: true, strings: true, free_runs: true, ..TableSet::DEFAULT };
    /// Only `snapshots`: the metrics-only fast path.
    pub const METRICS: TableSet = TableSet {
        blocks: false,
        edges: false,
        qstrs: false,
        strings: false,
        free_runs: false,
        allocations: false,
        edge_history: false,
        qstr_history: false,
        type_histogram: false,
        free_run_histogram: false,
        retainers: false,
        symbols: false,
    };

    /// The names of the tables in the set, in [`TABLE_NAMES`] order, `symbols` last.
    pub fn names(&self) -> Vec<String> {
        let on = [
            true,
            self.blocks,
            self.edges,
            self.qstrs,
            self.strings,
            self.free_runs,
            self.allocations,
            self.edge_history,
            self.qstr_history,
            self.type_histogram,
            self.free_run_histogram,
            self.retainers,
        ];
        let mut names: Vec<String> =
            TABLE_NAMES.iter().zip(on).filter(|(_, on)| *on).map(|(n, _)| n.to_string()).collect();
        if self.symbols {
            names.push("symbols".to_string());
        }
        names
    }

    /// Whether rows of every object of every snapshot are wanted: only a whole
    /// decode makes them.
    pub fn object_rows(&self) -> bool {
        self.blocks || self.edges || self.qstrs || self.strings
    }

    /// Whether rows of every snapshot are wanted (`--per-snapshot`), not only
    /// what changed.
    pub fn per_snapshot_rows(&self) -> bool {
        self.object_rows() || self.free_runs
    }

    /// Whether anything past the allocation table must be decoded.
    pub fn needs_objects(&self) -> bool {
        self.blocks
            || self.edges
            || self.qstrs
            || self.strings
            || self.allocations
            || self.edge_history
            || self.qstr_history
            || self.type_histogram
            || self.retainers
    }

    pub(crate) fn lifetimes(&self) -> Wanted {
        Wanted { allocations: self.allocations, edges: self.edge_history, qstrs: self.qstr_history }
    }

    /// Whether the free runs must be listed.
    pub fn needs_free_runs(&self) -> bool {
        self.free_runs || self.free_run_histogram
    }
}

/// A lifetime table's file: its rows live with the tracker (see [`Lifetimes`]).
struct LifetimeFile {
    name: &'static str,
    schema: SchemaRef,
    file: TableFile,
}

/// The single writer: receives snapshot outcomes in order and streams them into
/// Parquet, diffing consecutive snapshots into lifetimes on the way.
pub struct TableSink<'f> {
    firmware: &'f Firmware,
    /// The tables written from each snapshot (see [`table`]), `snapshots` first.
    tables: Vec<Box<dyn Table<'f> + Send + 'f>>,
    allocations: Option<LifetimeFile>,
    edge_history: Option<LifetimeFile>,
    qstr_history: Option<LifetimeFile>,
    /// The trackers, and the rows of the three lifetime tables above.
    lifetimes: Lifetimes,
    set: TableSet,
    /// The snapshot being written: rows pushed now are rows of snapshots up to it.
    at: u64,
    /// Snapshots written.
    pub written: u64,
    /// Snapshots not decoded or not plausible (their `status` says which).
    pub failed: u64,
    /// Of those, the snapshots that failed a plausibility check.
    pub suspect: u64,
    /// The table files written.
    pub files: Vec<PathBuf>,
}

struct Opener<'a> {
    dir: &'a Path,
    layout: OutputLayout,
    range: &'a Range<u64>,
}

impl Opener<'_> {
    fn file(&self, name: &str, schema: SchemaRef) -> Result<TableFile> {
        TableFile::create(self.dir, name, schema, self.layout, self.range)
    }

    /// Table `R`, when `want`ed.
    fn rows<'f, R: Rows + Send + 'f>(
        &self,
        want: bool,
        tables: &mut Vec<Box<dyn Table<'f> + Send + 'f>>,
    ) -> Result<()> {
        if want {
            tables.push(Box::new(RowTable::<R>::open(|name, schema| self.file(name, schema))?));
        }
        Ok(())
    }

    fn lifetime(&self, want: bool, name: &'static str, schema: SchemaRef) -> Result<Option<LifetimeFile>> {
        if !want {
            return Ok(None);
        }
        let file = self.file(name, Arc::clone(&schema))?;
        Ok(Some(LifetimeFile { name, schema, file }))
    }
}

impl<'f> TableSink<'f> {
    /// Opens the tables of `set` under `dir` for the snapshots `range`.
    pub fn create(
        dir: &Path,
        set: TableSet,
        layout: OutputLayout,
        range: &Range<u64>,
        firmware: &'f Firmware,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let o = Opener { dir, layout, range };
        let mut tables = Vec::new();
        o.rows::<SnapshotsRows>(true, &mut tables)?;
        o.rows::<BlocksRows>(set.blocks, &mut tables)?;
        o.rows::<EdgesRows>(set.edges, &mut tables)?;
        o.rows::<QstrsRows>(set.qstrs, &mut tables)?;
        o.rows::<StringsRows>(set.strings, &mut tables)?;
        o.rows::<FreeRunsRows>(set.free_runs, &mut tables)?;
        o.rows::<TypeHistogramRows>(set.type_histogram, &mut tables)?;
        o.rows::<FreeRunHistogramRows>(set.free_run_histogram, &mut tables)?;
        o.rows::<RetainersRows>(set.retainers, &mut tables)?;
        let allocations = o.lifetime(set.allocations, "allocations", lifetimes::allocations_schema())?;
        let edge_history = o.lifetime(set.edge_history, "edge_history", lifetimes::edge_history_schema())?;
        let qstr_history = o.lifetime(set.qstr_history, "qstr_history", lifetimes::qstr_history_schema())?;
        let mut files = Vec::new();
        if set.symbols {
            // The symbol table is the same for every shard: one file, not parts.
            let path = dir.join("symbols.parquet");
            write_symbols(&path, firmware)?;
            files.push(path);
        }
        Ok(TableSink {
            firmware,
            tables,
            allocations,
            edge_history,
            qstr_history,
            lifetimes: Lifetimes::new(set.lifetimes()),
            set,
            at: range.start,
            written: 0,
            failed: 0,
            suspect: 0,
            files,
        })
    }

    /// Stores one snapshot; calls must come in snapshot order.
    /// Writes snapshot `index`'s rows; `event` is its line of the capture's
    /// sidecar, when it has one.
    pub fn write(
        &mut self,
        index: u64,
        dump_offset: u64,
        outcome: &PreparedOutcome<'f>,
        event: Option<&crate::sidecar::Event>,
    ) -> Result<()> {
        self.at = index;
        let input = Input { index, dump_offset, outcome, firmware: self.firmware, event };
        for t in &mut self.tables {
            t.write(&input)?;
        }
        match outcome {
            Ok(p) => {
                if let Some(c) = &p.lifetimes {
                    self.lifetimes.apply(index, p.report.geometry.bytes_per_block, c, self.firmware);
                }
            }
            Err(e) => {
                self.failed += 1;
                self.suspect += matches!(e, DecodeError::Suspect { .. }) as u64;
            }
        }
        self.written += 1;
        self.flush(false)
    }

    fn flush(&mut self, force: bool) -> Result<()> {
        let at = self.at;
        for t in &mut self.tables {
            t.flush(force, at)?;
        }
        flush_rows(self.allocations.as_mut(), self.lifetimes.allocation_rows(), force, at, AllocationRows::finish)?;
        flush_rows(self.edge_history.as_mut(), self.lifetimes.edge_rows(), force, at, EdgeHistoryRows::finish)?;
        flush_rows(self.qstr_history.as_mut(), self.lifetimes.qstr_rows(), force, at, QstrHistoryRows::finish)?;
        Ok(())
    }

    fn lifetime_rows(&self, mut report: SnapshotReport) -> LifetimeRows {
        LifetimeRows::from_report(&mut report, self.set.lifetimes(), true, self.firmware)
    }

    /// Gives the lifetimes the snapshot just before the range (the lead-in), so
    /// what was alive there is known to have started earlier. Writes no rows.
    pub fn prime(&mut self, before: SnapshotReport) {
        let index = before.index;
        let rows = self.lifetime_rows(before);
        self.lifetimes.prime(index, &rows);
    }

    /// Ends every lifetime still open, looking at `next` (what follows the
    /// range), then flushes and closes every file.
    ///
    /// Each table's last batch and footer concern its file alone, so they are
    /// written side by side on the current rayon pool. They are most of a
    /// run's serial end: a busy 1 GiB capture's `snapshots` and `allocations`
    /// fit in one batch each, encoded here while the other core would idle.
    pub fn finish(mut self, next: After<SnapshotReport>) -> Result<Vec<PathBuf>> {
        let next = next.map(|r| self.lifetime_rows(r));
        self.lifetimes.finish(next.as_ref(), self.firmware);
        let at = self.at;
        let (allocation_rows, edge_rows, qstr_rows) = self.lifetimes.all_rows();
        let mut closing: Vec<Box<dyn FnOnce() -> Result<Vec<PathBuf>> + Send + '_>> = Vec::new();
        for mut t in self.tables {
            closing.push(Box::new(move || {
                t.flush(true, at)?;
                t.finish()
            }));
        }
        push_closing(&mut closing, self.allocations, allocation_rows, at, AllocationRows::finish);
        push_closing(&mut closing, self.edge_history, edge_rows, at, EdgeHistoryRows::finish);
        push_closing(&mut closing, self.qstr_history, qstr_rows, at, QstrHistoryRows::finish);
        let written: Vec<Vec<PathBuf>> = closing.into_par_iter().map(|close| close()).collect::<Result<_>>()?;
        self.files.extend(written.into_iter().flatten());
        Ok(self.files)
    }
}

/// Adds to `closing` the step that writes a lifetime table's last rows and
/// closes its file.
fn push_closing<'a, R: PendingRows + Send + 'a>(
    closing: &mut Vec<Box<dyn FnOnce() -> Result<Vec<PathBuf>> + Send + 'a>>,
    table: Option<LifetimeFile>,
    rows: Option<&'a mut R>,
    at: u64,
    finish: fn(&mut R) -> Vec<ArrayRef>,
) {
    let Some(mut table) = table else { return };
    closing.push(Box::new(move || {
        flush_rows(Some(&mut table), rows, true, at, finish)?;
        table.file.finish()
    }));
}

/// Writes a lifetime table's pending rows as a batch when there are enough (or
/// any, when `force`d). The rows live with their tracker, the file here.
fn flush_rows<R>(
    table: Option<&mut LifetimeFile>,
    rows: Option<&mut R>,
    force: bool,
    at: u64,
    finish: fn(&mut R) -> Vec<ArrayRef>,
) -> Result<()>
where
    R: PendingRows,
{
    if let (Some(t), Some(rows)) = (table, rows) {
        if rows.due() || (force && rows.pending() > 0) {
            let b = batch(t.name, &t.schema, finish(rows))?;
            t.file.write(&b, at)?;
        }
    }
    Ok(())
}

/// Rows waiting in a table's Arrow builders to be written as a batch.
pub(crate) trait PendingRows {
    fn pending(&self) -> usize;
    /// Bytes of free text among them: a batch's rows are few, but texts come from
    /// the dump, and one large string can be named by many rows.
    fn text_bytes(&self) -> usize {
        0
    }
    /// Rows in a batch.
    fn batch_rows(&self) -> usize {
        BATCH_ROWS
    }
    /// Whether they make a batch: [`PendingRows::batch_rows`] rows or
    /// [`BATCH_TEXT_BYTES`] of text.
    fn due(&self) -> bool {
        self.pending() >= self.batch_rows() || self.text_bytes() >= BATCH_TEXT_BYTES
    }
}

/// Rows counted in `n`; with `summary`, batched [`SUMMARY_BATCH_ROWS`] at a time;
/// with `text`, text counted in `text_bytes` too.
macro_rules! pending_rows {
    ($($t:ty),*) => {$(
        impl PendingRows for $t {
            fn pending(&self) -> usize {
                self.n
            }
        }
    )*};
    (summary: $($t:ty),*) => {$(
        impl PendingRows for $t {
            fn pending(&self) -> usize {
                self.n
            }
            fn batch_rows(&self) -> usize {
                SUMMARY_BATCH_ROWS
            }
        }
    )*};
    (text: $($t:ty),*) => {$(
        impl PendingRows for $t {
            fn pending(&self) -> usize {
                self.n
            }
            fn text_bytes(&self) -> usize {
                self.text_bytes
            }
        }
    )*};
}
pending_rows!(SnapshotsRows, BlocksRows, FreeRunsRows);
pending_rows!(summary: TypeHistogramRows, FreeRunHistogramRows, RetainersRows);
pending_rows!(text: StringsRows, AllocationRows);

impl<C: per_snapshot::Columns> PendingRows for per_snapshot::PerSnapshotRows<C> {
    fn pending(&self) -> usize {
        self.n
    }
}

impl<C: per_snapshot::Columns> PendingRows for lifetimes::HistoryRows<C> {
    fn pending(&self) -> usize {
        self.n
    }
}

/// The schema of `symbols`.
pub fn symbols_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("address", DataType::Int64, true),
        Field::new("size", DataType::Int64, true),
    ]))
}

/// The map's symbol table, for joins (`edges.root_address`, `blocks.type_address`).
/// Written under a name of this process's own and renamed into place: shards of
/// one dump running at once all write it, and a reader must never see a file
/// another shard is halfway through.
pub fn write_symbols(path: &Path, firmware: &Firmware) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("symbols.parquet");
    let partial = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    write_symbols_to(&partial, firmware)?;
    std::fs::rename(&partial, path).map_err(|e| Error::io(path, e))
}

fn write_symbols_to(path: &Path, firmware: &Firmware) -> Result<()> {
    let schema = symbols_schema();
    let mut file = ParquetFile::create(path, Arc::clone(&schema))?;
    let mut name = StringBuilder::new();
    let mut address = IntColumn::default();
    let mut size = IntColumn::default();
    for s in firmware.symbols.iter() {
        name.append_value(&s.name);
        address.append_option(s.address);
        size.append_option(s.size);
    }
    let columns: Vec<ArrayRef> = vec![arc(name.finish()), arc(address.finish()), arc(size.finish())];
    let b = batch("symbols", &schema, columns)?;
    file.write(&b)?;
    file.finish().map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DecodeOptions, Decoder, StringRow};
    use crate::profile::Profile;
    use crate::synth::{simulate_in_memory, Board, SynthConfig};

    #[test]
    fn a_batch_is_due_at_its_rows_or_at_its_text_bytes() {
        let capture = simulate_in_memory(&SynthConfig::new(Board::Samd21, 40, 3)).unwrap();
        let profile = Profile::default();
        let fw = capture.layout.firmware(&profile).unwrap();
        let size = (capture.layout.ram_end - capture.layout.ram_start) as usize;
        let decoder = Decoder::new(&fw, &profile, DecodeOptions::default());
        let mut report = decoder.decode(39, &capture.ram[39 * size..40 * size]).unwrap();

        // Short strings: the rows decide.
        let short = StringRow { block: 0, owner: None, source: "str", length: 3, text: Arc::from("abc") };
        report.strings = vec![short; BATCH_ROWS - 1];
        let mut rows = StringsRows::default();
        rows.push_from(&report, 0);
        assert!(!rows.due());
        report.strings.truncate(1);
        rows.push_from(&report, 0);
        assert!(rows.due(), "{} rows", rows.pending());
        rows.finish();
        assert!(!rows.due() && rows.pending() == 0 && rows.text_bytes() == 0);

        // One large string named by many rows (as hostile input can): the text decides.
        let text: Arc<str> = Arc::from("x".repeat(1 << 20));
        let large = StringRow { block: 0, owner: None, source: "str", length: 1 << 20, text };
        report.strings = vec![large; 3 * (BATCH_TEXT_BYTES >> 20)];
        let stop = rows.push_from(&report, 0);
        assert_eq!(stop, BATCH_TEXT_BYTES >> 20, "stops once a batch's worth of text is buffered");
        assert!(rows.due() && rows.pending() < BATCH_ROWS, "{} rows, {} bytes", rows.pending(), rows.text_bytes());
        rows.finish();
        assert_eq!(rows.push_from(&report, stop), 2 * stop, "and goes on from there");
    }
}
