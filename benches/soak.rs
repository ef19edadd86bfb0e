//! End-to-end soak-test figures: large synthetic SAMD51 dumps (busy heaps of every
//! layout at 1 GiB, the light workload at 1 GiB and 10 GiB,
//! generated once and cached in `bench-data/`) analysed by the release binary with
//! the default tables (each snapshot decoded from the one before, and, to show
//! what that gains, every snapshot decoded whole) and with `--metrics-only`,
//! reporting MB/s of dump,
//! snapshots/s and peak RSS (best time and highest peak of three runs). Two
//! baselines are measured in the same run: a plain sequential read of the same
//! mmap (the memory-bandwidth limit here) and a plain `cat` of the file, and the
//! reference analyser's seconds
//! per snapshot, its analysis alone (measured on snapshots spread through the same
//! dump, start-up subtracted). Each dump is dropped from the page cache before
//! its runs, so that they read it as a dump from disk is read (see
//! `read_from_disk_next`).
//!
//! Run with `make bench` (which builds the release binary first). Set
//! `HEAPVIS_SOAK_SIZES=1` to skip the 10 GiB dump.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use heapvis::synth::{self, Board, Flavor, SynthConfig, Workload};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("target"));
    target.join("release/heapvis")
}

/// One benchmarked capture: a simulated board, its firmware and program, and
/// how it was captured.
struct Case {
    board: Board,
    flavor: Flavor,
    workload: Workload,
    /// A snapshot every `every` heap changes, after `start_after` of them.
    every: u64,
    start_after: u64,
    gib: u64,
}

impl Case {
    fn name(&self) -> String {
        let cadence = if self.every == 1 { "every change".to_string() } else { format!("every {}th", self.every) };
        format!("{} {:?} {:?}, {cadence}, {} GiB", self.board.name(), self.flavor, self.workload, self.gib)
    }

    /// The shipped profile that reads this layout (none: the default).
    fn profile(&self) -> Option<&'static str> {
        match self.flavor {
            Flavor::CircuitPython3 => None,
            Flavor::MicroPython => Some("micropython-1.2x-synthetic"),
            Flavor::MicroPython64 => Some("micropython-1.2x-64bit-synthetic"),
            Flavor::CircuitPython10 => Some("circuitpython-10-synthetic"),
        }
    }

    /// The capture, generated once and cached in `bench-data/`.
    fn dump(&self) -> PathBuf {
        let snapshots = self.gib * (1 << 30) / self.board.ram_bytes();
        let name = format!(
            "{}-{:?}-{:?}-e{}-s{}-{}g",
            self.board.name(),
            self.flavor,
            self.workload,
            self.every,
            self.start_after,
            self.gib
        );
        let dir = repo().join("bench-data").join(name.to_lowercase());
        let ram = dir.join("ram.bin");
        if std::fs::metadata(&ram).map(|m| m.len()).ok() != Some(snapshots * self.board.ram_bytes()) {
            eprintln!("generating {} ({snapshots} snapshots)...", dir.display());
            let mut config = SynthConfig::new(self.board, snapshots, 7);
            (config.flavor, config.workload) = (self.flavor, self.workload);
            (config.every, config.start_after) = (self.every, self.start_after);
            synth::write_dir(&config, &dir).expect("synthetic dump");
        }
        dir
    }
}

/// Drops `path` from the page cache, so that the runs read it as a dump coming
/// from disk. The generator's writes leave it cached in 4 KiB pages, which every
/// mapping must then map one by one; a file read from disk goes into the page
/// cache in large folios (2 MiB ones here, Linux 6.18 on ext4, and through
/// heapvis's huge-page advice), which a fault maps whole. The first of each
/// three runs below then reads the dump from disk, the others from the cache.
fn read_from_disk_next(path: &Path) {
    extern "C" {
        fn posix_fadvise(fd: std::ffi::c_int, offset: i64, len: i64, advice: std::ffi::c_int) -> std::ffi::c_int;
    }
    const POSIX_FADV_DONTNEED: std::ffi::c_int = 4;
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).expect("dump");
    // Only clean pages can be dropped.
    file.sync_all().expect("sync the dump");
    // SAFETY: posix_fadvise takes no pointers; the descriptor is open for the call.
    let _ = unsafe { posix_fadvise(file.as_raw_fd(), 0, 0, POSIX_FADV_DONTNEED) };
}

/// Runs a command to completion and returns its wall-clock seconds.
fn run(cmd: &mut Command) -> f64 {
    let start = Instant::now();
    let status = cmd.stdout(Stdio::null()).status().expect("spawn");
    assert!(status.success(), "{cmd:?} failed");
    start.elapsed().as_secs_f64()
}

/// Runs `heapvis analyze --stats` three times and returns the fastest time and the
/// highest peak RSS (MiB). The machine is shared: the best of three is the least
/// disturbed run, and the highest peak is the safe figure for memory.
fn analyze(dir: &Path, extra: &[&str], cores: Cores) -> Run {
    let runs: Vec<Run> = (0..3).map(|_| analyze_once(dir, extra, cores)).collect();
    let peak = runs.iter().map(|r| r.peak_rss).fold(0.0, f64::max);
    let fastest = runs.into_iter().min_by(|a, b| a.secs.total_cmp(&b.secs)).expect("three runs");
    Run { peak_rss: peak, ..fastest }
}

