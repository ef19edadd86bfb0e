//! The tables as users read them: DuckDB and Polars (real ones, through python3)
//! open every file, answer questions, and agree with the decoder; the bytes do not
//! depend on the thread count.

use std::process::Command;

use heapvis::pipeline::{AnalyzeOptions, Silent};
use heapvis::synth::Board;
use heapvis::tables::writer::parse_part_name;
use heapvis::tables::{OutputLayout, TableSet};

use crate::common::{capture, decode_all, duck, python, session, DECODED_TABLES};

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().expect("an unsigned integer")
}

fn py(script: &str, dir: &std::path::Path) -> String {
    let out = Command::new(python()).arg("-c").arg(script).arg(dir).output().expect("python3");
    assert!(out.status.success(), "python failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn duckdb_and_polars_read_every_table_and_agree_with_the_decoder() {
    let c = capture(Board::Samd21, 150, 4, 0);
    let s = session(&c.inputs);
    let out = c.dir.path().join("out");
    let options = AnalyzeOptions { tables: TableSet::ALL, ..AnalyzeOptions::default() };
    let summary = s.analyze(&out, &options, &Silent).unwrap();
    assert_eq!(summary.snapshots, 150);
    let reports = decode_all(&s);

    // DuckDB: one row per snapshot, gc_info figures, joins across tables.
    let duck = py(
        r#"
import sys, duckdb
d = sys.argv[1]
con = duckdb.connect()
for t in ["snapshots","blocks","edges","qstrs","strings","free_runs","symbols"]:
    con.execute(f"create view {t} as select * from '{d}/{t}{'.parquet' if t == 'symbols' else '/*.parquet'}'")
print(con.execute("select count(*), count(distinct snapshot), sum(free_bytes) from snapshots where status = 'ok'").fetchone())
print(con.execute("select count(*) from blocks").fetchone()[0])
print(con.execute("select count(*) from edges").fetchone()[0])
print(con.execute("select count(*) from qstrs").fetchone()[0])
print(con.execute("select count(*) from strings").fetchone()[0])
print(con.execute("select count(*) from free_runs").fetchone()[0])
# free space per snapshot equals the sum of its free runs
print(con.execute("select count(*) from snapshots s join (select snapshot, sum(bytes) b from free_runs group by 1) f using (snapshot) where s.free_bytes <> f.b").fetchone()[0])
# every root edge's address resolves through the symbol table when it is named
print(con.execute("select count(*) from edges e join symbols y on e.root_address between y.address and y.address + coalesce(y.size, 4) - 1 where e.root_name like y.name || '+%'").fetchone()[0] > 0)
# strings join to their str objects in blocks
print(con.execute("select count(*) from strings s join blocks b on b.snapshot = s.snapshot and b.address = s.owner_address where b.kind = 'str'").fetchone()[0] > 0)
"#,
        &out,
    );
    let lines: Vec<&str> = duck.lines().collect();
    let free: u64 = reports.iter().map(|r| r.gc_info.free).sum();
    assert_eq!(lines[0], format!("(150, 150, {free})"));
    assert_eq!(lines[1], reports.iter().map(|r| r.blocks.len()).sum::<usize>().to_string());
    assert_eq!(lines[2], reports.iter().map(|r| r.edges.len()).sum::<usize>().to_string());
    assert_eq!(lines[3], reports.iter().map(|r| r.qstrs.len()).sum::<usize>().to_string());
    assert_eq!(lines[4], reports.iter().map(|r| r.strings.len()).sum::<usize>().to_string());
    assert_eq!(lines[5], reports.iter().map(|r| r.free_runs.len()).sum::<usize>().to_string());
    assert_eq!(lines[6], "0");
    assert_eq!(lines[7], "True");
    assert_eq!(lines[8], "True");

    // Polars: free and largest free over time, kinds by bytes in the last snapshot.
    let pl = py(
        r#"
import sys, polars as pl
d = sys.argv[1]
s = pl.read_parquet(f"{d}/snapshots/*.parquet").sort("snapshot")
print(s.height, s["gc_max_free_blocks"].to_list()[-1], s["used_bytes"].to_list()[-1])
b = pl.read_parquet(f"{d}/blocks/*.parquet")
last = b.filter(pl.col("snapshot") == s["snapshot"].max())
k = last.group_by(pl.col("kind").cast(pl.Utf8)).agg(pl.col("bytes").sum()).sort("kind")
print(";".join(f"{r[0]}={r[1]}" for r in k.iter_rows()))
"#,
        &out,
    );
    let last = reports.last().unwrap();
    let mut lines = pl.lines();
    assert_eq!(lines.next().unwrap(), format!("150 {} {}", last.gc_info.max_free, last.gc_info.used));
    let mut by_kind = std::collections::BTreeMap::new();
    for b in &last.blocks {
        *by_kind.entry(b.kind).or_insert(0u64) += b.blocks * 16;
    }
    let expected: Vec<String> = by_kind.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(lines.next().unwrap(), expected.join(";"));
}

#[test]
fn output_is_byte_identical_whatever_the_thread_count_and_runs() {
    // Run length 1 sends every snapshot whole to the writer; longer runs send
    // changes. Both must give the same bytes, with and without per-snapshot tables
    // (which keep the decoded rows instead of moving them into the diff).
    let c = capture(Board::Samd21, 120, 8, 4);
    let s = session(&c.inputs);
    for (set, name) in [(TableSet::ALL, "all"), (TableSet::DEFAULT, "default")] {
        let mut outputs = Vec::new();
        for (threads, run) in [(1, 64), (2, 7), (4, 1)] {
            let out = c.dir.path().join(format!("{name}{threads}"));
            let options = AnalyzeOptions { threads: Some(threads), run: Some(run), tables: set, ..Default::default() };
            s.analyze(&out, &options, &Silent).unwrap();
            outputs.push(out);
        }
        let tables: Vec<&str> = crate::common::DECODED_TABLES
            .iter()
            .copied()
            .chain(["symbols"])
            .filter(|t| !crate::common::table_files(&outputs[0], t).is_empty())
            .collect();
        assert!(tables.contains(&"allocations") && tables.contains(&"edge_history"), "{tables:?}");
        for o in &outputs[1..] {
            crate::common::assert_same_tables(&outputs[0], o, &tables, "thread counts and run lengths");
        }
    }
}

#[test]
fn metrics_only_writes_the_same_snapshots_table() {
    let c = capture(Board::Samd21, 80, 2, 0);
    let s = session(&c.inputs);
    let full = c.dir.path().join("full");
    let fast = c.dir.path().join("fast");
    s.analyze(&full, &AnalyzeOptions { tables: TableSet::ALL, ..AnalyzeOptions::default() }, &Silent).unwrap();
    let options = AnalyzeOptions { tables: TableSet::METRICS, ..AnalyzeOptions::default() };
    let summary = s.analyze(&fast, &options, &Silent).unwrap();
    assert_eq!(summary.files.len(), 1);
    let q = "select * exclude (free_run_count, longest_free_run_blocks, longest_free_run_bytes, allocation_count, finaliser_count, \
             stack_pointer, reachable_allocations, garbage_allocations, garbage_bytes, reachability) \
             from '{}/snapshots/*.parquet' order by snapshot";
    let script = format!(
        "import sys, duckdb\nd = sys.argv[1]\na = duckdb.sql(\"{}\").fetchall()\nb = duckdb.sql(\"{}\").fetchall()\nprint(a == b, len(a))",
        q.replace("{}", &full.display().to_string()),
        q.replace("{}", &fast.display().to_string())
    );
    assert_eq!(py(&script, c.dir.path()), "True 80");
    // What the metrics do not compute is NULL, never 0.
    let nulls = crate::common::duck(
        "select count(*) from '{d}/snapshots/*.parquet' where free_run_count is null and longest_free_run_blocks is null \
         and longest_free_run_bytes is null and allocation_count is null and finaliser_count is null \
         and reachable_allocations is null and garbage_allocations is null and reachability is null \
         and used_bytes is not null",
        &fast,
    );
    assert_eq!(nulls[0][0], 80);
}

#[test]
fn selections_write_only_the_selected_snapshots() {
    let c = capture(Board::Samd21, 30, 2, 0);
    let s = session(&c.inputs);
    let out = c.dir.path().join("o");
    let options = AnalyzeOptions { selection: "10..15".parse().unwrap(), ..AnalyzeOptions::default() };
    s.analyze(&out, &options, &Silent).unwrap();
    let got = py(
        "import sys, duckdb\nprint(duckdb.sql(f\"select min(snapshot), max(snapshot), count(*), min(dump_offset) from '{sys.argv[1]}/snapshots/*.parquet'\").fetchall()[0])",
        &out,
    );
    assert_eq!(got, format!("(10, 14, 5, {})", 10 * 32768));
}

/// The snapshot range each part of table `t` under `out` names, in name order.
fn part_ranges(out: &std::path::Path, t: &str) -> Vec<std::ops::Range<u64>> {
    crate::common::table_files(out, t)
        .iter()
        .map(|p| parse_part_name(p.file_name().unwrap().to_str().unwrap()).expect("a part name"))
        .collect()
}

#[test]
fn parts_roll_over_and_hold_the_same_rows_as_one_file() {
    // Long enough for the blocks table to fill more than one batch.
    let c = capture(Board::Samd21, 400, 4, 0);
    let s = session(&c.inputs);
    let (files, parts) = (c.dir.path().join("files"), c.dir.path().join("parts"));
    let options = |layout| AnalyzeOptions { tables: TableSet::ALL, layout, ..AnalyzeOptions::default() };
    s.analyze(&files, &options(OutputLayout::Files), &Silent).unwrap();
    s.analyze(&parts, &options(OutputLayout::Parts { row_groups: 1 }), &Silent).unwrap();
    for t in DECODED_TABLES {
        assert_eq!(crate::common::table_files(&files, t), vec![files.join(format!("{t}.parquet"))]);
        // The parts' ranges tile the run, in name order.
        let ranges = part_ranges(&parts, t);
        assert_eq!(ranges.first().map(|r| r.start), Some(0), "{t}");
        assert_eq!(ranges.last().map(|r| r.end), Some(400), "{t}");
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start && w[0].start < w[0].end), "{t}: {ranges:?}");
        // Each part holds the rows written while the run was in its range: a
        // snapshot's own rows, or lifetimes that ended there.
        let column = if t.ends_with("_history") || t == "allocations" { "last_snapshot" } else { "snapshot" };
        let outside = duck(
            &format!(
                "select count(*) from read_parquet('{{d}}/{t}/*.parquet', filename = true) \
                 where {column} >= cast(split_part(parse_filename(filename, true), '-', 3) as bigint) \
                 or ({column} < cast(split_part(parse_filename(filename, true), '-', 2) as bigint) and '{column}' = 'snapshot')"
            ),
            &parts,
        );
        assert_eq!(u(&outside[0][0]), 0, "{t}: rows outside their part's range");
        // The same rows as the single file.
        let diff = format!(
            "select (select count(*) from '{{d}}/files/{t}.parquet'), (select count(*) from '{{d}}/parts/{t}/*.parquet'), \
             (select count(*) from (select * from '{{d}}/files/{t}.parquet' except all select * from '{{d}}/parts/{t}/*.parquet'))"
        );
        let row = &duck(&diff, c.dir.path())[0];
        assert_eq!((u(&row[0]), u(&row[2])), (u(&row[1]), 0), "{t}");
    }
    let blocks = part_ranges(&parts, "blocks");
    assert!(blocks.len() >= 2, "blocks rolled over: {blocks:?}");
    // Polars reads a folder of parts (dictionary columns included) as one table.
    let polars = py(
        r#"
import sys, polars as pl
d = sys.argv[1]
for t in ["blocks", "edges", "allocations", "type_histogram"]:
    a = pl.read_parquet(f"{d}/files/{t}.parquet")
    b = pl.read_parquet(f"{d}/parts/{t}/*.parquet")
    assert a.shape == b.shape, (t, a.shape, b.shape)
    cast = lambda df: df.with_columns(pl.col(pl.Categorical).cast(pl.Utf8))
    assert cast(a).equals(cast(b)), t
print("same")
"#,
        c.dir.path(),
    );
    assert_eq!(polars, "same");
}

