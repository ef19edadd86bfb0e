"""A night's captures over a Dask cluster: one task per capture and snapshot
range, each running the Rust pipeline on its shard and writing its part files
straight into one hive-partitioned dataset,

    OUT/capture=<name>/<table>/part-<start>-<end>.parquet

then one task per capture that stitches its shards into the files a single
run over the whole capture writes (lifetimes a shard boundary cut are joined,
byte for byte; see ``heapvis::Capture::stitch``) and writes its answers. A
reader never sees a shard: DuckDB, Polars and pyarrow read each table across
captures as one, with ``capture`` as a column (see :func:`read`).

Every worker must see the captures and ``OUT`` at the same paths (a shared
filesystem). A task is idempotent: a retried one (its worker died, or it
raised) replaces its own range, and the output folder's lock keeps the
manifest whole while tasks of one capture commit side by side.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from typing import Any, Iterable, Mapping, Optional, Union

import heapvis

__all__ = ["analyze", "read", "captures_in"]

PathLike = Union[str, "os.PathLike[str]"]
# What `heapvis.open` takes besides the path.
_OPEN_KEYS = ("elf", "firmware_bin", "firmware_map", "profile")
# A capture's name is a path segment and a hive value: no separators, no `=`.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _sources(captures: Union[Mapping[str, Any], Iterable[PathLike]]) -> dict[str, dict[str, Any]]:
    """Each capture's name and how to open it: a mapping of names to paths (or
    to dicts of `heapvis.open`'s arguments), or paths named by their folder."""
    if isinstance(captures, Mapping):
        items = list(captures.items())
    else:
        items = []
        for path in captures:
            p = os.path.abspath(os.fspath(path))
            folder = p if os.path.isdir(p) else os.path.dirname(p)
            items.append((os.path.basename(folder), p))
    sources: dict[str, dict[str, Any]] = {}
    for name, spec in items:
        if not _NAME.match(name):
            raise ValueError(f"capture name {name!r}: letters, digits, '.', '_' and '-' only (it names a folder)")
        if name in sources:
            raise ValueError(f"two captures are named {name!r}: give a mapping of names to captures")
        spec = dict(spec) if isinstance(spec, Mapping) else {"path": spec}
        unknown = set(spec) - {"path", *_OPEN_KEYS}
        if "path" not in spec or unknown:
            raise ValueError(f"capture {name!r}: give a path, and only {', '.join(_OPEN_KEYS)} besides")
        sources[name] = {k: (None if v is None else os.path.abspath(os.fspath(v))) if k != "profile" else v
                         for k, v in spec.items()}
    if not sources:
        raise ValueError("no captures given")
    return sources


# One opened capture per worker process and source: opening reads the ELF's
# debug info, which every task of a capture would otherwise repeat.
_OPENED: dict[tuple, heapvis.Capture] = {}


def _open(source: dict[str, Any]) -> heapvis.Capture:
    key = tuple(sorted(source.items()))
    if key not in _OPENED:
        _OPENED[key] = heapvis.open(source["path"], **{k: source.get(k) for k in _OPEN_KEYS})
    return _OPENED[key]


# Buffers under this come from the worker's heap, not each from its own mmap.
_MMAP_THRESHOLD = 4 << 20


def _analyze_range(source: dict[str, Any], folder: str, start: int, end: int, options: dict[str, Any]) -> dict:
    """One task: snapshots `start..end` of one capture into its folder, as a shard."""
    # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which
    # stops glibc from raising its mmap threshold: each per-snapshot buffer
    # over 128 KiB would be mapped and unmapped again (35% slower). Freed
    # memory still goes back to the system at Dask's threshold.
    heapvis._heapvis.set_mmap_threshold(_MMAP_THRESHOLD)
    run = dict(options, snapshots=f"{start}..{end}")
    return _open(source)._inner.analyze(folder, heapvis._options(run), None)


def _stitch(source: dict[str, Any], folder: str, options: dict[str, Any], shards: list) -> dict:
    """One task per capture, after its shards: one run's files, then the answers."""
    capture = _open(source)
    capture._inner.stitch(folder, heapvis._options(options))
    heapvis._heapvis.write_answers(folder)
    notes = [note for _, shard_notes in shards for note in shard_notes]
    figures = [json.loads(text) for text, _ in shards]
    total = {k: sum(f[k] for f in figures) for k in ("snapshots", "failed", "suspect", "bytes",
                                                     "decoded_from_previous")}
    return {**total, "folder": folder, "shards": len(shards), "warnings": notes}