/// One `analyze` run's figures, from `--stats`.
struct Run {
    secs: f64,
    peak_rss: f64,
    /// CPU seconds in user space and in the kernel.
    user: f64,
    system: f64,
    /// Percent of snapshots decoded from the one before.
    focused: f64,
}

/// The cores a run may use.
#[derive(Clone, Copy, PartialEq)]
enum Cores {
    All,
    /// The first only (`taskset -c 0`): its worker and its writer thread share
    /// it, as on a one-core machine. With `--threads 1` alone, the writer
    /// thread still has the second core to itself.
    One,
}

/// One run. The figures come from the child itself (`VmHWM`, `/proc/self/stat`):
/// a parent's rusage would include the memory a forked child inherits before exec.
fn analyze_once(dir: &Path, extra: &[&str], cores: Cores) -> Run {
    let out = repo().join("bench-data/out");
    let _ = std::fs::remove_dir_all(&out);
    let start = Instant::now();
    let mut command = match cores {
        Cores::All => Command::new(binary()),
        Cores::One => {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(binary());
            c
        }
    };
    let o = command.arg("analyze").arg(dir).args(["-q", "--stats", "-o"]).arg(&out).args(extra).output().unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    // The number after `label` in the stats line.
    let figure = |label: &str| -> f64 {
        err.split(label)
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let focused = err.rsplit("system; ").next().and_then(|t| t.split('%').next()).and_then(|v| v.parse().ok());
    Run {
        secs,
        peak_rss: figure("peak RSS "),
        user: figure("CPU "),
        system: figure("user, "),
        focused: focused.unwrap_or(f64::NAN),
    }
}

/// Reads every byte of the dump through a fresh mmap, summing words; the best of
/// three (the first may still be filling the page cache).
fn sequential_read(path: &Path) -> f64 {
    (0..3).map(|_| sequential_read_once(path)).fold(0.0, f64::max)
}

/// `cat` of the dump into `/dev/null`, in bytes a second, the best of three:
/// the plain read the first figures were measured against. It copies
/// each page out of the page cache, so it runs slower than the mapped read.
fn cat_read(path: &Path) -> f64 {
    let bytes = std::fs::metadata(path).unwrap().len() as f64;
    let once = || bytes / run(Command::new("cat").arg(path));
    (0..3).map(|_| once()).fold(0.0, f64::max)
}

fn sequential_read_once(path: &Path) -> f64 {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: read-only private mapping of a file this process does not modify.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    // The advice heapvis gives its own mappings.
    let _ = map.advise(memmap2::Advice::HugePage);
    let _ = map.advise(memmap2::Advice::Sequential);
    let start = Instant::now();
    let mut sum = 0u64;
    for chunk in map.chunks_exact(8) {
        sum = sum.wrapping_add(u64::from_le_bytes(chunk.try_into().unwrap()));
    }
    std::hint::black_box(sum);
    map.len() as f64 / start.elapsed().as_secs_f64()
}

/// The reference's seconds per snapshot on the dump in `dir`, its analysis alone
/// (drawing stubbed out by the oracle harness), measured on `samples + 1`
/// snapshots spread evenly through that dump: the heaps heapvis is timed on. Its
/// cost grows with the objects in each heap, so snapshots of another capture (or
/// only the first ones of this) would not compare. The time for all of them less
/// the time for one, over `samples`, so the interpreter's start-up and the
/// script's set-up do not count; each time the best of three. Also returns the
/// plain time per snapshot with start-up included.
fn reference_seconds_per_snapshot(dir: &Path, board: Board, samples: u64) -> (f64, f64) {
    use std::io::{Read, Seek, SeekFrom};
    let size = board.ram_bytes();
    let mut ram = std::fs::File::open(dir.join("ram.bin")).unwrap();
    let total = ram.metadata().unwrap().len() / size;
    let mut picked = Vec::new();
    for k in 0..=samples {
        // The middle of each of `samples + 1` equal slices of the dump.
        let index = (2 * k + 1) * total / (2 * (samples + 1));
        let mut snapshot = vec![0u8; size as usize];
        ram.seek(SeekFrom::Start(index * size)).unwrap();
        ram.read_exact(&mut snapshot).unwrap();
        picked.push(snapshot);
    }
    let work = repo().join("bench-data/reference");
    std::fs::create_dir_all(&work).unwrap();
    let time_last = |n: usize| -> f64 {
        let tail = work.join("tail.bin");
        std::fs::write(&tail, picked[picked.len() - n..].concat()).unwrap();
        let once = || {
            run(Command::new("python3")
                .arg(repo().join("../shared/oracle/run_oracle.py"))
                .arg(&tail)
                .arg(dir.join("firmware.bin"))
                .arg(dir.join("firmware.map"))
                .arg(work.join("oracle"))
                .stderr(Stdio::null()))
        };
        (0..3).map(|_| once()).fold(f64::INFINITY, f64::min)
    };
    let one = time_last(1);
    let many = time_last(samples as usize + 1);
    ((many - one) / samples as f64, many / (samples + 1) as f64)
}

/// The captures benchmarked: busy heaps of every layout, snapshotted at every heap
/// change after 200,000 changes of warm-up (and one every 40th, as real captures
/// often are), then the light workload of earlier releases as one row.
fn cases(sizes: &[u64]) -> Vec<Case> {
    let busy = |flavor, every, start_after| Case {
        board: Board::Samd51,
        flavor,
        workload: Workload::Busy,
        every,
        start_after,
        gib: 1,
    };
    let mut cases = vec![
        busy(Flavor::MicroPython, 1, 200_000),
        busy(Flavor::MicroPython, 40, 0),
        busy(Flavor::CircuitPython3, 1, 200_000),
        busy(Flavor::MicroPython64, 1, 200_000),
        busy(Flavor::CircuitPython10, 1, 200_000),
    ];
    for &gib in sizes {
        let light = Case {
            board: Board::Samd51,
            flavor: Flavor::CircuitPython3,
            workload: Workload::Light,
            every: 1,
            start_after: 0,
            gib,
        };
        cases.push(light);
    }
    cases
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs benches without
    // it, and then this harness does nothing (it writes gigabytes). A name filter
    // that does not match "soak" skips it too.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| !a.starts_with('-') && !"soak".contains(a.as_str()))
    {
        println!("soak: skipped (run with `cargo bench --bench soak`)");
        return;
    }
    assert!(binary().is_file(), "build the release binary first: cargo build --release");
    let sizes: Vec<u64> = std::env::var("HEAPVIS_SOAK_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 10]);
    println!(
        "| dump | run | seconds | MB/s | snapshots/s | peak RSS | CPU per snapshot (user + kernel) | vs mmap read | vs reference per snapshot | decoded from the one before |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut references = Vec::new();
    for case in cases(&sizes) {
        let dir = case.dump();
        let name = case.name();
        // The reference reads CircuitPython 3.0's layout only.
        let reference = (case.flavor == Flavor::CircuitPython3).then(|| {
            let samples = if case.workload == Workload::Busy { 6 } else { 10 };
            let (reference, started) = reference_seconds_per_snapshot(&dir, case.board, samples);
            references.push(format!(
                "{name}: {:.1} ms per snapshot ({:.1} ms with the interpreter's start-up spread over {})",
                reference * 1e3,
                started * 1e3,
                samples + 1
            ));
            reference
        });
        let ram = dir.join("ram.bin");
        read_from_disk_next(&ram);
        let bytes = std::fs::metadata(&ram).unwrap().len() as f64;
        let snapshot = case.board.ram_bytes() as f64;
        let snapshots = bytes / snapshot;
        let read = sequential_read(&ram);
        println!(
            "| {name} | sequential mmap read | {:.2} | {:.0} | {:.0} | - | - | 1.00 | - | - |",
            bytes / read,
            read / 1e6,
            read / snapshot
        );
        let cat = cat_read(&ram);
        println!(
            "| {name} | plain `cat` | {:.2} | {:.0} | {:.0} | - | - | {:.2} | - | - |",
            bytes / cat,
            cat / 1e6,
            cat / snapshot,
            cat / read
        );
        let profile: Vec<&str> = case.profile().map(|p| vec!["--profile", p]).unwrap_or_default();
        let mut modes: Vec<(&str, Vec<&str>, Cores)> = vec![
            ("default tables", vec![], Cores::All),
            ("default tables, one core", vec!["--threads", "1"], Cores::One),
            ("default tables, no retention", vec!["--no-retention"], Cores::All),
            ("default tables, whole decodes", vec!["--full-decode"], Cores::All),
            ("metrics only", vec!["--metrics-only"], Cores::All),
        ];
        if case.workload == Workload::Busy && case.every == 1 {
            modes.push(("--per-snapshot", vec!["--per-snapshot"], Cores::All));
        }
        for (label, extra, cores) in modes {
            let args: Vec<&str> = profile.iter().chain(&extra).copied().collect();
            let Run { secs, peak_rss, user, system, focused } = analyze(&dir, &args, cores);
            let vs_reference = reference.map_or("-".to_string(), |r| format!("{:.0}×", r / (secs / snapshots)));
            println!(
                "| {name} | {label} | {secs:.2} | {:.0} | {:.0} | {peak_rss:.1} MiB | {:.0} + {:.0} µs | {:.2} | {vs_reference} | {focused:.0} % |",
                bytes / secs / 1e6,
                snapshots / secs,
                user / snapshots * 1e6,
                system / snapshots * 1e6,
                (bytes / secs) / read,
            );
        }
    }
    println!("reference, analysis alone, on snapshots spread through each dump:");
    for r in references {
        println!("- {r}");
    }
}
