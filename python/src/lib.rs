//! `heapvis._heapvis`: the Rust half of the Python package. It wraps the
//! library's curated surface (`heapvis::Capture` and the answers) and nothing
//! else; `python/heapvis/__init__.py` turns what it returns into pyarrow
//! tables and dicts.
//!
//! - Tables leave as Arrow C streams (`__arrow_c_stream__`): pyarrow, Polars
//!   and pandas take the buffers without a copy.
//! - Long work (decoding, a whole analysis) runs with the GIL released.
//! - Errors are `heapvis.HeapvisError` carrying the CLI's message.

use std::path::PathBuf;

use arrow::datatypes::SchemaRef;
use arrow::ffi_stream::FFI_ArrowArrayStream;
use arrow::record_batch::{RecordBatch, RecordBatchIterator};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyIndexError};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

mod follow;
mod progress;

use progress::PyProgress;

use heapvis::{AnalyzeOptions, FirmwareSource, OutputLayout, RenderOptions, Selection, SnapshotTable, TableSet};

create_exception!(
    _heapvis,
    HeapvisError,
    PyException,
    "A capture, firmware, option or output folder heapvis cannot use."
);

fn err(e: heapvis::Error) -> PyErr {
    HeapvisError::new_err(e.line())
}

fn to_json<T: serde::Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| HeapvisError::new_err(e.to_string()))
}

/// An opened capture (see `heapvis::Capture`).
#[pyclass(module = "heapvis._heapvis", name = "Capture", frozen)]
struct Capture {
    inner: heapvis::Capture,
    /// How it was opened: a follow opens it again, as its own to refresh.
    source: (PathBuf, FirmwareSource, Option<PathBuf>),
}

/// One decoded snapshot's tables.
#[pyclass(module = "heapvis._heapvis", name = "Snapshot", frozen)]
struct Snapshot {
    inner: heapvis::Snapshot,
}

/// One table's batches, for the Arrow C stream interface (each call a new
/// stream over the same buffers).
#[pyclass(module = "heapvis._heapvis", name = "ArrowStream", frozen)]
struct ArrowStream {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

#[pymethods]
impl ArrowStream {
    /// The Arrow PyCapsule interface: a stream of the table's batches.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        // A consumer may ask for another schema; the interface lets a producer
        // answer with its own, which the consumer then casts.
        let _ = requested_schema;
        let reader = RecordBatchIterator::new(self.batches.clone().into_iter().map(Ok), self.schema.clone());
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }
}

#[pymethods]
impl Snapshot {
    /// Its index in the dump.
    #[getter]
    fn index(&self) -> u64 {
        self.inner.index()
    }

    /// The table of this name (`blocks`, `edges`, `qstrs`, `strings`,
    /// `free_runs`, `snapshots`) as an Arrow stream.
    fn table(&self, name: &str) -> PyResult<ArrowStream> {
        let table = SnapshotTable::from_name(name)
            .ok_or_else(|| HeapvisError::new_err(format!("no per-snapshot table `{name}`")))?;
        let batches = self.inner.table(table).to_vec();
        let schema = batches.first().map(|b| b.schema()).ok_or_else(|| HeapvisError::new_err("no batch"))?;
        Ok(ArrowStream { schema, batches })
    }
}

/// `analyze`'s keyword arguments, as the CLI's options.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct Options {
    snapshots: String,
    per_snapshot: bool,
    metrics_only: bool,
    layout: String,
    threads: Option<usize>,
    full_decode: bool,
    overwrite: bool,
    retention: bool,
    frames: bool,
    movie: Option<PathBuf>,
    scale: u32,
    frame_layout: String,
    frame_step: u64,
    fps: u32,
}

impl Options {
    fn analyze_options(&self) -> PyResult<AnalyzeOptions> {
        if self.per_snapshot && self.metrics_only {
            return Err(HeapvisError::new_err("per_snapshot and metrics_only cannot go together"));
        }
        let selection: Selection = self.snapshots.parse().map_err(err)?;
        let layout = match self.layout.as_str() {
            "parts" => OutputLayout::parts(),
            "files" => OutputLayout::Files,
            other => return Err(HeapvisError::new_err(format!("layout `{other}`: give parts or files"))),
        };
        let arrangement = match self.frame_layout.as_str() {
            "fill" => heapvis::Arrangement::Fill,
            "reference" => heapvis::Arrangement::Reference,
            other => return Err(HeapvisError::new_err(format!("frame_layout `{other}`: give fill or reference"))),
        };
        let tables = match (self.metrics_only, self.per_snapshot) {
            (true, _) => TableSet::METRICS,
            (_, true) => TableSet::ALL,
            _ => TableSet::DEFAULT,
        };
        let render = (self.frames || self.movie.is_some()).then(|| RenderOptions {
            frames: self.frames,
            movie: self.movie.clone(),
            scale: self.scale,
            arrangement,
            step: self.frame_step,
            step_origin: None,
            fps: self.fps,
        });
        let options = AnalyzeOptions {
            selection,
            tables,
            threads: self.threads,
            render,
            layout,
            full_decode: self.full_decode,
            overwrite: self.overwrite,
            retention: self.retention,
            ..AnalyzeOptions::default()
        };
        options.check().map_err(err)?;
        Ok(options)
    }
}

