//! The schema as a DuckDB or Polars user meets it: the README's table reference
//! matches the files column by column, the questions users ask run without traps
//! (differences, joins, comparisons of two snapshots, bytes without a hard-coded
//! block size, hex addresses) and give the decoder's answers, and every allocation
//! of a current MicroPython heap gets a kind that says what it is.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::datatypes::{DataType, SchemaRef};
use heapvis::decode::{DecodeOptions, SnapshotReport};
use heapvis::firmware::InputPaths;
use heapvis::pipeline::{AnalyzeOptions, Session, Silent};
use heapvis::synth::{self, Board, Flavor, SynthConfig};
use heapvis::tables::{lifetimes, per_snapshot, summaries, symbols_schema, TableSet};

use crate::common::{duck, python, repo};

/// The README's column tables: table name → (column, type) in order.
fn readme_columns() -> BTreeMap<String, Vec<(String, String)>> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = &readme[readme.find("\n## Tables\n").unwrap()..];
    let section = &section[..section[1..].find("\n## ").map_or(section.len(), |e| e + 1)];
    let mut tables = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            current = h.strip_prefix('`').and_then(|h| h.split('`').next()).map(str::to_string);
            continue;
        }
        let (Some(t), Some(row)) = (&current, line.strip_prefix("| `")) else { continue };
        let cells: Vec<&str> = row.split(" | ").collect();
        let (Some(col), Some(ty)) = (cells[0].strip_suffix('`'), cells.get(1)) else { continue };
        tables.entry(t.clone()).or_insert_with(Vec::new).push((col.to_string(), ty.trim().to_string()));
    }
    tables
}

fn type_word(t: &DataType) -> &'static str {
    match t {
        DataType::Int64 => "int64",
        DataType::Float64 => "float64",
        DataType::Boolean => "bool",
        DataType::Utf8 => "string",
        DataType::Dictionary(_, v) if **v == DataType::Utf8 => "dict",
        other => panic!("a column of type {other:?}: every integer is Int64"),
    }
}

#[test]
fn the_readme_table_reference_matches_the_schema_column_by_column() {
    let schemas: [(&str, SchemaRef); 15] = [
        ("snapshots", per_snapshot::snapshots_schema()),
        ("blocks", per_snapshot::blocks_schema()),
        ("edges", per_snapshot::edges_schema()),
        ("qstrs", per_snapshot::qstrs_schema()),
        ("strings", per_snapshot::strings_schema()),
        ("free_runs", per_snapshot::free_runs_schema()),
        ("allocations", lifetimes::allocations_schema()),
        ("edge_history", lifetimes::edge_history_schema()),
        ("qstr_history", lifetimes::qstr_history_schema()),
        ("type_histogram", summaries::type_histogram_schema()),
        ("free_run_histogram", summaries::free_run_histogram_schema()),
        ("retainers", summaries::retainers_schema()),
        ("symbols", symbols_schema()),
        ("culprits", heapvis::answers::export::culprits_schema()),
        ("memory_errors", heapvis::answers::export::memory_errors_schema()),
    ];
    let documented = readme_columns();
    let names: Vec<&str> = schemas.iter().map(|(n, _)| *n).collect();
    assert_eq!(documented.keys().map(String::as_str).collect::<std::collections::BTreeSet<_>>(), {
        names.iter().copied().collect()
    });
    for (name, schema) in &schemas {
        let got: Vec<(String, String)> =
            schema.fields().iter().map(|f| (f.name().clone(), type_word(f.data_type()).to_string())).collect();
        assert_eq!(&got, &documented[*name], "README's `{name}` table against the files");
    }
    // The kinds the README lists are the kinds a block can get.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let kinds = &readme[readme.find("### Kinds").unwrap()..];
    let kinds = &kinds[..kinds.find("\n## ").unwrap_or(kinds.len())];
    let mut listed: Vec<&str> = kinds
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .flat_map(|l| l.split(" | ").next().unwrap().split(", ").map(|k| k.trim_matches('`')))
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, heapvis::decode::kinds::ALL);
}

