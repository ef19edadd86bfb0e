//! No run destroys or mixes a result (`heapvis::outdir`): every visible table
//! file is complete at every moment, a failed or killed run leaves the earlier
//! result as it was, and a folder holds one capture's tables only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use heapvis::synth::Board;

use crate::common::{capture, duck, table_files};

fn heapvis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_heapvis"))
}

fn analyze(inputs: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    heapvis().arg("analyze").arg(inputs).arg("-o").arg(out).arg("-q").args(extra).output().unwrap()
}

/// Every `.parquet` file visible under `out`, with its bytes.
fn visible_files(out: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut dirs = vec![out.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().map(|e| e.unwrap()) {
            let (p, name) = (e.path(), e.file_name().to_string_lossy().into_owned());
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                dirs.push(p);
            } else if name.ends_with(".parquet") {
                // A file replaced since the listing is no longer visible.
                match std::fs::read(&p) {
                    Ok(bytes) => files.push((p.clone(), bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => panic!("{}: {e}", p.display()),
                }
            }
        }
    }
    files.sort();
    files
}

/// Each file opens as Parquet and reads to the end.
fn assert_readable(files: &[(PathBuf, Vec<u8>)]) {
    for (p, bytes) in files {
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes.clone()))
                .unwrap_or_else(|e| panic!("{} is not readable: {e}", p.display()))
                .build()
                .unwrap();
        for batch in reader {
            batch.unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
    }
}

#[test]
fn a_failed_rerun_leaves_the_earlier_tables_as_they_were() {
    let c = capture(Board::Samd21, 40, 3, 0);
    let out = c.dir.path().join("out");
    assert!(analyze(c.dir.path(), &out, &[]).status.success());
    let before = visible_files(&out);
    let nowhere = c.dir.path().join("no/such/folder/m.gif");
    let failed = analyze(c.dir.path(), &out, &["--movie", nowhere.to_str().unwrap()]);
    assert_eq!(failed.status.code(), Some(2));
    assert_eq!(visible_files(&out), before, "the complete tables are untouched");
    // One that fails after it started writing (an unknown layout of frames is
    // not possible; a bad snapshot range is refused up front) changes nothing too.
    let failed = analyze(c.dir.path(), &out, &["--snapshots", "30..90"]);
    assert_eq!(failed.status.code(), Some(2));
    assert_eq!(visible_files(&out), before);
}

