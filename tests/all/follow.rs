//! `analyze --follow`: a dump appended to while it is read, in bursts with
//! partial snapshots and pauses (`tests/support/append_capture.py`, a process
//! of its own, as gdb is), must end in the same bytes as one batch run of the
//! whole file; killed and started again, too; and a reader querying the folder
//! meanwhile never fails nor sees a snapshot twice.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use heapvis::pipeline::{AnalyzeOptions, Silent};
use heapvis::synth::{self, Board, SynthConfig};

use crate::common::{assert_same_tables, python, repo, table_files, DECODED_TABLES};

/// A busy, leaking SAMD21 capture with its sidecar and the mark phase's
/// snapshots, in `dir/src`, and `dir/live` holding only its firmware files.
fn source(snapshots: u64, seed: u64) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (src, live) = (dir.path().join("src"), dir.path().join("live"));
    let mut config = SynthConfig::new(Board::Samd21, snapshots, seed);
    (config.workload, config.every, config.leak, config.events, config.log_marks) =
        (synth::Workload::Busy, 2, true, true, true);
    synth::write_dir(&config, &src).unwrap();
    std::fs::create_dir_all(&live).unwrap();
    for f in ["firmware.bin", "firmware.map"] {
        std::fs::copy(src.join(f), live.join(f)).unwrap();
    }
    (dir, src, live)
}

