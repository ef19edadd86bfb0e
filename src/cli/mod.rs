//! Command-line interface: clap definitions and one module per command. This is the
//! only place that prints; everything it calls returns values or typed errors.

mod analyze;
mod diff;
mod follow;
mod gdb_script;
mod graph;
mod inspect;
mod leaks;
mod profile;
pub mod progress;
mod report;
mod summary;
mod synth;
mod why;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "heapvis",
    version,
    about = "Turn multi-snapshot RAM dumps of CircuitPython/MicroPython boards into Parquet tables"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the capture is and which firmware layout to read it with.
#[derive(clap::Args, Debug, Clone)]
pub struct InputArgs {
    /// RAM_DUMP FIRMWARE_BIN FIRMWARE_MAP (the reference's order), RAM_DUMP
    /// FIRMWARE_ELF, or one directory holding ram.bin with firmware.bin and
    /// firmware.map or with firmware.elf.
    #[arg(required = true, num_args = 1..=3, value_name = "INPUTS")]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub layout: LayoutArgs,
}

/// Which firmware layout to read a build with, and where its RAM is.
#[derive(clap::Args, Debug, Clone)]
pub struct LayoutArgs {
    /// TOML file overriding any field of the layout profile (see `heapvis
    /// profile`), or the name of a shipped one (`circuitpython-10-synthetic`).
    /// Default: derived from the ELF's debug info when there is one, else
    /// CircuitPython 3.0 on atmel-samd.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Where each snapshot starts: a symbol or an address (0x20000000), for a dump
    /// made with other bounds than the profile's (`_srelocate`, else `_sdata`).
    #[arg(long, value_name = "SYMBOL|ADDRESS")]
    pub ram_start: Option<String>,
    /// Where each snapshot ends (its size follows): a symbol or an address, in
    /// place of the profile's (`_estack`).
    #[arg(long, value_name = "SYMBOL|ADDRESS")]
    pub ram_end: Option<String>,
}

impl LayoutArgs {
    /// The RAM bounds given, for the library.
    pub fn ram(&self) -> heapvis::pipeline::RamBounds {
        heapvis::pipeline::RamBounds { start: self.ram_start.clone(), end: self.ram_end.clone() }
    }

    /// The profile and RAM bounds given, for opening a capture.
    pub fn options(&self) -> heapvis::OpenOptions {
        heapvis::OpenOptions { profile: self.profile.clone(), ram: self.ram() }
    }
}

/// A capture and one snapshot of it (`inspect`, `graph`).
#[derive(clap::Args, Debug, Clone)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Which snapshot: N or last (`inspect` also takes a range, A..B).
    #[arg(long, default_value = "last", value_name = "N")]
    pub snapshot: String,
}

impl SnapshotArgs {
    /// The one snapshot `--snapshot` selects; `several` says why one is needed.
    pub fn one(&self, capture: &heapvis::Capture, several: &str) -> anyhow::Result<u64> {
        let selection: heapvis::Selection = self.snapshot.parse()?;
        let (range, _) = selection.resolve(capture.len())?;
        anyhow::ensure!(range.end - range.start == 1, "--snapshot {}: {several}", self.snapshot);
        Ok(range.start)
    }
}

/// The capture an output folder was made from, for the answers that need a
/// snapshot's pointers with their names (`diff`'s and `leaks`'s paths).
#[derive(clap::Args, Debug, Clone)]
pub struct CaptureArgs {
    /// The capture the folder was made from (as `analyze` takes it). Default:
    /// the folder of the dump the manifest names.
    #[arg(long, num_args = 1..=3, value_name = "INPUTS")]
    pub capture: Vec<PathBuf>,
    /// The layout the folder was made with, if `analyze` was given one.
    #[command(flatten)]
    pub layout: LayoutArgs,
    /// Answer from the tables alone: no paths, the capture is not read.
    #[arg(long)]
    pub no_paths: bool,
}

