//! `heapvis analyze`: the main job.

use std::path::PathBuf;

use anyhow::Context;
use heapvis::dump::Selection;
use heapvis::pipeline::{AnalyzeOptions, RenderOptions};
use heapvis::tables::{OutputLayout, TableSet};

use super::{open_capture, progress::Bar, InputArgs, Outcome};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output directory for the Parquet tables (created if missing).
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
    /// Snapshots to analyse: all, last, N, A..B (half-open), A..=B, A.. or ..B.
    #[arg(long, default_value = "all", value_name = "SEL")]
    pub snapshots: String,
    /// Also write every block, edge, qstr, string and free run of every snapshot
    /// (`blocks`, `edges`, `qstrs`, `strings`, `free_runs`), besides the lifetimes.
    #[arg(long, conflicts_with = "metrics_only")]
    pub per_snapshot: bool,
    /// How tables are stored. `parts` (the default): each table is a folder of part
    /// files named by snapshot range (`OUT/allocations/part-A-B.parquet`), rolled
    /// over as they grow so memory stays bounded, and several processes can each
    /// take a range of one dump into one output folder. `files`: one
    /// `OUT/<table>.parquet` per table, whose footer grows in memory with the dump.
    #[arg(long, value_enum, default_value_t = Layout::Parts)]
    pub layout: Layout,
    /// Write only the `snapshots` table (gc_info figures per snapshot): reads only
    /// each snapshot's allocation table.
    #[arg(long)]
    pub metrics_only: bool,
    /// Write a heap-layout PNG per rendered snapshot to OUT/frames/heap_layoutNNNNNN.png.
    #[arg(long)]
    pub frames: bool,
    /// Write a movie of the heap: .gif and .png (APNG) natively, .mp4 and .webm through ffmpeg.
    #[arg(long, value_name = "FILE")]
    pub movie: Option<PathBuf>,
    /// Pixels per block in frames (a block is twice as wide as it is tall), 1 to 64.
    #[arg(long, default_value_t = 8, value_name = "PX", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub scale: u32,
    /// How frames arrange the pool's blocks: `fill` (columns as tall as make
    /// the map about 16:9) or `reference` (64 blocks per column, as the
    /// reference drew them).
    #[arg(long, default_value = "fill", value_name = "ARRANGEMENT", value_parser = parse_arrangement)]
    pub frame_layout: heapvis::render::Arrangement,
    /// Render every K-th selected snapshot (K at least 1).
    #[arg(long, default_value_t = 1, value_name = "K", value_parser = parse_at_least_one)]
    pub frame_step: u64,
    /// Movie frames per second, 1 to 1000.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub fps: u32,
    /// Decode every snapshot whole. By default a snapshot is decoded from the one
    /// before it where only a few allocations changed; the tables are the same
    /// either way (this is for checking that, and for timing).
    #[arg(long)]
    pub full_decode: bool,
    /// Replace whatever heapvis wrote in the output folder before, even the
    /// tables of another capture or of other options (which are otherwise refused).
    #[arg(long)]
    pub overwrite: bool,
    /// Leave out reachability, holders and retained sizes (`reachable`,
    /// `holder_*`, `retained_bytes`): faster, for captures where who holds what
    /// does not matter.
    #[arg(long)]
    pub no_retention: bool,
    /// Worker threads, 1 to 1024 (default: one per core).
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// Print the run's figures on stderr at the end: time, MB/s of dump,
    /// snapshots/s, peak memory (resident set), CPU time (user and kernel), and the
    /// share of snapshots decoded from the one before rather than whole.
    #[arg(long)]
    pub stats: bool,
    /// No progress bar or warnings on stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// Follow the dump while gdb appends to it: decode snapshots as they are
    /// written (never a partial one) and publish them as shards the folder's
    /// readers see at once. Stops on Ctrl-C or after --idle, and then rewrites
    /// the shards as the tables one run over the whole file writes. Killed, it
    /// resumes where it had published when run again.
    #[arg(long, conflicts_with_all = ["snapshots", "layout"])]
    pub follow: bool,
    /// With --follow: stop once the dump has not grown for this many seconds.
    #[arg(long, value_name = "SECONDS", requires = "follow", value_parser = parse_seconds)]
    pub idle: Option<std::time::Duration>,
    /// With --follow: publish at most this long after a snapshot is appended
    /// (`1s`, `500ms`), or every N snapshots (`100`).
    #[arg(long, value_name = "TIME|N", default_value = "1s", requires = "follow")]
    pub publish_every: heapvis::follow::Publish,
    /// With --follow: keep this HTML report (`heapvis report`) and the
    /// answers' tables up to date as the run goes; the page reloads itself
    /// while the run is live.
    #[arg(long, value_name = "FILE", requires = "follow")]
    pub report: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Parts,
    Files,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let selection: Selection = a.snapshots.parse()?;
    let stop = a.follow.then(heapvis::stop_on_interrupt);
    let mut capture = match stop {
        Some(stop) => match super::follow::open_when_written(&a.input, a.quiet, a.idle, stop)? {
            Some(opened) => opened,
            None => return Ok(Outcome::Ok),
        },
        None => open_capture(&a.input, a.quiet)?,
    };
    if capture.trailing_bytes() > 0 && !a.quiet && !a.follow {
        eprintln!(
            "warning: {}: the last {} byte(s) are not a whole snapshot of {} bytes and are ignored",
            capture.dump_path().display(),
            capture.trailing_bytes(),
            capture.snapshot_bytes()
        );
    }
    if !capture.missing_types().is_empty() && !a.quiet {
        eprintln!(
            "warning: {}: no symbol for {}; blocks of those types get kind `unknown`",
            capture.symbols_file().display(),
            capture.missing_types().join(", ")
        );
    }
    let options = AnalyzeOptions {
        selection,
        tables: if a.metrics_only {
            TableSet::METRICS
        } else if a.per_snapshot {
            TableSet::ALL
        } else {
            TableSet::DEFAULT
        },
        layout: match a.layout {
            Layout::Parts => OutputLayout::parts(),
            Layout::Files => OutputLayout::Files,
        },
        threads: a.threads,
        full_decode: a.full_decode,
        overwrite: a.overwrite,
        drop_read: None,
        retention: !a.no_retention,
        render: (a.frames || a.movie.is_some()).then(|| RenderOptions {
            frames: a.frames,
            movie: a.movie.clone(),
            scale: a.scale,
            arrangement: a.frame_layout,
            step: a.frame_step,
            step_origin: a.follow.then_some(0),
            fps: a.fps,
        }),
        ..AnalyzeOptions::default()
    };
    let started = std::time::Instant::now();
    if let Some(stop) = stop {
        let follow =
            heapvis::follow::FollowOptions { publish: a.publish_every, idle: a.idle, report: a.report.clone() };
        let live = super::follow::Live::new(a.quiet);
        let dump = capture.dump_path().to_path_buf();
        let summary = capture
            .follow(&a.out, &options, &follow, stop, &live)
            .with_context(|| format!("following {}", dump.display()))?;
        live.done(&a.out, &summary);
        answer_tables(&a.out, a.quiet);
        return Ok(if summary.failed > 0 { Outcome::SomeSnapshotsFailed } else { Outcome::Ok });
    }
    let bar = Bar::new(a.quiet);
    let summary = capture
        .analyze(&a.out, &options, &bar)
        .with_context(|| format!("analysing {}", capture.dump_path().display()))?;
    if !a.quiet {
        eprintln!(
            "{} snapshot(s), {} not decoded, {} suspect",
            summary.snapshots,
            summary.failed - summary.suspect,
            summary.suspect
        );
        for line in written(&a.out, &options, &summary) {
            eprintln!("{line}");
        }
    }
    if a.stats {
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let rss = peak_rss_mib().map_or("unknown".to_string(), |m| format!("{m:.1} MiB"));
        let cpu =
            cpu_seconds().map_or("unknown".to_string(), |(user, sys)| format!("{user:.2} s user, {sys:.2} s system"));
        eprintln!(
            "stats: {} snapshot(s), {} bytes in {secs:.3} s: {:.1} MB/s, {:.0} snapshots/s, peak RSS {rss}, CPU {cpu}; \
             {:.1}% decoded from the snapshot before",
            summary.snapshots,
            summary.bytes,
            summary.bytes as f64 / secs / 1e6,
            summary.snapshots as f64 / secs,
            100.0 * summary.focused as f64 / summary.snapshots.max(1) as f64
        );
    }
    answer_tables(&a.out, a.quiet);
    Ok(if summary.failed > 0 { Outcome::SomeSnapshotsFailed } else { Outcome::Ok })
}

