//! `heapvis summary OUT`: the run on one screen (or as JSON), and a CI gate
//! (`--fail-if 'min_largest_free_bytes < 4096'`).

use std::fmt::Write;
use std::path::PathBuf;

use heapvis::answers::culprits::Culprits;
use heapvis::answers::gate::{check, Condition, Verdict};
use heapvis::answers::summary::{summary, Summary};

use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The output folder of `heapvis analyze`.
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// Print the figures as one JSON object (the same names `--fail-if` takes).
    #[arg(long)]
    pub json: bool,
    /// Exit with status 3 when this condition holds: FIGURE OP NUMBER, e.g.
    /// 'min_largest_free_bytes < 4096' or 'leak_bytes_per_1000_snapshots > 64'
    /// (OP: < <= > >= == !=). Repeat for several; a figure the run cannot know
    /// fails the gate too.
    #[arg(long = "fail-if", value_name = "CONDITION")]
    pub fail_if: Vec<Condition>,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let s = summary(&a.out)?;
    let figures = s.figures();
    let verdicts = check(&a.fail_if, &figures)?;
    if a.json {
        let mut value = serde_json::to_value(&s)?;
        if let Some(map) = value.as_object_mut() {
            let flat: serde_json::Map<String, serde_json::Value> =
                figures.iter().map(|(n, v)| (n.to_string(), serde_json::json!(v))).collect();
            map.insert("figures".into(), flat.into());
            map.insert("failed".into(), failed(&a.fail_if, &verdicts).into());
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", render(&s));
        for (c, v) in a.fail_if.iter().zip(&verdicts) {
            let line = match v {
                Verdict::Passed(x) => format!("pass: {c} (is {})", number(*x)),
                Verdict::Failed(x) => format!("FAIL: {c} (is {})", number(*x)),
                Verdict::Unknown => format!("FAIL: {c} (this run cannot know {})", c.figure),
            };
            println!("{line}");
        }
    }
    if verdicts.iter().any(|v| !matches!(v, Verdict::Passed(_))) {
        return Ok(Outcome::GateFailed);
    }
    Ok(Outcome::Ok)
}

/// The conditions that failed, as written.
fn failed(conditions: &[Condition], verdicts: &[Verdict]) -> Vec<String> {
    conditions
        .iter()
        .zip(verdicts)
        .filter(|(_, v)| !matches!(v, Verdict::Passed(_)))
        .map(|(c, _)| c.to_string())
        .collect()
}

fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:.3}")
    }
}

/// The summary as the command prints it.
fn render(s: &Summary) -> String {
    let mut o = String::new();
    let time = s.time_span_seconds.map(|t| format!(", {}", duration(t))).unwrap_or_default();
    let _ = writeln!(o, "run: snapshots {}..={} ({} decoded{time})", s.first_snapshot, s.last_snapshot, s.snapshots);
    if s.bad_snapshots > 0 {
        let _ = writeln!(o, "     {} snapshot(s) could not be decoded or were suspect (see `status`)", s.bad_snapshots);
    }
    let (p, f, l) = (&s.peak_used_bytes, &s.min_free_bytes, &s.min_largest_free_bytes);
    let _ = writeln!(o, "heap: {} bytes; peak used {} bytes at snapshot {}", s.heap_bytes, p.value, p.snapshot);
    let _ = writeln!(o, "least free: {} bytes at snapshot {}", f.value, f.snapshot);
    let _ = writeln!(o, "smallest largest free run: {} bytes at snapshot {}", l.value, l.snapshot);
    let _ = writeln!(
        o,
        "  there, a request of {} bytes or more needed a collection first, and failed if it freed no longer run",
        s.smallest_failing_request_bytes
    );
    if let Some(m) = &s.max_fragmentation {
        let _ = writeln!(o, "worst fragmentation: {:.2} at snapshot {} (1 − largest free / free)", m.value, m.snapshot);
    }
    let _ = writeln!(o, "collections: {} (from {})", s.collections, s.collections_from);
    memory_errors(&mut o, s);
    leaks(&mut o, s);
    // The tightest and most fragmented moments and the first MemoryError;
    // the rest are in --json.
    const SHOWN: usize = 3;
    if let Some(why) = &s.culprits_unknown {
        let _ = writeln!(o, "fragmentation culprits: unknown ({why})");
    }
    for c in s.culprits.iter().take(SHOWN) {
        culprits(&mut o, c);
    }
    if s.culprits.len() > SHOWN {
        let _ = writeln!(o, "({} more moments' culprits with --json)", s.culprits.len() - SHOWN);
    }
    o
}