#[test]
fn a_rerun_replaces_whole_runs_keeps_other_shards_and_refuses_to_cut_one() {
    let c = capture(Board::Samd21, 60, 4, 0);
    let s = session(&c.inputs);
    let out = c.dir.path().join("out");
    let run = |sel: &str, overwrite: bool| {
        let options = AnalyzeOptions { selection: sel.parse().unwrap(), overwrite, ..AnalyzeOptions::default() };
        s.analyze(&out, &options, &Silent)
    };
    let rows = || duck("select count(*), count(distinct snapshot) from '{d}/snapshots/*.parquet'", &out);
    run("all", false).unwrap();
    let before = std::fs::read(out.join("allocations/part-0000000000-0000000060.parquet")).unwrap();
    // 0..40 would replace part of the run of 0..60, whose lifetimes span it all:
    // refused, and nothing of the complete result is touched.
    let err = run("0..40", false).unwrap_err().to_string();
    assert!(err.contains("0..60") && err.contains("only a part"), "{err}");
    assert_eq!(part_ranges(&out, "snapshots"), vec![0..60]);
    assert_eq!(std::fs::read(out.join("allocations/part-0000000000-0000000060.parquet")).unwrap(), before);
    run("all", false).unwrap(); // the same run again replaces it
    assert_eq!(part_ranges(&out, "snapshots"), vec![0..60]);
    // Shards: each a run of its own, kept by the others; a run holding both
    // replaces both.
    run("0..40", true).unwrap();
    run("40..60", false).unwrap();
    assert_eq!(part_ranges(&out, "snapshots"), vec![0..40, 40..60]);
    assert!(run("10..20", false).is_err(), "a part of the shard 0..40");
    assert_eq!(part_ranges(&out, "snapshots"), vec![0..40, 40..60]);
    let r = rows();
    assert_eq!((u(&r[0][0]), u(&r[0][1])), (60, 60));
    run("0..60", false).unwrap();
    assert_eq!(part_ranges(&out, "snapshots"), vec![0..60]);
    let leftovers = std::fs::read_dir(&out).unwrap().filter(|e| {
        let name = e.as_ref().unwrap().file_name();
        name.to_str().unwrap().starts_with(".heapvis-run-")
    });
    assert_eq!(leftovers.count(), 0, "no staging folder left");
}
