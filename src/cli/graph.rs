//! `heapvis graph`: one snapshot's ownership graph as DOT, rendered with Graphviz.

use std::path::PathBuf;

use super::{open_capture, Outcome, SnapshotArgs};

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
    let capture = open_capture(&a.at.input, false)?;
    let last = capture.len().saturating_sub(1);
    let index = a
        .at
        .one(&capture, &format!("a graph is of one snapshot; give N or last (the dump holds snapshots 0..={last})"))?;
    let text = capture.ownership_dot(index)?;
    let out = a.out.unwrap_or_else(|| PathBuf::from(format!("heap_ownership{index:06}.dot")));
    let dot_path = out.with_extension("dot");
    std::fs::write(&dot_path, &text).map_err(|e| heapvis::Error::io(&dot_path, e))?;
    if out != dot_path {
        heapvis::render_dot(&text, &out)?;
        eprintln!("snapshot {index}: wrote {} and {}", dot_path.display(), out.display());
    } else {
        eprintln!("snapshot {index}: wrote {}", dot_path.display());
    }
    Ok(Outcome::Ok)
}
