//! `heapvis inspect`: one snapshot as text, in the reference's format.

use std::io::Write;

use heapvis::decode::DecodeOptions;
use heapvis::dump::Selection;

use super::{open_session, Outcome, SnapshotArgs};

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
    let (_inputs, session) = open_session(&a.at.input, false)?;
    let selection: Selection = a.at.snapshot.parse()?;
    let (range, note) = selection.resolve(session.dump.count())?;
    if let Some(note) = note {
        eprintln!("warning: {note}");
    }
    // A suspect snapshot is still shown, with a warning: inspect is where a
    // user looks at why it is suspect.
    let decoder = session.decoder(DecodeOptions { keep_suspect: true, ..DecodeOptions::default() });
    let mut stdout = std::io::stdout().lock();
    // A range gets a header per snapshot, and a snapshot that fails is reported
    // in its place: the others are still printed (exit code 1 at the end).
    let several = range.end - range.start > 1;
    let mut failed = 0u64;
    for index in range {
        if several {
            writeln!(stdout, "=== snapshot {index} ===")?;
        }
        let ram = session.dump.snapshot(index).unwrap_or(&[]);
        let text = if a.mem_info {
            heapvis::inspect::mem_info(&decoder, ram)
        } else {
            decoder.decode(index, ram).map(|report| {
                if let Some(why) = &report.suspect {
                    failed += 1;
                    eprintln!("warning: snapshot {index} is suspect: {why}");
                }
                heapvis::inspect::block_state_report(&report, ram, &session.firmware, &session.profile.symbols.state)
            })
        };
        match text {
            Ok(text) => stdout.write_all(text.as_bytes())?,
            Err(e) => {
                failed += 1;
                writeln!(stdout, "error: snapshot {index} cannot be decoded: {e}")?;
                eprintln!("warning: snapshot {index} cannot be decoded: {e}");
            }
        }
    }
    Ok(if failed > 0 { Outcome::SomeSnapshotsFailed } else { Outcome::Ok })
}