def _check_options(options: dict[str, Any]) -> dict[str, Any]:
    refused = {"snapshots": "each task takes a range; the fan-out covers every snapshot",
               "frames": "frames are rendered by a single run", "movie": "a movie is made by a single run",
               "overwrite": "each capture's folder must be new or hold the same capture's shards",
               "follow": "a fan-out takes finished captures; follow a growing one with heapvis.analyze"}
    for key, why in refused.items():
        if options.get(key):
            raise ValueError(f"heapvis.dask.analyze: {key}: {why}")
    if options.get("layout", "parts") != "parts":
        raise ValueError("heapvis.dask.analyze: layout: shards are part files (layout='parts')")
    checked = heapvis._options(options)  # unknown options and bad values fail here, not on a worker
    return {k: v for k, v in options.items() if k in checked}


def analyze(captures: Union[Mapping[str, Any], Iterable[PathLike]], out: PathLike, client: Any = None,
            snapshots_per_task: int = 2000, **options: Any) -> dict[str, dict]:
    """Analyses every capture into ``OUT/capture=<name>/`` on a Dask cluster.

    ``captures``: paths (named by their folder), or a mapping of names to
    paths or to dicts of :func:`heapvis.open`'s arguments. ``client``: a
    ``dask.distributed.Client``; by default the current one, else a
    ``LocalCluster`` for this call. ``options``: :func:`heapvis.analyze`'s,
    except ``snapshots``, ``frames``, ``movie`` and ``overwrite``.

    Returns each capture's figures (snapshots, failed, ... and its warnings).
    A task that fails raises here after Dask's retries."""
    if int(snapshots_per_task) < 1:
        raise ValueError("snapshots_per_task: at least 1")
    sources = _sources(captures)
    options = _check_options(options)
    out = os.path.abspath(os.fspath(out))
    os.makedirs(out, exist_ok=True)
    if client is None:
        from distributed import Client, LocalCluster, get_client

        try:
            client = get_client()
        except ValueError:
            with LocalCluster(processes=True) as cluster, Client(cluster) as own:
                return _run(own, sources, out, int(snapshots_per_task), options)
    return _run(client, sources, out, int(snapshots_per_task), options)


def _run(client: Any, sources: dict, out: str, per_task: int, options: dict) -> dict[str, dict]:
    stitched = {}
    token = uuid.uuid4().hex[:12]  # task keys of this call, never a finished one's
    for name, source in sources.items():
        count = len(_open(source))  # opened here too: a bad capture fails before any task
        if count == 0:
            raise heapvis.HeapvisError(f"capture {name!r}: {source['path']} holds no whole snapshot")
        folder = os.path.join(out, f"capture={name}")
        shards = [
            client.submit(_analyze_range, source, folder, start, min(start + per_task, count), options,
                          key=f"heapvis-shard-{name}-{start}-{token}", retries=2, pure=False)
            for start in range(0, count, per_task)
        ]
        stitched[name] = client.submit(_stitch, source, folder, options, shards,
                                       key=f"heapvis-stitch-{name}-{token}", retries=2,
                                       pure=False)
    results = client.gather(list(stitched.values()))
    return dict(zip(stitched, results))


def captures_in(out: PathLike) -> list[str]:
    """The captures of a fan-out's dataset, by name."""
    prefix = "capture="
    return sorted(e.name[len(prefix):] for e in os.scandir(os.fspath(out))
                  if e.is_dir() and e.name.startswith(prefix))


def read(out: PathLike, table: str):
    """One table across every capture of a fan-out's dataset as a pyarrow
    Table, with ``capture`` as its first column (what DuckDB's
    ``read_parquet('OUT/capture=*/TABLE/*.parquet', hive_partitioning=true)``
    reads)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = []
    for name in captures_in(out):
        folder = os.path.join(os.fspath(out), f"capture={name}", table)
        files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".parquet"))
        for f in files:
            t = pq.read_table(f)
            parts.append(t.add_column(0, "capture", pa.array([name] * t.num_rows, pa.string())))
    if not parts:
        raise heapvis.HeapvisError(f"{out}: no `{table}` table in any capture=<name> folder")
    return pa.concat_tables(parts)
