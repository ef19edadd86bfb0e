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

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Condvar, Mutex};

use rayon::prelude::*;

use crate::decode::{DecodeCache, DecodeOptions, Decoder};
use crate::dump::{Access, Dump, Selection};
use crate::error::{Error, Result};
use crate::firmware::{dwarf, Firmware, FirmwareFiles, InputPaths};
use crate::incremental::RunDecoder;
use crate::outdir::{CaptureId, Fnv, Identity, StagedRun};
use crate::profile::{ObjectRepr, Profile};
use crate::render::{self, Canvas, ChartPoint, FrameLayout, MovieSpec};
use crate::tables::{OutputLayout, PreparedOutcome, Preparer, TableSet, TableSink};

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
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// Write `OUT/frames/heap_layoutNNNNNN.png` files.
    pub frames: bool,
    /// Write a movie here (.gif, .png for APNG, .mp4, .webm).
    pub movie: Option<PathBuf>,
    /// Pixels per block (height; the width is twice that).
    pub scale: u32,
    /// Render every `step`-th selected snapshot.
    pub step: u64,
    pub fps: u32,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { frames: false, movie: None, scale: 8, step: 1, fps: 10 }
    }
}

/// Dump bytes written between two calls of [`release_free_memory`]. Each call
/// unmaps pages on both cores (TLB shootdowns): every 128 MiB it cost 5% of a
/// soak analysis, every GiB it costs nothing measurable and still holds the
/// metrics-only path's resident set (where it crept most) to +3% from 1 GiB to
/// 10 GiB (+16% without).
const TRIM_EVERY_BYTES: u64 = 1 << 30;

/// Hands memory the allocator holds free back to the system. Every run
/// allocates and frees rows in several threads, and glibc keeps what is freed in
/// per-thread arenas: without this the resident set creeps up over a long run
/// though the live heap does not.
fn release_free_memory() {
    crate::sys::malloc_trim();
}

/// Snapshots per run (see [`AnalyzeOptions::run`]). A run decoded snapshot by
/// snapshot from the one before (see [`crate::incremental`]) starts with a whole
/// decode, so those runs are longer: about 8 MiB of dump, up to 128 snapshots
/// (16 MiB runs were 3 to 4% faster, but the peak resident set of a 10 GiB run
/// then drifted 10 to 15% above a 1 GiB run's). Runs that send the writer every
/// row are about 4 MiB, up to 64 snapshots, since their rows wait for the
/// writer. Each run's window stays mapped until the run is decoded (see
/// `dump::advise_streaming`).
fn default_run(snapshot_bytes: u64, incremental: bool) -> u64 {
    let (bytes, most) = if incremental { (8u64 << 20, 128) } else { (4 << 20, 64) };
    (bytes / snapshot_bytes.max(1)).clamp(4, most)
}

/// Frame memory a run may hold in all: frames wait with their runs for the
/// writer, and a large frame (`--scale 64` on a SAMD51 is 92 MB) times the
/// runs in flight would otherwise grow with the scale, not stay bounded.
const FRAME_BUDGET_BYTES: u64 = 256 << 20;

/// Snapshots per run when every `step`-th is rendered into frames of
/// `frame_bytes` (pixels, one byte each, and as much again for the PNG at
/// worst): the runs in flight (two per thread waiting, one per thread
/// decoding) hold at most [`FRAME_BUDGET_BYTES`] of frames, or one frame each.
fn frame_run(frame_bytes: u64, step: u64, threads: u64) -> u64 {
    if frame_bytes == 0 {
        return u64::MAX;
    }
    let frames_per_run = FRAME_BUDGET_BYTES / (2 * frame_bytes * 3 * threads);
    frames_per_run.max(1).saturating_mul(step)
}

/// Where the writer sends a run's batch back to, to be freed by its worker.
type Returns<'f> = Sender<Vec<Decoded<'f>>>;

/// Keeps workers at most `ahead` runs ahead of the writer, and lets them go when
/// the writer stops early.
struct RunGate {
    ahead: usize,
    state: Mutex<GateState>,
    moved: Condvar,
}

