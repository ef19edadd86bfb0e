//! Progress from the Rust run to Python: a callable `(done, total)`, called at
//! most ten times a second with the GIL taken for the call only, and the
//! warnings kept for the caller.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// Reports a run's progress to a Python callable `(done, total)`, at most ten
/// times a second, and keeps the warnings for the caller.
pub(crate) struct PyProgress {
    callback: Option<Py<PyAny>>,
    pub(crate) total: AtomicU64,
    pub(crate) done: AtomicU64,
    last: Mutex<Option<Instant>>,
    pub(crate) warnings: Mutex<Vec<String>>,
}

impl PyProgress {
    pub(crate) fn new(callback: Option<Py<PyAny>>) -> Self {
        PyProgress {
            callback,
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            last: Mutex::new(None),
            warnings: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn report(&self, force: bool) {
        let Some(callback) = &self.callback else { return };
        {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if !force && last.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
                return;
            }
            *last = Some(Instant::now());
        }
        let (done, total) = (self.done.load(Ordering::Relaxed), self.total.load(Ordering::Relaxed));
        Python::attach(|py| {
            // A failing progress bar must not fail the run: Python is told.
            if let Err(e) = callback.call1(py, (done, total)) {
                e.write_unraisable(py, None);
            }
        });
    }
}

impl heapvis::Progress for PyProgress {
    fn start(&self, snapshots: u64, _bytes: u64) {
        self.total.fetch_add(snapshots, Ordering::Relaxed);
        self.report(true);
    }
    fn advance(&self, snapshots: u64, _bytes: u64) {
        self.done.fetch_add(snapshots, Ordering::Relaxed);
        self.report(false);
    }
    fn warn(&self, message: &str) {
        self.warnings.lock().unwrap_or_else(|p| p.into_inner()).push(message.to_string());
    }
    fn finish(&self) {
        self.report(true);
    }
}

/// A follow's progress: `(published, in the dump)` after each publish and
/// while it waits; each publish's own decode reports nothing.
pub(crate) struct LiveProgress(pub(crate) PyProgress);

impl heapvis::Progress for LiveProgress {
    fn warn(&self, message: &str) {
        self.0.warn(message);
    }
}

impl heapvis::follow::LiveProgress for LiveProgress {
    fn live(&self, status: &heapvis::follow::LiveStatus) {
        self.0.total.store(status.in_dump, Ordering::Relaxed);
        self.0.done.store(status.published, Ordering::Relaxed);
        self.0.report(false);
    }
    fn waiting(&self, status: &heapvis::follow::LiveStatus) {
        self.live(status);
    }
}
