//! The one indicatif factory: a bar on stderr with snapshots/s, MB/s and ETA, hidden
//! when stderr is not a terminal (CI logs, pipes) so output stays clean.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use heapvis::pipeline::Progress;

pub struct Bar {
    bar: ProgressBar,
    started: Instant,
    bytes: std::sync::atomic::AtomicU64,
    quiet: bool,
}

impl Bar {
    pub fn new(quiet: bool) -> Self {
        let bar = ProgressBar::hidden();
        if !quiet && std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:32} {pos}/{len} snapshots ({msg}) ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Bar { bar, started: Instant::now(), bytes: Default::default(), quiet }
    }
}

impl Progress for Bar {
    fn start(&self, snapshots: u64, _bytes: u64) {
        self.bar.set_length(snapshots);
        self.bar.reset_elapsed();
    }

    fn advance(&self, snapshots: u64, bytes: u64) {
        let total = self.bytes.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed) + bytes;
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar.set_message(format!("{:.1} MB/s", total as f64 / secs / 1e6));
        self.bar.inc(snapshots);
    }

    fn warn(&self, message: &str) {
        if !self.quiet {
            self.bar.suspend(|| eprintln!("warning: {message}"));
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
