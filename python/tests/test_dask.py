"""`heapvis.dask` on a real `dask.distributed` LocalCluster of worker
processes: several captures, each cut into shards, give the files of
single-process runs byte for byte, read back as one table by DuckDB, Polars
and pyarrow; and a worker killed in the middle of a shard changes nothing."""

import os
import pathlib
import threading
import time

import duckdb
import polars as pl
import pytest
from distributed import Client, LocalCluster, WorkerPlugin

import heapvis
import heapvis.dask
from conftest import REPO

TABLES = ["snapshots", "allocations", "edge_history", "qstr_history", "type_histogram", "free_run_histogram",
          "retainers"]


def parquet_files(folder):
    folder = pathlib.Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def captures(synth):
    """Three captures of three layouts, busy heaps, one of them leaking."""
    profiles = REPO / "data" / "profiles"
    return {
        "cp3": {"path": synth("cp3", "--board", "samd51", "--workload", "busy", "--snapshots", "500",
                              "--seed", "3", "--events", "--leak", "--start-after", "10000")},
        "mp": {"path": synth("mp", "--board", "samd51", "--layout", "micropython", "--workload", "busy",
                             "--snapshots", "400", "--seed", "4", "--start-after", "30000"),
               "profile": profiles / "micropython-1.2x-synthetic.toml"},
        "cp10": {"path": synth("cp10", "--board", "samd51", "--layout", "circuitpython10", "--workload", "busy",
                               "--snapshots", "300", "--seed", "5", "--every", "3"),
                 "profile": profiles / "circuitpython-10-synthetic.toml"},
    }


@pytest.fixture(scope="module")
def single(captures, tmp_path_factory):
    """Each capture analysed by one process, as `heapvis analyze` would."""
    out = tmp_path_factory.mktemp("single")
    for name, spec in captures.items():
        capture = heapvis.open(spec["path"], profile=spec.get("profile"))
        heapvis.analyze(capture, out / name, progress=False)
    return out


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as c:
        yield c


def assert_same_as_single(out, single, captures):
    assert heapvis.dask.captures_in(out) == sorted(captures)
    for name in captures:
        ours, theirs = parquet_files(out / f"capture={name}"), parquet_files(single / name)
        assert sorted(ours) == sorted(theirs), name
        for f in ours:
            assert ours[f] == theirs[f], f"capture {name}: {f}"


@pytest.fixture(scope="module")
def night(client, captures, tmp_path_factory):
    """The three captures fanned out over the cluster, 70 snapshots a task."""
    out = tmp_path_factory.mktemp("fan-out") / "night"
    return out, heapvis.dask.analyze(captures, out, client=client, snapshots_per_task=70)


def row_counts(single, captures, table):
    return {name: duckdb.sql(f"SELECT count(*) FROM read_parquet('{single / name}/{table}/*.parquet')")
            .fetchall()[0][0] for name in captures}


def test_the_fan_out_writes_what_single_runs_write(client, night, captures, single):
    out, result = night
    assert {n: r["shards"] for n, r in result.items()} == {"cp3": 8, "mp": 6, "cp10": 5}
    assert all(r["failed"] == 0 for r in result.values())
    assert {n: r["snapshots"] for n, r in result.items()} == {"cp3": 500, "mp": 400, "cp10": 300}
    assert_same_as_single(out, single, captures)
    # Both workers took shards.
    assert len({w for w in client.run(os.getpid).values()}) == 2
    # The answers of each capture are there, as a single run leaves them.
    for name in captures:
        assert heapvis.summary(out / f"capture={name}") == heapvis.summary(single / name)


def test_duckdb_polars_and_pyarrow_read_the_night_as_one_table(night, captures, single):
    out, _ = night
    for table in TABLES:
        counts = row_counts(single, captures, table)
        hive = duckdb.sql(f"SELECT capture, count(*) FROM read_parquet('{out}/capture=*/{table}/*.parquet', "
                          f"hive_partitioning = true) GROUP BY capture").fetchall()
        assert dict(hive) == counts, table
        frame = pl.scan_parquet(f"{out}/capture=*/{table}/*.parquet", hive_partitioning=True).collect()
        assert dict(frame.group_by("capture").len().iter_rows()) == counts, table
        arrow = heapvis.dask.read(out, table)
        assert dict(pl.from_arrow(arrow).group_by("capture").len().iter_rows()) == counts, table


def test_spark_reads_the_night_as_one_table(night, captures, single):
    from pyspark.sql import SparkSession

    out, _ = night
    spark = (SparkSession.builder.master("local[1]").appName("heapvis-test").config("spark.ui.enabled", "false")
             .getOrCreate())
    try:
        for table in ("snapshots", "allocations", "retainers"):
            frame = spark.read.option("basePath", str(out)).parquet(f"{out}/capture=*/{table}")
            got = {r["capture"]: r["count"] for r in frame.groupBy("capture").count().collect()}
            assert got == row_counts(single, captures, table), table
            assert frame.columns[-1] == "capture"
    finally:
        spark.stop()


class KillOnce(WorkerPlugin):
    """Kills its worker's process in the middle of the first shard of `capture`
    that any worker runs: once that shard's run has begun writing."""

    def __init__(self, marker, folder):
        self.marker, self.folder = str(marker), str(folder)

    def setup(self, worker):
        self.worker = worker

    def transition(self, key, start, finish, **kwargs):
        if finish != "executing" or "heapvis-shard-cp3-" not in str(key) or os.path.exists(self.marker):
            return
        with open(self.marker, "w") as f:
            f.write(f"{os.getpid()} {key}")

        def kill():
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                # This process's own run (`.heapvis-run-HOST-PID-NANOS`), not the other worker's.
                ours = f"-{os.getpid()}-"
                if os.path.isdir(self.folder) and any(e.startswith(".heapvis-run-") and ours in e
                                                      for e in os.listdir(self.folder)):
                    os._exit(1)
                time.sleep(0.001)

        threading.Thread(target=kill, daemon=True).start()


def test_a_worker_killed_mid_shard_changes_nothing(captures, single, tmp_path):
    out, marker = tmp_path / "night", tmp_path / "killed"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        client.register_plugin(KillOnce(marker, out / "capture=cp3"))
        result = heapvis.dask.analyze(captures, out, client=client, snapshots_per_task=250)
    assert marker.exists(), "a worker was killed"
    # The shard's run had begun: its retry found what it left and cleared it.
    notes = result["cp3"]["warnings"]
    assert any("did not finish (its process is gone)" in n for n in notes), notes
    assert not [e for e in os.listdir(out / "capture=cp3") if e.startswith(".heapvis-run-")]
    assert_same_as_single(out, single, captures)


def test_bad_arguments_fail_before_any_task(client, captures, tmp_path):
    with pytest.raises(ValueError, match="snapshots"):
        heapvis.dask.analyze(captures, tmp_path / "a", client=client, snapshots="0..10")
    with pytest.raises(ValueError, match="capture name"):
        heapvis.dask.analyze({"a/b": captures["cp3"]}, tmp_path / "b", client=client)
    with pytest.raises(TypeError, match="unknown option"):
        heapvis.dask.analyze(captures, tmp_path / "c", client=client, per_snapshots=True)
    with pytest.raises(heapvis.HeapvisError, match="not found"):
        heapvis.dask.analyze([tmp_path / "nowhere"], tmp_path / "d", client=client)
