//! `heapvis summary`: its figures against DuckDB's reading of the same tables
//! and against the capture's sidecar, its culprits against a brute force, and
//! the `--fail-if` gate's exit codes.

use std::process::Command;

use heapvis::answers::summary::{summary, Summary};

use heapvis::synth::{self, Board, SynthConfig, Workload};

use crate::common::duck;

/// A leaking busy SAMD21 capture with its sidecar (time, requests, MemoryErrors), analysed.
fn analysed(events: bool) -> (tempfile::TempDir, std::path::PathBuf) {
    crate::common::leaking_busy(2400, 4, events)
}

/// A whole number from DuckDB's JSON (which may spell one `144.0`).
fn int(v: &serde_json::Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64))
        .unwrap_or_else(|| panic!("{v}"))
}

fn heapvis(args: &[&str], out: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_heapvis")).arg("summary").arg(out).args(args).output().unwrap()
}

#[test]
fn the_summary_agrees_with_duckdb_and_the_sidecar() {
    let (dir, out) = analysed(true);
    let s = summary(&out).unwrap();
    let snaps = "read_parquet('{d}/snapshots/*.parquet') where status = 'ok'";
    let q = |sql: &str| duck(&sql.replace("SNAPS", snaps), &out);
    // The tightest and most fragmented moments are outside sweeps (no orphan
    // tails), as an allocation meets the heap.
    let row = &q("select count(*), min(snapshot), max(snapshot), max(used_bytes), min(free_bytes), \
                  min(longest_free_run_bytes) filter (orphan_tail_blocks = 0), \
                  max(fragmentation) filter (orphan_tail_blocks = 0), \
                  count(*) filter (orphan_tail_blocks > 0) from SNAPS")[0];
    assert!(int(&row[7]) > 0, "the capture has snapshots logged mid-sweep");
    assert_eq!((s.snapshots, s.first_snapshot, s.last_snapshot), (int(&row[0]), int(&row[1]), int(&row[2])));
    assert_eq!(
        (s.peak_used_bytes.value, s.min_free_bytes.value, s.min_largest_free_bytes.value),
        (int(&row[3]), int(&row[4]), int(&row[5]))
    );
    assert!((s.max_fragmentation.unwrap().value - row[6].as_f64().unwrap()).abs() < 1e-12);
    assert_eq!(s.smallest_failing_request_bytes, s.min_largest_free_bytes.value + 1);
    // The snapshot named is one where the figure holds.
    let at =
        q(&format!("select longest_free_run_bytes from SNAPS and snapshot = {}", s.min_largest_free_bytes.snapshot));
    assert_eq!(int(&at[0][0]), s.min_largest_free_bytes.value);

    // MemoryErrors: the sidecar's, each with the cause its figures say.
    let sidecar = std::fs::read_to_string(dir.path().join("ram.events.jsonl")).unwrap();
    let errors: Vec<serde_json::Value> = sidecar
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "memory_error")
        .collect();
    let found = s.memory_errors.as_ref().unwrap();
    assert!(!errors.is_empty(), "the busy program runs into MemoryError");
    assert_eq!(found.len(), errors.len());
    for (m, e) in found.iter().zip(&errors) {
        assert_eq!((m.snapshot, m.requested_bytes), (int(&e["snapshot"]), Some(int(&e["requested_bytes"]))));
        let r = &q(&format!("select free_bytes, longest_free_run_bytes from SNAPS and snapshot = {}", m.snapshot))[0];
        let (free, longest, asked) = (int(&r[0]), int(&r[1]), int(&e["requested_bytes"]));
        assert!(asked > longest, "a MemoryError's request did not fit");
        assert_eq!(m.cause, if asked > free { "exhaustion" } else { "fragmentation" });
    }

    // Leaks, per hour from the sidecar's time: the two the program has.
    let leaks = s.leak_suspects.as_ref().unwrap();
    let mut top: Vec<&str> = leaks.iter().take(2).map(|l| l.owner.as_str()).collect();
    top.sort();
    assert_eq!(top, ["__main__.cache", "__main__.history"]);
    let t = q("select (max(time) - min(time)) / (max(snapshot) - min(snapshot)) from SNAPS");
    let seconds_per_snapshot = t[0][0].as_f64().unwrap();
    for l in leaks {
        let expected = l.bytes_per_1000 / 1000.0 / seconds_per_snapshot * 3600.0;
        let per_hour = l.bytes_per_hour.unwrap();
        assert!((per_hour / expected - 1.0).abs() < 0.1, "{per_hour} vs {expected}");
    }

    for c in &s.culprits {
        culprits_hold(c, &out);
    }
    assert!(s.culprits.iter().any(|c| c.snapshot == s.min_largest_free_bytes.snapshot));
    cli_agrees(&s, &out);
}

