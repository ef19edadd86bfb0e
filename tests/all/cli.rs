//! The command line itself: help text, exit codes, inspect's reference format.

use std::process::Command;

use heapvis::synth::Board;

use crate::common::capture;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_heapvis")).args(args).output().unwrap()
}

#[test]
fn help_lists_every_command() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for c in ["analyze", "inspect", "synth", "profile"] {
        assert!(help.contains(c), "{help}");
    }
    let out = run(&["analyze", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--snapshots") && help.contains("--metrics-only") && help.contains("--profile"));
}

#[test]
fn inspect_prints_the_reference_report_for_one_snapshot() {
    let c = capture(Board::Samd21, 60, 3, 0);
    let dir = c.dir.path().to_str().unwrap();
    let out = run(&["inspect", dir, "--snapshot", "59"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("mp_state_ctx at 0x2000"));
    assert_eq!(lines[1], "Total heap length: 20480");
    assert_eq!(lines[2], "ATB length: 312");
    assert_eq!(lines[3], "Total allocatable: 19968");
    assert_eq!(lines[4], "FTB length: 156");
    // Allocated and free bytes add up to the pool.
    let mut sum = 0;
    for l in &lines[5..lines.len() - 2] {
        let n: u64 = l.split_whitespace().nth(if l.starts_with("0x") { 1 } else { 0 }).unwrap().parse().unwrap();
        sum += n;
    }
    assert_eq!(sum, 19968);
    assert!(lines[lines.len() - 2].starts_with("Total free space: "));
    assert!(lines[lines.len() - 1].starts_with("Longest free space: "));
}

#[test]
fn profile_prints_toml_that_reads_back() {
    let out = run(&["profile"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let p = heapvis::profile::Profile::from_toml_str(&text).unwrap();
    assert_eq!(p, heapvis::profile::Profile::default());
}

#[test]
fn synth_rejects_an_unknown_board() {
    let out = run(&["synth", "/tmp/never", "--board", "esp32"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("samd21 or samd51"));
}
