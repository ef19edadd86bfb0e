"""The package against the CLI: a snapshot's tables are the rows `heapvis
analyze --per-snapshot` writes for it (read back by DuckDB), `analyze` writes
the CLI's files byte for byte, the answers are the CLI's answers, and errors
carry the CLI's messages."""

import json
import pathlib
import re
import threading
import time

import duckdb
import polars as pl
import pyarrow as pa
import pytest

import heapvis
from conftest import SAMPLE, run_cli


def rows(table):
    """A table's rows as a sorted list, dictionary columns as their strings."""
    return sorted((tuple(r.values()) for r in table.to_pylist()), key=repr)


def parquet_files(folder):
    folder = pathlib.Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def per_snapshot(cli, busy, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "out"
    run_cli(cli, "analyze", busy, "-o", out, "--per-snapshot", "-q")
    return out


@pytest.mark.parametrize("index", [0, 1, 150, 299])
def test_a_snapshot_holds_the_rows_the_cli_writes_for_it(busy, per_snapshot, index):
    snapshot = heapvis.open(busy).snapshot(index)
    assert snapshot.index == index
    for name in ["snapshots", "blocks", "edges", "qstrs", "strings", "free_runs"]:
        ours = snapshot.table(name)
        theirs = duckdb.sql(f"SELECT * FROM read_parquet('{per_snapshot}/{name}/*.parquet') "
                            f"WHERE snapshot = {index}").arrow()
        if hasattr(theirs, "read_all"):
            theirs = theirs.read_all()
        assert ours.column_names == theirs.column_names, name
        assert rows(ours) == rows(theirs), f"{name} of snapshot {index}"
    assert snapshot.blocks.num_rows > 1000, "a busy heap: thousands of allocations"


def test_negative_indices_count_from_the_end_and_the_length_is_the_clis(busy, per_snapshot):
    capture = heapvis.open(busy)
    count = duckdb.sql(f"SELECT count(*) FROM read_parquet('{per_snapshot}/snapshots/*.parquet')").fetchall()[0][0]
    assert len(capture) == count == 300
    assert capture.snapshot(-1).index == 299 and capture[-300].index == 0
    for bad in (300, -301):
        with pytest.raises(IndexError, match="holds 300 snapshot"):
            capture.snapshot(bad)


def test_tables_reach_polars_and_pandas_without_a_copy(busy):
    snapshot = heapvis.open(busy).snapshot(200)
    before = pa.total_allocated_bytes()
    blocks = snapshot.blocks
    # The buffers were made by Rust: pyarrow's allocator made none of them.
    assert pa.total_allocated_bytes() == before
    frame = pl.from_arrow(blocks)
    assert frame.height == blocks.num_rows
    assert frame["bytes"].sum() == sum(blocks["bytes"].to_pylist())
    assert len(blocks.to_pandas()) == blocks.num_rows


@pytest.mark.parametrize("options,flags", [
    ({}, []),
    ({"per_snapshot": True, "snapshots": range(20, 180)}, ["--per-snapshot", "--snapshots", "20..180"]),
    ({"layout": "files", "retention": False, "threads": 1}, ["--layout", "files", "--no-retention",
                                                              "--threads", "1"]),
])
def test_analyze_writes_the_files_the_cli_writes(cli, busy, tmp_path, options, flags):
    result = heapvis.analyze(busy, tmp_path / "py", progress=False, **options)
    run_cli(cli, "analyze", busy, "-o", tmp_path / "cli", "-q", *flags)
    ours, theirs = parquet_files(tmp_path / "py"), parquet_files(tmp_path / "cli")
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        assert ours[name] == theirs[name], name
    assert result["failed"] == 0 and result["snapshots"] == (160 if "snapshots" in options else 300)
    assert "culprits.parquet" in ours or any(n.startswith("culprits") for n in ours)


def test_progress_is_reported_to_the_end(busy, tmp_path):
    seen = []
    heapvis.analyze(busy, tmp_path / "out", progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (300, 300)
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


def test_a_progress_bar_is_drawn(busy, tmp_path, capsys):
    heapvis.analyze(busy, tmp_path / "out")  # tqdm: a bar on stderr outside notebooks
    assert "300/300" in capsys.readouterr().err


def test_answers_are_the_clis(cli, busy, tmp_path):
    out = tmp_path / "out"
    capture = heapvis.open(busy)
    capture.analyze(out, progress=False)
    summary = heapvis.summary(out)
    cli_summary = json.loads(run_cli(cli, "summary", out, "--json").stdout)
    cli_summary.pop("failed", None)
    assert summary == cli_summary

    assert heapvis.diff(out, 50, 250, capture=capture) == json.loads(
        run_cli(cli, "diff", out, "50", "250", "--json", "--capture", busy).stdout)

    leaks = heapvis.leaks(out, capture)
    text = run_cli(cli, "leaks", out, "--capture", busy).stdout
    owners = re.findall(r"^\s*\d+\. (.+?): \+", text, re.M)
    assert [s["owner"] for s in leaks["suspects"]][:len(owners)] == owners
    assert owners[:2] and leaks["suspects"][0]["example"]["path"] in text
    assert f"until snapshot {leaks['warm_up_until']}" in text
    assert heapvis.leaks(out)["suspects"][0]["owner"] == owners[0]

    target = leaks["suspects"][0]["example"]["address"]
    answer = heapvis.why(capture, target, snapshot=-1)
    text = run_cli(cli, "why", hex(target), busy, "--snapshot", "299").stdout
    assert f"{answer['target']['kind']} at 0x{answer['target']['address']:08x}" in text
    assert answer["reachable"] and answer["python"] and answer["python"] in text
    assert [s["name"] for s in answer["path"]][-1] in text


def test_errors_carry_the_clis_message(cli, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(heapvis.HeapvisError) as e:
        heapvis.open(missing)
    stderr = run_cli(cli, "inspect", missing, check=False).stderr.strip()
    assert stderr == f"heapvis: {e.value}"

    with pytest.raises(heapvis.HeapvisError) as e:
        heapvis.analyze(SAMPLE, tmp_path / "out", snapshots="9..3", progress=False)
    stderr = run_cli(cli, "analyze", SAMPLE, "-o", tmp_path / "out", "--snapshots", "9..3", check=False).stderr
    assert str(e.value) in stderr and "9..3" in str(e.value)

    with pytest.raises(heapvis.HeapvisError, match="scale"):
        heapvis.analyze(SAMPLE, tmp_path / "out", frames=True, scale=0, progress=False)
    with pytest.raises(TypeError, match="unknown option"):
        heapvis.analyze(SAMPLE, tmp_path / "out", per_snapshots=True)
    assert not (tmp_path / "out").exists(), "nothing is written before the options are checked"


def test_another_captures_folder_is_refused_as_the_cli_refuses_it(cli, busy, tmp_path):
    heapvis.analyze(SAMPLE, tmp_path / "out", progress=False)
    with pytest.raises(heapvis.HeapvisError) as e:
        heapvis.analyze(busy, tmp_path / "out", progress=False)
    stderr = run_cli(cli, "analyze", busy, "-o", tmp_path / "out", check=False).stderr
    assert "another capture" in str(e.value) and str(e.value).split(": ", 1)[1] in stderr


def test_long_work_releases_the_gil(busy, tmp_path):
    capture = heapvis.open(busy)
    span = {}

    def work():
        span["start"] = time.perf_counter()
        capture.analyze(tmp_path / "out", progress=False, full_decode=True, per_snapshot=True)
        span["end"] = time.perf_counter()

    worker = threading.Thread(target=work)
    ticks = []
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    worker.join()
    assert span["end"] - span["start"] > 0.3, "long enough to tell"
    # Python ran all along the call, not only before and after it.
    inside = [t for t in ticks if span["start"] + 0.1 < t < span["end"] - 0.1]
    assert len(inside) > 50


def test_the_stubs_declare_what_the_package_exports():
    import ast

    stub = pathlib.Path(heapvis.__file__).with_name("__init__.pyi")
    tree = ast.parse(stub.read_text())
    declared = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert set(heapvis.__all__) <= declared
    methods = {n.name: {m.name for m in n.body if isinstance(m, ast.FunctionDef)}
               for n in tree.body if isinstance(n, ast.ClassDef)}
    for cls in ("Capture", "Snapshot"):
        public = {m for m in dir(getattr(heapvis, cls)) if not m.startswith("_")}
        assert public <= methods[cls], f"{cls}: {public - methods[cls]} not in the stub"
