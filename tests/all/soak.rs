//! Soak-test scale: lifetimes instead of repeated rows, the summaries, the
//! questions users ask of them (in real DuckDB and Polars), and shards that stitch
//! back into one run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;

use heapvis::decode::SnapshotReport;
use heapvis::pipeline::{AnalyzeOptions, Silent};
use heapvis::synth::{simulate_in_memory, Board, SynthConfig};
use heapvis::tables::{OutputLayout, TableSet};
use serde_json::Value;

use crate::common::{capture, decode_all, duck, python, session};

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

#[test]
fn allocations_are_the_simulators_objects_with_their_lifetimes() {
    let (board, n, seed) = (Board::Samd21, 500, 12);
    let c = capture(board, n, seed, 0);
    let s = session(&c.inputs);
    let out = c.dir.path().join("out");
    s.analyze(&out, &AnalyzeOptions::default(), &Silent).unwrap();
    // Expected lifetimes from the simulator's own registry, snapshot by snapshot.
    let mut config = SynthConfig::new(board, n, seed);
    config.heap_misalign = 0;
    let truth = simulate_in_memory(&config).unwrap().truth;
    let mut open: HashMap<(u64, u64), u64> = HashMap::new();
    let mut expected: BTreeSet<(u64, u64, u64, u64)> = BTreeSet::new();
    for (i, live) in truth.iter().enumerate() {
        let now: BTreeSet<(u64, u64)> = live.iter().map(|t| (t.address, t.blocks)).collect();
        open.retain(|k, first| {
            let keep = now.contains(k);
            if !keep {
                expected.insert((k.0, k.1, *first, i as u64 - 1));
            }
            keep
        });
        for k in now {
            open.entry(k).or_insert(i as u64);
        }
    }
    for (k, first) in open {
        expected.insert((k.0, k.1, first, n - 1));
    }
    let rows = duck(
        "select address, blocks, first_snapshot, last_snapshot, \"end\", open_start from '{d}/allocations/*.parquet'",
        &out,
    );
    let got: BTreeSet<(u64, u64, u64, u64)> = rows.iter().map(|r| (u(&r[0]), u(&r[1]), u(&r[2]), u(&r[3]))).collect();
    assert_eq!(rows.len(), got.len(), "no duplicate rows");
    assert_eq!(got, expected);
    for r in &rows {
        let end = r[4].as_str().unwrap();
        assert_eq!(end == "live", u(&r[3]) == n - 1, "{r:?}");
        assert!(["live", "freed", "swept"].contains(&end));
        assert_eq!(r[5], Value::Bool(false), "a whole dump has nothing from before it");
    }
    let ends: BTreeSet<&str> = rows.iter().map(|r| r[4].as_str().unwrap()).collect();
    assert_eq!(ends, ["freed", "live", "swept"].into_iter().collect());
}

/// Per-snapshot edges collapsed into intervals, the plain way.
fn edge_intervals(reports: &[SnapshotReport]) -> BTreeSet<(bool, u64, u64, u64, u64, u64)> {
    let mut open: HashMap<(bool, u64, u64, u64), u64> = HashMap::new();
    let mut out = BTreeSet::new();
    for r in reports {
        let now: BTreeSet<(bool, u64, u64, u64)> = r
            .edges
            .iter()
            .map(|e| match e.from_address {
                Some(b) => (false, b, e.from_word.unwrap() as u64, e.to_address),
                None => (true, e.root_address.unwrap(), 0, e.to_address),
            })
            .collect();
        open.retain(|k, first| {
            let keep = now.contains(k);
            if !keep {
                out.insert((k.0, k.1, k.2, k.3, *first, r.index - 1));
            }
            keep
        });
        for k in now {
            open.entry(k).or_insert(r.index);
        }
    }
    let last = reports.last().unwrap().index;
    for (k, first) in open {
        out.insert((k.0, k.1, k.2, k.3, first, last));
    }
    out
}

