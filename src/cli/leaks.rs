//! `heapvis leaks OUT`: the owners whose retained bytes grow steadily after
//! warm-up, from an output folder's `retainers` table.

use std::path::PathBuf;

use heapvis::answers::leaks::{suspects, MIN_R2};

use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The output folder of `heapvis analyze` (with its `retainers` table).
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// How many suspects to show.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let (found, warm) = suspects(&a.out)?;
    println!("warm-up: until snapshot {warm} (the first collection)");
    if found.is_empty() {
        println!("no owner's retained bytes grow steadily after it (R² ≥ {MIN_R2})");
        return Ok(Outcome::Ok);
    }
    println!("leak suspects, most growth first (per 1,000 snapshots; R² 1 is a straight line):");
    for (k, s) in found.iter().take(a.top).enumerate() {
        let hour = s.bytes_per_hour.map(|h| format!(", +{h:.0} bytes per hour")).unwrap_or_default();
        println!(
            "{:>2}. {}: +{:.0} bytes, +{:.1} allocations per 1,000 snapshots{hour} (R² {:.2}; {} → {} bytes)",
            k + 1,
            s.owner,
            s.bytes_per_1000,
            s.allocations_per_1000,
            s.r2,
            s.bytes_from,
            s.bytes_to
        );
        let kinds: Vec<String> = s.growing_kinds.iter().take(4).map(|(k, g)| format!("{k} +{g:.0}")).collect();
        if !kinds.is_empty() {
            println!("    growing beneath it: {}", kinds.join(", "));
        }
        let example = s.growing_kinds.first().map(|(k, _)| k.as_str()).unwrap_or("?");
        println!("    example path: {} → {example} (`heapvis why ADDRESS` for one of them)", s.owner);
    }
    Ok(Outcome::Ok)
}
