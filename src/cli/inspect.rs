//! `heapvis inspect`: one snapshot as text, in the reference's format.

use std::io::Write;

use heapvis::Selection;

use super::{open_capture, Outcome, SnapshotArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub at: SnapshotArgs,
    /// Print what `micropython.mem_info(1)` prints (gc_info figures and the block
    /// map), in the format of the firmware the profile describes.
    #[arg(long)]
    pub mem_info: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let capture = open_capture(&a.at.input, false)?;
    let selection: Selection = a.at.snapshot.parse()?;
    let (range, note) = selection.resolve(capture.len())?;
    if let Some(note) = note {
        eprintln!("warning: {note}");
    }
    let mut stdout = std::io::stdout().lock();
    // A range gets a header per snapshot, and a snapshot that fails is reported
    // in its place: the others are still printed (exit code 1 at the end). A
    // suspect snapshot is still shown, with a warning: inspect is where a user
    // looks at why it is suspect.
    let several = range.end - range.start > 1;
    let mut failed = 0u64;
    for index in range {
        if several {
            writeln!(stdout, "=== snapshot {index} ===")?;
        }
        match capture.inspect(index, a.mem_info) {
            Ok(shown) => {
                if let Some(why) = &shown.suspect {
                    failed += 1;
                    eprintln!("warning: snapshot {index} is suspect: {why}");
                }
                stdout.write_all(shown.text.as_bytes())?;
            }
            Err(e) => {
                failed += 1;
                writeln!(stdout, "error: {e}")?;
                eprintln!("warning: {e}");
            }
        }
    }
    Ok(if failed > 0 { Outcome::SomeSnapshotsFailed } else { Outcome::Ok })
}
