//! End-to-end soak-test figures: large synthetic SAMD51 dumps (1 GiB and 10 GiB,
//! generated once and cached in `bench-data/`) analysed by the release binary with
//! the default tables and with `--metrics-only`, reporting MB/s of dump,
//! snapshots/s and peak RSS. Two baselines are measured in the same run: a plain
//! sequential read of the same mmap (the memory-bandwidth limit here), and the
//! reference analyser on a few snapshots (seconds per snapshot, extrapolated).
//!
//! Run with `make bench` (which builds the release binary first). Set
//! `HEAPVIS_SOAK_SIZES=1` to skip the 10 GiB dump.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use heapvis::synth::{self, Board, SynthConfig};

const SNAPSHOT: u64 = 192 * 1024;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("target"));
    target.join("release/heapvis")
}

/// A cached synthetic capture of about `gib` GiB.
fn dump(gib: u64) -> PathBuf {
    let snapshots = gib * (1 << 30) / SNAPSHOT;
    let dir = repo().join(format!("bench-data/samd51-{gib}g"));
    let ram = dir.join("ram.bin");
    if std::fs::metadata(&ram).map(|m| m.len()).ok() != Some(snapshots * SNAPSHOT) {
        eprintln!("generating {} ({snapshots} snapshots)...", dir.display());
        synth::write_dir(&SynthConfig::new(Board::Samd51, snapshots, 7), &dir).expect("synthetic dump");
    }
    dir
}

/// Runs a command and returns (seconds, peak RSS in MiB) from wait4's rusage.
fn run(cmd: &mut Command) -> (f64, f64) {
    let start = Instant::now();
    let child = cmd.stdout(Stdio::null()).spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, and both pointers are to live locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{cmd:?} failed");
    (start.elapsed().as_secs_f64(), usage.ru_maxrss as f64 / 1024.0)
}

/// Reads every byte of the dump through a fresh mmap, summing words.
fn sequential_read(path: &Path) -> f64 {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: read-only private mapping of a file this process does not modify.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let _ = map.advise(memmap2::Advice::Sequential);
    let start = Instant::now();
    let mut sum = 0u64;
    for chunk in map.chunks_exact(8) {
        sum = sum.wrapping_add(u64::from_le_bytes(chunk.try_into().unwrap()));
    }
    std::hint::black_box(sum);
    map.len() as f64 / start.elapsed().as_secs_f64()
}

/// Seconds per snapshot of the reference (drawing stubbed out by the oracle harness).
fn reference_seconds_per_snapshot(board: Board, snapshots: u64) -> f64 {
    let dir = repo().join(format!("bench-data/reference-{}", board.name()));
    if !dir.join("ram.bin").is_file() {
        synth::write_dir(&SynthConfig::new(board, 400, 7), &dir).unwrap();
    }
    // The last `snapshots` snapshots of the capture: a heap in its steady state.
    let size = board.ram_bytes();
    let ram = std::fs::read(dir.join("ram.bin")).unwrap();
    let tail = dir.join("tail.bin");
    std::fs::write(&tail, &ram[ram.len() - (snapshots * size) as usize..]).unwrap();
    let out = dir.join("oracle");
    let (secs, _) = run(Command::new("python3")
        .arg(repo().join("../shared/oracle/run_oracle.py"))
        .arg(&tail)
        .arg(dir.join("firmware.bin"))
        .arg(dir.join("firmware.map"))
        .arg(&out)
        .stderr(Stdio::null()));
    secs / snapshots as f64
}

fn main() {
    // `cargo bench` passes --bench; a filter that does not name us means skip.
    if std::env::args().skip(1).any(|a| !a.starts_with('-') && !"soak".contains(a.as_str())) {
        return;
    }
    assert!(binary().is_file(), "build the release binary first: cargo build --release");
    let sizes: Vec<u64> = std::env::var("HEAPVIS_SOAK_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 10]);
    let ref51 = reference_seconds_per_snapshot(Board::Samd51, 5);
    let ref21 = reference_seconds_per_snapshot(Board::Samd21, 20);
    println!("reference: {:.1} ms per SAMD21 snapshot, {:.1} ms per SAMD51 snapshot", ref21 * 1e3, ref51 * 1e3);
    println!("| dump | run | seconds | MB/s | snapshots/s | peak RSS | vs mmap read | vs reference |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for gib in sizes {
        let dir = dump(gib);
        let ram = dir.join("ram.bin");
        let bytes = std::fs::metadata(&ram).unwrap().len() as f64;
        let snapshots = bytes / SNAPSHOT as f64;
        let read = sequential_read(&ram);
        println!(
            "| {gib} GiB | sequential mmap read | {:.2} | {:.0} | {:.0} | - | 1.00 | - |",
            bytes / read,
            read / 1e6,
            read / SNAPSHOT as f64
        );
        for (label, extra) in [("default tables", &[][..]), ("metrics only", &["--metrics-only"][..])] {
            let out = repo().join("bench-data/out");
            let _ = std::fs::remove_dir_all(&out);
            let (secs, rss) =
                run(Command::new(binary()).arg("analyze").arg(&dir).arg("-q").arg("-o").arg(&out).args(extra));
            let per = secs / snapshots;
            println!(
                "| {gib} GiB | {label} | {secs:.2} | {:.0} | {:.0} | {rss:.1} MiB | {:.2} | {:.0}× |",
                bytes / secs / 1e6,
                snapshots / secs,
                (bytes / secs) / read,
                ref51 / per
            );
        }
    }
}
