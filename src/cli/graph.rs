//! `heapvis graph`: one snapshot's ownership graph as DOT, rendered with Graphviz.

use std::path::PathBuf;

use heapvis::dump::Selection;
use heapvis::render::dot;

use super::{open_session, Outcome, SnapshotArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub at: SnapshotArgs,
    /// Output file: .dot writes the graph; .svg, .png or .pdf also renders it with
    /// `dot` (the .dot is written next to it). Default: heap_ownershipNNNNNN.dot.
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let (_inputs, session) = open_session(&a.at.input, false)?;
    let selection: Selection = a.at.snapshot.parse()?;
    let (range, _) = selection.resolve(session.dump.count())?;
    if range.end - range.start != 1 {
        anyhow::bail!(
            "--snapshot {}: a graph is of one snapshot; give N or last (the dump holds snapshots 0..={})",
            a.at.snapshot,
            session.dump.count().saturating_sub(1)
        );
    }
    let index = range.start;
    let report = session.decode_one(index)?;
    let text = dot::ownership_dot(&report);
    let out = a.out.unwrap_or_else(|| PathBuf::from(format!("heap_ownership{index:06}.dot")));
    let dot_path = out.with_extension("dot");
    std::fs::write(&dot_path, &text).map_err(|e| heapvis::Error::io(&dot_path, e))?;
    if out != dot_path {
        dot::render_with_dot(&text, &out)?;
        eprintln!("snapshot {index}: wrote {} and {}", dot_path.display(), out.display());
    } else {
        eprintln!("snapshot {index}: wrote {}", dot_path.display());
    }
    Ok(Outcome::Ok)
}
