//! `heapvis gdb-script firmware.elf`: the gdb Python script that captures a
//! board's RAM at heap changes, with the sidecar heapvis reads.

use std::path::PathBuf;

use heapvis::capture::gdb_script::ScriptOptions;

use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The build's ELF file (with -g, the size of each request is in the sidecar).
    #[arg(value_name = "FIRMWARE_ELF")]
    pub elf: PathBuf,
    /// A snapshot at every Nth allocation (MemoryErrors and collections always
    /// have one).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub every: u64,
    /// Also a snapshot at the end of each collection's mark phase (its MARK
    /// bits: what the GC reached).
    #[arg(long)]
    pub collections: bool,
    /// The dump the script writes; the sidecar goes beside it (ram.events.jsonl).
    #[arg(long, default_value = "ram.bin", value_name = "DUMP")]
    pub out: PathBuf,
    /// Where the script writes itself (default: standard output).
    #[arg(short = 'o', long = "script", value_name = "FILE")]
    pub script: Option<PathBuf>,
    /// Connect to this target first: 'extended-remote :3333' (OpenOCD),
    /// 'remote :2331' (J-Link), 'remote :1337' (probe-rs), 'remote :1234' (qemu).
    /// Default: gdb is connected already.
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,
    /// Start the program under gdb (`run`) instead of continuing a target: a
    /// build for the host, such as MicroPython's unix port.
    #[arg(long, conflicts_with = "target")]
    pub run: bool,
    /// Innermost frames named on each sidecar line.
    #[arg(long, default_value_t = 4)]
    pub frames: u32,
    /// The layout (default: derived from the ELF as `analyze` derives it).
    #[command(flatten)]
    pub layout: super::LayoutArgs,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let options = ScriptOptions {
        every: a.every.max(1),
        collections: a.collections,
        dump: a.out.clone(),
        target: a.target.clone(),
        run: a.run,
        frames: a.frames,
    };
    let script = heapvis::gdb_script(&a.elf, a.layout.profile.as_deref(), &a.layout.ram(), &options)?;
    for note in &script.notes {
        eprintln!("note: {note}");
    }
    match &a.script {
        Some(path) => {
            heapvis::write_replacing(path, script.text.as_bytes())?;
            eprintln!(
                "wrote {}: each snapshot appends {} bytes to {}; run it with: gdb -batch -x {} {}",
                path.display(),
                script.snapshot_bytes,
                a.out.display(),
                path.display(),
                a.elf.display()
            );
        }
        None => print!("{}", script.text),
    }
    Ok(Outcome::Ok)
}
