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
    pub what: &'static str,
    pub address: u64,
    pub len: u64,
}

/// Why one snapshot could not be decoded. The run goes on without it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("heap 0x{start:08x}..0x{end:08x} is not inside the snapshot's RAM 0x{ram_start:08x}..0x{ram_end:08x}")]
    HeapOutsideRam { start: u64, end: u64, ram_start: u64, ram_end: u64 },
    #[error("heap of {bytes} bytes is too small for one allocation-table byte and its blocks")]
    HeapTooSmall { bytes: u64 },
    /// The snapshot decodes, but fails a check no snapshot a GC left behind
    /// fails: its rows would be wrong, so none are written.
    #[error("{check}: {detail}")]
    Suspect { check: &'static str, detail: String },
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

/// A fatal error: the run cannot start or cannot finish writing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{path}: line {line}: {message}")]
    Sidecar { path: PathBuf, line: usize, message: String },

    #[error("{path}: not found (expected {expected})")]
    MissingInput { path: PathBuf, expected: &'static str },

    #[error("{path}: not {expected}: {found}")]
    WrongInput { path: PathBuf, expected: &'static str, found: String },

    #[error("{dir}: expected exactly one {what} in the directory, found {found}")]
    AmbiguousInput { dir: PathBuf, what: &'static str, found: String },

    #[error("{map}: no symbol `{symbol}`; it is needed for {purpose}{hint}")]
    MissingSymbol { map: PathBuf, symbol: String, purpose: &'static str, hint: String },

    #[error("{map}: symbol `{symbol}` has no address; it is needed for {purpose}")]
    SymbolWithoutAddress { map: PathBuf, symbol: String, purpose: &'static str },

    #[error(
        "{map}: {what} ends at 0x{end:x}, above 2^63: heapvis stores addresses as signed 64-bit integers, and no port puts memory there; check the map or ELF"
    )]
    AddressTooHigh { map: PathBuf, what: &'static str, end: u64 },

    #[error("{map}: RAM bounds are empty or reversed: `{start_symbol}` = 0x{start:08x}, `{end_symbol}` = 0x{end:08x}")]
    BadRamBounds { map: PathBuf, start_symbol: String, start: u64, end_symbol: String, end: u64 },

    #[error("{map}: heap `{symbol}` at 0x{start:08x}..0x{end:08x} lies outside RAM 0x{ram_start:08x}..0x{ram_end:08x}; check the RAM bounds (--ram-start, --ram-end) and that these firmware files are the dump's build")]
    HeapOutsideRam { map: PathBuf, symbol: String, start: u64, end: u64, ram_start: u64, ram_end: u64 },

    #[error(
        "{map}: `{symbol}` at 0x{address:08x} (+{size} bytes) lies outside RAM 0x{ram_start:08x}..0x{ram_end:08x}"
    )]
    StateOutsideRam { map: PathBuf, symbol: String, address: u64, size: u64, ram_start: u64, ram_end: u64 },

    #[error("{path}: dump of {bytes} bytes is shorter than one snapshot ({snapshot_bytes} bytes, the RAM bounds' span); is this the right dump for this firmware?")]
    DumpTooShort { path: PathBuf, bytes: u64, snapshot_bytes: u64 },

    #[error("{path}: {found}; {advice}")]
    CaptureMismatch { path: PathBuf, found: String, advice: String },

    #[error("{dir}: {found}; {advice}")]
    OutputConflict { dir: PathBuf, found: String, advice: String },

    #[error("condition `{condition}`: {why}")]
    BadCondition { condition: String, why: String },

    #[error("snapshot selection `{spec}`: {reason}")]
    BadSelection { spec: String, reason: String },

    #[error("{path}: {message}")]
    BadElf { path: PathBuf, message: String },

    #[error("{path}: invalid profile: {message}")]
    BadProfile { path: PathBuf, message: String },

    #[error("{path}: cannot write Parquet: {source}")]
    Parquet { path: PathBuf, source: parquet::errors::ParquetError },

    #[error("building table `{table}`: {source}")]
    Arrow { table: &'static str, source: arrow::error::ArrowError },

    #[error("snapshot {snapshot} cannot be decoded: {source}")]
    Snapshot { snapshot: u64, source: DecodeError },

    #[error("{path}: {message}")]
    Movie { path: PathBuf, message: String },

    #[error("synthetic dump: {0}")]
    Synth(String),

    #[error("cannot start {threads} worker thread(s): {message}")]
    ThreadPool { threads: usize, message: String },

    #[error("{what}: {why}")]
    Unsupported { what: String, why: String },
    #[error("output writer thread failed")]
    WriterPanicked,

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

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
