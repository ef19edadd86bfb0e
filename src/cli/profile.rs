//! `heapvis profile`: print a layout profile as the TOML `--profile` reads: the
//! default, a profile file completed with defaults, or one derived from an ELF's
//! DWARF debug info.

use std::path::PathBuf;

use heapvis::firmware::dwarf;

use super::{load_profile, Outcome};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Derive the profile from this ELF file's DWARF debug info.
    #[arg(value_name = "FIRMWARE_ELF")]
    pub elf: Option<PathBuf>,
    /// Start from this profile instead of the default: a TOML file, or the name
    /// of a shipped profile (see --list).
    #[arg(long, value_name = "FILE|NAME")]
    pub profile: Option<PathBuf>,
    /// List the shipped profiles, which `--profile NAME` takes by name.
    #[arg(long, conflicts_with_all = ["elf", "profile"])]
    pub list: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    if a.list {
        for (name, about) in heapvis::profile::shipped_summaries() {
            println!("{name}");
            for line in about {
                println!("    {line}");
            }
        }
        return Ok(Outcome::Ok);
    }
    let base = load_profile(&a.profile)?.unwrap_or_default();
    let mut text = String::new();
    let profile = match &a.elf {
        Some(elf) => {
            let data = heapvis::firmware::elf::read_elf_file(elf)?;
            let d = dwarf::derive_profile(&data, elf, &base)?;
            for f in &d.found {
                text.push_str(&format!("# from DWARF: {f}\n"));
            }
            for m in &d.missing {
                text.push_str(&format!("# not in the debug info, kept: {m}\n"));
            }
            d.profile
        }
        None => base,
    };
    text.push_str(&profile.to_toml());
    print!("{text}");
    Ok(Outcome::Ok)
}
