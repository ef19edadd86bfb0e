//! `heapvis profile`: print the layout profile as TOML.

use std::path::PathBuf;

use super::{load_profile, Outcome};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Start from this TOML profile instead of the default, and print it complete.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let p = load_profile(&a.profile)?;
    print!("{}", p.to_toml());
    Ok(Outcome::Ok)
}
