//! The analysis pipeline: cut the selected snapshots into runs of consecutive ones,
//! decode the runs in parallel (rayon, one worker a run, each mapping its own part
//! of the dump), and hand the results, in snapshot order, to the one writer thread.
//!
//! A worker decodes its run in order and sends, for each snapshot after the first,
//! only what changed since the one before (see `tables::lifetimes`). Workers take
//! runs in order as they free up and stay at most two runs per thread ahead of the
//! writer, so memory is bounded by that, not by the dump. Output depends only on
//! the input: workers never write, runs start at fixed offsets, and the writer sees
//! snapshots in order whatever the thread count.

use std::ops::Range;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

mod workers;
use workers::{Outputs, RunWork, Written};

use crate::decode::{DecodeOptions, Decoder};
use crate::dump::{Access, Dump, Selection};
use crate::error::{Error, Result};
use crate::firmware::{dwarf, Firmware, FirmwareFiles, InputPaths};
use crate::incremental::RunDecoder;
use crate::outdir::{CaptureId, Fnv, Identity, StagedRun, TempFile};
use crate::profile::{ObjectRepr, Profile};
use crate::render::{self, ChartPoint, FrameLayout, MovieSpec};
use crate::retain;
use crate::sidecar::Sidecar;
use crate::tables::{After, OutputLayout, TableSet, TableSink};

/// Reports progress and warnings; the CLI draws them, tests ignore them.
pub trait Progress: Sync {
    /// A run of `snapshots` snapshots (`bytes` of dump) begins.
    fn start(&self, _snapshots: u64, _bytes: u64) {}
    /// `snapshots` more snapshots (`bytes` of dump) were written.
    fn advance(&self, _snapshots: u64, _bytes: u64) {}
    /// A snapshot that could not be decoded (it is still written, with its error).
    fn warn(&self, _message: &str) {}
    /// The run has ended.
    fn finish(&self) {}
}

/// Progress that goes nowhere.
pub struct Silent;
impl Progress for Silent {}

#[derive(Clone, Debug)]
/// What a run writes and how (the CLI's `analyze` options).
pub struct AnalyzeOptions {
    /// The snapshots to analyse.
    pub selection: Selection,
    /// The tables to write.
    pub tables: TableSet,
    /// Worker threads; `None` uses one per core.
    pub threads: Option<usize>,
    /// Snapshots one worker decodes in a row, each diffed against the one before
    /// it (the first goes whole to the writer); `None` picks by snapshot size.
    /// The tables do not depend on it, nor on the thread count.
    pub run: Option<usize>,
    /// Heap-layout frames and the movie, rendered in the same pass as the decode.
    pub render: Option<RenderOptions>,
    /// A folder of part files per table (the default), or one file per table.
    pub layout: OutputLayout,
    /// Decode every snapshot whole, never from the one before it (see
    /// [`crate::incremental`]); the tables are the same, only slower.
    pub full_decode: bool,
    /// Replace whatever heapvis wrote in the output folder before, even of
    /// another capture or with other options (see [`crate::outdir`]).
    pub overwrite: bool,
    /// A read of this purpose is not recorded (see [`crate::decode::reads`]):
    /// the incremental tests' way to show a dropped read is caught.
    #[doc(hidden)]
    pub drop_read: Option<&'static str>,
    /// Reachability, dominators and retained sizes from the GC's roots (see
    /// [`crate::retain`]): on by default.
    pub retention: bool,
    /// The dump is still being written (`--follow`): what is open at the end of
    /// a range that reaches the dump's end `continues`, not `live`.
    pub growing: bool,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            selection: Selection::All,
            tables: TableSet::DEFAULT,
            threads: None,
            run: None,
            render: None,
            layout: OutputLayout::default(),
            full_decode: false,
            overwrite: false,
            drop_read: None,
            retention: true,
            growing: false,
        }
    }
}

/// Most worker threads a run starts: more is a typo, not a machine (each
/// thread holds its own window of the dump).
pub const MAX_THREADS: usize = 1024;
/// Pixels per block a frame may use, and movie frames per second.
pub const SCALES: std::ops::RangeInclusive<u32> = 1..=64;
/// Movie frames per second.
pub const FPS: std::ops::RangeInclusive<u32> = 1..=1000;