/// Starts appending `src`'s capture to `live`'s.
fn writer(src: &Path, live: &Path, seed: u64) -> Child {
    Command::new(python())
        .arg(repo().join("tests/support/append_capture.py"))
        .args([src, live])
        .args([seed.to_string(), "32768".to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("python3 runs the capture writer")
}

fn follow(live: &Path, out: &Path, idle: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_heapvis"));
    c.args(["analyze", "--follow", "--publish-every", "20ms", "-o"]).arg(out).arg(live);
    if let Some(idle) = idle {
        c.args(["--idle", idle]);
    }
    c
}

/// The tables of one batch run over `src`'s whole dump.
fn batch(src: &Path, out: &Path, per_snapshot: bool) {
    let inputs = heapvis::firmware::InputPaths::resolve(&[src.to_path_buf()]).unwrap();
    let s = heapvis::pipeline::Session::open_with(&inputs, None).unwrap();
    let tables = if per_snapshot { heapvis::tables::TableSet::ALL } else { heapvis::tables::TableSet::DEFAULT };
    s.analyze(out, &AnalyzeOptions { tables, ..Default::default() }, &Silent).unwrap();
}

fn tables_of(out: &Path) -> Vec<&'static str> {
    DECODED_TABLES.iter().copied().chain(["symbols"]).filter(|t| !table_files(out, t).is_empty()).collect()
}

/// How many publishes the follow's last line says it made.
fn publishes(stderr: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().find(|l| l.starts_with("followed for")).unwrap_or_else(|| panic!("{text}"));
    line.split(" published in ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap()
}

#[test]
fn following_a_growing_dump_ends_in_one_batch_runs_tables() {
    for (seed, per_snapshot) in [(3, false), (4, true)] {
        let (dir, src, live) = source(if per_snapshot { 160 } else { 300 }, seed);
        let mut w = writer(&src, &live, seed);
        let out = dir.path().join("out");
        let mut cmd = follow(&live, &out, Some("2"));
        if per_snapshot {
            cmd.arg("--per-snapshot");
        }
        let run = cmd.output().unwrap();
        assert!(w.wait().unwrap().success());
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        assert!(publishes(&run.stderr) > 2, "the dump grew while followed: {}", String::from_utf8_lossy(&run.stderr));
        let whole = dir.path().join("batch");
        batch(&live, &whole, per_snapshot);
        assert_same_tables(&whole, &out, &tables_of(&whole), "a followed dump and one batch run");
    }
}

#[test]
fn a_follow_killed_and_started_again_ends_in_the_same_tables() {
    let (dir, src, live) = source(300, 11);
    let mut w = writer(&src, &live, 11);
    let out = dir.path().join("out");
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for k in 0..5 {
        let mut run = follow(&live, &out, None).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        if k == 2 {
            // However slow the machine, one of the runs publishes before it dies.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !heapvis::outdir::Contents::read(&out).is_ok_and(|c| !c.complete.is_empty()) {
                assert!(Instant::now() < deadline, "a run published");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(150 + rng % 700));
        run.kill().unwrap(); // SIGKILL
        run.wait().unwrap();
    }
    assert!(w.wait().unwrap().success());
    // Killed once more after publishing all: the next run has nothing to
    // publish, and still rewrites the shards.
    let mut run = follow(&live, &out, None).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !heapvis::outdir::Contents::read(&out).is_ok_and(|c| c.complete.iter().any(|r| r.end == 300)) {
        assert!(Instant::now() < deadline, "the run published every snapshot");
        std::thread::sleep(Duration::from_millis(10));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    let last = follow(&live, &out, Some("1")).output().unwrap();
    let text = String::from_utf8_lossy(&last.stderr);
    assert!(last.status.success(), "{text}");
    let resumed: u64 = text.split("resumed at ").nth(1).and_then(|r| r.split(')').next()).unwrap().parse().unwrap();
    assert_eq!(resumed, 300, "the last run resumed where the killed ones had published: {text}");
    let whole = dir.path().join("batch");
    batch(&live, &whole, false);
    assert_same_tables(&whole, &out, &tables_of(&whole), "a follow killed five times and one batch run");
}

#[test]
fn shards_of_separate_runs_rewrite_as_one_run() {
    // Shards cut by `--snapshots` (each decodes the snapshot after it, so its
    // lifetimes end `continues` or ended there), rewritten without decoding;
    // then with snapshots that cannot be decoded at and beside the cuts.
    for broken in [&[][..], &[96, 97, 149, 200]] {
        shards_rewrite_as_one_run(broken);
    }
}

fn shards_rewrite_as_one_run(broken: &[u64]) {
    let (dir, src, _) = source(300, 7);
    let mut ram = std::fs::read(src.join("ram.bin")).unwrap();
    for &b in broken {
        ram[(b * 32768) as usize..((b + 1) * 32768) as usize].fill(0xa5);
    }
    std::fs::write(src.join("ram.bin"), ram).unwrap();
    let inputs = heapvis::firmware::InputPaths::resolve(std::slice::from_ref(&src)).unwrap();
    let s = heapvis::pipeline::Session::open_with(&inputs, None).unwrap();
    let out = dir.path().join("shards");
    for range in ["0..97", "150..201", "97..150", "201..300"] {
        let options = AnalyzeOptions { selection: range.parse().unwrap(), ..Default::default() };
        s.analyze(&out, &options, &Silent).unwrap();
    }
    s.compact(&out, &AnalyzeOptions::default()).unwrap();
    let whole = dir.path().join("batch");
    batch(&src, &whole, false);
    let failed = crate::common::duck("select count(*) from '{d}/snapshots/*.parquet' where status != 'ok'", &whole);
    assert_eq!(failed[0][0], broken.len() as i64, "the broken snapshots are not decoded");
    assert_same_tables(
        &whole,
        &out,
        &tables_of(&whole),
        &format!("three shards rewritten, and one run; broken {broken:?}"),
    );
}

#[test]
fn a_reader_during_the_run_never_fails_nor_sees_a_snapshot_twice() {
    let (dir, src, live) = source(300, 5);
    let out = dir.path().join("out");
    let page = dir.path().join("report.html");
    let mut command = follow(&live, &out, None);
    command.arg("--report").arg(&page).stdout(Stdio::null()).stderr(Stdio::null());
    let mut run = command.spawn().unwrap();
    let mut w = writer(&src, &live, 5);
    // The reader: every table's snapshots, in a loop, until the writer is done
    // and the folder holds them all.
    let script = r#"
import sys, time, os, duckdb, polars as pl
out, total = sys.argv[1], int(sys.argv[2])
queries = seen = 0
last = -1
deadline = time.time() + 120
while time.time() < deadline:
    # Nothing to query before the first publish; `snapshots` is committed last.
    if not os.path.isdir(os.path.join(out, "snapshots")):
        time.sleep(0.01); continue
    n, distinct, top, busy = duckdb.sql(f"select count(*), count(distinct snapshot), max(snapshot), count(*) filter (allocation_count > 0) from '{out}/snapshots/*.parquet'").fetchall()[0]
    assert n == distinct, f"a snapshot twice: {n} rows, {distinct} snapshots"
    assert top is None or n == top + 1, f"a gap: {n} rows up to {top}"
    assert n >= last, f"went back from {last} to {n}"
    # Read after `snapshots` (committed last), every table has its snapshots' rows.
    (k,) = duckdb.sql(f"select count(distinct snapshot) from '{out}/type_histogram/*.parquet' where snapshot < {n}").fetchall()[0]
    assert k == busy, f"type_histogram holds {k} of the {busy} snapshots published with allocations"
    rows = pl.read_parquet(f"{out}/snapshots/*.parquet")
    assert rows.height >= n and rows["snapshot"].n_unique() == rows.height, "Polars: a snapshot twice"
    (twice,) = duckdb.sql(f"select count(*) - count(distinct (address, first_snapshot)) from '{out}/allocations/*.parquet'").fetchall()[0]
    assert twice == 0, f"{twice} lifetime piece(s) twice"
    last = n
    queries += 1
    if n == total:
        break
print(queries, last)
"#;
    let reader = Command::new(python()).args(["-c", script]).arg(&out).arg("300").output().unwrap();
    assert!(w.wait().unwrap().success());
    let said = String::from_utf8_lossy(&reader.stdout);
    assert!(reader.status.success(), "the reader failed: {}{said}", String::from_utf8_lossy(&reader.stderr));
    let (queries, last) = said.trim().split_once(' ').unwrap();
    assert_eq!(last, "300", "the reader saw every snapshot published");
    assert!(queries.parse::<u64>().unwrap() > 5, "{said}");
    // The report while live reloads itself (refreshed at most every 5 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&page).is_ok_and(|p| p.contains("snapshots 0–299")) {
        assert!(Instant::now() < deadline, "the live report reached every snapshot");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(std::fs::read_to_string(&page).unwrap().contains(r#"<meta http-equiv="refresh" content="5">"#));
    // Ctrl-C: the run rewrites its shards and stops cleanly.
    let started = Instant::now();
    unsafe_sigint(run.id());
    let status = run.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let last = std::fs::read_to_string(&page).unwrap();
    assert!(last.contains("snapshots 0–299") && !last.contains("http-equiv"), "the last report is not live");
    let whole = dir.path().join("batch");
    batch(&live, &whole, false);
    assert_same_tables(&whole, &out, &tables_of(&whole), "a followed dump stopped by Ctrl-C");
}

/// Sends SIGINT (what Ctrl-C sends) to process `pid`.
fn unsafe_sigint(pid: u32) {
    let ok = Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap();
    assert!(ok.success());
}

#[test]
fn frames_and_the_movie_are_rendered_as_the_dump_grows() {
    let (dir, src, live) = source(120, 8);
    let mut w = writer(&src, &live, 8);
    let out = dir.path().join("out");
    let movie = dir.path().join("heap.gif");
    let run = follow(&live, &out, Some("2")).args(["--frames", "--frame-step", "3", "--movie"]).arg(&movie).output();
    let run = run.unwrap();
    assert!(w.wait().unwrap().success());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(publishes(&run.stderr) > 2);
    // Every third snapshot from 0, whatever each publish's range, as one run renders them.
    let mut frames: Vec<String> = std::fs::read_dir(out.join("frames"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    frames.sort();
    let expected: Vec<String> = (0..120).step_by(3).map(|i| format!("heap_layout{i:06}.png")).collect();
    assert_eq!(frames, expected);
    // One movie over every publish, a frame per frame file, all of one size.
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    let mut decoder = options.read_info(std::fs::File::open(&movie).unwrap()).unwrap();
    let (width, height) = (decoder.width(), decoder.height());
    let mut count = 0;
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        assert_eq!((frame.width, frame.height), (width, height));
        count += 1;
    }
    assert_eq!(count, expected.len());
    let png =
        png::Decoder::new(std::io::BufReader::new(std::fs::File::open(out.join("frames").join(&frames[0])).unwrap()));
    let info = png.read_info().unwrap();
    assert_eq!((info.info().width, info.info().height), (width as u32, height as u32));
    // An APNG must know its frame count before its first frame: refused.
    let apng = follow(&live, &dir.path().join("o2"), Some("1")).arg("--movie").arg(dir.path().join("m.png")).output();
    let apng = apng.unwrap();
    assert!(!apng.status.success());
    assert!(String::from_utf8_lossy(&apng.stderr).contains("frame count"), "{}", String::from_utf8_lossy(&apng.stderr));
}

#[test]
fn shards_of_every_layout_with_random_changes_rewrite_as_one_run() {
    // Pointers, types, tables and texts changed at random between snapshots
    // (`incremental::mutated_capture`): allocations whose first word names
    // another type now and then, so which sighting goes on decides the pieces.
    for (k, (flavor, workload, board)) in crate::incremental::LAYOUTS.into_iter().enumerate() {
        let dir = crate::incremental::mutated_capture(flavor, workload, board, 200, k as u64 + 1, false);
        let inputs = heapvis::firmware::InputPaths::resolve(&[dir.path().to_path_buf()]).unwrap();
        let s = heapvis::pipeline::Session::open_with(&inputs, Some(flavor.profile())).unwrap();
        let n = s.dump.count();
        let out = dir.path().join("shards");
        for range in [format!("{}..{n}", n / 2), format!("0..{}", n / 3), format!("{}..{}", n / 3, n / 2)] {
            let options = AnalyzeOptions { selection: range.parse().unwrap(), ..Default::default() };
            s.analyze(&out, &options, &Silent).unwrap();
        }
        s.compact(&out, &AnalyzeOptions::default()).unwrap();
        let whole = dir.path().join("batch");
        s.analyze(&whole, &AnalyzeOptions::default(), &Silent).unwrap();
        assert_same_tables(&whole, &out, &tables_of(&whole), &format!("{flavor:?}: three shards and one run"));
    }
}

#[test]
fn a_rewrite_cut_short_is_finished_by_the_next_run() {
    // The state a kill leaves in the middle of the final rewrite: some tables'
    // folders already swapped for the rewrite (and marked), the others still
    // shards, the manifest still listing the shards.
    let (dir, src, _) = source(200, 13);
    let inputs = heapvis::firmware::InputPaths::resolve(std::slice::from_ref(&src)).unwrap();
    let s = heapvis::pipeline::Session::open_with(&inputs, None).unwrap();
    let out = src.join("out");
    let shards = [0..70, 70..140, 140..200];
    for r in &shards {
        let options =
            AnalyzeOptions { selection: format!("{}..{}", r.start, r.end).parse().unwrap(), ..Default::default() };
        s.analyze(&out, &options, &Silent).unwrap();
    }
    let rewritten = dir.path().join("rewritten");
    copy_dir(&out, &rewritten);
    s.compact(&rewritten, &AnalyzeOptions::default()).unwrap();
    for t in ["snapshots", "allocations", "retainers"] {
        std::fs::remove_dir_all(out.join(t)).unwrap();
        copy_dir(&rewritten.join(t), &out.join(t));
        std::fs::write(
            out.join(t).join(heapvis::tables::compact::MARK_FILE),
            heapvis::tables::compact::mark_of(&shards),
        )
        .unwrap();
    }
    // The next run, with nothing new to publish, finishes the rewrite.
    let run = follow(&src, &out, Some("0.2")).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let whole = dir.path().join("batch");
    batch(&src, &whole, false);
    assert_same_tables(&whole, &out, &tables_of(&whole), "a rewrite cut short, then finished");
    assert!(!heapvis::tables::compact::interrupted(&out), "no mark is left");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
