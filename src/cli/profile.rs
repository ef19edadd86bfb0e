//! `heapvis profile`: print a layout profile as the TOML `--profile` reads: the
//! default, a profile file completed with defaults, or one derived from an ELF's
//! DWARF debug info.

use std::path::PathBuf;

use super::Outcome;

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
        for (name, about) in heapvis::shipped_profiles() {
            println!("{name}");
            for line in about {
                println!("    {line}");
            }
        }
        return Ok(Outcome::Ok);
    }
    print!("{}", heapvis::profile_toml(a.profile.as_deref(), a.elf.as_deref())?);
    Ok(Outcome::Ok)
}
