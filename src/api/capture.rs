//! [`Capture`]: a RAM dump and its firmware, opened and checked once; any
//! snapshot of it decoded on demand, the whole analysis, and the answers that
//! need the capture itself (paths from the GC's roots).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use arrow::record_batch::RecordBatch;

use crate::answers;
use crate::decode::DecodeOptions;
use crate::error::{Error, Result};
use crate::firmware::InputPaths;
use crate::follow::{FollowOptions, FollowSummary, LiveProgress};
use crate::outdir::Contents;
use crate::pipeline::{AnalyzeOptions, ProfileSource, Progress, RamBounds, RunSummary, Session};
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

/// How to read a capture's firmware: the layout profile and the RAM bounds,
/// when the defaults are not right (the CLI's `--profile`, `--ram-start`,
/// `--ram-end`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// A profile's TOML file, or the name of a shipped one
    /// (`micropython-1.2x-synthetic`); `None`: derived from the ELF's debug
    /// info when there is one, else the default (CircuitPython 3.0).
    pub profile: Option<PathBuf>,
    /// Where each snapshot starts and ends, in place of the profile's.
    pub ram: RamBounds,
}

/// One capture: a RAM dump of fixed-size snapshots and its firmware, mapped and
/// checked against each other before anything is decoded.
pub struct Capture {
    session: Session,
    inputs: InputPaths,
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

/// One snapshot in the reference analyser's words (`heapvis inspect`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// The text: the block-state report, or the firmware's `mem_info(1)` map.
    pub text: String,
    /// Why the snapshot is suspect, when it is (it is shown all the same).
    pub suspect: Option<String>,
}

impl Capture {
    /// Opens `dump`, a RAM dump or (with [`FirmwareSource::Beside`]) the folder
    /// holding it, with the layout profile derived from the ELF's debug info when
    /// it has one, else the default.
    pub fn open(dump: impl AsRef<Path>, firmware: &FirmwareSource) -> Result<Self> {
        Self::open_with(dump, firmware, None)
    }

    /// [`Capture::open`] with the firmware's layout given by a profile: a
    /// TOML file, or the name of a shipped one (`micropython-1.2x-synthetic`),
    /// as `--profile` takes it.
    pub fn open_with(dump: impl AsRef<Path>, firmware: &FirmwareSource, profile: Option<&Path>) -> Result<Self> {
        let dump = dump.as_ref().to_path_buf();
        let inputs = match firmware {
            FirmwareSource::Beside => vec![dump],
            FirmwareSource::Elf(elf) => vec![dump, elf.clone()],
            FirmwareSource::BinMap { bin, map } => vec![dump, bin.clone(), map.clone()],
        };
        let options = OpenOptions { profile: profile.map(Path::to_path_buf), ..OpenOptions::default() };
        Self::open_inputs(&inputs, &options)
    }

    /// Opens a capture given as the CLI takes it: `RAM_DUMP FIRMWARE_BIN
    /// FIRMWARE_MAP`, `RAM_DUMP FIRMWARE_ELF`, or one folder holding them.
    pub fn open_inputs(inputs: &[PathBuf], options: &OpenOptions) -> Result<Self> {
        let inputs = InputPaths::resolve(inputs)?;
        let profile = options.profile.as_deref().map(Profile::from_file_or_shipped).transpose()?;
        let session = Session::open_with_ram(&inputs, profile, &options.ram)?;
        Ok(Capture { session, inputs })
    }

