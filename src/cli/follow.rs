//! `analyze --follow` in the terminal: waiting for a capture's first snapshot,
//! and one status line that says how far the tables go, how far behind the
//! dump's end they are, the rate, and the latest snapshot's heap.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use heapvis::follow::{FollowSummary, LiveProgress, LiveStatus};
use heapvis::pipeline::Progress;

use super::{open_capture, InputArgs};

/// Opens the capture once its dump holds a whole snapshot (gdb may not have
/// written one yet); `None` when stopped (Ctrl-C, or `idle` without one).
pub fn open_when_written(
    input: &InputArgs,
    quiet: bool,
    idle: Option<Duration>,
    stop: &AtomicBool,
) -> anyhow::Result<Option<heapvis::Capture>> {
    let started = Instant::now();
    let mut told = false;
    loop {
        match open_capture(input, quiet) {
            Ok(opened) => return Ok(Some(opened)),
            Err(e) if not_written_yet(&e) => {
                if !quiet && !told {
                    eprintln!("waiting for the dump's first whole snapshot ({e:#})");
                    told = true;
                }
            }
            Err(e) => return Err(e),
        }
        if stop.load(Ordering::SeqCst) || idle.is_some_and(|i| started.elapsed() >= i) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A dump that is missing or shorter than one snapshot: gdb has not written it yet.
fn not_written_yet(e: &anyhow::Error) -> bool {
    e.chain().any(|c| match c.downcast_ref::<heapvis::Error>() {
        Some(heapvis::Error::DumpTooShort { .. }) => true,
        Some(heapvis::Error::MissingInput { expected, .. }) => expected.contains("RAM dump"),
        // The sidecar's last line half written: it is, a moment later.
        Some(heapvis::Error::Sidecar { .. }) => true,
        Some(heapvis::Error::Io { source, .. }) => source.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    })
}

/// The status line (hidden when stderr is not a terminal) and warnings.
pub struct Live {
    line: ProgressBar,
    quiet: bool,
    shard_total: AtomicU64,
    shard_done: AtomicU64,
    started: Instant,
}

impl Live {
    pub fn new(quiet: bool) -> Self {
        let target = if !quiet && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let line = ProgressBar::with_draw_target(None, target);
        line.set_style(
            ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        line.set_message("following: waiting for snapshots");
        Live { line, quiet, shard_total: AtomicU64::new(0), shard_done: AtomicU64::new(0), started: Instant::now() }
    }

    /// What the follow left, on stderr.
    pub fn done(&self, out: &std::path::Path, s: &FollowSummary) {
        self.line.finish_and_clear();
        if !self.quiet {
            eprintln!(
                "followed for {:.0} s: {} snapshot(s) published in {} publish(es) (resumed at {}), {} not decoded; tables in {}",
                self.started.elapsed().as_secs_f64(),
                s.snapshots,
                s.publishes,
                s.resumed_at,
                s.failed,
                out.display()
            );
            if s.frames > 0 {
                eprintln!("frames in {}: {} PNG file(s)", out.join("frames").display(), s.frames);
            }
            if let Some(movie) = &s.movie {
                eprintln!("movie: {}", movie.display());
            }
        }
    }
}

/// The line while following: tables, lag, rate and the heap of the latest snapshot.
pub fn status_line(s: &LiveStatus) -> String {
    let mut line = format!(
        "published {} of {} snapshots ({} behind), {:.0} snapshots/s",
        s.published,
        s.in_dump,
        s.in_dump.saturating_sub(s.published),
        s.rate
    );
    if let Some((used, free, largest)) = s.latest {
        line.push_str(&format!("; heap {used} B used, {free} B free, largest free {largest} B"));
    }
    line
}

impl Progress for Live {
    fn start(&self, snapshots: u64, _bytes: u64) {
        self.shard_total.store(snapshots, Ordering::Relaxed);
        self.shard_done.store(0, Ordering::Relaxed);
    }

    fn advance(&self, snapshots: u64, _bytes: u64) {
        let done = self.shard_done.fetch_add(snapshots, Ordering::Relaxed) + snapshots;
        let total = self.shard_total.load(Ordering::Relaxed);
        if total >= 1000 {
            self.line.set_message(format!("catching up: {done}/{total} snapshots decoded"));
            self.line.tick();
        }
    }

    fn warn(&self, message: &str) {
        if !self.quiet {
            self.line.suspend(|| eprintln!("warning: {message}"));
        }
    }
}

impl LiveProgress for Live {
    fn live(&self, status: &LiveStatus) {
        self.line.set_message(status_line(status));
        self.line.tick();
    }

    fn waiting(&self, status: &LiveStatus) {
        self.line.set_message(status_line(status));
        self.line.tick();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_says_lag_rate_and_the_latest_heap() {
        let s = LiveStatus { published: 90, in_dump: 100, rate: 250.4, latest: Some((1000, 3000, 512)) };
        assert_eq!(
            status_line(&s),
            "published 90 of 100 snapshots (10 behind), 250 snapshots/s; heap 1000 B used, 3000 B free, largest free 512 B"
        );
    }
}