/// Rewrites the answers' tables from the folder's tables, now this run is in.
/// The run's own tables are committed whatever happens here, so a failure is
/// a warning, not the run's failure.
fn answer_tables(out: &std::path::Path, quiet: bool) {
    let started = std::time::Instant::now();
    match heapvis::write_answers(out) {
        Ok(files) if !quiet && !files.is_empty() => {
            let names: Vec<String> =
                files.iter().filter_map(|f| Some(f.file_stem()?.to_string_lossy().into_owned())).collect();
            eprintln!("answers in {}: {} ({:.1} s)", out.display(), names.join(", "), started.elapsed().as_secs_f64());
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: the answers' tables (culprits, memory_errors) were not written: {e}"),
    }
}

/// What a run wrote, a line per kind of output, with paths.
fn written(out: &std::path::Path, options: &AnalyzeOptions, summary: &heapvis::pipeline::RunSummary) -> Vec<String> {
    let mut lines = vec![format!(
        "tables in {}: {} ({} Parquet file(s))",
        out.display(),
        options.tables.names().join(", "),
        summary.files.len()
    )];
    if summary.frames > 0 {
        lines.push(format!("frames in {}: {} PNG file(s)", out.join("frames").display(), summary.frames));
    }
    if let Some(movie) = &summary.movie {
        lines.push(format!("movie: {}", movie.display()));
    }
    lines
}

fn parse_at_least_one(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_arrangement(text: &str) -> Result<heapvis::render::Arrangement, String> {
    match text {
        "fill" => Ok(heapvis::render::Arrangement::Fill),
        "reference" => Ok(heapvis::render::Arrangement::Reference),
        other => Err(format!("`{other}`: give fill or reference")),
    }
}

fn parse_seconds(text: &str) -> Result<std::time::Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 1e7 => Ok(std::time::Duration::from_secs_f64(s)),
        _ => Err(format!("`{text}`: give a number of seconds above 0")),
    }
}

fn parse_threads(text: &str) -> Result<usize, String> {
    let n: usize = text.parse().map_err(|e| format!("{e}"))?;
    let max = heapvis::pipeline::MAX_THREADS;
    if (1..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is not in 1..={max}"))
    }
}

/// The process's CPU time so far, in user space and in the kernel (Linux
/// `/proc/self/stat`, in the fixed 100 Hz clock ticks of the user ABI), in seconds.
fn cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces):
    // state is field 3, utime 14 and stime 15.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let sys: f64 = fields.next()?.parse().ok()?;
    Some((user / 100.0, sys / 100.0))
}

/// The process's peak resident set (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
