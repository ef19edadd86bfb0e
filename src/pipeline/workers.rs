//! The workers and the writer of one analysis: runs of consecutive snapshots
//! decoded in parallel, one worker a run, and written in order by one thread.
//!
//! Work is cut into runs, each decoded in order by one worker so it can send the
//! writer only what changed since the snapshot before. Runs start at fixed
//! offsets from the range's start, so the cut does not depend on the thread
//! count. Each worker takes the next run as soon as it is done with one (no
//! barrier between runs: a slow run does not leave the other cores idle), maps
//! it on its own, and hands the result to the writer, which puts the runs back in
//! order. When each snapshot is decoded from the one before, a worker takes
//! four consecutive runs at once and carries its decoder from one to the next
//! ([`RUNS_PER_CLAIM`]). A worker waits when its run would be more than two
//! runs per thread (one, when every row is sent), and the rest of a claim,
//! ahead of the writer, so memory is bounded by that, not by the dump.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::decode::{DecodeCache, Decoder};
use crate::dump::{Access, Dump, Window};
use crate::error::{Error, Result};
use crate::firmware::Firmware;
use crate::incremental::RunDecoder;
use crate::render::{self, Canvas, FrameLayout};
use crate::retain::RootsOf;
use crate::tables::{PreparedOutcome, Preparer, TableSet, TableSink};

use super::{Progress, RenderOptions};

/// Dump bytes written between two calls of [`release_free_memory`]. Each call
/// unmaps pages on both cores (TLB shootdowns): every 128 MiB it cost 5% of a
/// soak analysis, every GiB it costs nothing measurable and still holds the
/// metrics-only path's resident set (where it crept most) to +3% from 1 GiB to
/// 10 GiB (+16% without).
const TRIM_EVERY_BYTES: u64 = 1 << 30;

/// Wall time between two calls of [`release_free_memory`] at most, however
/// slowly the dump is read. `--per-snapshot` reads a GiB in 15 s: trimmed only
/// every GiB, its peak resident set was 13 to 16% higher over 10 GiB than over
/// 1 GiB; trimmed every second, about 5% higher.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Hands memory the allocator holds free back to the system. Every run
/// allocates and frees rows in several threads, and glibc keeps what is freed in
/// per-thread arenas: without this the resident set creeps up over a long run
/// though the live heap does not.
pub(super) fn release_free_memory() {
    crate::sys::malloc_trim();
}

/// When the writer next calls [`release_free_memory`]: after
/// [`TRIM_EVERY_BYTES`] of dump or [`TRIM_EVERY`], whichever comes first.
struct TrimClock {
    bytes: u64,
    since: Instant,
}

impl TrimClock {
    fn new() -> Self {
        TrimClock { bytes: 0, since: Instant::now() }
    }

    /// Counts `bytes` more of dump written, and trims when due.
    fn written(&mut self, bytes: u64) {
        self.bytes += bytes;
        if self.bytes >= TRIM_EVERY_BYTES || self.since.elapsed() >= TRIM_EVERY {
            release_free_memory();
            *self = TrimClock::new();
        }
    }
}

/// How a run's snapshots are decoded, and so what they send the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RunKind {
    /// Each from the one before (see [`crate::incremental`]): what changed.
    Incremental,
    /// Whole, sending what changed.
    Whole,
    /// Sending every row of every snapshot (`--per-snapshot`), whole or
    /// from the one before.
    EveryRow,
}

/// Snapshots per run (see [`AnalyzeOptions::run`]).
/// - A run decoded snapshot by snapshot from the one before starts with a
///   whole decode, so those runs are longer: about 8 MiB of dump, up to 128
///   snapshots (16 MiB runs were 3 to 4% faster, but the peak resident set of
///   a 10 GiB run then drifted 10 to 15% above a 1 GiB run's).
/// - Runs decoded whole are about 4 MiB, up to 64 snapshots.
/// - Runs that send every row are about 1 MiB, up to 16 snapshots: their rows
///   wait for the writer, which sets the pace, and the runs in flight hold
///   them all (see [`RunWork::run`] too). On busy SAMD51 heaps, 4 MiB runs
///   peaked at 360 to 415 MiB; 1 MiB runs at 131 to 150 MiB, at the same
///   speed; 512 KiB runs (4 snapshots) 5 to 9% slower, each run's first
///   snapshot sending its lifetimes whole.
///
/// Each run's window stays mapped until the run is decoded (see
/// `dump::advise_streaming`).
pub(super) fn default_run(snapshot_bytes: u64, kind: RunKind) -> u64 {
    let (bytes, most) = match kind {
        RunKind::Incremental => (8u64 << 20, 128),
        RunKind::Whole => (4 << 20, 64),
        RunKind::EveryRow => (1 << 20, 16),
    };
    (bytes / snapshot_bytes.max(1)).clamp(4, most)
}

