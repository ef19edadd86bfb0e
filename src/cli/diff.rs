//! `heapvis diff OUT A B`: what was made and freed between two snapshots, by
//! kind and by owner, and the largest new survivors with the paths that hold
//! them.

use std::fmt::Write;
use std::path::PathBuf;

use heapvis::answers::diff::{Count, Diff};

use super::{CaptureArgs, Outcome};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The output folder of `heapvis analyze`.
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// The earlier snapshot.
    #[arg(value_name = "A")]
    pub a: u64,
    /// The later snapshot.
    #[arg(value_name = "B")]
    pub b: u64,
    /// How many of the largest new survivors to show.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Print the answer as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The capture, for the survivors' paths.
    #[command(flatten)]
    pub capture: CaptureArgs,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let mut d = heapvis::diff(&a.out, a.a, a.b, a.top)?;
    if !d.survivors.is_empty() {
        match a.capture.reopen(&a.out) {
            Ok(capture) => capture.add_paths(&a.out, &mut d)?,
            // The tables' answer stands without the paths; say why they are missing.
            Err(why) => d.paths_note = Some(why),
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", render(&d));
    }
    Ok(Outcome::Ok)
}

fn count(c: &Count) -> String {
    format!("{} allocation(s), {} bytes", c.allocations, c.bytes)
}

fn signed(x: i64) -> String {
    if x > 0 {
        format!("+{x}")
    } else {
        x.to_string()
    }
}

/// The answer as the command prints it.
fn render(d: &Diff) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "from snapshot {} to {}:", d.a, d.b);
    let _ = writeln!(o, "  alive at {}: {}", d.a, count(&d.alive_at_a));
    let _ = writeln!(o, "  alive at {}: {}", d.b, count(&d.alive_at_b));
    let _ = writeln!(o, "  made since and still alive: {}", count(&d.new));
    let _ = writeln!(o, "  freed: {}", count(&d.freed));
    let _ = writeln!(o, "  made and freed in between: {}", count(&d.transient));
    let _ = writeln!(o, "by kind (net bytes, new, freed, transient):");
    for g in d.by_kind.iter().take(15) {
        let what = [g.type_name.as_deref(), g.class.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
        let _ = writeln!(
            o,
            "  {:>8}  {:<14} {:<28} +{}/{}B  -{}/{}B  ~{}/{}B",
            signed(g.net_bytes()),
            g.kind,
            what,
            g.new.allocations,
            g.new.bytes,
            g.freed.allocations,
            g.freed.bytes,
            g.transient.allocations,
            g.transient.bytes
        );
    }
    if d.by_kind.len() > 15 {
        let _ = writeln!(o, "  ({} more with --json)", d.by_kind.len() - 15);
    }
    owners(&mut o, d);
    survivors(&mut o, d);
    o
}

fn owners(o: &mut String, d: &Diff) {
    let Some(owners) = &d.by_owner else {
        let _ = writeln!(o, "by owner: unknown (no `retainers` table: the run had --no-retention)");
        return;
    };
    let _ = writeln!(o, "by owner (retained bytes at {} → {}):", d.a, d.b);
    if owners.is_empty() {
        let _ = writeln!(o, "  no owner's retained figures changed");
    }
    for w in owners.iter().take(10) {
        let _ = writeln!(
            o,
            "  {:>8}  {:<40} {} → {} bytes ({} → {} allocations)",
            signed(w.net_bytes()),
            w.owner,
            w.at_a.bytes,
            w.at_b.bytes,
            w.at_a.allocations,
            w.at_b.allocations
        );
    }
}

fn survivors(o: &mut String, d: &Diff) {
    if d.survivors.is_empty() {
        return;
    }
    let _ = writeln!(o, "largest new survivors at {}:", d.b);
    for s in &d.survivors {
        let what = s.name.as_ref().or(s.type_name.as_ref()).map(|n| format!(" {n}")).unwrap_or_default();
        let retained = s.retained_bytes.map(|r| format!(", retains {r}")).unwrap_or_default();
        let path = match (s.reachable, &s.path) {
            (Some(false), _) => "\n      unreachable at B: garbage the next collection frees".to_string(),
            (_, Some(p)) => format!("\n      held by {p}"),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            "  0x{:08x} {}{what} ({} bytes{retained}), made at snapshot {}{path}",
            s.address, s.kind, s.bytes, s.first_snapshot
        );
    }
    if let Some(note) = &d.paths_note {
        let _ = writeln!(o, "  (paths: {note})");
    }
}