impl AnalyzeOptions {
    /// Refuses options no run can honour, before anything is opened or written
    /// (the CLI's parser checks the same limits as it reads them).
    pub fn check(&self) -> Result<()> {
        let bad = |what: &str, why: String| Err(Error::Unsupported { what: what.to_string(), why });
        if let Some(n) = self.threads.filter(|n| !(1..=MAX_THREADS).contains(n)) {
            return bad("threads", format!("{n} is not in 1..={MAX_THREADS}"));
        }
        if let Some(r) = &self.render {
            if !SCALES.contains(&r.scale) {
                return bad("scale", format!("{} pixels per block is not in 1..=64", r.scale));
            }
            if !FPS.contains(&r.fps) {
                return bad("fps", format!("{} frames per second is not in 1..=1000", r.fps));
            }
            if r.step == 0 {
                return bad("frame_step", "must be at least 1".to_string());
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
/// Heap-layout frames and the movie of a run.
pub struct RenderOptions {
    /// Write `OUT/frames/heap_layoutNNNNNN.png` files.
    pub frames: bool,
    /// Write a movie here (.gif, .png for APNG, .mp4, .webm).
    pub movie: Option<PathBuf>,
    /// Pixels per block (height; the width is twice that).
    pub scale: u32,
    /// Columns sized to fill the frame, or the reference's 64 blocks.
    pub arrangement: render::Arrangement,
    /// Render every `step`-th selected snapshot.
    pub step: u64,
    /// The snapshot the steps count from: the range's start when `None`
    /// (`--follow` counts from 0, whatever each publish's range).
    pub step_origin: Option<u64>,
    /// Movie frames per second.
    pub fps: u32,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            frames: false,
            movie: None,
            scale: 8,
            arrangement: render::Arrangement::Fill,
            step: 1,
            step_origin: None,
            fps: 10,
        }
    }
}

#[derive(Clone, Debug, Default)]
/// What a run did.
pub struct RunSummary {
    /// Snapshots written.
    pub snapshots: u64,
    /// Snapshots not decoded or not plausible, suspect ones included.
    pub failed: u64,
    /// Snapshots that failed a plausibility check.
    pub suspect: u64,
    /// Bytes of dump those snapshots span.
    pub bytes: u64,
    /// Bytes after the last whole snapshot, which were ignored.
    pub trailing_bytes: u64,
    /// Snapshots decoded from the one before rather than whole (see
    /// [`crate::incremental`]): how much a run gained from it.
    pub focused: u64,
    /// The table files written (their final paths).
    pub files: Vec<PathBuf>,
    /// Frame files written into `OUT/frames`.
    pub frames: u64,
    /// The movie, where it was written.
    pub movie: Option<PathBuf>,
}

/// Everything a run needs, loaded and checked before any output is written.
///
/// (Frames: see [`Session::prepare_frames`].)
pub struct Session {
    /// The firmware: symbols, flash and the layout they give.
    pub firmware: Firmware,
    /// The layout profile in use.
    pub profile: Profile,
    /// The mapped dump.
    pub dump: Dump,
    /// Where the profile came from.
    pub profile_source: ProfileSource,
    /// Fingerprint of the firmware files, for the output folder's manifest.
    pub firmware_fingerprint: String,
    /// The capture's sidecar (`<dump>.events.jsonl`), when it has one.
    pub sidecar: Option<Sidecar>,
}

/// Where the dump's snapshots start and end, when the user says so: a symbol or an
/// address each, in place of the profile's `symbols.ram_start` / `ram_end`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RamBounds {
    /// The start: a symbol or an address.
    pub start: Option<String>,
    /// The end: a symbol or an address.
    pub end: Option<String>,
}

impl RamBounds {
    /// Puts the bounds given into the profile.
    pub fn apply(&self, p: &mut Profile) {
        if let Some(s) = &self.start {
            p.symbols.ram_start = s.clone();
        }
        if let Some(e) = &self.end {
            p.symbols.ram_end = e.clone();
        }
    }
}

/// Where a session's layout profile came from, for the user to be told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProfileSource {
    /// Given by the caller (`--profile`).
    Given,
    /// Derived from the ELF's DWARF; `missing` kept the default.
    /// Derived from the ELF's DWARF; `missing` kept the default.
    Dwarf {
        /// The fields the debug info did not give.
        missing: Vec<String>,
    },
    /// The built-in default (CircuitPython 3.0), and why nothing better was used.
    /// The built-in default (CircuitPython 3.0), and why nothing better was used.
    Default {
        /// Why (no ELF, no debug info, …), when there is something to say.
        why: Option<String>,
    },
}

