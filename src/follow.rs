//! `analyze --follow`: decode a dump while gdb appends to it.
//!
//! The output folder is published as shards. Each publish decodes the
//! snapshots appended since the last one as a run of its own
//! (`Session::analyze` over that range, primed with the snapshot before it)
//! and commits it beside the earlier ones: new files, nothing replaced, so a
//! reader globbing the folder never finds a file gone or a snapshot twice.
//! What is open at the last published snapshot reads `continues`, as at a
//! shard's end, and the manifest's complete ranges say how far the tables go.
//!
//! A run that was killed resumes from the end of what it published: the
//! published shards are complete runs, and the one in progress is discarded
//! (see `outdir`). When following stops (Ctrl-C, `--idle`), the shards are
//! rewritten as one run's tables ([`crate::tables::compact`]), byte-identical
//! to a batch run of the whole file, without decoding anything again.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::dump::Selection;
use crate::error::{Error, Result};
use crate::outdir::Contents;
use crate::pipeline::{AnalyzeOptions, Progress, Session, SharedMovie};

/// When the tables are published.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Publish {
    /// At most this long after a snapshot is appended (plus its decode).
    Every(Duration),
    /// Once this many snapshots have been appended (and when following stops).
    Snapshots(u64),
}

impl std::str::FromStr for Publish {
    type Err = String;
    /// `2s`, `500ms`, `1.5s` (a time) or `100` (snapshots).
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let t = text.trim();
        let seconds = |n: &str, scale: f64| {
            let v: f64 = n.parse().map_err(|_| format!("`{text}`: give seconds (2s, 500ms) or snapshots (100)"))?;
            match v * scale {
                s if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Publish::Every(Duration::from_secs_f64(s))),
                _ => Err(format!("`{text}`: a time between 1 ms and a day")),
            }
        };
        if let Some(n) = t.strip_suffix("ms") {
            seconds(n, 1e-3)
        } else if let Some(n) = t.strip_suffix('s') {
            seconds(n, 1.0)
        } else {
            match t.parse::<u64>() {
                Ok(n) if n > 0 => Ok(Publish::Snapshots(n)),
                _ => Err(format!("`{text}`: give seconds (2s, 500ms) or a number of snapshots (at least 1)")),
            }
        }
    }
}

#[derive(Clone, Debug)]
/// How a follow publishes and when it stops.
pub struct FollowOptions {
    /// When the tables are published.
    pub publish: Publish,
    /// Stop once the dump has not grown for this long.
    pub idle: Option<Duration>,
    /// Refresh this HTML report (and the answers' tables) as the run goes:
    /// after a publish, at most every [`REFRESH_EVERY`]; the page reloads
    /// itself while the run is live, and is written once more at the end.
    pub report: Option<std::path::PathBuf>,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions { publish: Publish::Every(Duration::from_secs(1)), idle: None, report: None }
    }
}

/// The answers' tables and the report are refreshed at most this often: each
/// reads the whole folder (0.4 s for an 11 GB capture's).
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// How a follow is going, after each publish.
#[derive(Clone, Debug, Default)]
pub struct LiveStatus {
    /// Snapshots published (the tables hold `0..published`).
    pub published: u64,
    /// Whole snapshots in the dump now.
    pub in_dump: u64,
    /// Snapshots decoded per second over the last publish.
    pub rate: f64,
    /// The last published snapshot's heap: used and free bytes, the largest
    /// free run in bytes.
    pub latest: Option<(u64, u64, u64)>,
}

/// What a follow did.
#[derive(Clone, Debug, Default)]
pub struct FollowSummary {
    /// Snapshots published by this run.
    pub snapshots: u64,
    /// Of those, snapshots not decoded or suspect.
    pub failed: u64,
    /// Where it started: snapshots already published by an earlier run.
    pub resumed_at: u64,
    /// Publishes made.
    pub publishes: u64,
    /// The table files of the one run the shards were rewritten into.
    pub files: Vec<std::path::PathBuf>,
    /// Frame files written.
    pub frames: u64,
    /// The movie, where it was written.
    pub movie: Option<std::path::PathBuf>,
}

/// Reports a follow's progress (besides [`Progress`] for each publish's decode).
pub trait LiveProgress: Progress {
    /// After each publish: how the follow is going.
    fn live(&self, _status: &LiveStatus) {}
    /// Waiting for the dump to hold a first snapshot, or to grow.
    fn waiting(&self, _status: &LiveStatus) {}
}

