//! The library's front door: a capture opened once, any snapshot of it decoded
//! into Arrow batches, the whole analysis into an output folder, and the
//! answers read back from one. The Python package wraps exactly this surface;
//! the CLI adds printing to it.
//!
//! ```
//! let capture = heapvis::Capture::open("data/sample", &heapvis::FirmwareSource::Beside)?;
//! let snapshot = capture.snapshot(capture.len() - 1)?;
//! let blocks = snapshot.table(heapvis::SnapshotTable::Blocks);
//! let rows: usize = blocks.iter().map(|b| b.num_rows()).sum();
//! assert!(rows > 100, "a busy heap's allocations, one row each");
//! # Ok::<(), heapvis::Error>(())
//! ```

use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;

use crate::answers;
use crate::error::{Error, Result};
use crate::firmware::InputPaths;
use crate::outdir::Contents;
use crate::pipeline::{AnalyzeOptions, Progress, RamBounds, RunSummary, Session};
use crate::profile::Profile;

/// Where a capture's firmware is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FirmwareSource {
    /// Beside the dump: the capture is a folder holding `ram.bin` and
    /// `firmware.elf`, or `firmware.bin` and `firmware.map`.
    Beside,
    /// The build's ELF file.
    Elf(PathBuf),
    /// The flash image and the linker's map.
    BinMap {
        /// `firmware.bin`.
        bin: PathBuf,
        /// `firmware.map`.
        map: PathBuf,
    },
}

/// One capture: a RAM dump of fixed-size snapshots and its firmware, mapped and
/// checked against each other before anything is decoded.
pub struct Capture {
    session: Session,
}

/// The tables one snapshot fills (the per-snapshot tables of `analyze
/// --per-snapshot`, with the same columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SnapshotTable {
    /// One row: the snapshot's gc figures and status.
    Snapshots,
    /// One row per allocation, with reachability and retained bytes.
    Blocks,
    /// One row per pointer from an allocation to another.
    Edges,
    /// One row per interned string.
    Qstrs,
    /// One row per string's text.
    Strings,
    /// One row per run of free blocks.
    FreeRuns,
}

impl SnapshotTable {
    /// Every table, in the order [`Snapshot`] holds them.
    pub const ALL: [SnapshotTable; 6] = [
        SnapshotTable::Snapshots,
        SnapshotTable::Blocks,
        SnapshotTable::Edges,
        SnapshotTable::Qstrs,
        SnapshotTable::Strings,
        SnapshotTable::FreeRuns,
    ];

    /// The table's name, as in an output folder.
    pub fn name(self) -> &'static str {
        crate::tables::one::SNAPSHOT_TABLES[self as usize]
    }

    /// The table of this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// One decoded snapshot, as Arrow batches per table.
#[derive(Clone, Debug)]
pub struct Snapshot {
    index: u64,
    tables: Vec<(&'static str, Vec<RecordBatch>)>,
}

impl Snapshot {
    /// Its index in the dump (0 is the first).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// One table's rows (usually one batch; `strings` splits when its texts are large).
    pub fn table(&self, table: SnapshotTable) -> &[RecordBatch] {
        &self.tables[table as usize].1
    }
}

impl Capture {
    /// Opens `dump`, a RAM dump or (with [`FirmwareSource::Beside`]) the folder
    /// holding it, with the layout profile derived from the ELF's DWARF when it
    /// has one, else the default.
    pub fn open(dump: impl AsRef<Path>, firmware: &FirmwareSource) -> Result<Self> {
        Self::open_with(dump, firmware, None)
    }

    /// [`Capture::open`] with the firmware's layout given by a profile: a
    /// TOML file, or the name of a shipped one (`micropython-1.2x-synthetic`),
    /// as `--profile` takes it.
    pub fn open_with(dump: impl AsRef<Path>, firmware: &FirmwareSource, profile: Option<&Path>) -> Result<Self> {
        let profile = profile.map(Profile::from_file_or_shipped).transpose()?;
        let dump = dump.as_ref().to_path_buf();
        let inputs = match firmware {
            FirmwareSource::Beside => InputPaths::resolve(std::slice::from_ref(&dump))?,
            FirmwareSource::Elf(elf) => InputPaths::resolve(&[dump, elf.clone()])?,
            FirmwareSource::BinMap { bin, map } => InputPaths::resolve(&[dump, bin.clone(), map.clone()])?,
        };
        Ok(Capture { session: Session::open_with_ram(&inputs, profile, &RamBounds::default())? })
    }

    /// Whole snapshots in the dump.
    pub fn len(&self) -> u64 {
        self.session.dump.count()
    }

    /// Whether the dump holds no whole snapshot.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes per snapshot: the RAM the dump holds a copy of each time.
    pub fn snapshot_bytes(&self) -> u64 {
        self.session.dump.snapshot_bytes()
    }

    /// The RAM dump's path.
    pub fn dump_path(&self) -> &Path {
        self.session.dump.path()
    }

    /// The name of the layout profile in use (derived, given or the default).
    pub fn profile_name(&self) -> &str {
        &self.session.profile.name
    }

    /// The layout profile in use, as the TOML `--profile` reads.
    pub fn profile_toml(&self) -> String {
        self.session.profile.to_toml()
    }

    /// Decodes snapshot `index` whole, with reachability and retained sizes
    /// where the GC's roots are known. A snapshot that does not decode is an
    /// [`Error::Snapshot`] naming it and why.
    pub fn snapshot(&self, index: u64) -> Result<Snapshot> {
        self.check_index(index)?;
        let report = self.session.decode_one(index)?;
        let event = self.session.sidecar.as_ref().and_then(|s| s.get(index));
        let offset = self.session.dump.offset_of(index);
        let tables = crate::tables::one::of_snapshot(report, offset, &self.session.firmware, event)?;
        Ok(Snapshot { index, tables })
    }