fn py(script: &str, dir: &Path) -> String {
    let out = std::process::Command::new(python()).arg("-c").arg(script).arg(dir).output().expect("python3");
    assert!(out.status.success(), "python failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A synthetic capture of `flavor` on `board`, analysed with every table.
fn analysed(board: Board, flavor: Flavor, snapshots: u64, dir: &Path) -> (Session, Vec<SnapshotReport>) {
    let mut config = SynthConfig::new(board, snapshots, 7);
    config.flavor = flavor;
    synth::write_dir(&config, dir).unwrap();
    let inputs = InputPaths::resolve(&[dir.to_path_buf()]).unwrap();
    let s = Session::open_with(&inputs, Some(flavor.profile())).unwrap();
    let options = AnalyzeOptions { tables: TableSet::ALL, ..AnalyzeOptions::default() };
    s.analyze(&dir.join("out"), &options, &Silent).unwrap();
    let d = s.decoder(DecodeOptions::default());
    let reports = (0..s.dump.count()).map(|i| d.decode(i, s.dump.snapshot(i).unwrap()).unwrap()).collect();
    (s, reports)
}

fn int(v: &serde_json::Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("an integer, not {v}"))
}

#[test]
fn differences_joins_comparisons_and_bytes_answer_without_traps() {
    // 64-bit MicroPython: 32-byte blocks, so a query that assumes 16 is wrong.
    let dir = tempfile::tempdir().unwrap();
    let (s, reports) = analysed(Board::Samd51, Flavor::MicroPython64, 120, dir.path());
    let out = dir.path().join("out");
    assert!(reports.iter().all(|r| r.geometry.bytes_per_block == 32));

    // Consecutive differences and `snapshot - 1`, signed, as the README writes them.
    let rows = duck(
        "select snapshot - 1, free_bytes - lag(free_bytes) over w, free_bytes - first_value(free_bytes) over w \
         from '{d}/snapshots/*.parquet' window w as (order by snapshot) order by snapshot",
        &out,
    );
    for (r, row) in reports.iter().zip(&rows) {
        let free = |r: &SnapshotReport| r.gc_info.free as i64;
        assert_eq!(int(&row[0]), r.index as i64 - 1);
        let before = r.index.checked_sub(1).map(|p| free(&reports[p as usize]));
        assert_eq!(row[1].as_i64(), before.map(|b| free(r) - b), "snapshot {}", r.index);
        assert_eq!(int(&row[2]), free(r) - free(&reports[0]));
    }
    assert!(rows.iter().any(|r| r[2].as_i64().is_some_and(|d| d < 0)), "free space fell at some point");
    let polars = py(
        r#"
import sys, polars as pl
s = pl.read_parquet(f"{sys.argv[1]}/snapshots/*.parquet").sort("snapshot")
d = s.select((pl.col("free_bytes") - pl.col("free_bytes").first()).alias("d"))["d"]
print(d.min(), d.dtype)
"#,
        &out,
    );
    let lowest = reports.iter().map(|r| r.gc_info.free as i64 - reports[0].gc_info.free as i64).min().unwrap();
    assert_eq!(polars, format!("{lowest} Int64"));

    // Bytes without a hard-coded block size: the first snapshot where free space
    // would fit 40 blocks' worth but no free run does.
    let want = 40 * 32;
    let first = duck(
        &format!(
            "select min(snapshot) from '{{d}}/snapshots/*.parquet' \
             where free_bytes >= 40 * block_bytes and gc_max_free_blocks * block_bytes < {want} \
             and gc_max_free_bytes = gc_max_free_blocks * block_bytes"
        ),
        &out,
    );
    let expected = reports.iter().find(|r| r.gc_info.free >= want && r.gc_info.max_free * 32 < want);
    assert_eq!(first[0][0].as_u64(), expected.map(|r| r.index));

    // Edges join to blocks on the block index, and on the address, alike.
    let joined = duck(
        "select count(*), count(b.block), count(b2.address) from '{d}/edges/*.parquet' e \
         left join '{d}/blocks/*.parquet' b on b.snapshot = e.snapshot and b.block = e.from_block \
         left join '{d}/blocks/*.parquet' b2 on b2.snapshot = e.snapshot and b2.address = e.from_address \
         where e.from_address is not null",
        &out,
    );
    let block_edges = reports.iter().flat_map(|r| &r.edges).filter(|e| e.from_address.is_some()).count() as i64;
    assert_eq!(joined[0].iter().map(int).collect::<Vec<_>>(), vec![block_edges; 3]);
    // The same join and a bytes figure in Polars.
    let polars = py(
        r#"
import sys, polars as pl
d = sys.argv[1]
e = pl.read_parquet(f"{d}/edges/*.parquet").filter(pl.col("from_address").is_not_null())
b = pl.read_parquet(f"{d}/blocks/*.parquet").select("snapshot", "block", "kind")
j = e.join(b, left_on=["snapshot", "from_block"], right_on=["snapshot", "block"], how="inner")
s = pl.read_parquet(f"{d}/snapshots/*.parquet")
largest = s.select((pl.col("longest_free_run_blocks") * pl.col("block_bytes")).max()).item()
print(j.height, largest, s["longest_free_run_bytes"].max())
"#,
        &out,
    );
    let longest = reports.iter().flat_map(|r| &r.free_runs).map(|f| f.blocks * 32).max().unwrap();
    assert_eq!(polars, format!("{block_edges} {longest} {longest}"));
    // And a hex address compares as the README says.
    let last = reports.last().unwrap();
    let b = &last.blocks[last.blocks.len() / 2];
    let hex = duck(
        &format!(
            "select kind from '{{d}}/blocks/*.parquet' where snapshot = {} and address = '0x{:x}'::BIGINT",
            last.index, b.address
        ),
        &out,
    );
    assert_eq!(hex, vec![vec![serde_json::json!(b.kind)]]);

    // Two snapshots' histograms compare with a plain join on the group key.
    let (a, z) = (&reports[20], last);
    let groups = |r: &SnapshotReport| {
        let mut g: BTreeMap<(String, String, String), (i64, i64)> = BTreeMap::new();
        for b in &r.blocks {
            let type_name =
                b.type_address.and_then(|t| s.firmware.flash_names.get(&t)).map(|t| t.to_string()).unwrap_or_default();
            let class = if b.kind == "instance" { b.name.as_deref().unwrap_or("").to_string() } else { String::new() };
            let e = g.entry((b.kind.to_string(), type_name, class)).or_default();
            e.0 += 1;
            e.1 += (b.blocks * 32) as i64;
        }
        g
    };
    let (ga, gz) = (groups(a), groups(z));
    let mut expected: Vec<(String, String, String, i64)> = ga
        .keys()
        .chain(gz.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|k| {
            let (x, y) = (ga.get(k).copied().unwrap_or_default(), gz.get(k).copied().unwrap_or_default());
            (k.0.clone(), k.1.clone(), k.2.clone(), y.1 - x.1)
        })
        .collect();
    expected.sort();
    let sql = format!(
        "select kind, type_name, class, coalesce(z.bytes, 0) - coalesce(a.bytes, 0) \
         from (select * from '{{d}}/type_histogram/*.parquet' where snapshot = {}) a \
         full join (select * from '{{d}}/type_histogram/*.parquet' where snapshot = {}) z \
         using (kind, type_name, class) order by all",
        a.index, z.index
    );
    let got: Vec<(String, String, String, i64)> = duck(&sql, &out)
        .iter()
        .map(|r| {
            (r[0].as_str().unwrap().into(), r[1].as_str().unwrap().into(), r[2].as_str().unwrap().into(), int(&r[3]))
        })
        .collect();
    assert_eq!(got, expected);
    let polars = py(
        &format!(
            r#"
import sys, polars as pl
h = pl.read_parquet(f"{{sys.argv[1]}}/type_histogram/*.parquet").with_columns(pl.col(pl.Categorical).cast(pl.Utf8))
j = h.filter(pl.col("snapshot") == {}).join(h.filter(pl.col("snapshot") == {}), on=["kind", "type_name", "class"], how="full", coalesce=True)
print(j.height, j.filter(pl.col("count").is_not_null() & pl.col("count_right").is_not_null()).height)
"#,
            a.index, z.index
        ),
        &out,
    );
    let both = ga.keys().filter(|k| gz.contains_key(*k)).count();
    assert_eq!(polars, format!("{} {both}", expected.len()));
}

#[test]
fn a_current_micropython_heap_gets_a_kind_for_every_object_the_firmware_allocates() {
    let dir = tempfile::tempdir().unwrap();
    let (s, reports) = analysed(Board::Samd21, Flavor::MicroPython, 200, dir.path());
    let t = &s.firmware.types;
    let word = |r: &SnapshotReport, address: u64, k: u64| -> u64 {
        let ram = s.dump.snapshot(r.index).unwrap();
        let at = (address - s.firmware.ram_start + 4 * k) as usize;
        u32::from_le_bytes(ram[at..at + 4].try_into().unwrap()) as u64
    };
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &reports {
        let by_address: BTreeMap<u64, _> = r.blocks.iter().map(|b| (b.address, b)).collect();
        for b in &r.blocks {
            let typed = |ty: Option<u64>| ty.is_some() && b.type_address == ty;
            let expect = if typed(t.list) {
                // Its items array, from `mp_obj_list_t.items`, belongs to it.
                // (Mid-`list.append`, the list may still point at items just freed.)
                if let Some(items) = by_address.get(&word(r, b.address, 3)) {
                    assert_eq!((items.kind, items.owner), ("list_items", Some(b.address)), "snapshot {}", r.index);
                }
                "list"
            } else if typed(t.bytes) {
                let data = by_address[&word(r, b.address, 3)];
                assert_eq!((data.kind, data.owner), ("bytes_data", Some(b.address)));
                "bytes"
            } else if typed(t.closure) {
                for k in [3, 4] {
                    let cell = by_address[&word(r, b.address, k)];
                    assert_eq!((cell.kind, cell.owner), ("cell", Some(b.address)));
                }
                "closure"
            } else if typed(s.firmware.symbols.address_of("mp_type_float")) {
                "float"
            } else if typed(t.module) {
                "module"
            } else if typed(t.set) {
                "set"
            } else {
                continue;
            };
            assert_eq!(b.kind, expect, "snapshot {} block 0x{:x}", r.index, b.address);
            *seen.entry(expect).or_default() += 1;
        }
    }
    for k in ["list", "bytes", "closure", "float", "module", "set"] {
        assert!(seen.get(k).is_some_and(|n| *n > 0), "no {k} in the capture: {seen:?}");
    }
    // Few allocations are left `unknown`, and the tables say the same.
    let unknown: usize = reports.iter().map(|r| r.blocks.iter().filter(|b| b.kind == "unknown").count()).sum();
    let all: usize = reports.iter().map(|r| r.blocks.len()).sum();
    assert!(unknown * 20 < all, "{unknown} of {all} allocations unknown");
    let kinds = duck(
        "select count(*) filter (where kind = 'list_items' and owner_address is not null), \
         count(*) filter (where kind = 'list' and category = 'unknown') from '{d}/blocks/*.parquet'",
        &dir.path().join("out"),
    );
    // An owner is an allocation that points at what it owns.
    let orphans = duck(
        "select count(*) from '{d}/blocks/*.parquet' b left join '{d}/edges/*.parquet' e \
         on e.snapshot = b.snapshot and e.from_address = b.owner_address and e.to_address = b.address \
         where b.owner_address is not null and e.snapshot is null",
        &dir.path().join("out"),
    );
    assert_eq!(int(&orphans[0][0]), 0);
    let count = |k: &str, owned: bool| {
        let blocks = reports.iter().flat_map(|r| &r.blocks);
        blocks.filter(|b| b.kind == k && (!owned || b.owner.is_some())).count() as i64
    };
    assert_eq!((int(&kinds[0][0]), int(&kinds[0][1])), (count("list_items", true), count("list", false)));
    // `sys.path` and `sys.argv` live in the VM's state: their items are owned
    // by no heap object, and every snapshot has both.
    let last = reports.last().unwrap();
    assert_eq!(last.blocks.iter().filter(|b| b.kind == "list_items" && b.owner.is_none()).count(), 2);
}

/// The README's code blocks in `lang` (```sql, ```python) that read `out/`.
fn readme_blocks(lang: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let fence = format!("```{lang}\n");
    let mut blocks = Vec::new();
    let mut rest = readme.as_str();
    while let Some(start) = rest.find(&fence) {
        let body = &rest[start + fence.len()..];
        let end = body.find("```").unwrap();
        if body[..end].contains("out/") {
            blocks.push(body[..end].to_string());
        }
        rest = &body[end..];
    }
    blocks
}

#[test]
fn every_query_in_the_readme_runs_on_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sample = repo().join("data/sample");
    let s = Session::open(&InputPaths::resolve(&[sample]).unwrap(), heapvis::profile::Profile::default()).unwrap();
    let options = AnalyzeOptions { tables: TableSet::ALL, ..AnalyzeOptions::default() };
    s.analyze(&out, &options, &Silent).unwrap();
    heapvis::answers::export::write(&out).unwrap();
    let sql = readme_blocks("sql");
    assert!(sql.len() >= 2, "the README's SQL blocks");
    let statements: Vec<String> = sql
        .iter()
        .flat_map(|b| b.split(";\n").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>())
        .collect();
    assert!(statements.len() >= 10, "{statements:?}");
    let script = r#"
import sys, json, duckdb
d = sys.argv[1]
rows = []
for q in json.loads(sys.argv[2]):
    rows.append(len(duckdb.sql(q.rstrip(";").replace("'out/", "'" + d + "/")).fetchall()))
print(json.dumps(rows))
"#;
    let o = std::process::Command::new(python())
        .args(["-c", script, out.to_str().unwrap(), &serde_json::to_string(&statements).unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "a README query fails:\n{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<usize> = serde_json::from_slice(&o.stdout).unwrap();
    // Most answer something on the sample (the hex-address example names an
    // address of another heap).
    assert!(rows.iter().filter(|n| **n > 0).count() + 2 >= rows.len(), "{rows:?}");
    for block in readme_blocks("python") {
        let code = block.replace("\"out/", &format!("\"{}/", out.display()));
        let o = std::process::Command::new(python()).args(["-c", &code]).output().unwrap();
        assert!(o.status.success(), "the README's Polars code fails:\n{}", String::from_utf8_lossy(&o.stderr));
    }
}
