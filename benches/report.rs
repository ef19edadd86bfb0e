//! The HTML report of a soak-test-sized run: a busy, leaking SAMD51
//! MicroPython capture of 10 GiB or more with its sidecar (generated once and
//! cached in `bench-data/`, analysed once), then `heapvis report` on its
//! folder: wall time and peak RSS (best and highest of three), the page's
//! size, and how long headless Chromium (when installed) takes to load the
//! page and run its script.
//!
//! Run with `cargo bench --bench report` after `cargo build --release`.

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

/// The capture and its analysed folder, made once.
fn analysed() -> (PathBuf, PathBuf) {
    let dir = repo().join("bench-data/samd51-micropython-busy-leak-events-10g");
    let done = dir.join("generated");
    if !done.is_file() {
        // The busy program may end its run early (its heap exhausted for
        // good): the capture is what it wrote, checked below to be 10 GiB.
        let snapshots = 10 * (1u64 << 30) / Board::Samd51.ram_bytes() * 14 / 10;
        eprintln!("generating {} (up to {snapshots} snapshots)...", dir.display());
        let mut config = SynthConfig::new(Board::Samd51, snapshots, 3);
        (config.flavor, config.workload, config.leak, config.events) =
            (Flavor::MicroPython, Workload::Busy, true, true);
        synth::write_dir(&config, &dir).expect("synthetic dump");
        std::fs::write(&done, "").expect("marker");
    }
    let out = dir.join("out");
    if !out.join("heapvis-manifest.toml").is_file() {
        let status = Command::new(binary())
            .arg("analyze")
            .arg(&dir)
            .args(["-q", "--overwrite", "--profile", "micropython-1.2x-synthetic", "-o"])
            .arg(&out)
            .status()
            .expect("analyze");
        assert!(status.success());
    }
    (dir, out)
}

/// Wall seconds and peak RSS (MiB) of one `heapvis report` run. The child is
/// waited for by `wait4`, which also gives its own peak RSS.
#[allow(clippy::zombie_processes)]
fn report_once(out: &Path, page: &Path) -> (f64, f64) {
    let start = Instant::now();
    let child =
        Command::new(binary()).arg("report").arg(out).arg("-o").arg(page).stderr(Stdio::null()).spawn().unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to fill; wait4 writes it for this child only.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our child's; the pointers are to live locals.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert!(pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "report failed");
    (start.elapsed().as_secs_f64(), usage.ru_maxrss as f64 / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("report: skipped (run with `cargo bench --bench report`)");
        return;
    }
    assert!(binary().is_file(), "build the release binary first: cargo build --release");
    let (dir, out) = analysed();
    let dump_bytes = std::fs::metadata(dir.join("ram.bin")).unwrap().len();
    assert!(dump_bytes >= 10 << 30, "a 10 GiB capture: {dump_bytes} bytes");
    let snapshots = dump_bytes / Board::Samd51.ram_bytes();
    let page = std::env::temp_dir().join("heapvis-bench-report.html");
    let runs: Vec<(f64, f64)> = (0..3).map(|_| report_once(&out, &page)).collect();
    let secs = runs.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
    let rss = runs.iter().map(|r| r.1).fold(0.0, f64::max);
    let size = std::fs::metadata(&page).unwrap().len();
    let chromium = std::env::var("HEAPVIS_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let browser = (0..3)
        .filter_map(|_| {
            let start = Instant::now();
            let o = Command::new(&chromium)
                .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--dump-dom"])
                .arg(format!("file://{}", page.display()))
                .stderr(Stdio::null())
                .output()
                .ok()?;
            let ready = String::from_utf8_lossy(&o.stdout).contains("data-ready=\"1\"");
            ready.then(|| start.elapsed().as_secs_f64())
        })
        .fold(None, |best: Option<f64>, t| Some(best.map_or(t, |b| b.min(t))));
    println!("| dump | snapshots | report seconds | peak RSS | page | Chromium load and script |");
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| {:.1} GB, SAMD51 MicroPython busy, leaking, with sidecar | {snapshots} | {secs:.2} | {rss:.0} MiB | {:.1} MB | {} |",
        dump_bytes as f64 / 1e9,
        size as f64 / 1e6,
        browser.map_or("no chromium".to_string(), |t| format!("{t:.2} s"))
    );
}
