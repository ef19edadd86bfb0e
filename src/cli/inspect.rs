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
    let range = selection.resolve(session.dump.count())?;
    let decoder = session.decoder(DecodeOptions::default());
    let mut stdout = std::io::stdout().lock();
    for index in range {
        let ram = session.dump.snapshot(index).unwrap_or(&[]);
        if a.mem_info {
            let text = heapvis::inspect::mem_info(&decoder, ram)
                .map_err(|source| heapvis::Error::Snapshot { snapshot: index, source })?;
            stdout.write_all(text.as_bytes())?;
            continue;
        }
        let report = session.decode_one(index)?;
        let text = heapvis::inspect::block_state_report(&report, &session.firmware, &session.profile.symbols.state);
        stdout.write_all(text.as_bytes())?;
    }
    Ok(Outcome::Ok)
}