struct GateState {
    written: usize,
    stopped: bool,
}

impl RunGate {
    fn new(ahead: usize) -> Self {
        RunGate {
            ahead: ahead.max(1),
            state: Mutex::new(GateState { written: 0, stopped: false }),
            moved: Condvar::new(),
        }
    }

    /// Waits until run `k` may be decoded; `false` if the writer has stopped.
    fn wait_for(&self, k: usize) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while !s.stopped && k >= s.written + self.ahead {
            s = self.moved.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        !s.stopped
    }

    /// The writer has written the first `runs` runs.
    fn written(&self, runs: usize) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).written = runs;
        self.moved.notify_all();
    }

    fn stop(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).stopped = true;
        self.moved.notify_all();
    }
}

/// Stops the gate when the writer returns (whether it succeeded, failed or
/// panicked), or when a worker panics: nobody is left waiting for the other.
struct StopOnDrop<'a> {
    gate: &'a RunGate,
    only_on_panic: bool,
}

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        if !self.only_on_panic || std::thread::panicking() {
            self.gate.stop();
        }
    }
}

/// One snapshot's work as it leaves a worker: its rows, and its frame (pixels, and
/// the PNG bytes when frame files are wanted).
struct Decoded<'f> {
    index: u64,
    outcome: PreparedOutcome<'f>,
    frame: Option<(Canvas, Option<Result<Vec<u8>>>)>,
    /// Decoded from the snapshot before (see [`crate::incremental`]).
    focused: bool,
}

#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    pub snapshots: u64,
    /// Snapshots not decoded or not plausible, suspect ones included.
    pub failed: u64,
    /// Snapshots that failed a plausibility check.
    pub suspect: u64,
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
    pub firmware: Firmware,
    pub profile: Profile,
    pub dump: Dump,
    pub profile_source: ProfileSource,
    /// Fingerprint of the firmware files, for the output folder's manifest.
    pub firmware_fingerprint: String,
}

/// Where the dump's snapshots start and end, when the user says so: a symbol or an
/// address each, in place of the profile's `symbols.ram_start` / `ram_end`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RamBounds {
    pub start: Option<String>,
    pub end: Option<String>,
}

impl RamBounds {
    fn apply(&self, p: &mut Profile) {
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
    Dwarf { missing: Vec<String> },
    /// The built-in default (CircuitPython 3.0), and why nothing better was used.
    Default { why: Option<String> },
}

impl Session {
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
        Ok(Session { firmware, profile, dump, profile_source: ProfileSource::Given, firmware_fingerprint })
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

    pub fn decoder(&self, options: DecodeOptions) -> Decoder<'_> {
        Decoder::new(&self.firmware, &self.profile, options)
    }

    /// Fully decodes one snapshot; a failure is an error naming the snapshot.
    pub fn decode_one(&self, index: u64) -> Result<crate::decode::SnapshotReport> {
        let ram = self.dump.snapshot(index).unwrap_or(&[]);
        self.decoder(DecodeOptions::default())
            .decode(index, ram)
            .map_err(|source| Error::Snapshot { snapshot: index, source })
    }

