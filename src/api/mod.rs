//! The library's front door: a capture opened once, any snapshot of it decoded
//! into Arrow batches, the whole analysis into an output folder, and the
//! answers read back from one. The `heapvis` binary and the Python package
//! use this and nothing else.
//!
//! ```
//! let capture = heapvis::Capture::open("data/sample", &heapvis::FirmwareSource::Beside)?;
//! let snapshot = capture.snapshot(capture.len() - 1)?;
//! let blocks = snapshot.table(heapvis::SnapshotTable::Blocks);
//! let rows: usize = blocks.iter().map(|b| b.num_rows()).sum();
//! assert!(rows > 100, "a busy heap's allocations, one row each");
//! # Ok::<(), heapvis::Error>(())
//! ```

mod answers;
mod capture;
mod tools;

pub use answers::{diff, leaks, report_page, summary, write_answers, Leaks};
pub use capture::{Capture, FirmwareSource, Inspection, OpenOptions, Snapshot, SnapshotTable};
pub use tools::{
    exit_on_sigbus, gdb_script, profile_toml, render_dot, set_mmap_threshold, shipped_profiles, stop_on_interrupt,
    write_replacing,
};