/// Follows `session`'s dump into `out` until `stop` is set or the dump has been
/// idle for `follow.idle`, publishing what it has decoded as shards.
pub fn follow(
    session: &mut Session,
    out: &Path,
    options: &AnalyzeOptions,
    follow: &FollowOptions,
    stop: &AtomicBool,
    progress: &dyn LiveProgress,
) -> Result<FollowSummary> {
    refuse_unsupported(options)?;
    let mut summary = FollowSummary { resumed_at: resume_point(session, out, options)?, ..Default::default() };
    let mut status = LiveStatus { published: summary.resumed_at, ..Default::default() };
    // (`ram.bin`'s parent is the empty path: the current folder.)
    let folder = session.dump.path().parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let watch = crate::sys::FolderWatch::new(folder);
    let mut clock = Clock::new();
    let (mut refreshed, mut stale): (Option<Instant>, bool) = (None, false);
    let movie = options.render.as_ref().and_then(|r| r.movie.as_deref()).map(SharedMovie::new).transpose()?;
    let mut shards = Shards { out, options, progress, movie };
    loop {
        if stale && refreshed.is_none_or(|t| t.elapsed() >= REFRESH_EVERY) {
            refreshed = Some(refresh(session, out, follow, true, progress));
            stale = false;
        }
        let stopping = stop.load(Ordering::SeqCst) || clock.idle_for(follow.idle);
        session.refresh()?;
        status.in_dump = session.dump.count();
        if clock.grew(status.in_dump) {
            progress.waiting(&status);
        }
        let ready = publishable(session, status.published, stopping, &clock);
        if ready > status.published && (stopping || clock.due(follow.publish, ready - status.published)) {
            shards.publish(session, status.published..ready, &mut summary)?;
            status.rate = (ready - status.published) as f64 / clock.published().as_secs_f64().max(1e-6);
            status.published = ready;
            status.latest = latest_heap(session, ready - 1);
            progress.live(&status);
            stale = true;
            continue;
        }
        if stopping {
            break;
        }
        clock.sleep(watch.as_ref(), follow, ready > status.published);
    }
    // Also when this run published nothing: a run killed before it had
    // rewritten its shards leaves them to the next (a rewrite is idempotent).
    if !Contents::read(out).map(|c| c.complete).unwrap_or_default().is_empty() {
        match session.compact(out, options) {
            Ok(files) => summary.files = files,
            // The shards stay: they are whole, and every answer joins them.
            Err(e @ Error::Unsupported { .. }) => progress.warn(&e.to_string()),
            Err(e) => return Err(e),
        }
    }
    summary.movie = shards.movie.map(SharedMovie::finish).transpose()?.flatten();
    refresh(session, out, follow, false, progress);
    Ok(summary)
}

/// What `--follow` cannot do yet, refused before anything is written.
fn refuse_unsupported(options: &AnalyzeOptions) -> Result<()> {
    let why = if matches!(options.layout, crate::tables::OutputLayout::Files) {
        Some("one file per table cannot grow while it is read: follow with the parts layout")
    } else if !matches!(options.selection, Selection::All) {
        Some("--follow takes the whole dump as it grows, not a --snapshots selection")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::Unsupported { what: "analyze --follow".into(), why: why.into() }),
        None => Ok(()),
    }
}

/// The first snapshot not yet published in `out` by an earlier run: the end
/// of the complete ranges that run on from snapshot 0 (0 with `--overwrite`
/// or a new folder). A folder of another capture is refused when the first
/// shard commits, before anything of it is touched.
fn resume_point(session: &Session, out: &Path, options: &AnalyzeOptions) -> Result<u64> {
    if options.overwrite || !out.join(crate::outdir::MANIFEST).is_file() {
        return Ok(0);
    }
    let contents = Contents::read(out)?;
    if let Some(why) = session.differs_from(&contents.identity) {
        return Err(Error::OutputConflict {
            dir: out.to_path_buf(),
            found: why,
            advice: "pass --overwrite to start again, or choose another folder".into(),
        });
    }
    if crate::tables::compact::interrupted(out) {
        // A run killed while it rewrote its shards: finish that first.
        session.compact(out, options)?;
    }
    let mut ranges = Contents::read(out)?.complete;
    ranges.sort_by_key(|r| r.start);
    let mut end = 0;
    for r in ranges {
        if r.start == end {
            end = r.end;
        }
    }
    Ok(end.min(session.dump.count()))
}

/// How far the tables may go now: every whole snapshot, but, when the capture
/// has a sidecar, only those whose line is written too (gdb appends the RAM
/// first), unless the sidecar has stayed behind for a while or following stops.
fn publishable(session: &Session, published: u64, stopping: bool, clock: &Clock) -> u64 {
    let whole = session.dump.count();
    match &session.sidecar {
        Some(s) if !stopping && clock.since_growth() < SIDECAR_SETTLE => {
            let lines = s.last_snapshot().map_or(0, |l| l + 1);
            whole.min(lines.max(published))
        }
        _ => whole,
    }
}

/// How long a snapshot may wait for its sidecar line before it is published without one.
const SIDECAR_SETTLE: Duration = Duration::from_millis(500);

/// Where the shards go, and the movie their frames go to.
struct Shards<'a> {
    out: &'a Path,
    options: &'a AnalyzeOptions,
    progress: &'a dyn LiveProgress,
    movie: Option<SharedMovie>,
}