impl Session {
    /// Loads the firmware with `profile` and checks the dump against both.
    pub fn open(inputs: &InputPaths, profile: Profile) -> Result<Self> {
        let firmware = Firmware::load_files(&inputs.firmware, &profile)?;
        Self::with_firmware(inputs, profile, firmware)
    }

    /// Maps the dump and checks it against the firmware and the profile (see
    /// [`crate::check`]) before anything is decoded.
    fn with_firmware(inputs: &InputPaths, profile: Profile, firmware: Firmware) -> Result<Self> {
        let dump = Dump::open(&inputs.ram, firmware.snapshot_bytes())?;
        crate::check::check_capture(&dump, &firmware, &profile, inputs.symbols_file())?;
        dump.release_pages();
        let firmware_fingerprint = fingerprint_files(&inputs.firmware)?;
        let sidecar = Sidecar::beside(&inputs.ram)?;
        let source = ProfileSource::Given;
        Ok(Session { firmware, profile, dump, profile_source: source, firmware_fingerprint, sidecar })
    }

    /// Opens a capture with the profile given, or — when none is and the firmware
    /// is an ELF with debug info — with one derived from its DWARF; else the default.
    pub fn open_with(inputs: &InputPaths, profile: Option<Profile>) -> Result<Self> {
        Self::open_with_ram(inputs, profile, &RamBounds::default())
    }

    /// [`Session::open_with`], with the RAM bounds of the dump given by the user
    /// (a symbol or an address each) in place of the profile's.
    pub fn open_with_ram(inputs: &InputPaths, profile: Option<Profile>, ram: &RamBounds) -> Result<Self> {
        let bounded = |mut p: Profile| {
            ram.apply(&mut p);
            p
        };
        let mut s = match (profile, &inputs.firmware) {
            (Some(p), _) => Self::open(inputs, bounded(p))?,
            (None, FirmwareFiles::Elf(elf)) => {
                // One read of the ELF serves both the profile and the firmware.
                let data = crate::firmware::elf::read_elf_file(elf)?;
                let (profile, source) = match dwarf::derive_profile(&data, elf, &Profile::default()) {
                    Ok(d) => (bounded(d.profile), ProfileSource::Dwarf { missing: d.missing }),
                    Err(e) => (bounded(Profile::default()), ProfileSource::Default { why: Some(e.to_string()) }),
                };
                let firmware = crate::firmware::elf::load_bytes(&data, elf, &profile)?;
                let mut s = Self::with_firmware(inputs, profile, firmware)?;
                s.profile_source = source;
                s
            }
            (None, _) => {
                let mut s = Self::open(inputs, bounded(Profile::default()))?;
                s.profile_source = ProfileSource::Default { why: None };
                s
            }
        };
        if matches!(s.profile_source, ProfileSource::Dwarf { .. }) && s.profile.object_repr != ObjectRepr::D {
            // Debug info cannot tell representation A from C (it does show D: a
            // 64-bit `mp_obj_t`): the last snapshot's globals can.
            let last = s.dump.count().saturating_sub(1);
            let repr = s.dump.snapshot(last).and_then(|ram| s.decoder(DecodeOptions::default()).infer_object_repr(ram));
            if let Some(r) = repr {
                s.profile.object_repr = r;
            }
        }
        Ok(s)
    }

    /// Maps the dump again if it has grown, and reads its sidecar again (its
    /// whole lines): for a dump still being written (`analyze --follow`).
    pub fn refresh(&mut self) -> Result<()> {
        let path = self.dump.path().to_path_buf();
        let len = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
        if len != self.dump.len_bytes() {
            if len < self.dump.len_bytes() {
                return Err(Error::CaptureMismatch {
                    path,
                    found: format!(
                        "the dump shrank from {} to {len} bytes while it was followed",
                        self.dump.len_bytes()
                    ),
                    advice: "a capture only grows: was it restarted? follow it into a new folder".into(),
                });
            }
            self.dump = Dump::open(&path, self.dump.snapshot_bytes())?;
            self.dump.release_pages();
        }
        match self.sidecar.as_mut() {
            Some(s) => s.grow()?,
            None => self.sidecar = Sidecar::beside_growing(&path)?,
        }
        Ok(())
    }

