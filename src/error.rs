//! Typed errors.
//!
//! [`Error`] is fatal for a run (bad inputs, unwritable output) and its messages name
//! the file, what was expected and what was found. [`DecodeError`] is per snapshot:
//! the pipeline records it in `snapshots.status` and goes on with the next snapshot.

use std::path::PathBuf;

/// A read of target memory that fell outside every region we hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {len} byte(s) of {what} at 0x{address:08x}: outside RAM and flash")]
pub struct ReadError {
    /// What was being read (a structure of the firmware).
    pub what: &'static str,
    /// Where.
    pub address: u64,
    /// How many bytes.
    pub len: u64,
}

/// Why one snapshot could not be decoded. The run goes on without it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A structure the decoder followed lies outside the memory it holds.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The heap the snapshot's GC state names is not inside the snapshot.
    #[error("heap 0x{start:08x}..0x{end:08x} is not inside the snapshot's RAM 0x{ram_start:08x}..0x{ram_end:08x}")]
    HeapOutsideRam {
        /// The heap's first address.
        start: u64,
        /// The address just past the heap.
        end: u64,
        /// The snapshot's first address.
        ram_start: u64,
        /// The address just past the snapshot.
        ram_end: u64,
    },
    /// The heap cannot hold a single allocation.
    #[error("heap of {bytes} bytes is too small for one allocation-table byte and its blocks")]
    HeapTooSmall {
        /// The heap's size.
        bytes: u64,
    },
    /// The snapshot decodes, but fails a check no snapshot a GC left behind
    /// fails: its rows would be wrong, so none are written.
    #[error("{check}: {detail}")]
    Suspect {
        /// Which plausibility check failed.
        check: &'static str,
        /// What it found.
        detail: String,
    },
}

impl DecodeError {
    /// The `snapshots.status` text: `suspect: …` for a snapshot that failed a
    /// plausibility check, `error: …` for one that could not be decoded.
    pub fn status(&self) -> String {
        match self {
            DecodeError::Suspect { .. } => format!("suspect: {self}"),
            _ => format!("error: {self}"),
        }
    }
}

