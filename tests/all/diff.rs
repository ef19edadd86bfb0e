//! `heapvis diff OUT A B`: its counts against DuckDB's reading of the same
//! tables (lifetimes stitched by the README's query), the same answer from a
//! sharded folder as from one run, owners against `retainers`, survivors'
//! paths from the capture, and the command's refusals.

use std::path::{Path, PathBuf};
use std::process::Command;

use heapvis::answers::diff::{diff, Diff};
use heapvis::outdir::Contents;
use heapvis::pipeline::{AnalyzeOptions, Session, Silent};
use heapvis::synth::{self, Board, SynthConfig, Workload};
use heapvis::tables::OutputLayout;

use crate::common::duck;

/// A leaking busy capture with its sidecar, analysed whole into `whole` and in
/// three shards into `parts`.
fn analysed() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SynthConfig::new(Board::Samd21, 1600, 8);
    (config.workload, config.leak, config.events) = (Workload::Busy, true, true);
    synth::write_dir(&config, dir.path()).unwrap();
    let inputs = heapvis::firmware::InputPaths::resolve(&[dir.path().to_path_buf()]).unwrap();
    let s = Session::open_with(&inputs, None).unwrap();
    let (whole, parts) = (dir.path().join("whole"), dir.path().join("parts"));
    let n = s.dump.count();
    s.analyze(&whole, &AnalyzeOptions::default(), &Silent).unwrap();
    for (a, b) in [(0, n / 3), (n / 3, 2 * n / 3), (2 * n / 3, n)] {
        let options = AnalyzeOptions {
            selection: format!("{a}..{b}").parse().unwrap(),
            layout: OutputLayout::parts(),
            ..AnalyzeOptions::default()
        };
        s.analyze(&parts, &options, &Silent).unwrap();
    }
    (dir, whole, parts)
}

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)).unwrap_or_else(|| panic!("{v}"))
}

/// The README's stitching query, as instances with a class key.
const INSTANCES: &str = "with p as (select *, lag(\"end\") over w = 'continues' and open_start
       and lag(last_snapshot) over w + 1 = first_snapshot as joins
     from read_parquet('{d}/allocations/*.parquet') window w as (partition by address, blocks order by first_snapshot)),
   i as (select *, sum(case when joins then 0 else 1 end) over (partition by address, blocks order by first_snapshot) island from p),
   inst as (select address, blocks, arg_max(bytes, last_snapshot) bytes, arg_max(kind, last_snapshot) kind,
       arg_max(coalesce(type_name, ''), last_snapshot) t, arg_max(coalesce(class, ''), last_snapshot) c,
       min(first_snapshot) f, max(last_snapshot) l from i group by address, blocks, island)";

fn by_duckdb(out: &Path, a: u64, b: u64) -> Vec<Vec<serde_json::Value>> {
    let sql = format!(
        "{INSTANCES} select
           count(*) filter (f <= {a} and {a} <= l), coalesce(sum(bytes) filter (f <= {a} and {a} <= l), 0),
           count(*) filter (f <= {b} and {b} <= l), coalesce(sum(bytes) filter (f <= {b} and {b} <= l), 0),
           count(*) filter (f > {a} and {b} <= l and f <= {b}), coalesce(sum(bytes) filter (f > {a} and f <= {b} and {b} <= l), 0),
           count(*) filter (f <= {a} and {a} <= l and l < {b}), coalesce(sum(bytes) filter (f <= {a} and {a} <= l and l < {b}), 0),
           count(*) filter (f > {a} and l < {b}), coalesce(sum(bytes) filter (f > {a} and l < {b}), 0)
         from inst"
    );
    duck(&sql, out)
}

fn answer(out: &Path, a: u64, b: u64) -> Diff {
    diff(out, &Contents::read(out).unwrap(), a, b, 12).unwrap()
}

#[test]
fn the_diff_agrees_with_duckdb_and_shards_do_not_change_it() {
    let (_dir, whole, parts) = analysed();
    for (a, b) in [(100, 1500), (700, 900), (0, 1)] {
        let d = answer(&whole, a, b);
        let row: Vec<u64> = by_duckdb(&whole, a, b)[0].iter().map(u).collect();
        let got = [d.alive_at_a, d.alive_at_b, d.new, d.freed, d.transient];
        let got: Vec<u64> = got.iter().flat_map(|c| [c.allocations, c.bytes]).collect();
        assert_eq!(got, row, "{a}..{b}");
        assert!(d.new.allocations + d.freed.allocations > 0 || b - a == 1, "{a}..{b}: something is made or freed");
        // Without the capture, the survivors' paths are missing, and said to
        // be; without survivors nothing is missing (as the CLI and the Python
        // API both say, whether they read the capture or not).
        assert_eq!(d.paths_note.is_some(), !d.survivors.is_empty(), "{a}..{b}: {:?}", d.paths_note);
        // Alive at B is alive at A, plus new, less freed.
        assert_eq!(d.alive_at_b.bytes + d.freed.bytes, d.alive_at_a.bytes + d.new.bytes);
        // By kind sums to the totals.
        let sum = |f: fn(&heapvis::answers::diff::KindChange) -> u64| d.by_kind.iter().map(f).sum::<u64>();
        assert_eq!(
            (sum(|g| g.new.bytes), sum(|g| g.freed.bytes), sum(|g| g.transient.allocations)),
            (d.new.bytes, d.freed.bytes, d.transient.allocations)
        );
        // The survivors are the largest new ones.
        let top = duck(
            &format!("{INSTANCES} select address, bytes from inst where f > {a} and f <= {b} and {b} <= l order by bytes desc, address limit 12"),
            &whole,
        );
        let want: Vec<(u64, u64)> = top.iter().map(|r| (u(&r[0]), u(&r[1]))).collect();
        let have: Vec<(u64, u64)> = d.survivors.iter().map(|s| (s.address, s.bytes)).collect();
        assert_eq!(have, want, "{a}..{b}");
        // Cut into shards, the folder gives the same answer.
        let p = answer(&parts, a, b);
        assert_eq!(
            (p.alive_at_a, p.alive_at_b, p.new, p.freed, p.transient),
            (d.alive_at_a, d.alive_at_b, d.new, d.freed, d.transient)
        );
        assert_eq!((&p.by_kind, &p.survivors, &p.by_owner), (&d.by_kind, &d.survivors, &d.by_owner), "{a}..{b}");
    }
}