    /// Decodes the selected snapshots and writes the tables (and frames, and the
    /// movie) into `out_dir`.
    pub fn analyze(&self, out_dir: &Path, options: &AnalyzeOptions, progress: &dyn Progress) -> Result<RunSummary> {
        let (range, note) = options.selection.resolve(self.dump.count())?;
        if let Some(note) = note {
            progress.warn(&note);
        }
        let metrics_only =
            !options.tables.needs_objects() && !options.tables.needs_free_runs() && options.render.is_none();
        let skip_edges = !options.tables.edges && !options.tables.edge_history;
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
        let movie_tmp = render.and_then(|r| r.movie.as_deref()).map(TempFile::beside);
        let mut movie = match (render, &layout, &movie_tmp) {
            (Some(r), Some(l), Some(tmp)) => Some(open_movie_at(&tmp.path, r, l, &range)?),
            _ => None,
        };

        // Lead-in and look-ahead: the snapshots just outside the range tell the
        // lifetimes what started before it and how what is open at its end ended.
        let neighbour = |i: u64| dump.snapshot(i).and_then(|ram| decoder.decode(i, ram).ok());
        if let Some(before) = range.start.checked_sub(1).and_then(neighbour) {
            sink.prime(before);
        }
        let after = neighbour(range.end);
        dump.release_pages();
        let snapshot_bytes = self.dump.snapshot_bytes();
        progress.start(range.end - range.start, (range.end - range.start) * snapshot_bytes);

        // Work is cut into runs of consecutive snapshots, each decoded in order by
        // one worker so it can send the writer only what changed since the
        // snapshot before. Runs start at fixed offsets from the range's start, so
        // the cut does not depend on the thread count. Each worker takes the next
        // run as soon as it is done with one (no barrier between runs: a slow run
        // does not leave the other cores idle), maps it on its own, and hands the
        // result to the writer, which puts the runs back in order. A worker waits
        // when its run would be more than two runs per thread ahead of the
        // writer, so memory is bounded by that, not by the dump.
        let incremental = !options.full_decode && layout.is_none() && RunDecoder::applies(&decoder, options.tables);
        let threads = pool.current_num_threads().max(1) as u64;
        let frame_bytes = layout.as_ref().map_or(0, |l| l.width as u64 * l.height as u64);
        let step = render.map_or(1, |r| r.step.max(1));
        let run_len = options.run.map_or_else(
            || default_run(snapshot_bytes, incremental).min(frame_run(frame_bytes, step, threads)),
            |r| r.max(1) as u64,
        );
        let runs: Vec<Range<u64>> =
            (range.start..range.end).step_by(run_len as usize).map(|a| a..(a + run_len).min(range.end)).collect();
        let gate = RunGate::new(2 * threads as usize);
        let next_run = AtomicUsize::new(0);
        let tables = options.tables;
        let firmware = &self.firmware;
        let run_label = format!("of {}..={}", range.start, range.end.saturating_sub(1));
        let decode_run = |run: &Range<u64>| -> Result<Vec<Decoded>> {
            // Mapped (and faulted in) by its worker and unmapped when decoded: the
            // rows own their data.
            let mapped = dump.window(run.clone(), access)?;
            // Each snapshot from the one before, where the tables allow it.
            if let Some(mut run_decoder) = incremental.then(|| RunDecoder::new(&decoder, tables)).flatten() {
                return Ok(run
                    .clone()
                    .map(|i| {
                        let outcome = run_decoder.prepare(i, mapped.snapshot(i).unwrap_or(&[]));
                        Decoded { index: i, outcome, frame: None, focused: run_decoder.last_focused() }
                    })
                    .collect());
            }
            let mut preparer = Preparer::new(tables, firmware);
            let mut cache = DecodeCache::default();
            Ok(run
                .clone()
                .map(|i| {
                    let ram = mapped.snapshot(i).unwrap_or(&[]);
                    let outcome = decoder.decode_with(i, ram, &mut cache);
                    let frame = match (&layout, render) {
                        (Some(l), Some(r)) if (i - range.start) % r.step.max(1) == 0 => {
                            let canvas = match &outcome {
                                Ok(report) => l.render(report, &run_label),
                                Err(e) => l.render_error(i, &e.to_string()),
                            };
                            let png = r.frames.then(|| render::png_bytes(&canvas));
                            Some((canvas, png))
                        }
                        _ => None,
                    };
                    Decoded { index: i, outcome: preparer.prepare(outcome), frame, focused: false }
                })
                .collect())
        };
        // A batch goes back to the worker that made it, to be freed there: freed
        // by the writer, its memory went back to the worker's malloc arena under
        // that arena's lock, and the two threads waited on each other.
        let (tx, rx) = channel::<(usize, Result<Vec<Decoded>>, Returns)>();
        let movie_slot = &mut movie;
        let result: Result<(TableSink, u64, u64)> = std::thread::scope(|scope| {
            // Owned here, so that it is dropped even if a worker panics.
            let tx = tx;
            let (gate, runs) = (&gate, &runs);
            let writer = std::thread::Builder::new().name("heapvis-writer".into()).spawn_scoped(
                scope,
                move || -> Result<(TableSink, u64, u64)> {
                    // However the writer ends, no worker may wait for it any more.
                    let _stop = StopOnDrop { gate, only_on_panic: false };
                    let mut sink = sink;
                    // Runs that arrived before the one the writer needs next.
                    let mut early: BTreeMap<usize, (Result<Vec<Decoded>>, Returns)> = BTreeMap::new();
                    let mut wanted = 0usize;
                    let (mut focused, mut frames) = (0u64, 0u64);
                    let mut trim_due = 0u64;
                    for (k, batch, back) in rx {
                        early.insert(k, (batch, back));
                        while let Some((batch, back)) = early.remove(&wanted) {
                            let batch = batch?;
                            let n = batch.len() as u64;
                            for d in &batch {
                                if let Err(e) = &d.outcome {
                                    progress.warn(&format!("snapshot {}: {}", d.index, e.status()));
                                }
                                focused += d.focused as u64;
                                sink.write(d.index, dump.offset_of(d.index), &d.outcome)?;
                                if let Some((canvas, png)) = &d.frame {
                                    if let (Some(dir), Some(png)) = (&frames_dir, png) {
                                        let path = dir.join(format!("heap_layout{:06}.png", d.index));
                                        let png = png
                                            .as_ref()
                                            .map_err(|e| Error::Movie { path: path.clone(), message: e.to_string() })?;
                                        std::fs::write(&path, png).map_err(|e| Error::io(&path, e))?;
                                        frames += 1;
                                    }
                                    if let Some(m) = movie_slot.as_mut() {
                                        m.push(canvas)?;
                                    }
                                }
                            }
                            // (If its worker is gone, it is freed here.)
                            let _ = back.send(batch);
                            wanted += 1;
                            gate.written(wanted);
                            progress.advance(n, n * snapshot_bytes);
                            trim_due += n * snapshot_bytes;
                            if trim_due >= TRIM_EVERY_BYTES {
                                trim_due = 0;
                                release_free_memory();
                            }
                        }
                    }
                    // Every worker has stopped: each run was written, or one failed.
                    if wanted < runs.len() {
                        return Err(early.into_values().find_map(|(b, _)| b.err()).unwrap_or(Error::WorkerStopped));
                    }
                    Ok((sink, focused, frames))
                },
            );
            pool.broadcast(|_| {
                let _stop = StopOnDrop { gate, only_on_panic: true };
                let tx = tx.clone();
                let (back, written) = channel::<Vec<Decoded>>();
                loop {
                    // Free what the writer is done with.
                    written.try_iter().for_each(drop);
                    let k = next_run.fetch_add(1, Ordering::Relaxed);
                    if k >= runs.len() || !gate.wait_for(k) {
                        break;
                    }
                    let batch = decode_run(&runs[k]);
                    let failed = batch.is_err();
                    // A failed run stops its worker; the writer reports it in turn.
                    if tx.send((k, batch, back.clone())).is_err() || failed {
                        break;
                    }
                }
            });
            drop(tx);
            let writer = writer.map_err(|e| Error::io("writer thread", e))?;
            writer.join().map_err(|_| Error::WriterPanicked)?
        });
        let (sink, focused, frames) = result?;
        let (written, failed, suspect) = (sink.written, sink.failed, sink.suspect);
        let files = sink.finish(after)?;
        if let Some(m) = movie.take() {
            m.finish()?;
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

    /// What the output folder holds after this run (see [`crate::outdir`]).
    fn identity(&self, options: &AnalyzeOptions) -> Identity {
        let mut profile = Fnv::default();
        profile.write(self.profile.to_toml().as_bytes());
        Identity {
            capture: CaptureId::of(&self.dump),
            firmware: self.firmware_fingerprint.clone(),
            profile: format!("{} {}", self.profile.name, profile.hex()),
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
        let dump = &self.dump;
        // Window by window, each mapped on its own, as in the main pass.
        let mut points: Vec<ChartPoint> = Vec::new();
        let step = ((8u64 << 20) / dump.snapshot_bytes().max(1)).max(64);
        let mut start = range.start;
        while start < range.end {
            let end = (start + step).min(range.end);
            let window = dump.window(start..end, Access::Sparse)?;
            let part: Vec<ChartPoint> = pool.install(|| {
                (start..end)
                    .into_par_iter()
                    .filter_map(|i| {
                        let rep = metrics.decode(i, window.snapshot(i)?).ok()?;
                        Some(ChartPoint {
                            snapshot: i,
                            free: rep.gc_info.free,
                            largest_free: rep.gc_info.max_free * rep.geometry.bytes_per_block,
                        })
                    })
                    .collect()
            });
            points.extend(part);
            start = end;
        }
        Ok(FrameLayout::new(&geometry, r.scale, &points))
    }
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

/// A file written under a hidden temporary name beside its final path, and
/// renamed to it when complete; removed if dropped before that.
struct TempFile {
    path: PathBuf,
    done: bool,
}

impl TempFile {
    /// `.NAME.heapvis-PID.EXT` beside `path` (the extension kept, as it names
    /// the format).
    fn beside(path: &Path) -> Self {
        let name = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.heapvis-{}{ext}", std::process::id()));
        TempFile { path: tmp, done: false }
    }

    fn persist(mut self, path: &Path) -> Result<()> {
        std::fs::rename(&self.path, path).map_err(|e| Error::io(path, e))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    #[test]
    fn the_gate_holds_workers_to_their_lead_and_frees_them_on_stop() {
        let gate = RunGate::new(2);
        assert!(gate.wait_for(0) && gate.wait_for(1), "within the lead: no wait");
        let passed = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(gate.wait_for(2));
                passed.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(!passed.load(Ordering::SeqCst), "run 2 waits until run 0 is written");
            gate.written(1);
        });
        assert!(passed.load(Ordering::SeqCst));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| gate.wait_for(10));
            std::thread::sleep(Duration::from_millis(20));
            {
                let _writer_ends = StopOnDrop { gate: &gate, only_on_panic: false };
            }
            assert!(!waiter.join().unwrap(), "a stopped gate lets waiting workers go, with false");
        });
        assert!(!gate.wait_for(0), "and lets no more work start");
    }