/// A fatal error: the run cannot start or cannot finish writing. Each names
/// the file, what was expected and what was found; [`Error::line`] is the
/// message with its causes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },

    /// A line of the capture's sidecar (`<dump>.events.jsonl`) is not what it
    /// must be.
    #[error("{path}: line {line}: {message}")]
    Sidecar {
        /// The sidecar.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },

    /// An input is not there.
    #[error("{path}: not found (expected {expected})")]
    MissingInput {
        /// Where it was looked for.
        path: PathBuf,
        /// What should be there.
        expected: &'static str,
    },

    /// An input is there but is not what its place says it is.
    #[error("{path}: not {expected}: {found}")]
    WrongInput {
        /// The input.
        path: PathBuf,
        /// What it should be.
        expected: &'static str,
        /// What it is.
        found: String,
    },

    /// A capture folder holds more than one file that could be the input.
    #[error("{dir}: expected exactly one {what} in the directory, found {found}")]
    AmbiguousInput {
        /// The folder.
        dir: PathBuf,
        /// Which input.
        what: &'static str,
        /// The candidates.
        found: String,
    },

    /// The firmware has no symbol the layout needs.
    #[error("{map}: no symbol `{symbol}`; it is needed for {purpose}{hint}")]
    MissingSymbol {
        /// The map or ELF.
        map: PathBuf,
        /// The symbol.
        symbol: String,
        /// What it is needed for.
        purpose: &'static str,
        /// A way out, when there is one (starts with `; `).
        hint: String,
    },

    /// A symbol the layout needs has no address.
    #[error("{map}: symbol `{symbol}` has no address; it is needed for {purpose}")]
    SymbolWithoutAddress {
        /// The map or ELF.
        map: PathBuf,
        /// The symbol.
        symbol: String,
        /// What it is needed for.
        purpose: &'static str,
    },

    /// An address past what the tables' signed 64-bit columns hold.
    #[error(
        "{map}: {what} ends at 0x{end:x}, above 2^63: heapvis stores addresses as signed 64-bit integers, and no port puts memory there; check the map or ELF"
    )]
    AddressTooHigh {
        /// The map or ELF.
        map: PathBuf,
        /// Which region.
        what: &'static str,
        /// Where it ends.
        end: u64,
    },

    /// The RAM bounds give no snapshot to read.
    #[error("{map}: RAM bounds are empty or reversed: `{start_symbol}` = 0x{start:08x}, `{end_symbol}` = 0x{end:08x}")]
    BadRamBounds {
        /// The map or ELF.
        map: PathBuf,
        /// The symbol (or address) of the start.
        start_symbol: String,
        /// Its address.
        start: u64,
        /// The symbol (or address) of the end.
        end_symbol: String,
        /// Its address.
        end: u64,
    },

    /// The heap is not inside the RAM each snapshot holds.
    #[error("{map}: heap `{symbol}` at 0x{start:08x}..0x{end:08x} lies outside RAM 0x{ram_start:08x}..0x{ram_end:08x}; check the RAM bounds (--ram-start, --ram-end) and that these firmware files are the dump's build")]
    HeapOutsideRam {
        /// The map or ELF.
        map: PathBuf,
        /// The heap's symbol.
        symbol: String,
        /// The heap's first address.
        start: u64,
        /// The address just past it.
        end: u64,
        /// A snapshot's first address.
        ram_start: u64,
        /// The address just past a snapshot.
        ram_end: u64,
    },

    /// The interpreter's state is not inside the RAM each snapshot holds.
    #[error(
        "{map}: `{symbol}` at 0x{address:08x} (+{size} bytes) lies outside RAM 0x{ram_start:08x}..0x{ram_end:08x}"
    )]
    StateOutsideRam {
        /// The map or ELF.
        map: PathBuf,
        /// The state's symbol.
        symbol: String,
        /// Its address.
        address: u64,
        /// The bytes of it read.
        size: u64,
        /// A snapshot's first address.
        ram_start: u64,
        /// The address just past a snapshot.
        ram_end: u64,
    },

    /// The dump holds less than one snapshot of the RAM the firmware names.
    #[error("{path}: dump of {bytes} bytes is shorter than one snapshot ({snapshot_bytes} bytes, the RAM bounds' span); is this the right dump for this firmware?")]
    DumpTooShort {
        /// The dump.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// One snapshot's size.
        snapshot_bytes: u64,
    },

    /// The capture is not the one an output folder (or a check) expects.
    #[error("{path}: {found}; {advice}")]
    CaptureMismatch {
        /// The dump.
        path: PathBuf,
        /// What differs.
        found: String,
        /// What to do.
        advice: String,
    },

    /// The output folder holds what this run must not replace or mix with.
    #[error("{dir}: {found}; {advice}")]
    OutputConflict {
        /// The output folder.
        dir: PathBuf,
        /// What it holds.
        found: String,
        /// What to do.
        advice: String,
    },

    /// A `summary --fail-if` condition that cannot be read.
    #[error("condition `{condition}`: {why}")]
    BadCondition {
        /// The condition as written.
        condition: String,
        /// What is wrong with it.
        why: String,
    },

    /// A snapshot selection (`--snapshots`, an index) that selects nothing.
    #[error("snapshot selection `{spec}`: {reason}")]
    BadSelection {
        /// The selection as written.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The ELF file (or its debug info) cannot be read.
    #[error("{path}: {message}")]
    BadElf {
        /// The ELF file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A layout profile that cannot be read or does not hold together.
    #[error("{path}: invalid profile: {message}")]
    BadProfile {
        /// The profile's file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A table file could not be written.
    #[error("{path}: cannot write Parquet: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What the Parquet writer said.
        source: parquet::errors::ParquetError,
    },

    /// A table's batch could not be built (or read back).
    #[error("building table `{table}`: {source}")]
    Arrow {
        /// The table.
        table: &'static str,
        /// What Arrow said.
        source: arrow::error::ArrowError,
    },

    /// The one snapshot asked for could not be decoded.
    #[error("snapshot {snapshot} cannot be decoded: {source}")]
    Snapshot {
        /// Its index.
        snapshot: u64,
        /// Why.
        source: DecodeError,
    },

    /// A frame or movie could not be written.
    #[error("{path}: {message}")]
    Movie {
        /// The movie or frame file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// A synthetic capture could not be made as configured.
    #[error("synthetic dump: {0}")]
    Synth(String),

    /// The worker threads could not be started.
    #[error("cannot start {threads} worker thread(s): {message}")]
    ThreadPool {
        /// How many were asked for.
        threads: usize,
        /// What the thread pool said.
        message: String,
    },

    /// An option or a combination heapvis does not do.
    #[error("{what}: {why}")]
    Unsupported {
        /// The option, command or input.
        what: String,
        /// Why not, and what to do instead.
        why: String,
    },

    /// The thread writing the tables stopped with a panic (a bug).
    #[error("output writer thread failed")]
    WriterPanicked,

    /// A decoding worker stopped before handing over its snapshots (a bug).
    #[error("a decoding worker stopped before its runs were written")]
    WorkerStopped,
}

impl Error {
    /// The error and each cause beneath it on one line, each said once (a
    /// cause's text is often already in its parent's): what the CLI prints
    /// after `heapvis: `, and the Python package's exception message.
    pub fn line(&self) -> String {
        let mut line = String::new();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(c) = cause {
            let text = c.to_string();
            if !line.contains(&text) {
                if !line.is_empty() {
                    line.push_str(": ");
                }
                line.push_str(&text);
            }
            cause = c.source();
        }
        line
    }

    /// An [`Error::Io`] on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

/// A result whose error is heapvis's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