#[test]
fn owners_change_as_retainers_say_and_the_leak_grows() {
    let (_dir, whole, _) = analysed();
    let (a, b) = (300, 1500);
    let d = answer(&whole, a, b);
    let owners = d.by_owner.as_ref().unwrap();
    let at = |s: u64| {
        format!(
            "select owner, sum(bytes), sum(allocations) from (select owner, kind, arg_max(bytes, snapshot) bytes,
               arg_max(allocations, snapshot) allocations from read_parquet('{{d}}/retainers/*.parquet')
               where snapshot <= {s} group by owner, kind) group by owner"
        )
    };
    let (ra, rb) = (duck(&at(a), &whole), duck(&at(b), &whole));
    let get = |rows: &[Vec<serde_json::Value>], o: &str| {
        rows.iter().find(|r| r[0] == o).map_or((0, 0), |r| (u(&r[1]), u(&r[2])))
    };
    for o in owners {
        assert_eq!((o.at_a.bytes, o.at_a.allocations), get(&ra, &o.owner), "{}", o.owner);
        assert_eq!((o.at_b.bytes, o.at_b.allocations), get(&rb, &o.owner), "{}", o.owner);
        assert_ne!(o.at_a, o.at_b);
    }
    // The two leaks grow: both are among the owners that changed most.
    let top: Vec<&str> = owners.iter().take(3).map(|o| o.owner.as_str()).collect();
    for leak in ["__main__.history", "__main__.cache"] {
        let o = owners.iter().find(|o| o.owner == leak).unwrap_or_else(|| panic!("{leak} in {top:?}"));
        assert!(o.net_bytes() > 0, "{leak} grows");
    }
}

fn heapvis(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_heapvis")).arg("diff").args(args).output().unwrap()
}

#[test]
fn survivors_are_named_by_the_path_that_holds_them() {
    let (dir, whole, _) = analysed();
    let w = whole.to_str().unwrap();
    let out = heapvis(&[w, "300", "1500", "--json", "--top", "20"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(d["paths_note"].is_null(), "{}", d["paths_note"]);
    let survivors = d["survivors"].as_array().unwrap();
    assert_eq!(survivors.len(), 20);
    // Each path is the one `why` gives at B, and leaked ones are named by their global.
    let mut leaked = 0;
    for s in survivors {
        let address = format!("0x{:x}", u(&s["address"]));
        let why = Command::new(env!("CARGO_BIN_EXE_heapvis"))
            .args(["why", &address, "--snapshot", "1500"])
            .arg(dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&why.stdout);
        if text.contains("unreachable") {
            assert!(s["reachable"] == false && s["path"].is_null() && s["retained_bytes"].is_null(), "{s}");
            continue;
        }
        assert_eq!(s["reachable"], true);
        let path = s["path"].as_str().unwrap();
        if text.contains("python: ") {
            assert!(text.contains(&format!("python: {path}\n")), "{address}: {path} vs\n{text}");
        }
        assert!(text.contains(&format!("retains {} bytes", u(&s["retained_bytes"]))), "{text}");
        leaked += usize::from(path.starts_with("__main__.history") || path.starts_with("__main__.cache"));
    }
    assert!(leaked > 5, "the leaked readings are named by their global: {leaked}");
    // From the tables alone: no paths, and it says why.
    let out = heapvis(&[w, "300", "1500", "--json", "--no-paths"]);
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(d["survivors"].as_array().unwrap().iter().all(|s| s["path"].is_null()));
    assert!(d["paths_note"].as_str().unwrap().contains("not read"));
}

#[test]
fn another_capture_gives_no_paths_and_bad_snapshots_are_refused() {
    let (_dir, whole, _) = analysed();
    let other = tempfile::tempdir().unwrap();
    let mut config = SynthConfig::new(Board::Samd21, 1600, 9);
    config.workload = Workload::Busy;
    synth::write_dir(&config, other.path()).unwrap();
    let w = whole.to_str().unwrap();
    let out = heapvis(&[w, "300", "1500", "--json", "--capture", other.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(d["survivors"].as_array().unwrap().iter().all(|s| s["path"].is_null()));
    assert!(d["paths_note"].as_str().unwrap().contains("not the capture"), "{}", d["paths_note"]);
    for (a, b, says) in [("900", "300", "before"), ("300", "99999", "not in the folder")] {
        let out = heapvis(&[w, a, b]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains(says), "{}", String::from_utf8_lossy(&out.stderr));
    }
}
