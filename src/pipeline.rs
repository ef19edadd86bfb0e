//! The analysis pipeline: map the dump, decode windows of snapshots in parallel
//! (rayon), and hand the results, in snapshot order, to the one writer thread.
//!
//! At most two windows are in flight (one being decoded, one being written), so
//! memory is bounded by the window size, not by the dump. Output depends only on
//! the input: workers return rows, never write, and the writer sees snapshots in
//! order whatever the thread count.

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use rayon::prelude::*;

use crate::decode::{DecodeOptions, Decoder};
use crate::dump::{Dump, Selection};
use crate::error::{Error, Result};
use crate::firmware::{Firmware, InputPaths};
use crate::profile::Profile;
use crate::tables::{SnapshotOutcome, TableSet, TableSink};

/// Reports progress and warnings; the CLI draws them, tests ignore them.
pub trait Progress: Sync {
    fn start(&self, _snapshots: u64, _bytes: u64) {}
    fn advance(&self, _snapshots: u64, _bytes: u64) {}
    /// A snapshot that could not be decoded (it is still written, with its error).
    fn warn(&self, _message: &str) {}
    fn finish(&self) {}
}

/// Progress that goes nowhere.
pub struct Silent;
impl Progress for Silent {}

#[derive(Clone, Debug)]
pub struct AnalyzeOptions {
    pub selection: Selection,
    pub tables: TableSet,
    /// Worker threads; `None` uses one per core.
    pub threads: Option<usize>,
    /// Snapshots decoded per parallel window.
    pub window: usize,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            selection: Selection::All,
            tables: TableSet::ALL,
            threads: None,
            window: 64,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    pub snapshots: u64,
    pub failed: u64,
    pub bytes: u64,
    /// Bytes after the last whole snapshot, which were ignored.
    pub trailing_bytes: u64,
    pub files: Vec<PathBuf>,
}

/// Everything a run needs, loaded and checked before any output is written.
pub struct Session {
    pub firmware: Firmware,
    pub profile: Profile,
    pub dump: Dump,
}

impl Session {
    pub fn open(inputs: &InputPaths, profile: Profile) -> Result<Self> {
        let firmware = Firmware::load(&inputs.flash, &inputs.map, &profile)?;
        let dump = Dump::open(&inputs.ram, firmware.snapshot_bytes())?;
        Ok(Session {
            firmware,
            profile,
            dump,
        })
    }

    pub fn decoder(&self, options: DecodeOptions) -> Decoder<'_> {
        Decoder::new(&self.firmware, &self.profile, options)
    }

    /// Decodes the selected snapshots and writes the tables into `out_dir`.
    pub fn analyze(
        &self,
        out_dir: &Path,
        options: &AnalyzeOptions,
        progress: &dyn Progress,
    ) -> Result<RunSummary> {
        let range = options.selection.resolve(self.dump.count())?;
        let decoder = self.decoder(DecodeOptions {
            metrics_only: !options.tables.needs_objects() && !options.tables.free_runs,
        });
        let mut builder = rayon::ThreadPoolBuilder::new();
        if let Some(n) = options.threads {
            builder = builder.num_threads(n.max(1));
        }
        let pool = builder.build().map_err(|e| Error::ThreadPool {
            threads: options.threads.unwrap_or(0),
            message: e.to_string(),
        })?;
        let sink = TableSink::create(out_dir, options.tables, &self.firmware)?;
        let snapshot_bytes = self.dump.snapshot_bytes();
        progress.start(
            range.end - range.start,
            (range.end - range.start) * snapshot_bytes,
        );

        let window = options.window.max(1) as u64;
        let (tx, rx) = sync_channel::<Vec<(u64, SnapshotOutcome)>>(1);
        let dump = &self.dump;
        let result: Result<TableSink> = std::thread::scope(|scope| {
            let writer = scope.spawn(move || -> Result<TableSink> {
                let mut sink = sink;
                for batch in rx {
                    let n = batch.len() as u64;
                    let mut last = 0;
                    for (index, outcome) in &batch {
                        if let Err(e) = outcome {
                            progress.warn(&format!("snapshot {index}: {e}"));
                        }
                        sink.write(*index, dump.offset_of(*index), outcome)?;
                        last = *index;
                    }
                    dump.release_before(last);
                    progress.advance(n, n * snapshot_bytes);
                }
                Ok(sink)
            });
            let mut start = range.start;
            while start < range.end {
                let end = (start + window).min(range.end);
                let batch: Vec<(u64, SnapshotOutcome)> = pool.install(|| {
                    (start..end)
                        .into_par_iter()
                        .map(|i| {
                            let ram = dump.snapshot(i).unwrap_or(&[]);
                            (i, decoder.decode(i, ram))
                        })
                        .collect()
                });
                if tx.send(batch).is_err() {
                    break; // the writer stopped on an error; it reports it below
                }
                start = end;
            }
            drop(tx);
            writer.join().map_err(|_| Error::WriterPanicked)?
        });
        let sink = result?;
        let (written, failed) = (sink.written, sink.failed);
        let files = sink.finish()?;
        progress.finish();
        Ok(RunSummary {
            snapshots: written,
            failed,
            bytes: written * snapshot_bytes,
            trailing_bytes: self.dump.trailing_bytes(),
            files,
        })
    }
}
