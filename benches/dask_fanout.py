"""`heapvis.dask` throughput on a LocalCluster of 1 and of 2 worker processes
(one thread each, so the workers are the only parallelism), side by side with
one process using every core (`heapvis.analyze`) and a plain read of the same
files. Run by `make bench` after the Rust benches, with the Python package
installed (`make test-python` installs it).

The captures are the soak bench's busy 1 GiB SAMD51 captures of three layouts
(`bench-data/`, made by `cargo bench --bench soak`, or here when missing):
thousands of small objects on a heap kept mostly full.
"""

import os
import pathlib
import shutil
import sys
import tempfile
import time

import heapvis
import heapvis.dask

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(os.environ.get("HEAPVIS_BENCH_DATA", REPO / "bench-data"))
SNAPSHOT_BYTES = 196_608  # samd51 RAM
CASES = {
    "cp3": ("circuitpython3", None),
    "mp": ("micropython", "micropython-1.2x-synthetic"),
    "cp10": ("circuitpython10", "circuitpython-10-synthetic"),
}


def captures():
    found = {}
    for name, (layout, profile) in CASES.items():
        folder = DATA / f"samd51-{layout}-busy-e1-s200000-1g"
        if not (folder / "ram.bin").exists():
            print(f"writing {folder} ...", file=sys.stderr)
            heapvis.synth(folder, board="samd51", layout=layout, workload="busy", start_after=200_000,
                          snapshots=(1 << 30) // SNAPSHOT_BYTES, seed=1)
        found[name] = {"path": str(folder), "profile": profile}
    return found


def plain_read(paths):
    start, total = time.perf_counter(), 0
    for p in paths:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 24):
                total += len(chunk)
    return total, time.perf_counter() - start


def fan_out(sources, workers, per_task):
    """Wall time of the fan-out on a fresh cluster, its start-up not counted
    (the workers run with Dask's own malloc settings)."""
    from distributed import Client, LocalCluster

    out = pathlib.Path(tempfile.mkdtemp(prefix="heapvis-dask-bench-"))
    try:
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as c, \
                Client(c) as client:
            start = time.perf_counter()
            heapvis.dask.analyze(sources, out, client=client, snapshots_per_task=per_task, threads=1)
            return time.perf_counter() - start
    finally:
        shutil.rmtree(out, ignore_errors=True)


def one_process(sources, threads=None):
    out = pathlib.Path(tempfile.mkdtemp(prefix="heapvis-single-bench-"))
    try:
        start = time.perf_counter()
        for name, s in sources.items():
            heapvis.analyze(heapvis.open(s["path"], profile=s["profile"]), out / name, progress=False,
                            threads=threads)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main():
    sources = captures()
    dumps = [pathlib.Path(s["path"]) / "ram.bin" for s in sources.values()]
    size, read_s = plain_read(dumps)
    plain_read(dumps)  # the figures below are from the page cache, as this one's are
    size, read_s = plain_read(dumps)
    per_task = int(os.environ.get("HEAPVIS_BENCH_PER_TASK", "2000"))
    rows = [("plain read", read_s)]
    rows.append(("heapvis.analyze, one process, 1 thread", one_process(sources, threads=1)))
    rows.append((f"heapvis.analyze, one process, {os.cpu_count()} threads", one_process(sources)))
    for workers in (1, 2):
        rows.append((f"heapvis.dask, {workers} worker(s) x 1 thread", fan_out(sources, workers, per_task)))
    print(f"{len(dumps)} captures, {size / 1e9:.2f} GB, {size // SNAPSHOT_BYTES} snapshots, "
          f"{per_task} snapshots a task")
    for label, seconds in rows:
        print(f"{label:60} {seconds:7.2f} s  {size / seconds / 1e6:8.1f} MB/s")
    print(f"2 workers / 1 worker: {rows[3][1] / rows[4][1]:.2f}x; "
          f"1 worker / one process of 1 thread: {rows[1][1] / rows[3][1]:.2f} of its throughput")


if __name__ == "__main__":
    main()
