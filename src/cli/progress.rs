//! The one indicatif factory: a bar on stderr with snapshots/s, MB/s and the
//! time left, hidden when stderr is not a terminal (CI logs, pipes) so output
//! stays clean. Its text fits a 60-column terminal: the bar takes what is left.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use heapvis::pipeline::Progress;

/// The bar, then counts and the rate (`{msg}`, made in [`Bar::advance`]).
const TEMPLATE: &str = "{wide_bar} {pos}/{len} {msg}";

pub struct Bar {
    bar: ProgressBar,
    started: std::sync::Mutex<Instant>,
    bytes: std::sync::atomic::AtomicU64,
    quiet: bool,
}

impl Bar {
    pub fn new(quiet: bool) -> Self {
        let target = if !quiet && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self::drawn_to(target, quiet)
    }

    fn drawn_to(target: ProgressDrawTarget, quiet: bool) -> Self {
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(ProgressStyle::with_template(TEMPLATE).unwrap_or_else(|_| ProgressStyle::default_bar()));
        Bar { bar, started: std::sync::Mutex::new(Instant::now()), bytes: Default::default(), quiet }
    }
}

/// A duration as a person reads it: `42s`, `3m05s`, `2h10m`.
fn short_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

impl Progress for Bar {
    fn start(&self, snapshots: u64, _bytes: u64) {
        if let Ok(mut t) = self.started.lock() {
            *t = Instant::now();
        }
        self.bar.set_length(snapshots);
        // The first frame says what is happening, not an empty rate.
        self.bar.set_message("starting");
        self.bar.reset_elapsed();
    }

    fn advance(&self, snapshots: u64, bytes: u64) {
        let total = self.bytes.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed) + bytes;
        self.bar.inc(snapshots);
        let secs = self.started.lock().map_or(0.0, |t| t.elapsed().as_secs_f64()).max(1e-9);
        let done = self.bar.position();
        let rate = done as f64 / secs;
        let left = self.bar.length().unwrap_or(done).saturating_sub(done) as f64 / rate.max(1e-9);
        self.bar.set_message(format!(
            "{rate:.0} snapshots/s {:.0} MB/s {} left",
            total as f64 / secs / 1e6,
            short_duration(left)
        ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A terminal of 60 columns that keeps every line drawn on it.
    #[derive(Debug, Default, Clone)]
    struct Narrow(Arc<Mutex<Vec<String>>>);

    impl indicatif::TermLike for Narrow {
        fn width(&self) -> u16 {
            60
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            if !s.is_empty() {
                self.0.lock().unwrap().push(s.to_string());
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_bar_says_snapshots_per_second_and_fits_sixty_columns() {
        let term = Narrow::default();
        let bar = Bar::drawn_to(ProgressDrawTarget::term_like_with_hz(Box::new(term.clone()), 255), false);
        bar.start(1_000_000, 1 << 40);
        let first = term.0.lock().unwrap().last().cloned().unwrap_or_default();
        assert!(first.ends_with("0/1000000 starting"), "{first:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
        bar.advance(123_456, 123_456 << 20);
        std::thread::sleep(std::time::Duration::from_millis(5));
        bar.advance(1, 1 << 20);
        let lines = term.0.lock().unwrap().clone();
        let last = lines.last().unwrap();
        assert!(
            last.contains("123457/1000000 ") && last.contains(" snapshots/s ") && last.contains(" left"),
            "{last:?}"
        );
        for l in &lines {
            assert!(console_width(l) <= 60, "{} columns: {l:?}", console_width(l));
        }
    }

    fn console_width(line: &str) -> usize {
        // No colours in the template: every char is one column.
        line.chars().count()
    }

    #[test]
    fn durations_read_as_a_person_says_them() {
        assert_eq!(short_duration(42.4), "42s");
        assert_eq!(short_duration(185.0), "3m05s");
        assert_eq!(short_duration(7800.0), "2h10m");
    }
}