#[test]
fn edge_history_is_the_per_snapshot_edges_as_intervals() {
    let c = capture(Board::Samd21, 300, 13, 4);
    let s = session(&c.inputs);
    let out = c.dir.path().join("out");
    s.analyze(&out, &AnalyzeOptions::default(), &Silent).unwrap();
    let expected = edge_intervals(&decode_all(&s));
    let rows = duck(
        "select root_address is not null, coalesce(from_address, root_address), coalesce(from_word, 0), to_address, first_snapshot, last_snapshot from '{d}/edge_history/*.parquet'",
        &out,
    );
    let got: BTreeSet<_> =
        rows.iter().map(|r| (r[0].as_bool().unwrap(), u(&r[1]), u(&r[2]), u(&r[3]), u(&r[4]), u(&r[5]))).collect();
    assert_eq!(rows.len(), got.len());
    assert_eq!(got, expected);
}

#[test]
fn the_usual_questions_answered_with_duckdb_and_polars() {
    let c = capture(Board::Samd21, 600, 14, 0);
    let s = session(&c.inputs);
    let out = c.dir.path().join("out");
    s.analyze(&out, &AnalyzeOptions::default(), &Silent).unwrap();
    let reports = decode_all(&s);
    let n = reports.len() as u64;

    // 1. Free and largest free over time.
    let rows =
        duck("select snapshot, free_bytes, gc_max_free_bytes from '{d}/snapshots/*.parquet' order by snapshot", &out);
    assert_eq!(rows.len() as u64, n);
    for (r, rep) in rows.iter().zip(&reports) {
        assert_eq!((u(&r[0]), u(&r[1]), u(&r[2])), (rep.index, rep.gc_info.free, rep.gc_info.max_free * 16));
    }

    // 2. The ten longest-lived allocations of each type.
    let rows = duck(
        "select type_name, address, snapshots from (select type_name, address, snapshots, row_number() over (partition by type_name order by snapshots desc, address) rn from '{d}/allocations/*.parquet' where type_name is not null) where rn <= 10 order by type_name, snapshots desc, address",
        &out,
    );
    let mut lives: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    let mut open: HashMap<(u64, u64, String), u64> = HashMap::new();
    let mut spans: Vec<(String, u64, u64)> = Vec::new();
    for r in &reports {
        let now: BTreeSet<(u64, u64, String)> = r
            .blocks
            .iter()
            .filter_map(|b| Some((b.address, b.blocks, s.firmware.flash_names.get(&b.type_address?)?.to_string())))
            .collect();
        open.retain(|k, first| {
            let keep = now.contains(k);
            if !keep {
                spans.push((k.2.clone(), k.0, r.index - *first));
            }
            keep
        });
        for k in now {
            open.entry(k).or_insert(r.index);
        }
    }
    spans.extend(open.into_iter().map(|(k, first)| (k.2, k.0, n - first)));
    for (t, a, len) in spans {
        lives.entry(t).or_default().push((len, a));
    }
    let mut expected = Vec::new();
    for (t, mut v) in lives {
        v.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        expected.extend(v.into_iter().take(10).map(|(len, a)| (t.clone(), a, len)));
    }
    let got: Vec<(String, u64, u64)> =
        rows.iter().map(|r| (r[0].as_str().unwrap().to_string(), u(&r[1]), u(&r[2]))).collect();
    assert_eq!(got, expected);

    // 3. Objects alive at snapshot N: a range condition on first/last.
    for at in [0, n / 3, n - 1] {
        let rows = duck(&format!("select count(*) from '{{d}}/allocations/*.parquet' where first_snapshot <= {at} and last_snapshot >= {at}"), &out);
        assert_eq!(u(&rows[0][0]), reports[at as usize].blocks.len() as u64, "alive at {at}");
    }

    // 4. Leak suspects: the kind/type/class whose bytes grow most steadily
    //    (least-squares slope over the run).
    let rows = duck(
        "select kind, coalesce(type_name, ''), coalesce(class, ''), regr_slope(bytes, snapshot) slope from (select s.snapshot, k.kind, k.type_name, k.class, coalesce(h.bytes, 0) bytes from (select distinct snapshot from '{d}/snapshots/*.parquet') s cross join (select distinct kind, type_name, class from '{d}/type_histogram/*.parquet') k left join '{d}/type_histogram/*.parquet' h on h.snapshot = s.snapshot and h.kind = k.kind and h.type_name is not distinct from k.type_name and h.class is not distinct from k.class) group by all order by slope desc limit 1",
        &out,
    );
    let mut series: BTreeMap<(String, String, String), Vec<f64>> = BTreeMap::new();
    for r in &reports {
        let mut here: BTreeMap<(String, String, String), f64> = BTreeMap::new();
        for b in &r.blocks {
            let t =
                b.type_address.and_then(|a| s.firmware.flash_names.get(&a)).map(|t| t.to_string()).unwrap_or_default();
            let class = if b.category == heapvis::decode::Category::Instance {
                b.name.as_deref().unwrap_or_default().to_string()
            } else {
                String::new()
            };
            *here.entry((b.kind.to_string(), t, class)).or_default() += (b.blocks * 16) as f64;
        }
        for k in here.keys() {
            series.entry(k.clone()).or_insert_with(|| vec![0.0; reports.len()]);
        }
        for (k, v) in series.iter_mut() {
            v[r.index as usize] = here.get(k).copied().unwrap_or(0.0);
        }
    }
    let slope = |ys: &[f64]| {
        let nn = ys.len() as f64;
        let mx = (nn - 1.0) / 2.0;
        let my = ys.iter().sum::<f64>() / nn;
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for (i, y) in ys.iter().enumerate() {
            sxy += (i as f64 - mx) * (y - my);
            sxx += (i as f64 - mx) * (i as f64 - mx);
        }
        sxy / sxx
    };
    let (best, best_slope) =
        series.iter().map(|(k, ys)| (k.clone(), slope(ys))).max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    let r = &rows[0];
    assert_eq!(
        (r[0].as_str().unwrap(), r[1].as_str().unwrap(), r[2].as_str().unwrap()),
        (best.0.as_str(), best.1.as_str(), best.2.as_str())
    );
    assert!((r[3].as_f64().unwrap() - best_slope).abs() < 1e-6 * best_slope.abs().max(1.0));
    assert!(best_slope > 0.0, "something leaks in the simulated program");

    // 5. The first snapshot where free space would fit n blocks but no free run does.
    let want = 40u64;
    let rows = duck(
        &format!(
            "select min(snapshot) from '{{d}}/snapshots/*.parquet' where free_bytes >= {want} * block_bytes and gc_max_free_blocks < {want}"
        ),
        &out,
    );
    let expected = reports.iter().find(|r| r.gc_info.free >= want * 16 && r.gc_info.max_free < want).map(|r| r.index);
    assert_eq!(rows[0][0].as_u64(), expected);
    // ... and the free-run histogram agrees that no run of `want` blocks exists there.
    if let Some(at) = expected {
        let rows = duck(&format!("select coalesce(max(max_blocks), 0) from '{{d}}/free_run_histogram/*.parquet' where snapshot = {at} and runs > 0 and min_blocks >= {want}"), &out);
        assert_eq!(u(&rows[0][0]), 0);
    }

    // The same questions through Polars.
    let script = r#"
import sys, polars as pl
d = sys.argv[1]
s = pl.read_parquet(f"{d}/snapshots/*.parquet").sort("snapshot")
a = pl.read_parquet(f"{d}/allocations/*.parquet")
at = int(sys.argv[2])
alive = a.filter((pl.col("first_snapshot") <= at) & (pl.col("last_snapshot") >= at)).height
top = (a.filter(pl.col("type_name").is_not_null()).sort(["snapshots", "address"], descending=[True, False])
        .group_by(pl.col("type_name").cast(pl.Utf8), maintain_order=True).head(10))
first = s.filter((pl.col("free_bytes") >= 40 * pl.col("block_bytes")) & (pl.col("gc_max_free_blocks") < 40))["snapshot"].min()
print(s.height, alive, top.height, first)
"#;
    let o = Command::new(python()).arg("-c").arg(script).arg(&out).arg((n / 3).to_string()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let expected_first = expected.map_or("None".to_string(), |v| v.to_string());
    assert_eq!(text, format!("{} {} {} {}", n, reports[(n / 3) as usize].blocks.len(), got.len(), expected_first));
}

#[test]
fn two_shards_stitch_into_one_run() {
    let c = capture(Board::Samd21, 400, 15, 0);
    let s = session(&c.inputs);
    let whole = c.dir.path().join("whole");
    let parts = c.dir.path().join("parts");
    s.analyze(&whole, &AnalyzeOptions { layout: OutputLayout::parts(), ..AnalyzeOptions::default() }, &Silent).unwrap();
    for (a, b) in [(0u64, 170u64), (170, 400)] {
        let options = AnalyzeOptions {
            selection: format!("{a}..{b}").parse().unwrap(),
            layout: OutputLayout::parts(),
            tables: TableSet::DEFAULT,
            ..AnalyzeOptions::default()
        };
        s.analyze(&parts, &options, &Silent).unwrap();
    }
    assert!(parts.join("allocations/part-0000000000-0000000170.parquet").is_file());
    assert!(parts.join("allocations/part-0000000170-0000000400.parquet").is_file());
    // Per-snapshot tables: the union of the parts is the whole.
    for t in ["snapshots", "type_histogram", "free_run_histogram"] {
        let q = format!("select count(*) from ((select * from '{{d}}/whole/{t}/*.parquet' except all select * from '{{d}}/parts/{t}/*.parquet') union all (select * from '{{d}}/parts/{t}/*.parquet' except all select * from '{{d}}/whole/{t}/*.parquet'))");
        assert_eq!(u(&duck(&q, c.dir.path())[0][0]), 0, "{t}");
    }
    // Lifetimes: a piece that `continues` joins the next part's piece that has
    // `open_start` and starts right after it.
    let stitch = |t: &str, key: &str| {
        format!(
            "with p as (select *, lag(\"end\") over w = 'continues' and open_start and lag(last_snapshot) over w + 1 = first_snapshot as joins from '{{d}}/parts/{t}/*.parquet' window w as (partition by {key} order by first_snapshot)),
             i as (select *, sum(case when joins then 0 else 1 end) over (partition by {key} order by first_snapshot) island from p)
             select {key}, min(first_snapshot), max(last_snapshot), arg_max(\"end\", last_snapshot) from i group by {key}, island"
        )
    };
    for (t, key) in [
        ("allocations", "address, blocks"),
        ("edge_history", "from_address, from_word, root_address, to_address"),
        ("qstr_history", "id, address"),
    ] {
        let whole_q = format!("select {key}, first_snapshot, last_snapshot, \"end\" from '{{d}}/whole/{t}/*.parquet'");
        let a: BTreeSet<String> = duck(&whole_q, c.dir.path()).iter().map(|r| format!("{r:?}")).collect();
        let b: BTreeSet<String> = duck(&stitch(t, key), c.dir.path()).iter().map(|r| format!("{r:?}")).collect();
        assert!(!a.is_empty());
        assert_eq!(a, b, "{t} stitched from parts");
        let crossing = duck(
            &format!("select count(*) from '{{d}}/parts/{t}/*.parquet' where \"end\" = 'continues'"),
            c.dir.path(),
        );
        if t == "allocations" {
            assert!(u(&crossing[0][0]) > 10, "lifetimes cross the shard boundary");
        }
    }
}
