//! `heapvis leaks OUT`: the owners whose retained bytes grow steadily after
//! warm-up, from an output folder's `retainers` table.

use std::path::PathBuf;

use heapvis::answers::leaks::MIN_R2;

use super::{CaptureArgs, Outcome};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The output folder of `heapvis analyze` (with its `retainers` table).
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// How many suspects to show.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// The capture, for each suspect's example path.
    #[command(flatten)]
    pub capture: CaptureArgs,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let heapvis::Leaks { suspects: mut found, warm_up_until: warm } = heapvis::leaks(&a.out)?;
    found.truncate(a.top);
    let no_examples = match a.capture.reopen(&a.out) {
        Ok(capture) => capture.add_examples(&a.out, &mut found).err().map(|e| e.to_string()),
        Err(why) => Some(why),
    };
    println!("warm-up: until snapshot {warm} (the first collection)");
    if found.is_empty() {
        println!("no owner's retained bytes grow steadily after it (R² ≥ {MIN_R2})");
        return Ok(Outcome::Ok);
    }
    println!("leak suspects, most growth first (per 1,000 snapshots; R² 1 is a straight line):");
    for (k, s) in found.iter().enumerate() {
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
        if let Some(e) = &s.example {
            println!("    example: {} ({} at 0x{:08x}, snapshot {})", e.path, e.kind, e.address, e.snapshot);
        }
    }
    if let Some(why) = no_examples {
        println!("(no example paths: {why})");
    }
    Ok(Outcome::Ok)
}