/// Consecutive runs a worker takes at once when each snapshot is decoded from
/// the one before: it keeps its decoder from one run to the next, so only the
/// first run's first snapshot is decoded whole (that decode costs seven or
/// eight of the others, and every 8 MiB run began with one). The gate still
/// holds each run to its place behind the writer, so memory is as bounded as
/// with one run a claim, plus the rest of a claim (see [`RunWork::run`]).
/// On busy heaps of real allocation sizes (release 24), claims of 8 took the
/// every-change capture from 0.41 to 0.39 s and the every-40th from 1.29 to
/// 1.27 s against claims of 4, at 69 and 120 MiB against 68 and 104; claims
/// of 16 gained no more and held 149 MiB.
const RUNS_PER_CLAIM: usize = 8;

/// Frame memory a run may hold in all: frames wait with their runs for the
/// writer, and a large frame (`--scale 64` on a SAMD51 is 92 MB) times the
/// runs in flight would otherwise grow with the scale, not stay bounded.
const FRAME_BUDGET_BYTES: u64 = 256 << 20;

/// Snapshots per run when every `step`-th is rendered into frames of
/// `frame_bytes` (pixels, one byte each, and as much again for the PNG at
/// worst): the runs in flight (two per thread waiting, one per thread
/// decoding) hold at most [`FRAME_BUDGET_BYTES`] of frames, or one frame each.
pub(super) fn frame_run(frame_bytes: u64, step: u64, threads: u64) -> u64 {
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

/// A run's batch on its way to the writer: the run's number, its snapshots, and
/// where to send them back.
type Batch<'f> = (usize, Result<Vec<Decoded<'f>>>, Returns<'f>);

/// What the workers decode, and how.
pub(super) struct RunWork<'a, 'f> {
    pub decoder: &'a Decoder<'f>,
    pub firmware: &'f Firmware,
    pub dump: &'a Dump,
    pub access: Access,
    pub tables: TableSet,
    /// Each snapshot from the one before, where the tables allow it.
    pub incremental: bool,
    /// Each snapshot decoded whole but for its allocation-table walk, carried
    /// from the one before ([`DecodeCache::carry_walk`]): all but
    /// `--full-decode`.
    pub carry_walk: bool,
    /// Frames to render, and their layout.
    pub render: Option<(&'a RenderOptions, &'a FrameLayout)>,
    /// The GC's roots of each snapshot, when retention is computed.
    pub roots: Option<RootsOf<'a>>,
    /// The capture's sidecar: its fields go into `snapshots`.
    pub sidecar: Option<&'a crate::sidecar::Sidecar>,
    pub range: Range<u64>,
    pub runs: Vec<Range<u64>>,
}

/// Where the writer puts what is not a table: frame files and the movie.
pub(super) struct Outputs<'a> {
    pub frames_dir: Option<PathBuf>,
    pub movie: &'a mut Option<Box<dyn render::MovieWriter>>,
}

/// What the writer returns: the sink with every run written, the snapshots
/// decoded from the one before, the frame files written.
pub(super) struct Written<'f> {
    pub sink: TableSink<'f>,
    pub focused: u64,
    pub frames: u64,
}

