"""Holds the Python package and the Dask fan-out to the CLI on a real capture
(`tools/capture/capture.sh` makes one): every Nth snapshot's tables from
`heapvis.open(...).snapshot(i)` against the rows `heapvis analyze
--per-snapshot` wrote for it, and the fan-out's files against a single run's,
byte for byte.

    python3 tools/capture/check_python.py CAPTURE_DIR [--heapvis target/release/heapvis]
"""

import argparse
import pathlib
import subprocess
import sys
import tempfile

import duckdb

import heapvis
import heapvis.dask

TABLES = ["snapshots", "blocks", "edges", "qstrs", "strings", "free_runs"]


def rows(table):
    return sorted((tuple(r.values()) for r in table.to_pylist()), key=repr)


def files(folder):
    folder = pathlib.Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


def check_snapshots(cli, capture_dir, work, every):
    out = work / "per-snapshot"
    subprocess.run([cli, "analyze", capture_dir, "-o", out, "--per-snapshot", "-q"], check=True)
    capture = heapvis.open(capture_dir)
    checked, rows_checked = 0, 0
    for index in range(0, len(capture), every):
        snapshot = capture.snapshot(index)
        for name in TABLES:
            ours = snapshot.table(name)
            theirs = duckdb.sql(f"SELECT * FROM read_parquet('{out}/{name}/*.parquet') WHERE snapshot = {index}")
            theirs = theirs.arrow()
            theirs = theirs.read_all() if hasattr(theirs, "read_all") else theirs
            if rows(ours) != rows(theirs):
                sys.exit(f"snapshot {index}: `{name}` differs from the CLI's")
            rows_checked += ours.num_rows
        checked += 1
    print(f"{checked} snapshots of {len(capture)} ({capture.profile}): all six tables equal the CLI's "
          f"({rows_checked} rows)")


def check_fan_out(cli, capture_dir, work, per_task):
    from distributed import Client, LocalCluster

    single = work / "single"
    subprocess.run([cli, "analyze", capture_dir, "-o", single, "-q"], check=True)
    night = work / "night"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c, \
            Client(c) as client:
        result = heapvis.dask.analyze({"real": capture_dir}, night, client=client, snapshots_per_task=per_task)
    ours, theirs = files(night / "capture=real"), files(single)
    if sorted(ours) != sorted(theirs) or any(ours[f] != theirs[f] for f in ours):
        sys.exit("the fan-out's files differ from a single run's")
    print(f"fan-out in {result['real']['shards']} shards over 2 workers: {len(ours)} Parquet files, "
          f"byte for byte a single run's")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", type=pathlib.Path)
    parser.add_argument("--heapvis", default="target/release/heapvis")
    parser.add_argument("--every", type=int, default=10, help="check every Nth snapshot")
    parser.add_argument("--per-task", type=int, default=100, help="snapshots per fan-out task")
    a = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="heapvis-check-") as tmp:
        work = pathlib.Path(tmp)
        check_snapshots(a.heapvis, a.capture, work, a.every)
        check_fan_out(a.heapvis, a.capture, work, a.per_task)


if __name__ == "__main__":
    main()