    #[test]
    fn frames_in_flight_stay_within_the_budget_whatever_the_scale() {
        // A SAMD51 frame at --scale 64 (16,512 x 5,584) and at the default 8.
        for (frame, step, threads) in [(16_512u64 * 5_584, 1, 2), (2_064 * 698, 1, 2), (2_064 * 698, 10, 8)] {
            let run = frame_run(frame, step, threads);
            let frames_per_run = run.div_ceil(step);
            // Runs in flight: two per thread waiting for the writer, one decoding.
            let in_flight = 3 * threads * frames_per_run * 2 * frame;
            assert!(in_flight <= FRAME_BUDGET_BYTES || frames_per_run == 1, "{frame} px: {run} snapshots a run");
        }
        assert_eq!(frame_run(16_512 * 5_584, 1, 2), 1, "one frame a run when frames are huge");
        assert_eq!(frame_run(0, 1, 2), u64::MAX, "no frames: no bound");
    }

    #[test]
    fn a_worker_guard_stops_the_gate_only_when_it_panics() {
        let gate = RunGate::new(1);
        drop(StopOnDrop { gate: &gate, only_on_panic: true });
        assert!(gate.wait_for(0));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = StopOnDrop { gate: &gate, only_on_panic: true };
            panic!("a worker panics");
        }));
        assert!(result.is_err());
        assert!(!gate.wait_for(0));
    }
}
