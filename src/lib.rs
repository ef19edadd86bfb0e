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
//! The others are hidden from these docs: they are how the `heapvis` binary,
//! the tests and the benches reach the parts, and they change as the parts do.
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

mod api;
pub mod answers;
#[doc(hidden)]
pub mod capture;
#[doc(hidden)]
pub mod check;
#[doc(hidden)]
pub mod decode;
pub mod dump;
pub mod error;
#[doc(hidden)]
pub mod firmware;
#[doc(hidden)]
pub mod follow;
#[doc(hidden)]
pub mod incremental;
#[doc(hidden)]
pub mod inspect;

#[doc(hidden)]
pub mod memory;
#[doc(hidden)]
pub mod outdir;
pub mod pipeline;

#[doc(hidden)]
pub mod profile;
pub mod render;
#[doc(hidden)]
pub mod report;
pub mod retain;
#[doc(hidden)]
pub mod sidecar;
pub mod synth;
#[doc(hidden)]
pub mod sys;
pub mod tables;

pub use api::{diff, leaks, set_mmap_threshold, summary, write_answers, Capture, FirmwareSource, Leaks, Snapshot, SnapshotTable};
pub use render::Arrangement;
pub use synth::{write_dir as write_synthetic, Board, Flavor, SynthConfig, SynthSummary, Workload};
pub use dump::Selection;
pub use error::{DecodeError, Error, Result};
pub use pipeline::{AnalyzeOptions, Progress, RenderOptions, RunSummary, Silent};
pub use tables::{OutputLayout, TableSet};
