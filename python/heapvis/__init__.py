"""heapvis from Python: open a capture of a CircuitPython/MicroPython board's
RAM, read any snapshot's tables as pyarrow Tables, run the whole analysis, and
get the answers (summary, why, leaks, diff) as data.

    >>> import heapvis, polars as pl
    >>> capture = heapvis.open("data/sample")
    >>> blocks = pl.from_arrow(capture.snapshot(-1).blocks)

The work is done by the Rust library (the ``heapvis`` crate) with the GIL
released; tables reach pyarrow through the Arrow C stream interface without a
copy. Errors are :class:`HeapvisError` with the CLI's messages.
``heapvis.dask`` fans a night's captures out over a Dask cluster.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Callable, Optional, Union

import pyarrow as pa

from . import _heapvis
from ._heapvis import HeapvisError

__all__ = [
    "Capture",
    "HeapvisError",
    "HeapvisWarning",
    "Snapshot",
    "analyze",
    "diff",
    "leaks",
    "open",
    "summary",
    "synth",
    "why",
]

PathLike = Union[str, "os.PathLike[str]"]


class HeapvisWarning(UserWarning):
    """A snapshot that did not decode, or an answer table not written: the run
    went on, and its result says what failed."""


# `analyze`'s options and their defaults: the CLI's `heapvis analyze` flags.
_ANALYZE_DEFAULTS: dict[str, Any] = {
    "snapshots": "all",
    "per_snapshot": False,
    "metrics_only": False,
    "layout": "parts",
    "threads": None,
    "full_decode": False,
    "overwrite": False,
    "retention": True,
    "frames": False,
    "movie": None,
    "scale": 8,
    "frame_layout": "fill",
    "frame_step": 1,
    "fps": 10,
}


def _selection(snapshots: Any) -> str:
    """`all`, `last`, `N`, `A..B` as the CLI reads them, from a str, an int,
    a range (step 1) or an (A, B) pair."""
    if isinstance(snapshots, str):
        return snapshots
    if isinstance(snapshots, bool):
        raise TypeError("snapshots: give 'all', 'last', N, range(A, B) or (A, B)")
    if isinstance(snapshots, int):
        return str(snapshots)
    if isinstance(snapshots, range) and snapshots.step == 1:
        return f"{snapshots.start}..{snapshots.stop}"
    if isinstance(snapshots, tuple) and len(snapshots) == 2:
        return f"{int(snapshots[0])}..{int(snapshots[1])}"
    raise TypeError("snapshots: give 'all', 'last', N, range(A, B) or (A, B)")


def _options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(_ANALYZE_DEFAULTS))
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(unknown)}; known: {', '.join(_ANALYZE_DEFAULTS)}")
    merged = {**_ANALYZE_DEFAULTS, **options}
    merged["snapshots"] = _selection(merged["snapshots"])
    if merged["movie"] is not None:
        merged["movie"] = os.fspath(merged["movie"])
    return merged


class Snapshot:
    """One decoded snapshot: its per-snapshot tables as pyarrow Tables, with
    the columns of ``heapvis analyze --per-snapshot``'s tables."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @property
    def index(self) -> int:
        """Its index in the dump (0 is the first)."""
        return self._inner.index

    def table(self, name: str) -> pa.Table:
        """The table of this name: blocks, edges, qstrs, strings, free_runs or snapshots."""
        return pa.RecordBatchReader.from_stream(self._inner.table(name)).read_all()

    @property
    def blocks(self) -> pa.Table:
        """One row per allocation: kind, type, owner, reachability, retained bytes."""
        return self.table("blocks")

    @property
    def edges(self) -> pa.Table:
        """One row per pointer from an allocation to another."""
        return self.table("edges")

    @property
    def qstrs(self) -> pa.Table:
        """One row per interned string."""
        return self.table("qstrs")

    @property
    def strings(self) -> pa.Table:
        """One row per string's text."""
        return self.table("strings")

    @property
    def free_runs(self) -> pa.Table:
        """One row per run of free blocks."""
        return self.table("free_runs")

    @property
    def snapshots(self) -> pa.Table:
        """One row: the snapshot's gc figures and status, as in the ``snapshots`` table."""
        return self.table("snapshots")

    def __repr__(self) -> str:
        return f"<heapvis.Snapshot {self.index}>"