    /// A decoder of this session's snapshots.
    pub fn decoder(&self, options: DecodeOptions) -> Decoder<'_> {
        Decoder::new(&self.firmware, &self.profile, options)
    }

    /// Fully decodes one snapshot, with its retention; a failure is an error
    /// naming the snapshot.
    pub fn decode_one(&self, index: u64) -> Result<crate::decode::SnapshotReport> {
        let ram = self.dump.snapshot(index).unwrap_or(&[]);
        let mut report = self
            .decoder(DecodeOptions::default())
            .decode(index, ram)
            .map_err(|source| Error::Snapshot { snapshot: index, source })?;
        if let Some(roots) = self.roots().of(index) {
            retain::attach(&mut report, &roots);
        }
        Ok(report)
    }

    /// The GC's roots of each snapshot (the stack pointer from the sidecar).
    pub fn roots(&self) -> retain::RootsOf<'_> {
        retain::RootsOf { firmware: &self.firmware, profile: &self.profile, sidecar: self.sidecar.as_ref() }
    }

    /// Decodes the selected snapshots and writes the tables (and frames, and the
    /// movie) into `out_dir`.
    pub fn analyze(&self, out_dir: &Path, options: &AnalyzeOptions, progress: &dyn Progress) -> Result<RunSummary> {
        self.analyze_with(out_dir, options, progress, None)
    }

    /// [`Session::analyze`], appending the frames to `shared`, a movie kept
    /// open across analyses (`--follow`: one per publish), rather than to a
    /// movie of its own.
    pub fn analyze_with(
        &self,
        out_dir: &Path,
        options: &AnalyzeOptions,
        progress: &dyn Progress,
        mut shared: Option<&mut SharedMovie>,
    ) -> Result<RunSummary> {
        let (range, note) = options.selection.resolve(self.dump.count())?;
        if let Some(note) = note {
            progress.warn(&note);
        }
        let metrics_only =
            !options.tables.needs_objects() && !options.tables.needs_free_runs() && options.render.is_none();
        let skip_edges = !options.retention && !options.tables.edges && !options.tables.edge_history;
        let decoder = self.decoder(DecodeOptions {
            metrics_only,
            skip_edges,
            drop_read: options.drop_read,
            ..Default::default()
        });
        // The metrics read each snapshot's allocation table and nothing else.
        let access = if metrics_only { Access::Sparse } else { Access::Whole };
        let pool = thread_pool(options.threads)?;
        let dump = &self.dump;

        // Frames need the whole run's free-space curve for their strip chart: a
        // metrics-only pre-pass reads just the allocation tables for it.
        let render = options.render.as_ref();
        let layout = match render {
            Some(r) => Some(self.prepare_frames(r, out_dir, range.clone(), &pool)?),
            None => None,
        };
        // Everything is checked: from here on the run writes, into a staging
        // folder of its own, committed into place only when it is complete.
        let identity = self.identity(options);
        let (staged, notes) =
            StagedRun::begin(out_dir, &identity, &self.dump, range.clone(), options.layout, options.overwrite)?;
        notes.iter().for_each(|n| progress.warn(n));
        let frames_dir = render.is_some_and(|r| r.frames).then(|| staged.dir().join("frames"));
        if let Some(dir) = &frames_dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut sink = TableSink::create(staged.dir(), options.tables, options.layout, &range, &self.firmware)?;
        let movie_tmp = render.and_then(|r| r.movie.as_deref()).filter(|_| shared.is_none()).map(TempFile::beside);
        let mut movie = match (render, &layout, &movie_tmp, shared.as_deref_mut()) {
            (Some(r), Some(l), Some(tmp), _) => Some(open_movie_at(&tmp.path, r, l, &range)?),
            (Some(r), Some(l), _, Some(s)) => Some(s.writer(r, l)?),
            _ => None,
        };

        // Lead-in and look-ahead: the snapshots just outside the range tell the
        // lifetimes what started before it and how what is open at its end ended.
        let roots = (options.retention && !metrics_only).then(|| self.roots());
        let neighbour = |i: u64| {
            let mut report = dump.snapshot(i).and_then(|ram| decoder.decode(i, ram).ok())?;
            if let Some(r) = roots.and_then(|r| r.of(i)) {
                retain::attach(&mut report, &r);
            }
            Some(report)
        };
        // The lead-in is the last snapshot before the range that decodes, as
        // one run's lifetimes carry on from the last snapshot they applied.
        let lead_in = (range.start.saturating_sub(LEAD_IN_SEARCH)..range.start).rev().find_map(neighbour);
        if let Some(before) = lead_in {
            sink.prime(before);
        }
        let after = match neighbour(range.end) {
            Some(report) => After::Snapshot(report),
            None if options.growing && range.end >= dump.count() => After::Growing,
            None => After::DumpEnd,
        };
        dump.release_pages();
        let snapshot_bytes = self.dump.snapshot_bytes();
        progress.start(range.end - range.start, (range.end - range.start) * snapshot_bytes);

        let incremental = !options.full_decode && layout.is_none() && RunDecoder::applies(&decoder, options.tables);
        let threads = pool.current_num_threads().max(1) as u64;
        let runs = runs_of(&range, options, layout.as_ref(), snapshot_bytes, incremental, threads);
        let work = RunWork {
            decoder: &decoder,
            firmware: &self.firmware,
            dump: &self.dump,
            access,
            tables: options.tables,
            incremental,
            carry_walk: !options.full_decode,
            render: render.zip(layout.as_ref()),
            roots,
            sidecar: self.sidecar.as_ref(),
            range: range.clone(),
            runs,
        };
        let outputs = Outputs { frames_dir, movie: &mut movie };
        let Written { sink, focused, frames } = work.run(&pool, sink, outputs, progress)?;
        let (written, failed, suspect) = (sink.written, sink.failed, sink.suspect);
        // (On the run's pool: its tables are closed side by side.)
        let files = pool.install(|| sink.finish(after))?;
        match (movie.take(), shared) {
            (Some(m), Some(s)) => s.open = Some(m),
            (Some(m), None) => m.finish()?,
            _ => {}
        }
        let files = staged.commit(&identity, &self.dump, &files)?;
        let mut movie_path = None;
        if let (Some(tmp), Some(path)) = (movie_tmp, render.and_then(|r| r.movie.clone())) {
            tmp.persist(&path)?;
            movie_path = Some(path);
        }
        progress.finish();
        Ok(RunSummary {
            snapshots: written,
            failed,
            suspect,
            bytes: written * snapshot_bytes,
            trailing_bytes: self.dump.trailing_bytes(),
            focused,
            files,
            frames,
            movie: movie_path,
        })
    }

    /// Rewrites the shards in `out` (complete ranges that tile `0..N`) as the
    /// files one run over `0..N` writes, without decoding again (see
    /// [`crate::tables::compact`]); `options` must be the shards' own. What is
    /// open at `N` is `live` when `N` is the dump's end.
    pub fn compact(&self, out: &Path, options: &AnalyzeOptions) -> Result<Vec<PathBuf>> {
        let mut shards = crate::outdir::Contents::read(out)?.complete;
        shards.sort_by_key(|r| r.start);
        let end = shards.last().map_or(0, |r| r.end);
        let identity = self.identity(options);
        let (staged, _) = StagedRun::begin(out, &identity, &self.dump, 0..end, options.layout, false)?;
        let dump_end = end >= self.dump.count();
        let files =
            crate::tables::compact::rewrite(out, staged.dir(), &shards, options.tables, options.layout, dump_end)?;
        let files = staged.commit_exchanging(&identity, &self.dump, &files)?;
        crate::tables::compact::clear_marks(out);
        Ok(files)
    }

    /// What the output folder holds after this run (see [`crate::outdir`]).
    /// The profile as an output folder's manifest names it: its name and a
    /// fingerprint of all its fields.
    pub fn profile_id(&self) -> String {
        let mut profile = Fnv::default();
        profile.write(self.profile.to_toml().as_bytes());
        format!("{} {}", self.profile.name, profile.hex())
    }

    /// Why this session is not the capture an output folder holds (another
    /// dump, firmware or profile), or `None` when it is.
    pub fn differs_from(&self, identity: &Identity) -> Option<String> {
        identity.differs_from(&self.dump, &self.firmware_fingerprint, &self.profile_id())
    }

    fn identity(&self, options: &AnalyzeOptions) -> Identity {
        Identity {
            capture: CaptureId::of(&self.dump),
            firmware: self.firmware_fingerprint.clone(),
            profile: self.profile_id(),
            tables: options.tables.names(),
            layout: match options.layout {
                OutputLayout::Parts { .. } => "parts".to_string(),
                OutputLayout::Files => "files".to_string(),
            },
        }
    }

    /// The frame layout for a run: the geometry, and the free / largest-free curve
    /// of every selected snapshot for the strip chart (allocation tables only).
    fn prepare_frames(
        &self,
        r: &RenderOptions,
        out_dir: &Path,
        range: Range<u64>,
        pool: &rayon::ThreadPool,
    ) -> Result<FrameLayout> {
        if let Some(m) = &r.movie {
            render::MovieFormat::from_path(m)?.check_available(m)?;
            let parent = m.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            // (The output folder itself is made by the run.)
            if !parent.is_dir() && parent != out_dir {
                return Err(Error::MissingInput { path: parent.to_path_buf(), expected: "a folder for the movie" });
            }
        }
        let metrics = self.decoder(DecodeOptions { metrics_only: true, ..DecodeOptions::default() });
        let geometry = metrics.geometry.clone().map_err(|source| Error::Snapshot { snapshot: range.start, source })?;
        let points = self.chart_points(&metrics, &range, pool)?;
        let style =
            render::FrameStyle { scale: r.scale, arrangement: r.arrangement, dump_snapshots: self.dump.count(), range };
        Ok(FrameLayout::new(&geometry, &style, &points))
    }

    /// Free and largest free space for the frames' strip chart, which covers
    /// the whole dump: every snapshot of the run's range (up to
    /// [`CHART_RANGE_POINTS`]) and [`CHART_DUMP_POINTS`] spread over the dump,
    /// each read from its allocation table alone.
    fn chart_points(&self, metrics: &Decoder, range: &Range<u64>, pool: &rayon::ThreadPool) -> Result<Vec<ChartPoint>> {
        let spread = |r: Range<u64>, n: u64| {
            let len = r.end.saturating_sub(r.start);
            (0..len.min(n)).map(move |k| r.start + k * len.saturating_sub(1) / (len.min(n) - 1).max(1))
        };
        let mut wanted: Vec<u64> =
            spread(range.clone(), CHART_RANGE_POINTS).chain(spread(0..self.dump.count(), CHART_DUMP_POINTS)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut points = Vec::with_capacity(wanted.len());
        // A window per chunk, each mapped on its own and read sparsely.
        for chunk in wanted.chunks(256) {
            let (Some(&a), Some(&b)) = (chunk.first(), chunk.last()) else { continue };
            let window = self.dump.window(a..b + 1, Access::Sparse)?;
            let part: Vec<ChartPoint> = pool.install(|| {
                chunk
                    .par_iter()
                    .filter_map(|&i| {
                        let rep = metrics.decode(i, window.snapshot(i)?).ok()?;
                        let largest_free = rep.gc_info.max_free * rep.geometry.bytes_per_block;
                        Some(ChartPoint { snapshot: i, free: rep.gc_info.free, largest_free })
                    })
                    .collect()
            });
            points.extend(part);
        }
        Ok(points)
    }
}