#[test]
fn another_capture_or_other_options_are_refused_and_overwrite_replaces() {
    let a = capture(Board::Samd21, 30, 3, 0);
    let b = capture(Board::Samd21, 30, 4, 0);
    let out = a.dir.path().join("out");
    assert!(analyze(a.dir.path(), &out, &[]).status.success());
    let before = visible_files(&out);
    for (inputs, extra, says) in [
        (b.dir.path(), &[][..], "another capture"),
        (a.dir.path(), &["--per-snapshot"][..], "of another set: snapshots, allocations"),
        (a.dir.path(), &["--layout", "files"][..], "(parts layout), where this run's are"),
    ] {
        let o = analyze(inputs, &out, extra);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(says) && err.contains("--overwrite"), "{err}");
        assert_eq!(visible_files(&out), before, "refused before anything was touched");
    }
    let o = analyze(b.dir.path(), &out, &["--overwrite", "--per-snapshot"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = duck("select count(*) from '{d}/blocks/*.parquet' where snapshot >= 0", &out);
    assert!(rows[0][0].as_u64().unwrap() > 0);
    let manifest = std::fs::read_to_string(out.join("heapvis-manifest.toml")).unwrap();
    assert!(manifest.contains(&b.inputs.ram.display().to_string()), "{manifest}");
    assert!(manifest.contains("complete = [[\n    0,\n    30,\n]]") || manifest.contains("[0, 30]"), "{manifest}");
}

/// Starts a run of a capture slow enough to be killed part way (frames, one thread).
fn slow_run(inputs: &Path, out: &Path, layout: &str) -> Child {
    heapvis()
        .arg("analyze")
        .arg(inputs)
        .arg("-o")
        .arg(out)
        .args(["-q", "--frames", "--threads", "1", "--layout", layout])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Starts slow runs until one is killed mid-run: after it registered (its
/// staging folder, named after its process, is there) and before it finished
/// (it died of the signal). Fixed delays cannot promise that on every machine.
fn kill_once_started(inputs: &Path, out: &Path, layout: &str) {
    use std::os::unix::process::ExitStatusExt;
    for _attempt in 0..10 {
        let mut child = slow_run(inputs, out, layout);
        let marker = format!("-{}-", child.id());
        while child.try_wait().unwrap().is_none() {
            let started =
                std::fs::read_dir(out).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains(&marker));
            if started {
                child.kill().unwrap();
                if child.wait().unwrap().signal() == Some(9) {
                    return;
                }
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    panic!("{layout}: no run of ten was caught between starting and finishing");
}

#[test]
fn a_run_killed_at_any_moment_leaves_only_complete_files_and_rerunning_completes_it() {
    let c = capture(Board::Samd21, 1200, 5, 0);
    for layout in ["files", "parts"] {
        let out = c.dir.path().join(format!("out-{layout}"));
        assert!(analyze(c.dir.path(), &out, &["--frames", "--layout", layout]).status.success());
        let finished = visible_files(&out);
        for delay_ms in [5u64, 40, 120, 300] {
            let mut child = slow_run(c.dir.path(), &out, layout);
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            let now = visible_files(&out);
            assert_readable(&now);
            assert_eq!(now, finished, "{layout}, killed after {delay_ms} ms: the complete result stands");
        }
        // The fixed delays may all miss on a fast machine; this kill lands mid-run.
        kill_once_started(c.dir.path(), &out, layout);
        assert_eq!(visible_files(&out), finished, "{layout}, killed mid-run: the complete result stands");
        // The manifest shows the killed run; the next run says so, clears it,
        // and completes.
        let o = heapvis().arg("analyze").arg(c.dir.path()).arg("-o").arg(&out).args(["--layout", layout]).output();
        let o = o.unwrap();
        assert!(o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("did not finish"), "{layout}: {err}");
        let manifest = std::fs::read_to_string(out.join("heapvis-manifest.toml")).unwrap();
        assert!(manifest.contains("in_progress = []"), "{manifest}");
        let staging = std::fs::read_dir(&out)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".heapvis-run-"));
        assert_eq!(staging.count(), 0, "{layout}: the dead runs' staging folders are gone");
    }
}

#[test]
fn concurrent_runs_of_one_range_never_show_a_half_written_table() {
    let c = capture(Board::Samd21, 400, 6, 0);
    let out = c.dir.path().join("out");
    for _trial in 0..4 {
        let runs: Vec<Child> = (0..3).map(|_| slow_run(c.dir.path(), &out, "parts")).collect();
        // While they run, what is visible is always readable.
        for _ in 0..10 {
            assert_readable(&visible_files(&out));
            std::thread::sleep(std::time::Duration::from_millis(15));
        }
        for mut r in runs {
            assert!(r.wait().unwrap().success());
        }
        let files = visible_files(&out);
        assert_readable(&files);
        assert_eq!(table_files(&out, "snapshots").len(), 1, "one run's parts, not several");
        let rows = duck("select count(*), count(distinct snapshot) from '{d}/snapshots/*.parquet'", &out);
        assert_eq!((rows[0][0].as_u64(), rows[0][1].as_u64()), (Some(400), Some(400)));
    }
}

#[test]
fn a_dump_truncated_while_it_is_read_ends_with_a_message_not_a_signal() {
    let c = capture(Board::Samd21, 1200, 7, 0);
    let out = c.dir.path().join("out");
    let ram = c.dir.path().join("ram.bin");
    let full = std::fs::read(&ram).unwrap();
    for delay_ms in [60u64, 150, 300] {
        std::fs::write(&ram, &full).unwrap();
        let child = heapvis()
            .arg("analyze")
            .arg(c.dir.path())
            .arg("-o")
            .arg(&out)
            .args(["-q", "--frames", "--threads", "1"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        std::fs::OpenOptions::new().write(true).open(&ram).unwrap().set_len(4096).unwrap();
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        // Finished before the cut: fine. Otherwise: exit 2 and the message.
        if o.status.success() {
            continue;
        }
        assert_eq!(o.status.code(), Some(2), "after {delay_ms} ms, not a bare signal: {err}");
        assert!(err.contains("ram.bin") && err.contains("shorter while it was read"), "{err}");
        assert!(table_files(&out, "snapshots").is_empty(), "nothing published");
    }
}
