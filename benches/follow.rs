//! Latency of `analyze --follow`: how long after a snapshot is appended to the
//! dump it can be queried. A busy SAMD51 MicroPython capture (after 200,000
//! heap changes, with its sidecar; generated once into `bench-data/`) is
//! appended snapshot by snapshot, RAM then sidecar line as the capture script
//! writes them, at a steady rate, while `heapvis analyze --follow
//! --publish-every 1s` runs on it. A reader polls the output folder every 5 ms
//! and notes when each snapshot first appears in the `snapshots` table (the
//! table committed last). Prints the latency's median, 95th percentile and
//! maximum, and the share within 2 s.
//!
//! Run with `cargo bench --bench follow` after `cargo build --release`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use heapvis::synth::{self, Board, Flavor, SynthConfig, Workload};

/// Snapshots appended, and how many a second.
const SNAPSHOTS: u64 = 400;
const RATE: f64 = 20.0;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("target"));
    target.join("release/heapvis")
}

/// The capture appended from, made once.
fn source() -> PathBuf {
    let dir = repo().join("bench-data/samd51-micropython-busy-follow");
    if !dir.join("generated").is_file() {
        let mut config = SynthConfig::new(Board::Samd51, SNAPSHOTS, 5);
        (config.flavor, config.workload, config.events, config.start_after) =
            (Flavor::MicroPython, Workload::Busy, true, 200_000);
        synth::write_dir(&config, &dir).expect("synthetic dump");
        std::fs::write(dir.join("generated"), "").expect("marker");
    }
    dir
}

/// Rows of the `snapshots` table in `out` now, from the part files' footers
/// (each read once: a published part never changes).
fn published(out: &Path, seen: &mut HashMap<PathBuf, u64>) -> u64 {
    let Ok(entries) = std::fs::read_dir(out.join("snapshots")) else { return 0 };
    let mut total = 0;
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "parquet") {
            continue;
        }
        let rows = match seen.get(&path) {
            Some(n) => *n,
            None => {
                let Ok(file) = std::fs::File::open(&path) else { continue };
                let Ok(reader) = parquet::file::reader::SerializedFileReader::new(file) else { continue };
                use parquet::file::reader::FileReader;
                let n = reader.metadata().file_metadata().num_rows() as u64;
                seen.insert(path, n);
                n
            }
        };
        total += rows;
    }
    // A part replaced by the final rewrite is counted once.
    seen.retain(|p, _| p.exists());
    total
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("follow: skipped (run with `cargo bench --bench follow`)");
        return;
    }
    assert!(binary().is_file(), "build the release binary first: cargo build --release");
    let src = source();
    let live = repo().join("bench-data/follow-live");
    let _ = std::fs::remove_dir_all(&live);
    std::fs::create_dir_all(&live).unwrap();
    for f in ["firmware.bin", "firmware.map"] {
        std::fs::copy(src.join(f), live.join(f)).unwrap();
    }
    let ram = std::fs::read(src.join("ram.bin")).unwrap();
    let lines: Vec<String> =
        std::fs::read_to_string(src.join("ram.events.jsonl")).unwrap().lines().map(|l| format!("{l}\n")).collect();
    let snapshot_bytes = Board::Samd51.ram_bytes() as usize;
    let out = live.join("out");
    let mut run = Command::new(binary())
        .arg("analyze")
        .arg(&live)
        .args(["--follow", "--publish-every", "1s", "--idle", "3", "-q", "--profile", "micropython-1.2x-synthetic"])
        .arg("-o")
        .arg(&out)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("heapvis runs");
    let mut dump = std::fs::OpenOptions::new().create(true).append(true).open(live.join("ram.bin")).unwrap();
    let mut sidecar =
        std::fs::OpenOptions::new().create(true).append(true).open(live.join("ram.events.jsonl")).unwrap();
    let started = Instant::now();
    let mut appended: Vec<Instant> = Vec::new();
    let mut visible: Vec<Duration> = Vec::new();
    let mut seen = HashMap::new();
    let gap = Duration::from_secs_f64(1.0 / RATE);
    while (visible.len() as u64) < SNAPSHOTS {
        let due = started + gap * appended.len() as u32;
        if (appended.len() as u64) < SNAPSHOTS && Instant::now() >= due {
            let i = appended.len();
            dump.write_all(&ram[i * snapshot_bytes..(i + 1) * snapshot_bytes]).unwrap();
            dump.flush().unwrap();
            sidecar.write_all(lines[i].as_bytes()).unwrap();
            sidecar.flush().unwrap();
            appended.push(Instant::now());
        }
        let n = published(&out, &mut seen).min(appended.len() as u64);
        while (visible.len() as u64) < n {
            visible.push(appended[visible.len()].elapsed());
        }
        assert!(started.elapsed() < Duration::from_secs(600), "the follow fell behind");
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = run.wait().unwrap();
    assert!(status.success());
    let mut sorted: Vec<f64> = visible.iter().map(|d| d.as_secs_f64()).collect();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    let within = sorted.iter().filter(|s| **s <= 2.0).count() as f64 / sorted.len() as f64;
    println!(
        "follow: {SNAPSHOTS} snapshots of {snapshot_bytes} bytes appended at {RATE}/s, --publish-every 1s: \
         queryable after {:.2} s median, {:.2} s at the 95th percentile, {:.2} s at most; {:.1}% within 2 s",
        at(0.5),
        at(0.95),
        at(1.0),
        100.0 * within
    );
}