class Capture:
    """A RAM dump and its firmware, opened and checked (see :func:`open`)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __len__(self) -> int:
        return len(self._inner)

    def __getitem__(self, index: int) -> Snapshot:
        return self.snapshot(index)

    @property
    def snapshot_bytes(self) -> int:
        """Bytes per snapshot (the RAM copied each time)."""
        return self._inner.snapshot_bytes

    @property
    def dump_path(self) -> str:
        return os.fspath(self._inner.dump_path)

    @property
    def profile(self) -> str:
        """The name of the layout profile in use."""
        return self._inner.profile

    def snapshot(self, index: int) -> Snapshot:
        """Snapshot ``index`` (negative counts from the end), decoded whole."""
        return Snapshot(self._inner.snapshot(index))

    def analyze(self, out: PathLike, *, progress: Union[bool, Callable[[int, int], None]] = True,
                **options: Any) -> dict[str, Any]:
        """See :func:`analyze`."""
        return analyze(self, out, progress=progress, **options)

    def why(self, address: int, snapshot: int = -1) -> dict[str, Any]:
        """See :func:`why`."""
        return why(self, address, snapshot)

    def __repr__(self) -> str:
        return f"<heapvis.Capture {self.dump_path!r}: {len(self)} snapshots of {self.snapshot_bytes} bytes>"


def open(path: PathLike, elf: Optional[PathLike] = None, firmware_bin: Optional[PathLike] = None,
         firmware_map: Optional[PathLike] = None, profile: Optional[PathLike] = None) -> Capture:
    """Opens a capture: a folder holding ``ram.bin`` with ``firmware.elf`` (or
    ``firmware.bin`` and ``firmware.map``), or a dump with ``elf=``, or with
    ``firmware_bin=`` and ``firmware_map=``. ``profile`` is a layout profile's
    TOML file or a shipped profile's name (as ``--profile``); without it the
    layout comes from the ELF's debug info, else the default."""
    fs = lambda p: None if p is None else os.fspath(p)  # noqa: E731
    return Capture(_heapvis.open(os.fspath(path), fs(elf), fs(firmware_bin), fs(firmware_map), fs(profile)))


def _capture(capture: Union[Capture, PathLike]) -> Capture:
    return capture if isinstance(capture, Capture) else open(capture)


def _progress_callback(progress: Union[bool, Callable[[int, int], None]]) -> tuple[Any, Callable[[], None]]:
    """The callable the run reports `(done, total)` to, and what closes it."""
    if callable(progress):
        return progress, lambda: None
    if not progress:
        return None, lambda: None
    from tqdm.auto import tqdm  # a widget in notebooks, a bar in terminals

    bars: list = []  # made at the first report, when the total is known

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="snapshot", desc="heapvis"))
        bar = bars[0]
        if bar.total != total:
            bar.total = total  # a followed dump grows
            bar.refresh()
        bar.update(done - bar.n)

    return update, lambda: bars and bars[0].close()


