//! Bad inputs give one clear line naming the file, what was expected and what was
//! found, and exit code 2; nothing panics.

use std::path::Path;
use std::process::{Command, Output};

use heapvis::synth::Board;

use crate::common::capture;

pub(crate) fn heapvis(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_heapvis"));
    for a in args {
        c.arg(a);
    }
    c.output().expect("run heapvis")
}

pub(crate) fn fatal(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "exit code 2 for a fatal error; stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

fn analyze(dir: &Path, out: &Path) -> Output {
    heapvis(&[&"analyze", &dir, &"-o", &out, &"-q"])
}

#[test]
fn missing_file_is_named() {
    let c = capture(Board::Samd21, 3, 1, 0);
    let out = heapvis(&[
        &"analyze",
        &c.inputs.ram,
        &c.dir.path().join("nope.bin"),
        &c.dir.path().join("firmware.map"),
        &"-o",
        &c.dir.path().join("o"),
    ]);
    let err = fatal(&out);
    assert!(err.contains("nope.bin") && err.contains("not found") && err.contains("flash image"), "{err}");
}

#[test]
fn map_without_a_needed_symbol_says_which_and_why() {
    let c = capture(Board::Samd21, 3, 1, 0);
    let map = std::fs::read_to_string(c.dir.path().join("firmware.map")).unwrap();
    let cut: String = map.lines().filter(|l| !l.contains("_estack")).map(|l| format!("{l}\n")).collect();
    std::fs::write(c.dir.path().join("firmware.map"), cut).unwrap();
    let err = fatal(&analyze(c.dir.path(), &c.dir.path().join("o")));
    assert!(err.contains("firmware.map") && err.contains("`_estack`") && err.contains("end of RAM"), "{err}");
}

#[test]
fn dump_shorter_than_one_snapshot() {
    let c = capture(Board::Samd21, 1, 1, 0);
    let f = std::fs::OpenOptions::new().write(true).open(&c.inputs.ram).unwrap();
    f.set_len(1000).unwrap();
    let err = fatal(&analyze(c.dir.path(), &c.dir.path().join("o")));
    assert!(err.contains("ram.bin") && err.contains("1000 bytes") && err.contains("32768"), "{err}");
}

#[test]
fn heap_symbol_outside_ram() {
    let c = capture(Board::Samd21, 2, 1, 0);
    let map = std::fs::read_to_string(c.dir.path().join("firmware.map")).unwrap();
    // Move the heap's input section past the end of RAM.
    let moved = map.replace("0x0000000020000050     0x5000", "0x0000000020007000     0x5000");
    assert_ne!(moved, map, "the test edits the heap line");
    std::fs::write(c.dir.path().join("firmware.map"), moved).unwrap();
    let err = fatal(&analyze(c.dir.path(), &c.dir.path().join("o")));
    assert!(err.contains("heap") && err.contains("outside RAM") && err.contains("0x20007000"), "{err}");
}

#[test]
fn trailing_partial_snapshot_is_reported_and_skipped() {
    let c = capture(Board::Samd21, 3, 1, 0);
    let mut bytes = std::fs::read(&c.inputs.ram).unwrap();
    bytes.extend_from_slice(&[0u8; 100]);
    std::fs::write(&c.inputs.ram, bytes).unwrap();
    let o = c.dir.path().join("o");
    let out = heapvis(&[&"analyze", &c.dir.path(), &"-o", &o]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("last 100 byte(s)") && err.contains("ignored"), "{err}");
    assert!(err.contains("3 snapshot(s), 0 not decoded, 0 suspect"), "{err}");
}

#[test]
fn a_profile_that_reads_past_ram_fails_each_snapshot_and_the_run_goes_on() {
    let c = capture(Board::Samd21, 4, 1, 0);
    let profile = c.dir.path().join("bad.toml");
    // readline_hist far past the end of RAM: every snapshot's read fails.
    std::fs::write(&profile, "[state]\nreadline_hist = 1000000\n").unwrap();
    let o = c.dir.path().join("o");
    let out = heapvis(&[&"analyze", &c.dir.path(), &"-o", &o, &"--profile", &profile]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("warning: snapshot").count(), 4, "{err}");
    assert_eq!(crate::common::table_files(&o, "snapshots").len(), 1);
}

#[test]
fn invalid_selection_and_profile_are_fatal() {
    let c = capture(Board::Samd21, 2, 1, 0);
    let err = fatal(&heapvis(&[&"analyze", &c.dir.path(), &"-o", &c.dir.path().join("o"), &"--snapshots", &"5"]));
    assert!(err.contains("`5`") && err.contains("2 snapshots, 0 to 1"), "{err}");
    assert!(!err.contains("0..2"), "never `0..2` for a dump whose last snapshot is 1: {err}");
    let p = c.dir.path().join("p.toml");
    std::fs::write(&p, "[heap]\nbytes_per_block = 3\n").unwrap();
    let err = fatal(&heapvis(&[&"analyze", &c.dir.path(), &"-o", &c.dir.path().join("o"), &"--profile", &p]));
    assert!(err.contains("p.toml") && err.contains("bytes_per_block"), "{err}");
}