impl Shards<'_> {
    /// Decodes `range` as a shard of its own and commits it.
    fn publish(&mut self, session: &Session, range: std::ops::Range<u64>, summary: &mut FollowSummary) -> Result<()> {
        let shard = AnalyzeOptions {
            selection: Selection::Range { start: range.start, end: Some(range.end) },
            overwrite: self.options.overwrite && summary.publishes == 0,
            growing: true,
            ..self.options.clone()
        };
        let run = session.analyze_with(self.out, &shard, self.progress, self.movie.as_mut())?;
        summary.snapshots += run.snapshots;
        summary.failed += run.failed;
        summary.frames += run.frames;
        summary.publishes += 1;
        Ok(())
    }
}

/// Rewrites the answers' tables and the report (when asked for): a failure
/// is a warning, the run goes on. Returns when.
fn refresh(session: &Session, out: &Path, follow: &FollowOptions, live: bool, progress: &dyn LiveProgress) -> Instant {
    if let Err(e) = crate::answers::export::write(out) {
        progress.warn(&format!("the answers' tables were not refreshed: {e}"));
    }
    if let Some(path) = &follow.report {
        let reload = live.then_some(REFRESH_EVERY.as_secs() as u32);
        let options = crate::report::ReportOptions { live_reload: reload, ..Default::default() };
        let written = crate::report::report(out, &options, Some(session)).and_then(|page| {
            let tmp = crate::outdir::TempFile::beside(path);
            std::fs::write(&tmp.path, page).map_err(|e| Error::io(&tmp.path, e))?;
            tmp.persist(path)
        });
        if let Err(e) = written {
            progress.warn(&format!("{} was not refreshed: {e}", path.display()));
        }
    }
    Instant::now()
}

/// The heap of snapshot `i` from its allocation table alone.
fn latest_heap(session: &Session, i: u64) -> Option<(u64, u64, u64)> {
    let metrics = session.decoder(crate::decode::DecodeOptions { metrics_only: true, ..Default::default() });
    let report = metrics.decode(i, session.dump.snapshot(i)?).ok()?;
    let g = &report.gc_info;
    Some((g.used, g.free, g.max_free * report.geometry.bytes_per_block))
}

/// The times a follow goes by: the last growth and the last publish.
struct Clock {
    count: u64,
    grown: Instant,
    published: Instant,
    backoff: Duration,
}

impl Clock {
    fn new() -> Self {
        Clock { count: 0, grown: Instant::now(), published: Instant::now(), backoff: POLL_MIN }
    }

    /// Notes the dump's snapshot count; whether it changed.
    fn grew(&mut self, count: u64) -> bool {
        if count == self.count {
            return false;
        }
        self.count = count;
        self.grown = Instant::now();
        self.backoff = POLL_MIN;
        true
    }

    fn since_growth(&self) -> Duration {
        self.grown.elapsed()
    }

    fn idle_for(&self, idle: Option<Duration>) -> bool {
        idle.is_some_and(|i| self.grown.elapsed() >= i)
    }

    /// Whether a publish of `waiting` new snapshots is due.
    fn due(&self, publish: Publish, waiting: u64) -> bool {
        match publish {
            Publish::Every(t) => self.published.elapsed() >= t,
            Publish::Snapshots(n) => waiting >= n,
        }
    }

    /// Time since the last publish, and the clock restarted for the next.
    fn published(&mut self) -> Duration {
        let d = self.published.elapsed();
        self.published = Instant::now();
        d
    }

    /// Sleeps until the dump may have changed: on the folder's watch, or
    /// polling with back-off where there is none; never past the next publish
    /// (when snapshots wait for it), the idle limit, or a second (to see Ctrl-C).
    fn sleep(&mut self, watch: Option<&crate::sys::FolderWatch>, follow: &FollowOptions, pending: bool) {
        let mut limit = Duration::from_secs(1);
        if let (true, Publish::Every(t)) = (pending, follow.publish) {
            limit = limit.min(t.saturating_sub(self.published.elapsed()));
        }
        if let Some(i) = follow.idle {
            limit = limit.min(i.saturating_sub(self.grown.elapsed()));
        }
        if pending && matches!(follow.publish, Publish::Every(_)) {
            // Snapshots wait for the publish time: no need to watch the disk.
            std::thread::sleep(limit.max(Duration::from_millis(1)));
            return;
        }
        match watch {
            Some(w) => {
                w.wait(limit);
            }
            None => {
                std::thread::sleep(self.backoff.min(limit));
                self.backoff = (self.backoff * 2).min(POLL_MAX);
            }
        }
    }
}

/// The polling back-off where the disk cannot be watched.
const POLL_MIN: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_intervals_read_as_times_or_snapshot_counts() {
        assert_eq!("2s".parse(), Ok(Publish::Every(Duration::from_secs(2))));
        assert_eq!("500ms".parse(), Ok(Publish::Every(Duration::from_millis(500))));
        assert_eq!("1.5s".parse(), Ok(Publish::Every(Duration::from_millis(1500))));
        assert_eq!("100".parse(), Ok(Publish::Snapshots(100)));
        for bad in ["0", "0s", "-1s", "x", "1e9s", "nans", ""] {
            assert!(bad.parse::<Publish>().is_err(), "{bad}");
        }
    }
}