/// A snapshot's culprits against DuckDB's live allocations and a brute force
/// over every single allocation's removal.
fn culprits_hold(c: &heapvis::answers::culprits::Culprits, out: &std::path::Path) {
    let snap = c.snapshot;
    let pool = &duck(&format!("select pool_start, pool_end, longest_free_run_bytes from read_parquet('{{d}}/snapshots/*.parquet') where snapshot = {snap}"), out)[0];
    let (start, end) = (int(&pool[0]), int(&pool[1]));
    let live: Vec<(u64, u64)> = duck(
        &format!("select address, bytes from read_parquet('{{d}}/allocations/*.parquet') where first_snapshot <= {snap} and last_snapshot >= {snap} order by address"),
        out,
    )
    .iter()
    .map(|r| (int(&r[0]), int(&r[1])))
    .collect();
    let longest = |gone: &[u64]| {
        let (mut best, mut at) = (0, start);
        for &(a, n) in live.iter().filter(|(a, _)| !gone.contains(a)) {
            best = best.max(a - at);
            at = a + n;
        }
        best.max(end - at)
    };
    assert_eq!((c.largest_free_bytes, c.note.as_deref()), (longest(&[]), None));
    assert_eq!(c.largest_free_bytes, int(&pool[2]), "the table's gaps are the snapshot's free runs");
    for r in &c.removals {
        let gone: Vec<u64> = r.allocations.iter().map(|a| a.address).collect();
        assert_eq!(r.largest_free_bytes_if_gone, longest(&gone), "snapshot {snap}: {gone:x?}");
    }
    let best_single = live.iter().map(|(a, _)| longest(&[*a])).max().unwrap();
    assert_eq!(c.removals[0].largest_free_bytes_if_gone, best_single, "no single allocation does better");
}

fn cli_agrees(s: &Summary, out: &std::path::Path) {
    let o = heapvis(&["--json"], out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(int(&json["figures"]["min_largest_free_bytes"]), s.min_largest_free_bytes.value);
    assert_eq!(int(&json["peak_used_bytes"]["snapshot"]), s.peak_used_bytes.snapshot);
    assert_eq!(json["leak_suspects"][0]["owner"], s.leak_suspects.as_ref().unwrap()[0].owner.as_str());
    // The gate: a leak fails it (status 3, the condition listed), a bound the
    // run keeps passes, a figure heapvis does not have is an error (2).
    let o = heapvis(&["--fail-if", "leak_bytes_per_1000_snapshots > 1", "--fail-if", "snapshots < 1"], out);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{text}");
    assert!(text.contains("FAIL: leak_bytes_per_1000_snapshots > 1") && text.contains("pass: snapshots < 1"), "{text}");
    let o = heapvis(&["--json", "--fail-if", "min_free_bytes<0"], out);
    assert_eq!(o.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["failed"], serde_json::json!([]));
    let o = heapvis(&["--fail-if", "leak_bytes < 1"], out);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("min_largest_free_bytes"), "the figures are listed");
}

/// Without a sidecar nothing is guessed: MemoryErrors and time are unknown,
/// and a gate on them fails rather than passes.
#[test]
fn without_a_sidecar_what_it_would_say_is_unknown_and_fails_a_gate() {
    let (_dir, out) = analysed(false);
    let s = summary(&out).unwrap();
    assert_eq!((s.memory_errors.as_ref(), s.time_span_seconds, s.requests_over_largest_free), (None, None, None));
    assert_eq!(s.leak_bytes_per_hour(), None);
    assert!(s.leak_bytes_per_1000_snapshots().unwrap() > 0.0);
    let o = heapvis(&["--fail-if", "leak_bytes_per_hour > 1000000000"], &out);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{text}");
    assert!(text.contains("cannot know leak_bytes_per_hour") && text.contains("MemoryErrors: unknown"), "{text}");
}