def analyze(capture: Union[Capture, PathLike], out: PathLike, *,
            progress: Union[bool, Callable[[int, int], None]] = True, follow: bool = False,
            idle: Optional[float] = None, publish_every: str = "1s", report: Optional[PathLike] = None,
            **options: Any) -> dict[str, Any]:
    """Decodes the capture's snapshots into Parquet tables in ``out``, as
    ``heapvis analyze`` does, then writes the answers' tables. Options are the
    CLI's flags: ``snapshots`` ('all', 'last', N, range(A, B)), ``per_snapshot``,
    ``metrics_only``, ``layout`` ('parts' or 'files'), ``threads``,
    ``full_decode``, ``overwrite``, ``retention``, ``frames``, ``movie``,
    ``scale``, ``frame_layout``, ``frame_step``, ``fps``. ``progress``: a bar
    (True), none (False) or a callable ``(done, total)``.

    ``follow=True`` follows a dump gdb is still writing (``analyze --follow``):
    the tables are published every ``publish_every`` (``"1s"``, ``"500ms"``,
    or a number of snapshots, ``"100"``) and can be read meanwhile, ``report``
    is kept up to date, and it stops once the dump has been idle for ``idle``
    seconds, or at Ctrl-C (a notebook's interrupt), then leaves one run's
    tables. The dump must hold a first snapshot.

    Returns the run's figures; snapshots that did not decode are counted in
    ``failed`` and each gives a :class:`HeapvisWarning`."""
    cap = _capture(capture)
    callback, close = _progress_callback(progress)
    try:
        if follow:
            report_path = None if report is None else os.fspath(report)
            text, notes, interrupted = cap._inner.follow(os.fspath(out), _options(options), publish_every, idle,
                                                         report_path, callback)
        else:
            if idle is not None or report is not None:
                raise TypeError("idle and report go with follow=True")
            text, notes = cap._inner.analyze(os.fspath(out), _options(options), callback)
            interrupted = False
    finally:
        close()
    for note in notes:
        warnings.warn(note, HeapvisWarning, stacklevel=2)
    result = json.loads(text)
    if follow:
        result["interrupted"] = interrupted
    try:
        _heapvis.write_answers(os.fspath(out))
    except HeapvisError as e:
        warnings.warn(f"the answers' tables (culprits, memory_errors) were not written: {e}", HeapvisWarning,
                      stacklevel=2)
    return result


def summary(out: PathLike) -> dict[str, Any]:
    """The answers from an output folder's tables (``heapvis summary --json``):
    heap figures, MemoryErrors and their causes, the leak rate, and every
    figure ``--fail-if`` can test under ``figures``."""
    return json.loads(_heapvis.summary(os.fspath(out)))


def leaks(out: PathLike, capture: Optional[Union[Capture, PathLike]] = None) -> dict[str, Any]:
    """Leak suspects: owners whose retained bytes grow steadily after warm-up,
    most growth first. With the capture ``out`` was made from, each has an
    example path."""
    if capture is None:
        return json.loads(_heapvis.leaks(os.fspath(out)))
    return json.loads(_capture(capture)._inner.leaks(os.fspath(out)))


def diff(out: PathLike, a: int, b: int, top: int = 10,
         capture: Optional[Union[Capture, PathLike]] = None) -> dict[str, Any]:
    """What changed between snapshots ``a`` and ``b`` (``heapvis diff --json``).
    With the capture, the largest survivors get a path from a root."""
    if capture is None:
        return json.loads(_heapvis.diff(os.fspath(out), a, b, top))
    return json.loads(_capture(capture)._inner.diff(os.fspath(out), a, b, top))


def why(capture: Union[Capture, PathLike], address: int, snapshot: int = -1) -> dict[str, Any]:
    """Why the allocation covering ``address`` is alive at ``snapshot``
    (negative counts from the end): the shortest path from a GC root named as
    Python would, its dominators and what it retains."""
    cap = _capture(capture)
    index = snapshot + len(cap) if snapshot < 0 else snapshot
    if not 0 <= index < len(cap):
        raise IndexError(f"snapshot {snapshot}: the capture holds {len(cap)} snapshot(s)")
    return json.loads(cap._inner.why(index, address))


def synth(out: PathLike, *, board: str = "samd21", layout: str = "circuitpython3", snapshots: int = 100,
          seed: int = 1, workload: str = "light", every: int = 1, start_after: int = 0, events: bool = False,
          log_marks: bool = False, leak: bool = False) -> dict[str, Any]:
    """Writes a synthetic capture (``ram.bin``, ``firmware.bin``,
    ``firmware.map``) into ``out``, as ``heapvis synth`` does: ``board``
    samd21 or samd51; ``layout`` circuitpython3, micropython, micropython64
    or circuitpython10; ``workload`` light or busy (thousands of small
    objects, a heap mostly full, MemoryErrors); ``leak`` makes the busy
    program leak through its global ``history`` list and ``cache`` dict;
    ``events`` writes the sidecar with each snapshot's stack pointer."""
    return json.loads(_heapvis.synth(os.fspath(out), board, layout, snapshots, seed, workload, every, start_after,
                                     events, log_marks, leak))