impl<'a, 'f> RunWork<'a, 'f> {
    /// Decodes every run on `pool`'s threads and writes them, in order, into
    /// `sink` and `outputs` from one writer thread.
    pub fn run(
        &self,
        pool: &rayon::ThreadPool,
        sink: TableSink<'f>,
        outputs: Outputs,
        progress: &dyn Progress,
    ) -> Result<Written<'f>> {
        // Runs of every row wait for the writer, which is ten times slower than
        // the workers: one run a thread ahead keeps it fed, and holds fewer rows
        // (1 MiB runs peaked at 131 to 150 MiB two ahead, 102 to 118 MiB one).
        // A claim of runs takes its runs in order, so the worker on the next
        // claim may run a claim ahead of the one before: the lead grows by the
        // rest of a claim (without it, two cores gave 1.53 to 1.76 times one
        // core on the busy captures; with it, 1.82 to 1.88). Not for runs of
        // every row: the writer sets their pace, and the lead's rows would
        // wait in memory (peaks of 161 MiB with it, against 105).
        let threads = pool.current_num_threads().max(1);
        let gate = if self.tables.per_snapshot_rows() {
            RunGate::new(threads)
        } else {
            RunGate::new(2 * threads + self.runs_per_claim() - 1)
        };
        let next_claim = AtomicUsize::new(0);
        // A batch goes back to the worker that made it, to be freed there: freed
        // by the writer, its memory went back to the worker's malloc arena under
        // that arena's lock, and the two threads waited on each other.
        let (tx, rx) = channel::<Batch<'f>>();
        std::thread::scope(|scope| {
            // Owned here, so that it is dropped even if a worker panics.
            let tx = tx;
            let gate = &gate;
            let writer = std::thread::Builder::new()
                .name("heapvis-writer".into())
                .spawn_scoped(scope, move || self.write(sink, outputs, rx, gate, progress));
            pool.broadcast(|_| self.work(&next_claim, gate, tx.clone()));
            drop(tx);
            let writer = writer.map_err(|e| Error::io("writer thread", e))?;
            writer.join().map_err(|_| Error::WriterPanicked)?
        })
    }

    /// A worker: takes the next runs while there are some and the writer is
    /// not too far behind, decodes each and sends it to the writer. Decoded
    /// each from the one before, it takes [`RUNS_PER_CLAIM`] consecutive runs
    /// at once and keeps its decoder from one to the next, so only the first
    /// run's first snapshot is decoded whole.
    fn work(&self, next_claim: &AtomicUsize, gate: &RunGate, tx: Sender<Batch<'f>>) {
        let _stop = StopOnDrop { gate, only_on_panic: true };
        let (back, written) = channel::<Vec<Decoded>>();
        let per_claim = self.runs_per_claim();
        loop {
            let first = next_claim.fetch_add(1, Ordering::Relaxed).saturating_mul(per_claim);
            let mut carried = None;
            for k in first..first.saturating_add(per_claim).min(self.runs.len()) {
                if !gate.wait_for(k) {
                    return;
                }
                let (batch, kept) = self.decode_run(&self.runs[k], &written, carried.take());
                carried = kept;
                let failed = batch.is_err();
                // A failed run stops its worker; the writer reports it in turn.
                if tx.send((k, batch, back.clone())).is_err() || failed {
                    return;
                }
            }
            if first >= self.runs.len() {
                return;
            }
        }
    }

    /// Consecutive runs a worker takes at once (see [`RUNS_PER_CLAIM`]).
    fn runs_per_claim(&self) -> usize {
        if self.incremental {
            RUNS_PER_CLAIM
        } else {
            1
        }
    }

    /// One run's snapshots, decoded in order: each from the one before where
    /// the tables allow it, else whole (with its frame, when frames are made).
    /// Before each, the runs the writer has handed back are freed: waiting for
    /// the next run would keep one or two more runs' rows in memory.
    ///
    /// A run decoder `carried` from the run before goes on from its last
    /// snapshot, and is returned for the run after.
    fn decode_run(
        &self,
        run: &Range<u64>,
        written: &Receiver<Vec<Decoded<'f>>>,
        carried: Option<RunDecoder<'a, 'f, 'static>>,
    ) -> (Result<Vec<Decoded<'f>>>, Option<RunDecoder<'a, 'f, 'static>>) {
        // Mapped (and faulted in) by its worker and unmapped when decoded: the
        // rows own their data.
        let mapped = match self.dump.window(run.clone(), self.access) {
            Ok(mapped) => mapped,
            Err(e) => return (Err(e), None),
        };
        let new = || self.incremental.then(|| RunDecoder::new(self.decoder, self.tables)).flatten();
        match carried.or_else(new) {
            Some(mut run_decoder) => {
                let decoded = run
                    .clone()
                    .map(|i| {
                        written.try_iter().for_each(drop);
                        let roots = self.roots.and_then(|r| r.of(i));
                        let outcome = run_decoder.prepare(i, mapped.snapshot(i).unwrap_or(&[]), roots.as_ref());
                        Decoded { index: i, outcome, frame: None, focused: run_decoder.last_focused() }
                    })
                    .collect();
                (Ok(decoded), Some(run_decoder.into_next_run()))
            }
            None => (Ok(self.decode_whole(run, &mapped, written)), None),
        }
    }

    /// [`Self::decode_run`] for a run whose snapshots are each decoded whole.
    fn decode_whole(
        &self,
        run: &Range<u64>,
        mapped: &Window,
        written: &Receiver<Vec<Decoded<'f>>>,
    ) -> Vec<Decoded<'f>> {
        let mut preparer = Preparer::new(self.tables, self.firmware);
        let mut cache = DecodeCache::default();
        if self.carry_walk {
            cache.carry_walk();
        }
        let label = format!("of {}..={}", self.range.start, self.range.end.saturating_sub(1));
        run.clone()
            .map(|i| {
                written.try_iter().for_each(drop);
                let mut outcome = self.decoder.decode_with(i, mapped.snapshot(i).unwrap_or(&[]), &mut cache);
                if let (Ok(report), Some(roots)) = (&mut outcome, self.roots.and_then(|r| r.of(i))) {
                    crate::retain::attach(report, &roots);
                }
                let frame = match self.render {
                    Some((r, l)) if rendered(i, r, &self.range) => {
                        let canvas = match &outcome {
                            Ok(report) => l.render(report, &label),
                            Err(e) => l.render_error(i, &e.to_string()),
                        };
                        let png = r.frames.then(|| render::png_bytes(&canvas));
                        Some((canvas, png))
                    }
                    _ => None,
                };
                Decoded { index: i, outcome: preparer.prepare(outcome), frame, focused: false }
            })
            .collect()
    }

    /// The writer: puts the runs back in order as they arrive and writes them.
    fn write(
        &self,
        mut sink: TableSink<'f>,
        mut outputs: Outputs,
        rx: Receiver<Batch<'f>>,
        gate: &RunGate,
        progress: &dyn Progress,
    ) -> Result<Written<'f>> {
        // However the writer ends, no worker may wait for it any more.
        let _stop = StopOnDrop { gate, only_on_panic: false };
        let snapshot_bytes = self.dump.snapshot_bytes();
        // Runs that arrived before the one the writer needs next.
        let mut early: BTreeMap<usize, (Result<Vec<Decoded>>, Returns)> = BTreeMap::new();
        let mut wanted = 0usize;
        let (mut focused, mut frames) = (0u64, 0u64);
        let mut trim = TrimClock::new();
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
                    let event = self.sidecar.and_then(|s| s.get(d.index));
                    sink.write(d.index, self.dump.offset_of(d.index), &d.outcome, event)?;
                    frames += write_frame(d, &mut outputs)?;
                }
                // (If its worker is gone, it is freed here.)
                let _ = back.send(batch);
                wanted += 1;
                gate.written(wanted);
                progress.advance(n, n * snapshot_bytes);
                trim.written(n * snapshot_bytes);
            }
        }
        // Every worker has stopped: each run was written, or one failed.
        if wanted < self.runs.len() {
            return Err(early.into_values().find_map(|(b, _)| b.err()).unwrap_or(Error::WorkerStopped));
        }
        Ok(Written { sink, focused, frames })
    }
}

/// Whether snapshot `i` of `range` gets a frame: every `step`-th from the
/// range's start, or from `step_origin`.
fn rendered(i: u64, r: &RenderOptions, range: &Range<u64>) -> bool {
    let origin = r.step_origin.unwrap_or(range.start);
    i.checked_sub(origin).is_some_and(|k| k.is_multiple_of(r.step.max(1)))
}

/// Writes a snapshot's frame, if it has one: its file (the number written) and
/// the movie's next frame.
fn write_frame(d: &Decoded, outputs: &mut Outputs) -> Result<u64> {
    let Some((canvas, png)) = &d.frame else { return Ok(0) };
    let mut written = 0;
    if let (Some(dir), Some(png)) = (&outputs.frames_dir, png) {
        let path = dir.join(format!("heap_layout{:06}.png", d.index));
        let png = png.as_ref().map_err(|e| Error::Movie { path: path.clone(), message: e.to_string() })?;
        std::fs::write(&path, png).map_err(|e| Error::io(&path, e))?;
        written = 1;
    }
    if let Some(m) = outputs.movie.as_mut() {
        m.push(canvas)?;
    }
    Ok(written)
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