#[pymethods]
impl Capture {
    fn __len__(&self) -> usize {
        usize::try_from(self.inner.len()).unwrap_or(usize::MAX)
    }

    #[getter]
    fn snapshot_bytes(&self) -> u64 {
        self.inner.snapshot_bytes()
    }

    #[getter]
    fn dump_path(&self) -> PathBuf {
        self.inner.dump_path().to_path_buf()
    }

    #[getter]
    fn profile(&self) -> String {
        self.inner.profile_name().to_string()
    }

    /// Snapshot `index` (from the end when negative), decoded whole.
    fn snapshot(&self, py: Python<'_>, index: i64) -> PyResult<Snapshot> {
        let len = self.inner.len();
        let at = if index < 0 { len.checked_sub(index.unsigned_abs()) } else { Some(index as u64) };
        let at = at
            .filter(|&i| i < len)
            .ok_or_else(|| PyIndexError::new_err(format!("snapshot {index}: the capture holds {len} snapshot(s)")))?;
        let inner = py.detach(|| self.inner.snapshot(at)).map_err(err)?;
        Ok(Snapshot { inner })
    }

    /// Runs the whole analysis into `out`; returns the run's figures as JSON
    /// and the warnings.
    fn analyze(
        &self,
        py: Python<'_>,
        out: PathBuf,
        options: Options,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(String, Vec<String>)> {
        let options = options.analyze_options()?;
        let progress = PyProgress::new(progress);
        let run = py.detach(|| self.inner.analyze(&out, &options, &progress)).map_err(err)?;
        let summary = serde_json::json!({
            "snapshots": run.snapshots,
            "failed": run.failed,
            "suspect": run.suspect,
            "bytes": run.bytes,
            "trailing_bytes": run.trailing_bytes,
            "decoded_from_previous": run.focused,
            "files": run.files,
            "frames": run.frames,
            "movie": run.movie,
        });
        let warnings = progress.warnings.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok((summary.to_string(), warnings))
    }

    /// Follows the dump into `out` (see `follow::follow`).
    #[pyo3(signature = (out, options, publish_every, idle, report, progress))]
    #[allow(clippy::too_many_arguments)]
    fn follow(
        &self,
        py: Python<'_>,
        out: PathBuf,
        options: Options,
        publish_every: &str,
        idle: Option<f64>,
        report: Option<PathBuf>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(String, Vec<String>, bool)> {
        follow::follow(self, py, out, options, publish_every, idle, report, progress)
    }

    /// Rewrites the shards in `out` as one run's files (see `heapvis::Capture::stitch`).
    fn stitch(&self, py: Python<'_>, out: PathBuf, options: Options) -> PyResult<Vec<PathBuf>> {
        let options = options.analyze_options()?;
        py.detach(|| self.inner.stitch(&out, &options)).map_err(err)
    }

    /// Why the allocation at `address` is alive at `snapshot`, as JSON.
    fn why(&self, py: Python<'_>, snapshot: u64, address: u64) -> PyResult<String> {
        to_json(&py.detach(|| self.inner.why(snapshot, address)).map_err(err)?)
    }

    /// Leak suspects of `out` with example paths, as JSON.
    fn leaks(&self, py: Python<'_>, out: PathBuf) -> PyResult<String> {
        to_json(&py.detach(|| self.inner.leaks(&out)).map_err(err)?)
    }

    /// What changed between snapshots `a` and `b` of `out`, with paths, as JSON.
    fn diff(&self, py: Python<'_>, out: PathBuf, a: u64, b: u64, top: usize) -> PyResult<String> {
        to_json(&py.detach(|| self.inner.diff(&out, a, b, top)).map_err(err)?)
    }
}

/// Opens a capture: a folder holding `ram.bin` and its firmware, or a dump
/// with `elf`, or with `firmware_bin` and `firmware_map`.
#[pyfunction]
#[pyo3(signature = (path, elf=None, firmware_bin=None, firmware_map=None, profile=None))]
fn open(
    py: Python<'_>,
    path: PathBuf,
    elf: Option<PathBuf>,
    firmware_bin: Option<PathBuf>,
    firmware_map: Option<PathBuf>,
    profile: Option<PathBuf>,
) -> PyResult<Capture> {
    let firmware = match (elf, firmware_bin, firmware_map) {
        (None, None, None) => FirmwareSource::Beside,
        (Some(elf), None, None) => FirmwareSource::Elf(elf),
        (None, Some(bin), Some(map)) => FirmwareSource::BinMap { bin, map },
        _ => return Err(HeapvisError::new_err("give elf, or firmware_bin with firmware_map, or neither")),
    };
    let inner = py.detach(|| heapvis::Capture::open_with(&path, &firmware, profile.as_deref()));
    Ok(Capture { inner: inner.map_err(err)?, source: (path, firmware, profile) })
}

/// The answers from the tables in `out`, as JSON.
#[pyfunction]
fn summary(py: Python<'_>, out: PathBuf) -> PyResult<String> {
    let s = py.detach(|| heapvis::summary(&out)).map_err(err)?;
    let mut value = serde_json::to_value(&s).map_err(|e| HeapvisError::new_err(e.to_string()))?;
    if let Some(map) = value.as_object_mut() {
        let figures: serde_json::Map<String, serde_json::Value> =
            s.figures().iter().map(|(n, v)| (n.to_string(), serde_json::json!(v))).collect();
        map.insert("figures".into(), figures.into());
    }
    Ok(value.to_string())
}

/// Leak suspects from the tables in `out` alone, as JSON.
#[pyfunction]
fn leaks(py: Python<'_>, out: PathBuf) -> PyResult<String> {
    to_json(&py.detach(|| heapvis::leaks(&out)).map_err(err)?)
}

/// What changed between snapshots `a` and `b` of `out`, as JSON.
#[pyfunction]
fn diff(py: Python<'_>, out: PathBuf, a: u64, b: u64, top: usize) -> PyResult<String> {
    to_json(&py.detach(|| heapvis::diff(&out, a, b, top)).map_err(err)?)
}

/// Writes the answers' tables (`culprits`, `memory_errors`) of `out`.
#[pyfunction]
fn write_answers(py: Python<'_>, out: PathBuf) -> PyResult<Vec<PathBuf>> {
    py.detach(|| heapvis::write_answers(&out)).map_err(err)
}

/// Writes a synthetic capture into `out` (as `heapvis synth`); returns its
/// figures as JSON.
#[pyfunction]
#[pyo3(signature = (out, board, layout, snapshots, seed, workload, every, start_after, events, log_marks, leak))]
#[allow(clippy::too_many_arguments)]
fn synth(
    py: Python<'_>,
    out: PathBuf,
    board: &str,
    layout: &str,
    snapshots: u64,
    seed: u64,
    workload: &str,
    every: u64,
    start_after: u64,
    events: bool,
    log_marks: bool,
    leak: bool,
) -> PyResult<String> {
    let bad = |what: &str, why: String| HeapvisError::new_err(format!("{what}: {why}"));
    let mut config = heapvis::SynthConfig::new(board.parse().map_err(|e| bad("board", e))?, snapshots, seed);
    config.flavor = layout.parse().map_err(|e| bad("layout", e))?;
    config.workload = workload.parse().map_err(|e| bad("workload", e))?;
    if every == 0 {
        return Err(bad("every", "must be at least 1".into()));
    }
    (config.every, config.start_after) = (every, start_after);
    (config.events, config.log_marks, config.leak) = (events, log_marks, leak);
    let s = py.detach(|| heapvis::write_synthetic(&config, &out)).map_err(err)?;
    Ok(serde_json::json!({
        "snapshots": s.snapshots,
        "snapshot_bytes": s.snapshot_bytes,
        "collections": s.collections,
        "memory_errors": s.out_of_memory,
    })
    .to_string())
}

/// Serves allocations under `bytes` from the heap, not each from its own
/// mmap: for worker processes whose malloc settings (Dask's) make glibc map
/// every large buffer afresh (see `heapvis::set_mmap_threshold`).
#[pyfunction]
fn set_mmap_threshold(bytes: usize) {
    heapvis::set_mmap_threshold(bytes);
}

#[pymodule]
fn _heapvis(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("HeapvisError", m.py().get_type::<HeapvisError>())?;
    m.add_class::<Capture>()?;
    m.add_class::<Snapshot>()?;
    m.add_class::<ArrowStream>()?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(summary, m)?)?;
    m.add_function(wrap_pyfunction!(leaks, m)?)?;
    m.add_function(wrap_pyfunction!(diff, m)?)?;
    m.add_function(wrap_pyfunction!(write_answers, m)?)?;
    m.add_function(wrap_pyfunction!(synth, m)?)?;
    m.add_function(wrap_pyfunction!(set_mmap_threshold, m)?)?;
    Ok(())
}