/// The answers as tables: `analyze` writes `culprits` and `memory_errors` from
/// the folder's tables; read back with DuckDB they hold what the summary says,
/// every MemoryError of the sidecar and every culprit at every moment.
#[test]
fn the_answer_tables_hold_what_the_summary_says() {
    let (dir, out) = analysed(true);
    // The CLI writes them after its run.
    let o = Command::new(env!("CARGO_BIN_EXE_heapvis"))
        .args(["analyze", "-q", "--overwrite", "-o"])
        .arg(&out)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (errors, culprits) = heapvis::answers::summary::forensics(&out).unwrap();
    let errors = errors.unwrap();
    let rows = duck("select snapshot, requested_bytes, free_bytes, largest_free_bytes, cause from '{d}/memory_errors.parquet' order by snapshot", &out);
    assert_eq!(rows.len(), errors.len());
    let sidecar = std::fs::read_to_string(dir.path().join("ram.events.jsonl")).unwrap();
    let in_sidecar = sidecar
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"] == "memory_error")
        .count();
    assert_eq!(rows.len(), in_sidecar, "every MemoryError, not the summary's first few");
    for (r, m) in rows.iter().zip(&errors) {
        assert_eq!(
            (int(&r[0]), int(&r[1]), int(&r[2]), int(&r[3])),
            (m.snapshot, m.requested_bytes.unwrap(), m.free_bytes, m.largest_free_bytes)
        );
        assert_eq!(r[4], m.cause);
    }
    // One row per allocation of each removal; the moments named.
    let rows =
        duck("select snapshot, moments, k, largest_free_bytes_if_gone, address from '{d}/culprits.parquet'", &out);
    let want: Vec<(u64, String, u64, u64, u64)> = culprits
        .iter()
        .flat_map(|c| {
            c.removals.iter().flat_map(move |r| {
                r.allocations.iter().map(move |a| {
                    (
                        c.snapshot,
                        c.moments.join(","),
                        r.allocations.len() as u64,
                        r.largest_free_bytes_if_gone,
                        a.address,
                    )
                })
            })
        })
        .collect();
    let have: Vec<(u64, String, u64, u64, u64)> = rows
        .iter()
        .map(|r| (int(&r[0]), r[1].as_str().unwrap().to_string(), int(&r[2]), int(&r[3]), int(&r[4])))
        .collect();
    assert_eq!(have, want);
    let s = summary(&out).unwrap();
    let tightest = duck("select distinct snapshot from '{d}/culprits.parquet' where moments like '%tightest%'", &out);
    assert_eq!(int(&tightest[0][0]), s.min_largest_free_bytes.snapshot);
    let at_errors =
        duck("select count(distinct snapshot) from '{d}/culprits.parquet' where moments like '%memory_error%'", &out);
    assert_eq!(
        int(&at_errors[0][0]),
        errors.iter().map(|e| e.snapshot).collect::<std::collections::BTreeSet<_>>().len() as u64
    );

    // Without a sidecar, MemoryErrors are unknown: no table says there were none.
    let (_d2, out2) = analysed(false);
    let files = heapvis::answers::export::write(&out2).unwrap();
    assert!(
        files.iter().all(|f| !f.ends_with("memory_errors.parquet")) && !out2.join("memory_errors.parquet").exists()
    );
    assert!(out2.join("culprits.parquet").is_file());
}

/// A `--metrics-only` folder has no allocations, retainers or histograms:
/// the summary and the report still answer, and say what they cannot know.
#[test]
fn a_metrics_only_folder_answers_what_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SynthConfig::new(Board::Samd21, 600, 2);
    (config.workload, config.events) = (Workload::Busy, true);
    synth::write_dir(&config, dir.path()).unwrap();
    let out = dir.path().join("out");
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_heapvis")).args(args).output().unwrap();
    let o = run(&["analyze", "-q", "--metrics-only", "-o", out.to_str().unwrap(), dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = summary(&out).unwrap();
    assert!(s.culprits.is_empty() && s.culprits_unknown.is_some() && s.leak_suspects.is_none());
    assert!(s.memory_errors.is_some(), "the sidecar still tells the MemoryErrors");
    let text = String::from_utf8_lossy(&heapvis(&[], &out).stdout).into_owned();
    assert!(text.contains("fragmentation culprits: unknown"), "{text}");
    let page = dir.path().join("r.html");
    let o = run(&["report", out.to_str().unwrap(), "-o", page.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("id=\"chart-heap\"") && html.contains("Unknown: the folder has no `allocations` table"));
}
