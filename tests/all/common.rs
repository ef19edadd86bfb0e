//! Shared helpers: synthetic captures in temporary directories, the oracle run.

use std::path::{Path, PathBuf};
use std::process::Command;

use heapvis::decode::{DecodeOptions, SnapshotReport};
use heapvis::firmware::InputPaths;
use heapvis::pipeline::Session;
use heapvis::profile::Profile;
use heapvis::synth::{self, Board, SynthConfig};

pub struct Capture {
    pub dir: tempfile::TempDir,
    pub inputs: InputPaths,
}

pub fn capture(board: Board, snapshots: u64, seed: u64, heap_misalign: u64) -> Capture {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = SynthConfig::new(board, snapshots, seed);
    config.heap_misalign = heap_misalign;
    synth::write_dir(&config, dir.path()).expect("synth");
    let inputs = InputPaths::resolve(&[dir.path().to_path_buf()]).expect("inputs");
    Capture { dir, inputs }
}

/// A leaking busy SAMD21 capture (`snapshots` heap changes, a snapshot every
/// second one, with its sidecar when `events`) written by `config`'s seed and
/// analysed with the default tables into `OUT = dir/out`: what the answers
/// (`summary`, `diff`, `report`) read.
pub fn leaking_busy(snapshots: u64, seed: u64, events: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = SynthConfig::new(Board::Samd21, snapshots, seed);
    (config.workload, config.every, config.leak, config.events) = (synth::Workload::Busy, 2, true, events);
    synth::write_dir(&config, dir.path()).expect("synth");
    let inputs = InputPaths::resolve(&[dir.path().to_path_buf()]).expect("inputs");
    let s = Session::open_with(&inputs, None).expect("session");
    let out = dir.path().join("out");
    s.analyze(&out, &heapvis::pipeline::AnalyzeOptions::default(), &heapvis::pipeline::Silent).expect("analyze");
    (dir, out)
}

pub fn session(inputs: &InputPaths) -> Session {
    Session::open(inputs, Profile::default()).expect("session")
}

pub fn decode_all(s: &Session) -> Vec<SnapshotReport> {
    let d = s.decoder(DecodeOptions::default());
    (0..s.dump.count()).map(|i| d.decode(i, s.dump.snapshot(i).unwrap()).expect("decode")).collect()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Set (to anything but `0`) where the reference must be there: CI sets it, so a
/// parity test that would skip fails instead.
pub const REQUIRE_ORACLE: &str = "HEAPVIS_REQUIRE_ORACLE";

/// The reference's harness, `../shared/oracle/run_oracle.py` beside the
/// repository. `None`, with a notice on stderr naming `test`, when it is absent
/// (a clone outside the workspace); a panic instead when [`REQUIRE_ORACLE`] is set.
pub fn oracle_script(test: &str) -> Option<PathBuf> {
    let oracle = repo().join("../shared/oracle/run_oracle.py");
    if oracle.is_file() {
        return Some(oracle);
    }
    let required = std::env::var(REQUIRE_ORACLE).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "{test}: the reference is missing ({}), and {REQUIRE_ORACLE} says it must run",
        oracle.display()
    );
    // Written to the handle, not through eprintln!, which the test harness
    // captures: the notice must show in a passing run.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs the reference analyser at {} (set {REQUIRE_ORACLE}=1 to fail instead)",
        oracle.display()
    );
    None
}

/// Runs the reference (with the ownership graph) and returns its facts, one JSON
/// value per snapshot, ordered by snapshot number; `None` when the reference is
/// not there (see [`oracle_script`]).
pub fn oracle_facts(inputs: &InputPaths, work: &Path, test: &str) -> Option<Vec<serde_json::Value>> {
    let oracle = oracle_script(test)?;
    let out = work.join("oracle");
    let status = Command::new(python())
        .arg(&oracle)
        .arg(&inputs.ram)
        .args(match &inputs.firmware {
            heapvis::firmware::FirmwareFiles::BinMap { flash, map } => [flash, map],
            heapvis::firmware::FirmwareFiles::Elf(_) => panic!("the oracle needs firmware.bin and firmware.map"),
        })
        .arg(&out)
        .arg("--ownership")
        .status()
        .expect("python3 runs the oracle (pip install click)");
    assert!(status.success(), "oracle failed: {status}");
    let facts = Command::new(python())
        .arg(repo().join("tests/support/oracle_facts.py"))
        .arg(out.join("oracle.json"))
        .output()
        .expect("oracle_facts.py");
    assert!(facts.status.success(), "oracle_facts.py: {}", String::from_utf8_lossy(&facts.stderr));
    let _ = std::fs::remove_file(out.join("oracle.json"));
    let mut v: Vec<serde_json::Value> =
        String::from_utf8_lossy(&facts.stdout).lines().map(|l| serde_json::from_str(l).expect("facts line")).collect();
    v.sort_by_key(|s| s["snapshot"].as_u64());
    Some(v)
}

/// Runs a DuckDB query (`{d}` stands for the output folder) and returns its rows.
pub fn duck(sql: &str, dir: &Path) -> Vec<Vec<serde_json::Value>> {
    let script = r#"
import sys, json, duckdb
d = sys.argv[1]
rows = duckdb.sql(sys.argv[2].replace("{d}", d)).fetchall()
print(json.dumps([[v if isinstance(v, (int, float, str, bool)) or v is None else str(v) for v in r] for r in rows]))
"#;
    let out = Command::new(python()).arg("-c").arg(script).arg(dir).arg(sql).output().expect("python3");
    assert!(out.status.success(), "duckdb failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json rows")
}

/// Every table a run with `TableSet::ALL` writes from the dump (not `symbols`).
pub const DECODED_TABLES: [&str; 12] = heapvis::tables::TABLE_NAMES;

/// A table's files under an output folder: `<t>.parquet`, or the part files of
/// the folder `<t>/` in name (so snapshot) order. Empty if there is no such table.
pub fn table_files(out: &Path, t: &str) -> Vec<std::path::PathBuf> {
    let file = out.join(format!("{t}.parquet"));
    if file.is_file() {
        return vec![file];
    }
    let mut parts: Vec<_> = std::fs::read_dir(out.join(t))
        .map(|d| d.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "parquet")).collect())
        .unwrap_or_default();
    parts.sort();
    parts
}

/// The two output folders hold byte-identical files, with the same names, for
/// every table in `tables`.
pub fn assert_same_tables(a: &Path, b: &Path, tables: &[&str], what: &str) {
    for t in tables {
        let (fa, fb) = (table_files(a, t), table_files(b, t));
        assert!(!fa.is_empty(), "{t} is missing from {}", a.display());
        let names =
            |f: &[std::path::PathBuf]| -> Vec<_> { f.iter().map(|p| p.file_name().unwrap().to_owned()).collect() };
        assert_eq!(names(&fa), names(&fb), "{t}: part files differ: {what}");
        for (x, y) in fa.iter().zip(&fb) {
            assert!(std::fs::read(x).unwrap() == std::fs::read(y).unwrap(), "{} differs: {what}", x.display());
        }
    }
}
