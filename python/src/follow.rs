//! `Capture.follow`: `analyze --follow` from Python. The follow runs on a
//! thread of its own while the calling thread waits with the GIL released,
//! taking it back ten times a second to let Python handle signals: Ctrl-C
//! (or a notebook's interrupt) stops the follow as it stops the CLI's, which
//! then publishes what it has and rewrites the shards as one run's tables.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pyo3::prelude::*;

use heapvis::follow::{FollowOptions, Publish};

use crate::progress::{LiveProgress, PyProgress};
use crate::{err, Capture, HeapvisError, Options};

/// How often the waiting thread takes the GIL to let Python handle signals.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Follows `capture`'s dump into `out` until it has been idle for `idle`
/// seconds or Python is interrupted; returns the follow's figures as JSON, the
/// warnings, and whether an interrupt stopped it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn follow(
    capture: &Capture,
    py: Python<'_>,
    out: PathBuf,
    options: Options,
    publish_every: &str,
    idle: Option<f64>,
    report: Option<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(String, Vec<String>, bool)> {
    let options = options.analyze_options()?;
    let publish: Publish = publish_every.parse().map_err(HeapvisError::new_err)?;
    let idle = match idle {
        Some(s) if s.is_finite() && s > 0.0 && s <= 1e7 => Some(Duration::from_secs_f64(s)),
        Some(s) => return Err(HeapvisError::new_err(format!("idle {s}: give a number of seconds above 0"))),
        None => None,
    };
    let follow = FollowOptions { publish, idle, report };
    let (path, firmware, profile) = &capture.source;
    let mut own = py.detach(|| heapvis::Capture::open_with(path, firmware, profile.as_deref())).map_err(err)?;
    let live = LiveProgress(PyProgress::new(progress));
    let stop = AtomicBool::new(false);
    let mut interrupted = false;
    let outcome = std::thread::scope(|scope| {
        let run = scope.spawn(|| own.follow(&out, &options, &follow, &stop, &live));
        while !run.is_finished() {
            py.detach(|| std::thread::sleep(SIGNAL_CHECK));
            if !interrupted && py.check_signals().is_err() {
                // Ctrl-C: stop as the CLI stops, with what is published.
                interrupted = true;
                stop.store(true, Ordering::SeqCst);
            }
        }
        run.join().unwrap_or(Err(heapvis::Error::WorkerStopped))
    });
    let summary = outcome.map_err(err)?;
    let figures = serde_json::json!({
        "snapshots": summary.snapshots,
        "failed": summary.failed,
        "resumed_at": summary.resumed_at,
        "publishes": summary.publishes,
        "files": summary.files,
        "frames": summary.frames,
        "movie": summary.movie,
    });
    let warnings = live.0.warnings.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok((figures.to_string(), warnings, interrupted))
}