impl CaptureArgs {
    /// The folder's capture, reopened and checked against its manifest; the
    /// reason there is none (to print) otherwise.
    pub fn reopen(&self, out: &std::path::Path) -> Result<heapvis::Capture, String> {
        if self.no_paths {
            return Err("the capture was not read (--no-paths)".to_string());
        }
        heapvis::Capture::of_folder(out, &self.capture, &self.layout.options()).map_err(|e| e.line())
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Decode every selected snapshot and write Parquet tables.
    Analyze(analyze::Args),
    /// Write one snapshot's ownership graph as Graphviz DOT (and SVG/PNG with `dot`).
    Graph(graph::Args),
    /// Print one snapshot's heap the way the reference analyser did.
    Inspect(inspect::Args),
    /// Write a synthetic capture (ram.bin, firmware.bin, firmware.map).
    Synth(synth::Args),
    /// Print the layout profile as TOML (the format `--profile` reads).
    Profile(profile::Args),
    /// Why an allocation is alive: the shortest path from a GC root, its
    /// dominators and what it retains, named as Python would.
    Why(why::Args),
    /// Rank the owners whose retained bytes grow steadily after warm-up, from
    /// an output folder's `retainers` table.
    Leaks(leaks::Args),
    /// The run on one screen: how full the heap got, how close it came to a
    /// MemoryError, collections, leak suspects, fragmentation culprits; with
    /// --fail-if, a CI gate.
    Summary(summary::Args),
    /// What changed between snapshots A and B: allocations made and freed by
    /// kind and by owner, and the largest new survivors with their paths.
    Diff(diff::Args),
    /// Write the gdb Python script that captures a board's RAM at heap changes,
    /// with the sidecar (time, event, request size, stack pointer) heapvis reads.
    GdbScript(gdb_script::Args),
    /// Write the run as one self-contained HTML page: summary, charts, leak
    /// suspects, fragmentation culprits and a heap-layout view to scrub through.
    Report(report::Args),
}

/// Process exit status: 0 all good, 1 some snapshots could not be decoded, 2
/// fatal, 3 a `--fail-if` condition held.
pub enum Outcome {
    Ok,
    SomeSnapshotsFailed,
    GateFailed,
}

pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Analyze(a) => analyze::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Graph(a) => graph::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Profile(a) => profile::run(a),
        Command::Why(a) => why::run(a),
        Command::Leaks(a) => leaks::run(a),
        Command::Summary(a) => summary::run(a),
        Command::Diff(a) => diff::run(a),
        Command::GdbScript(a) => gdb_script::run(a),
        Command::Report(a) => report::run(a),
    }
}

/// An error and its causes on one line, each cause said once: library errors
/// name their cause in their own message too (`{path}: {source}`), so a cause
/// already in the line so far is not repeated.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Opens the capture, telling the user where the layout came from when it matters.
pub fn open_capture(input: &InputArgs, quiet: bool) -> anyhow::Result<heapvis::Capture> {
    let capture = heapvis::Capture::open_inputs(&input.inputs, &input.layout.options())?;
    heapvis::exit_on_sigbus(format!(
        "heapvis: {}: the dump became shorter while it was read (truncated or replaced); \
         no table of this run was published",
        capture.dump_path().display()
    ));
    if !quiet {
        match capture.profile_source() {
            heapvis::pipeline::ProfileSource::Dwarf { missing } if !missing.is_empty() => eprintln!(
                "note: layout derived from {}'s debug info; kept the default for {}",
                capture.symbols_file().display(),
                missing.join(", ")
            ),
            heapvis::pipeline::ProfileSource::Default { why: Some(why) } => {
                eprintln!("note: using the default layout (CircuitPython 3.0): {why}")
            }
            _ => {}
        }
    }
    Ok(capture)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn an_error_line_says_each_cause_once() {
        let io = std::io::Error::from(std::io::ErrorKind::AlreadyExists);
        let text = io.to_string();
        let e = anyhow::Error::new(heapvis::Error::io("out/x", io)).context("analysing ram.bin");
        let line = error_line(&e);
        assert_eq!(line, format!("analysing ram.bin: out/x: {text}"));
        assert_eq!(line.matches(&text).count(), 1);
    }
}
