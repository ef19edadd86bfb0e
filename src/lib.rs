#![deny(missing_docs)]
//! heapvis: decode multi-snapshot RAM dumps of CircuitPython/MicroPython boards.
//!
//! # The library's API
//!
//! A program (and the Python package, which wraps exactly this) starts from
//! [`Capture`]: open a capture, decode a [`Snapshot`] into Arrow
//! `RecordBatch`es, or [`Capture::analyze`] it into an output folder with
//! [`AnalyzeOptions`], then read the answers back ([`summary`], [`leaks`],
//! [`diff`], [`Capture::why`]). Errors are [`Error`]s, whose messages name the
//! file, what was expected and what was found. [`write_synthetic`] makes
//! captures of simulated boards to try it on.
//!
//! ```
//! let capture = heapvis::Capture::open("data/sample", &heapvis::FirmwareSource::Beside)?;
//! let free_runs = capture.snapshot(0)?.table(heapvis::SnapshotTable::FreeRuns).to_vec();
//! assert!(free_runs[0].num_rows() >= 1, "a heap has free space");
//! # Ok::<(), heapvis::Error>(())
//! ```
//!
//! The modules documented here hold the types that surface takes and returns.
//! The others are the parts, private to the crate. This crate's own tests,
//! benches and fuzz targets test them one by one through the `internals`
//! feature, which makes them public but hidden; a program should not turn it
//! on: the parts change as they need to.
//!
//! # How the crate is laid out
//!
//! As the data flows:
//! - `firmware` reads the link map and flash image, or the ELF (untrusted), into symbols;
//! - `profile` holds the firmware layout as data;
//! - [`dump`] memory-maps the RAM dump and splits it into snapshots;
//! - `check` holds the dump against the firmware inputs before any decoding;
//! - `decode` turns one snapshot into rows (pure, runs in parallel);
//! - [`tables`] turns rows into Arrow batches and writes Parquet (one writer);
//! - `outdir` keeps the output folder whole: manifest, staging, commit;
//! - `incremental` decodes a run of snapshots each from the one before it;
//! - [`pipeline`] ties them together: parallel decode, ordered write, progress;
//! - `follow` runs it on a dump still being written, publishing as it grows;
//! - `inspect` prints one snapshot the way the reference did;
//! - [`synth`] simulates MicroPython's allocator to make realistic test dumps;
//! - [`retain`] finds what the GC reaches, dominators and retained sizes;
//! - [`answers`] answers from a finished folder's tables (summary, leaks, diff);
//! - `report` draws them as one self-contained HTML page;
//! - `capture` writes the gdb script that makes a capture and its sidecar.
//!
//! The library never prints and never exits; the `heapvis` binary does both.

/// Declares modules that are the library's parts, not its API: crate-private, or,
/// with the `internals` feature (on for this crate's own tests, benches and
/// fuzz targets, which test the parts one by one), public but hidden from the
/// docs.
macro_rules! internal {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$doc])*
        #[cfg(not(feature = "internals"))]
        #[allow(dead_code, unused_imports)]
        pub(crate) mod $name;
    )*};
}
pub(crate) use internal;

/// Re-exports of the parts' items beside an API module's own, on the same
/// terms as [`internal!`] modules: public and hidden with `internals`,
/// crate-private without.
macro_rules! internal_use {
    ($($path:path),* $(,)?) => {$(
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub use $path;
        #[cfg(not(feature = "internals"))]
        #[allow(unused_imports)]
        pub(crate) use $path;
    )*};
}
pub(crate) use internal_use;

pub mod answers;
mod api;
pub mod capture;
pub mod dump;
pub mod error;
pub mod follow;
pub mod pipeline;
pub mod render;
pub mod report;
pub mod retain;
pub mod synth;
pub mod tables;

internal! {
    check;
    decode;
    firmware;
    incremental;
    inspect;
    memory;
    outdir;
    profile;
    sidecar;
    sys;
}

pub use api::{
    diff, exit_on_sigbus, gdb_script, leaks, profile_toml, render_dot, report_page, set_mmap_threshold,
    shipped_profiles, stop_on_interrupt, summary, write_answers, write_replacing, Capture, FirmwareSource, Inspection,
    Leaks, OpenOptions, Snapshot, SnapshotTable,
};
pub use dump::Selection;
pub use error::{DecodeError, Error, Result};
pub use pipeline::{AnalyzeOptions, Progress, RenderOptions, RunSummary, Silent};
pub use render::Arrangement;
pub use synth::{write_dir as write_synthetic, Board, Flavor, SynthConfig, SynthSummary, Workload};
pub use tables::{OutputLayout, TableSet};