/// A movie kept open across several analyses of one dump (`--follow`: one
/// per publish), written under a temporary name until [`SharedMovie::finish`].
pub struct SharedMovie {
    path: PathBuf,
    tmp: TempFile,
    open: Option<Box<dyn render::MovieWriter>>,
    size: Option<(u32, u32)>,
}

impl SharedMovie {
    /// A movie at `path` (.gif, .mp4 or .webm: an APNG must know its frame
    /// count before the first frame).
    pub fn new(path: &Path) -> Result<Self> {
        let format = render::MovieFormat::from_path(path)?;
        if matches!(format, render::MovieFormat::Apng) {
            return Err(Error::Unsupported {
                what: format!("{}", path.display()),
                why: "an APNG must know its frame count at its start: follow into .gif, .mp4 or .webm".into(),
            });
        }
        format.check_available(path)?;
        Ok(SharedMovie { path: path.to_path_buf(), tmp: TempFile::beside(path), open: None, size: None })
    }

    /// The writer, opened at the first analysis; the frames of every analysis
    /// must be of the first one's size.
    fn writer(&mut self, r: &RenderOptions, l: &FrameLayout) -> Result<Box<dyn render::MovieWriter>> {
        if *self.size.get_or_insert((l.width, l.height)) != (l.width, l.height) {
            let message = "the frames changed size while following".to_string();
            return Err(Error::Movie { path: self.path.clone(), message });
        }
        match self.open.take() {
            Some(m) => Ok(m),
            None => render::open_movie(&MovieSpec {
                path: self.tmp.path.clone(),
                width: l.width,
                height: l.height,
                fps: r.fps,
                frames: u64::MAX,
            }),
        }
    }

