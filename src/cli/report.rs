//! `heapvis report OUT -o report.html`: the run as one self-contained HTML page.

use std::path::PathBuf;

use heapvis::report::ReportOptions;

use super::{CaptureArgs, Outcome};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The output folder of `heapvis analyze`.
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// Where to write the page.
    #[arg(short = 'o', long = "output", value_name = "FILE", default_value = "report.html")]
    pub output: PathBuf,
    /// Snapshots plotted per chart, at most (spread evenly over the run).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(2..=100_000))]
    pub max_points: u64,
    /// Heap-layout frames to scrub through, at most (plus the worst moments).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=5_000))]
    pub max_frames: u64,
    /// The capture, for the leak suspects' example paths.
    #[command(flatten)]
    pub capture: CaptureArgs,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let options =
        ReportOptions { max_points: a.max_points as usize, max_frames: a.max_frames as usize, ..Default::default() };
    let page = match a.capture.reopen(&a.out) {
        Ok(capture) => capture.report(&a.out, &options)?,
        Err(why) => {
            eprintln!("note: no example paths for the leak suspects: {why}");
            heapvis::report_page(&a.out, &options)?
        }
    };
    heapvis::write_replacing(&a.output, page.as_bytes())?;
    eprintln!("wrote {} ({} KiB)", a.output.display(), page.len().div_ceil(1024));
    Ok(Outcome::Ok)
}