fn memory_errors(o: &mut String, s: &Summary) {
    match &s.memory_errors {
        None => {
            let _ = writeln!(o, "MemoryErrors: unknown (no sidecar with events beside the dump)");
        }
        Some(errors) => {
            let _ = writeln!(o, "MemoryErrors: {}", errors.len());
            for m in errors.iter().take(heapvis::answers::summary::TOP) {
                let asked = m.requested_bytes.map_or("?".to_string(), |r| r.to_string());
                let _ = writeln!(
                    o,
                    "  snapshot {}: asked {asked} bytes, {} free, longest free run {}: {}",
                    m.snapshot, m.free_bytes, m.largest_free_bytes, m.cause
                );
            }
        }
    }
    if let Some(n) = s.requests_over_largest_free {
        let _ = writeln!(o, "allocations larger than the longest free run (each needed a collection): {n}");
    }
}

fn leaks(o: &mut String, s: &Summary) {
    let Some(suspects) = &s.leak_suspects else {
        let _ =
            writeln!(o, "leak suspects: unknown (no `retainers` table: the run had --no-retention or --metrics-only)");
        return;
    };
    let warm = s.warm_up_until.map(|w| format!(" after warm-up (until snapshot {w})")).unwrap_or_default();
    if suspects.is_empty() {
        let _ = writeln!(o, "leak suspects: none grow steadily{warm}");
        return;
    }
    let _ = writeln!(o, "leak suspects{warm}:");
    for x in suspects {
        let hour = x.bytes_per_hour.map(|h| format!(", +{h:.0} bytes/hour")).unwrap_or_default();
        let kinds: Vec<&str> = x.growing_kinds.iter().take(3).map(|(k, _)| k.as_str()).collect();
        let _ = writeln!(
            o,
            "  {}: +{:.0} bytes per 1,000 snapshots{hour} (R² {:.2}), growing: {}",
            x.owner,
            x.bytes_per_1000,
            x.r2,
            kinds.join(", ")
        );
    }
}

fn culprits(o: &mut String, c: &Culprits) {
    let _ = writeln!(
        o,
        "fragmentation at snapshot {} ({}): {} bytes free, longest free run {} bytes",
        c.snapshot,
        c.moments.join(", ").replace('_', " "),
        c.free_bytes,
        c.largest_free_bytes
    );
    if let Some(note) = &c.note {
        let _ = writeln!(o, "  (note: {note})");
    }
    for r in &c.removals {
        let _ = writeln!(
            o,
            "  if these {} were gone, the longest free run would be {} bytes:",
            r.allocations.len(),
            r.largest_free_bytes_if_gone
        );
        for a in &r.allocations {
            let what = a.name.as_ref().or(a.type_name.as_ref()).map(|n| format!(" {n}")).unwrap_or_default();
            let age = if a.age_at_least { "at least " } else { "" };
            let held = a.holder.as_ref().map(|h| format!(", held by {h}")).unwrap_or_default();
            let _ = writeln!(
                o,
                "    0x{:08x} {}{what} ({} bytes), {age}{} snapshots old{held}",
                a.address, a.kind, a.bytes, a.age_snapshots
            );
        }
    }
}

fn duration(seconds: f64) -> String {
    if seconds >= 3600.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else if seconds >= 60.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        format!("{seconds:.1} s")
    }
}
