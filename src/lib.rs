//! heapvis: decode multi-snapshot RAM dumps of CircuitPython/MicroPython boards.
//!
//! The crate is laid out as the data flows:
//! - [`firmware`] reads the link map and flash image (untrusted) into symbols;
//! - [`profile`] holds the firmware layout as data;
//! - [`dump`] memory-maps the RAM dump and splits it into snapshots;
//! - [`check`] holds the dump against the firmware inputs before any decoding;
//! - [`decode`] turns one snapshot into rows (pure, runs in parallel);
//! - [`tables`] turns rows into Arrow batches and writes Parquet (one writer);
//! - [`outdir`] keeps the output folder whole: manifest, staging, commit;
//! - [`incremental`] decodes a run of snapshots each from the one before it;
//! - [`pipeline`] ties them together: parallel decode, ordered write, progress;
//! - [`follow`] runs it on a dump still being written, publishing as it grows;
//! - [`inspect`] prints one snapshot the way the reference did;
//! - [`synth`] simulates CircuitPython's allocator to make realistic test dumps;
//! - [`retain`] finds what the GC reaches, dominators and retained sizes;
//! - [`answers`] answers from a finished folder's tables (summary, leaks, diff);
//! - [`report`] draws them as one self-contained HTML page;
//! - [`capture`] writes the gdb script that makes a capture and its sidecar.
//!
//! The library never prints and never exits; the `heapvis` binary does both.
//!
//! A program (and the Python package) starts from [`Capture`]: open a capture,
//! decode a [`Snapshot`] into Arrow batches, or [`Capture::analyze`] it into an
//! output folder and read the answers back ([`summary`], [`leaks`], [`diff`]).

mod api;
pub mod answers;
pub mod capture;
pub mod check;
pub mod decode;
pub mod dump;
pub mod error;
pub mod firmware;
pub mod follow;
pub mod incremental;
pub mod inspect;

pub mod memory;
pub mod outdir;
pub mod pipeline;

pub mod profile;
pub mod render;
pub mod report;
pub mod retain;
pub mod sidecar;
pub mod synth;
pub mod sys;
pub mod tables;

pub use api::{diff, leaks, summary, write_answers, Capture, FirmwareSource, Leaks, Snapshot, SnapshotTable};
pub use profile::Profile;
pub use render::Arrangement;
pub use synth::{write_dir as write_synthetic, Board, Flavor, SynthConfig, SynthSummary, Workload};
pub use dump::Selection;
pub use error::{DecodeError, Error, Result};
pub use sys::set_mmap_threshold;
pub use pipeline::{AnalyzeOptions, Progress, RenderOptions, RunSummary, Silent};
pub use tables::{OutputLayout, TableSet};