    /// The capture output folder `out` was made from: `inputs` (as
    /// [`Capture::open_inputs`] takes them), or when there are none, the
    /// folder of the dump its manifest names. It must be the capture,
    /// firmware and profile the folder holds the tables of.
    pub fn of_folder(out: &Path, inputs: &[PathBuf], options: &OpenOptions) -> Result<Self> {
        let contents = Contents::read(out)?;
        let profile = options.profile.as_deref().map(Profile::from_file_or_shipped).transpose()?;
        let source = answers::capture::CaptureSource { inputs: inputs.to_vec(), profile, ram: options.ram.clone() };
        let (session, inputs) = answers::capture::reopen(out, &contents, &source)?;
        Ok(Capture { session, inputs })
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

    /// Bytes at the dump's end that are not a whole snapshot (ignored).
    pub fn trailing_bytes(&self) -> u64 {
        self.session.dump.trailing_bytes()
    }

    /// The RAM dump's path.
    pub fn dump_path(&self) -> &Path {
        self.session.dump.path()
    }

    /// The file the symbols come from: the ELF, or the linker's map.
    pub fn symbols_file(&self) -> &Path {
        self.inputs.symbols_file()
    }

    /// Object types the layout names that the firmware has no symbol for:
    /// their blocks get kind `unknown`.
    pub fn missing_types(&self) -> &[String] {
        &self.session.firmware.missing_types
    }

    /// The name of the layout profile in use (derived, given or the default).
    pub fn profile_name(&self) -> &str {
        &self.session.profile.name
    }

    /// The layout profile in use, as the TOML `--profile` reads.
    pub fn profile_toml(&self) -> String {
        self.session.profile.to_toml()
    }

    /// Where the layout profile came from.
    pub fn profile_source(&self) -> &ProfileSource {
        &self.session.profile_source
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

    /// Follows the dump while it grows (`analyze --follow`): publishes what
    /// it has decoded into `out` as it goes, until `stop` is set or the dump
    /// has been idle for `follow.idle`, then rewrites the folder as one run's
    /// tables.
    pub fn follow(
        &mut self,
        out: &Path,
        options: &AnalyzeOptions,
        follow: &FollowOptions,
        stop: &AtomicBool,
        progress: &dyn LiveProgress,
    ) -> Result<FollowSummary> {
        crate::follow::follow(&mut self.session, out, options, follow, stop, progress)
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
        let refused = |why: String| Error::Unsupported { what: format!("snapshot {index}"), why };
        let no_roots = "no GC roots to start from (the profile has no `state.roots_end`, or the build no `_estack`)";
        let roots = self.session.roots().of(index).filter(|_| report.retention.is_some());
        let roots = roots.ok_or_else(|| refused(no_roots.into()))?;
        crate::retain::why::why(&report, &roots, address)
            .ok_or_else(|| refused(format!("no allocation covers 0x{address:08x}")))
    }

    /// Snapshot `index` as the reference analyser printed it: the block-state
    /// report, or with `mem_info` the map the firmware's `mem_info(1)` prints.
    /// A suspect snapshot is shown, and says why it is suspect.
    pub fn inspect(&self, index: u64, mem_info: bool) -> Result<Inspection> {
        self.check_index(index)?;
        let decoder = self.session.decoder(DecodeOptions { keep_suspect: true, ..DecodeOptions::default() });
        let ram = self.session.dump.snapshot(index).unwrap_or(&[]);
        let failed = |source| Error::Snapshot { snapshot: index, source };
        if mem_info {
            let text = crate::inspect::mem_info(&decoder, ram).map_err(failed)?;
            return Ok(Inspection { text, suspect: None });
        }
        let report = decoder.decode(index, ram).map_err(failed)?;
        let (firmware, state) = (&self.session.firmware, &self.session.profile.symbols.state);
        let text = crate::inspect::block_state_report(&report, ram, firmware, state);
        Ok(Inspection { text, suspect: report.suspect.as_ref().map(|s| s.to_string()) })
    }

    /// Snapshot `index`'s ownership graph as Graphviz DOT text.
    pub fn ownership_dot(&self, index: u64) -> Result<String> {
        self.check_index(index)?;
        Ok(crate::render::dot::ownership_dot(&self.session.decode_one(index)?))
    }

    /// Leak suspects of `out` (made from this capture), each with an example
    /// path read from this capture. See [`crate::leaks`].
    pub fn leaks(&self, out: &Path) -> Result<super::Leaks> {
        let mut found = super::leaks(out)?;
        self.add_examples(out, &mut found.suspects)?;
        Ok(found)
    }

    /// Gives each suspect of `out` an example allocation and the path that
    /// holds it, read from this capture.
    pub fn add_examples(&self, out: &Path, suspects: &mut [answers::leaks::Suspect]) -> Result<()> {
        self.check_folder(out)?;
        answers::leaks::add_examples(out, suspects, &self.session)
    }

    /// [`crate::diff`], with a named path from a root to each of the largest survivors.
    pub fn diff(&self, out: &Path, a: u64, b: u64, top: usize) -> Result<answers::diff::Diff> {
        let mut d = super::diff(out, a, b, top)?;
        self.add_paths(out, &mut d)?;
        Ok(d)
    }

    /// Gives each survivor of `d` (a diff of `out`) its path from a root, read
    /// from this capture.
    pub fn add_paths(&self, out: &Path, d: &mut answers::diff::Diff) -> Result<()> {
        self.check_folder(out)?;
        answers::diff::add_paths(d, &self.session)
    }

    /// The HTML report of output folder `out` (made from this capture), with
    /// the leak suspects' example paths. See [`crate::report_page`].
    pub fn report(&self, out: &Path, options: &crate::report::ReportOptions) -> Result<String> {
        self.check_folder(out)?;
        crate::report::report(out, options, Some(&self.session))
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
