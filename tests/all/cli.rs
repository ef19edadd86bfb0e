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

/// A leaking busy program on the small board runs out of memory for good,
/// as a leaking board does: `synth` says how many of the snapshots asked for
/// it wrote, and fails when that is none.
#[test]
fn synth_says_when_the_program_stops_before_the_snapshots_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let leaking = ["--board", "samd21", "--workload", "busy", "--leak", "--seed", "4", "--every", "2"];
    let out = run(&[&["synth", d, "--start-after", "20000", "--snapshots", "50"][..], &leaking[..]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("stopped after 0 of the 50 snapshot(s) asked for"), "{err}");
    // From the start, it gets some way: what it wrote is a capture, and said to be short.
    let out = run(&[&["synth", d, "--snapshots", "1500"][..], &leaking[..]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let written = std::fs::metadata(dir.path().join("ram.bin")).unwrap().len() / Board::Samd21.ram_bytes();
    assert!((1..1500).contains(&written), "{written}");
    assert!(err.contains(&format!("stopped after {written} of the 1500 snapshot(s) asked for")), "{err}");
    // With room to run, all of them, and nothing said.
    let ok = run(&["synth", d, "--board", "samd51", "--workload", "busy", "--snapshots", "50"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(!String::from_utf8_lossy(&ok.stderr).contains("stopped"));
}

#[test]
fn the_shipped_reference_profile_is_the_default() {
    let path = crate::common::repo().join("data/profiles/circuitpython-3.0-atmel-samd.toml");
    let p = heapvis::profile::Profile::from_toml_file(&path).unwrap();
    assert_eq!(p, heapvis::profile::Profile::default());
}

#[test]
fn inspect_mem_info_prints_the_gc_figures_and_the_block_map() {
    let c = capture(Board::Samd21, 40, 3, 0);
    let out = run(&["inspect", c.dir.path().to_str().unwrap(), "--snapshot", "39", "--mem-info"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("GC: total: 19968, used: "));
    assert!(lines[1].starts_with(" No. of 1-blocks: "));
    assert!(lines[2].starts_with("GC memory layout; from 2000"));
    // 1248 blocks: every map line but the last has 64 letters after "xxxxx: ".
    let map: Vec<&&str> = lines[3..].iter().filter(|l| !l.trim_start().starts_with('(')).collect();
    assert!(map.iter().all(|l| l.len() <= 7 + 64 && l.as_bytes()[5] == b':'));
}

#[test]
fn mem_info_of_a_current_micropython_uses_eight_digit_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let s = run(&["synth", d, "--layout", "micropython", "--snapshots", "30", "--seed", "5"]);
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let profile = crate::common::repo().join("data/profiles/micropython-1.2x-synthetic.toml");
    let out = run(&["inspect", d, "--mem-info", "--profile", profile.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(3).unwrap();
    assert!(line.len() > 10 && line[..8].chars().all(|c| c.is_ascii_hexdigit()) && &line[8..10] == ": ", "{line:?}");
    assert!(text.lines().nth(3).unwrap().starts_with("00000000: "));
}

/// A dump made with raw addresses (`dump binary memory ram.bin 0x20000000
/// 0x20008000`) is read with `--ram-start`/`--ram-end`, addresses or symbols, to
/// the same tables; a symbol the map lacks is named in the error.
#[test]
fn ram_bounds_can_be_given_as_addresses_or_symbols() {
    let c = capture(Board::Samd21, 40, 9, 0);
    let dir = c.dir.path().to_str().unwrap();
    let (a, b, e) = (c.dir.path().join("a"), c.dir.path().join("b"), c.dir.path().join("e"));
    let out = run(&["analyze", dir, "-o", a.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let args = ["--ram-start", "0x2000_0000", "--ram-end", "_estack"];
    let out = run(&[&["analyze", dir, "-o", b.to_str().unwrap(), "-q"][..], &args[..]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    crate::common::assert_same_tables(&a, &b, &["snapshots", "allocations", "edge_history"], "--ram-start/--ram-end");
    let out = run(&["analyze", dir, "-o", e.to_str().unwrap(), "-q", "--ram-end", "_no_such_symbol"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("_no_such_symbol") && err.contains("end of RAM"), "{err}");
}

#[test]
fn layout_files_writes_one_file_per_table_with_the_same_rows_as_the_parts() {
    let c = capture(Board::Samd21, 30, 9, 0);
    let dir = c.dir.path().to_str().unwrap();
    let (parts, files) = (c.dir.path().join("parts"), c.dir.path().join("files"));
    let out = run(&["analyze", dir, "-o", parts.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["analyze", dir, "-o", files.to_str().unwrap(), "-q", "--layout", "files"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for t in ["snapshots", "allocations", "edge_history", "qstr_history", "type_histogram", "free_run_histogram"] {
        assert!(files.join(format!("{t}.parquet")).is_file(), "{t}");
        assert!(!files.join(t).exists(), "{t}: no folder in the files layout");
        assert!(parts.join(t).join("part-0000000000-0000000030.parquet").is_file(), "{t}");
        // One part and one file: the same rows, so the same bytes.
        let a = std::fs::read(parts.join(t).join("part-0000000000-0000000030.parquet")).unwrap();
        assert!(a == std::fs::read(files.join(format!("{t}.parquet"))).unwrap(), "{t}");
    }
    assert!(parts.join("symbols.parquet").is_file() && files.join("symbols.parquet").is_file());
    let stray: Vec<_> = std::fs::read_dir(&parts).unwrap().map(|e| e.unwrap().file_name()).collect();
    // Hidden names are temporary, but for the folder's lock file.
    let temporary = |n: &&std::ffi::OsString| n.to_str().unwrap().starts_with('.') && *n != ".heapvis.lock";
    assert!(!stray.iter().any(|n| temporary(&n)), "no temporary file left: {stray:?}");
    let out = run(&["analyze", dir, "-o", files.to_str().unwrap(), "-q", "--layout", "tables"]);
    assert_eq!(out.status.code(), Some(2), "an unknown layout is a usage error");
}

#[test]
fn stats_report_the_run_time_rate_memory_and_cpu() {
    let c = capture(Board::Samd21, 20, 9, 0);
    let dir = c.dir.path().to_str().unwrap();
    let o = c.dir.path().join("o");
    let out = run(&["analyze", dir, "-o", o.to_str().unwrap(), "-q", "--stats"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.starts_with("stats: ")).unwrap_or_else(|| panic!("no stats line: {err}"));
    assert!(line.starts_with(&format!("stats: 20 snapshot(s), {} bytes in ", 20 * 32768)), "{line}");
    let after = |label: &str| -> f64 {
        let v = line.split(label).nth(1).and_then(|t| t.split_whitespace().next());
        v.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no figure after {label:?}: {line}"))
    };
    assert!(after("peak RSS ") > 1.0, "{line}");
    let (user, system) = (after("CPU "), after("user, "));
    assert!(user >= 0.0 && system >= 0.0 && user + system < 60.0, "{line}");
    assert!(line.contains(" MB/s, ") && line.contains(" snapshots/s, "), "{line}");
    // One run of 20 snapshots: the first decoded whole, some of the others from
    // the one before (a program starting up interns qstrs, which takes whole
    // decodes); none with --full-decode.
    let focused = |line: &str| -> f64 {
        let v = line.split("; ").nth(1).and_then(|t| t.strip_suffix("% decoded from the snapshot before"));
        v.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no share decoded from the one before: {line}"))
    };
    let share = focused(line);
    assert!(share > 0.0 && share <= 95.0, "{line}");
    let out = run(&["analyze", dir, "-o", o.to_str().unwrap(), "-q", "--stats", "--full-decode"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.starts_with("stats: ")).unwrap_or_else(|| panic!("no stats line: {err}"));
    assert_eq!(focused(line), 0.0, "{line}");
}

#[test]
fn a_range_past_the_end_is_cut_with_a_warning_naming_the_last_snapshot() {
    let c = capture(Board::Samd21, 30, 2, 0);
    let dir = c.dir.path().to_str().unwrap();
    let out_dir = c.dir.path().join("out");
    let out = run(&["analyze", dir, "-o", out_dir.to_str().unwrap(), "--snapshots", "20..90"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warning: --snapshots 20..90: the dump holds 30 snapshots, 0 to 29"), "{err}");
    assert!(err.contains("taking 20..30 (to snapshot 29)") && !err.contains("0..30 snapshots"), "{err}");
    let rows = crate::common::duck("select min(snapshot), max(snapshot) from '{d}/snapshots/*.parquet'", &out_dir);
    assert_eq!((rows[0][0].as_i64(), rows[0][1].as_i64()), (Some(20), Some(29)));
    // One that starts past the end has nothing to take.
    let out = run(&["analyze", dir, "-o", out_dir.to_str().unwrap(), "--snapshots", "30..40"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("30..40") && err.contains("30 snapshots, 0 to 29 (`last`)"), "{err}");
}

#[test]
fn the_end_of_a_run_lists_everything_written_with_paths() {
    let c = capture(Board::Samd21, 12, 2, 0);
    let dir = c.dir.path().to_str().unwrap();
    let (out_dir, movie) = (c.dir.path().join("out"), c.dir.path().join("m.gif"));
    let args = ["analyze", dir, "-o", out_dir.to_str().unwrap(), "--frames", "--frame-step", "5", "--movie"];
    let out = run(&[&args[..], &[movie.to_str().unwrap()]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let tables = format!(
        "tables in {}: snapshots, allocations, edge_history, qstr_history, type_histogram, free_run_histogram, retainers, \
         symbols ({} Parquet file(s))",
        out_dir.display(),
        crate::common::DECODED_TABLES.iter().map(|t| crate::common::table_files(&out_dir, t).len()).sum::<usize>() + 1
    );
    assert!(err.contains(&tables), "{err}");
    assert!(err.contains(&format!("frames in {}: 3 PNG file(s)", out_dir.join("frames").display())), "{err}");
    assert!(err.contains(&format!("movie: {}", movie.display())), "{err}");
    assert_eq!(std::fs::read_dir(out_dir.join("frames")).unwrap().count(), 3);
}

#[test]
fn shipped_profiles_are_listed_and_taken_by_name() {
    let out = run(&["profile", "--list"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ')).collect();
    let shipped: Vec<String> = std::fs::read_dir(crate::common::repo().join("data/profiles"))
        .unwrap()
        .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), shipped.len(), "{text}");
    for n in &shipped {
        assert!(names.contains(&n.as_str()), "{n} in {text}");
        // And `profile --profile NAME` prints that file's profile.
        let out = run(&["profile", "--profile", n]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let printed = heapvis::profile::Profile::from_toml_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
        let file = crate::common::repo().join(format!("data/profiles/{n}.toml"));
        assert_eq!(printed, heapvis::profile::Profile::from_toml_file(&file).unwrap());
    }
    assert!(text.contains("    A real build: MicroPython at commit 1c3c201149"), "{text}");
}