    /// Closes the movie and moves it into place; `None` when no frame came.
    pub fn finish(mut self) -> Result<Option<PathBuf>> {
        let Some(m) = self.open.take() else { return Ok(None) };
        m.finish()?;
        self.tmp.persist(&self.path)?;
        Ok(Some(self.path))
    }
}

/// Snapshots before a range searched for one that decodes, its lead-in: a
/// longer run of snapshots that do not leaves the range unprimed (its
/// lifetimes start at its start), and a rewrite of its shards is refused.
pub const LEAD_IN_SEARCH: u64 = 256;

/// Snapshots of a run's range on the frames' chart, at most.
const CHART_RANGE_POINTS: u64 = 4096;
/// Snapshots spread over the whole dump on the frames' chart.
const CHART_DUMP_POINTS: u64 = 2048;

/// `range` cut into runs of consecutive snapshots (see [`workers`]), at fixed
/// offsets from its start: `options.run` long, or by snapshot and frame size.
fn runs_of(
    range: &Range<u64>,
    options: &AnalyzeOptions,
    layout: Option<&FrameLayout>,
    snapshot_bytes: u64,
    incremental: bool,
    threads: u64,
) -> Vec<Range<u64>> {
    let frame_bytes = layout.map_or(0, |l| l.width as u64 * l.height as u64);
    let step = options.render.as_ref().map_or(1, |r| r.step.max(1));
    let run_len = options.run.map_or_else(
        || {
            let kind = match (incremental, options.tables.per_snapshot_rows()) {
                (_, true) => workers::RunKind::EveryRow,
                (true, false) => workers::RunKind::Incremental,
                (false, false) => workers::RunKind::Whole,
            };
            workers::default_run(snapshot_bytes, kind).min(workers::frame_run(frame_bytes, step, threads))
        },
        |r| r.max(1) as u64,
    );
    (range.start..range.end).step_by(run_len as usize).map(|a| a..(a + run_len).min(range.end)).collect()
}