    /// Decodes the selected snapshots (`options.selection`) into Parquet
    /// tables in `out`, as `heapvis analyze` does (frames and a movie too, when
    /// `options.render` asks). The folder is checked first: another capture's
    /// tables are refused unless `options.overwrite`.
    ///
    /// ```
    /// let capture = heapvis::Capture::open("data/sample", &heapvis::FirmwareSource::Beside)?;
    /// let out = tempfile::tempdir().unwrap();
    /// let options = heapvis::AnalyzeOptions { selection: "0..40".parse()?, ..Default::default() };
    /// let run = capture.analyze(out.path(), &options, &heapvis::Silent)?;
    /// assert_eq!((run.snapshots, run.failed), (40, 0));
    /// let summary = heapvis::summary(out.path())?;
    /// assert_eq!(summary.snapshots, 40);
    /// # Ok::<(), heapvis::Error>(())
    /// ```
    pub fn analyze(&self, out: &Path, options: &AnalyzeOptions, progress: &dyn Progress) -> Result<RunSummary> {
        self.session.analyze(out, options, progress)
    }

    /// Rewrites the shards in `out` (runs over ranges that tile `0..N`, made
    /// with the same `options` by any number of processes) as the files one
    /// run over `0..N` writes, byte for byte, without decoding again: the
    /// lifetimes a shard boundary cut are joined.
    pub fn stitch(&self, out: &Path, options: &AnalyzeOptions) -> Result<Vec<PathBuf>> {
        self.session.compact(out, options)
    }

    /// Why the allocation covering `address` is alive at snapshot `index`: the
    /// shortest path from a GC root, named as Python would, its dominators and
    /// what it retains.
    pub fn why(&self, index: u64, address: u64) -> Result<crate::retain::why::Why> {
        self.check_index(index)?;
        let report = self.session.decode_one(index)?;
        let no_roots = || Error::Unsupported {
            what: format!("snapshot {index}: why"),
            why: "no GC roots to start from (the profile has no `state.roots_end`, or the build no `_estack`)".into(),
        };
        let roots = self.session.roots().of(index).filter(|_| report.retention.is_some()).ok_or_else(no_roots)?;
        crate::retain::why::why(&report, &roots, address).ok_or_else(|| Error::Unsupported {
            what: format!("snapshot {index}: why 0x{address:08x}"),
            why: "no allocation covers that address".into(),
        })
    }

    /// Leak suspects of `out` (made from this capture), each with an example
    /// path read from this capture. See [`leaks`].
    pub fn leaks(&self, out: &Path) -> Result<Leaks> {
        let mut found = leaks(out)?;
        self.check_folder(out)?;
        answers::leaks::add_examples(out, &mut found.suspects, &self.session)?;
        Ok(found)
    }

    /// [`diff`], with a named path from a root to each of the largest survivors.
    pub fn diff(&self, out: &Path, a: u64, b: u64, top: usize) -> Result<answers::diff::Diff> {
        let mut d = diff(out, a, b, top)?;
        self.check_folder(out)?;
        answers::diff::add_paths(&mut d, &self.session)?;
        Ok(d)
    }

    /// Refuses an output folder made from another capture, firmware or profile.
    fn check_folder(&self, out: &Path) -> Result<()> {
        let contents = Contents::read(out)?;
        match self.session.differs_from(&contents.identity) {
            None => Ok(()),
            Some(found) => Err(Error::CaptureMismatch {
                path: self.dump_path().to_path_buf(),
                found,
                advice: format!("give the capture {} was made from", out.display()),
            }),
        }
    }

    fn check_index(&self, index: u64) -> Result<()> {
        if index < self.len() {
            return Ok(());
        }
        Err(Error::BadSelection {
            spec: index.to_string(),
            reason: format!("the dump holds {} snapshot(s)", self.len()),
        })
    }
}

/// Leak suspects: owners whose retained bytes grow steadily after warm-up.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Leaks {
    /// Warm-up lasts until this snapshot (the first collection).
    pub warm_up_until: u64,
    /// Most growth first.
    pub suspects: Vec<answers::leaks::Suspect>,
}

/// The run's answers from the tables in `out`: heap figures, MemoryErrors and
/// their causes, the leak rate.
pub fn summary(out: &Path) -> Result<answers::summary::Summary> {
    answers::summary::summary(out)
}

/// Leak suspects from the tables in `out` alone (no example paths; see
/// [`Capture::leaks`]).
pub fn leaks(out: &Path) -> Result<Leaks> {
    let (suspects, warm_up_until) = answers::leaks::suspects(out)?;
    Ok(Leaks { warm_up_until, suspects })
}

/// What changed between snapshots `a` and `b` of the tables in `out`: counts,
/// by kind and owner, and the `top` largest survivors (no paths; see
/// [`Capture::diff`]).
pub fn diff(out: &Path, a: u64, b: u64, top: usize) -> Result<answers::diff::Diff> {
    answers::diff::diff(out, &Contents::read(out)?, a, b, top)
}

/// Writes the answers' tables of `out` (`culprits`, `memory_errors`) from the
/// tables in it, as `heapvis analyze` does after a run.
pub fn write_answers(out: &Path) -> Result<Vec<PathBuf>> {
    answers::export::write(out)
}

/// Serves allocations under `bytes` from the heap rather than each from its
/// own `mmap` (glibc): for a host process whose malloc settings make every
/// large per-snapshot buffer a fresh mapping, as Dask's workers' do (see
/// the README's Dask figures). Process-wide; the fan-out's tasks call it.
pub fn set_mmap_threshold(bytes: usize) {
    crate::sys::set_mmap_threshold(bytes);
}