/// The worker threads: `threads`, or one per core.
fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        builder = builder.num_threads(n.max(1));
    }
    builder.build().map_err(|e| Error::ThreadPool { threads: threads.unwrap_or(0), message: e.to_string() })
}

/// The movie of `range` at `path` (its temporary name), one frame every `r.step`.
fn open_movie_at(
    path: &Path,
    r: &RenderOptions,
    l: &FrameLayout,
    range: &Range<u64>,
) -> Result<Box<dyn render::MovieWriter>> {
    render::open_movie(&MovieSpec {
        path: path.to_path_buf(),
        width: l.width,
        height: l.height,
        fps: r.fps,
        frames: (range.end - range.start).div_ceil(r.step.max(1)),
    })
}

/// Fingerprint of a build's files, as read now.
fn fingerprint_files(files: &FirmwareFiles) -> Result<String> {
    let paths: Vec<&Path> = match files {
        FirmwareFiles::BinMap { flash, map } => vec![flash, map],
        FirmwareFiles::Elf(elf) => vec![elf],
    };
    let mut h = Fnv::default();
    for p in paths {
        let mut f = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut f, &mut buf).map_err(|e| Error::io(p, e))?;
            if n == 0 {
                break;
            }
            h.write(buf.get(..n).unwrap_or(&[]));
        }
    }
    Ok(h.hex())
}
