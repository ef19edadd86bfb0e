"""Type stubs of the heapvis package (see __init__.py for the docs)."""

import os
from typing import Any, Callable, Literal, Optional, Union

import pyarrow as pa

PathLike = Union[str, os.PathLike[str]]
Progress = Union[bool, Callable[[int, int], None]]
Selection = Union[str, int, range, tuple[int, int]]

class HeapvisError(Exception): ...
class HeapvisWarning(UserWarning): ...

class Snapshot:
    @property
    def index(self) -> int: ...
    def table(
        self, name: Literal["blocks", "edges", "qstrs", "strings", "free_runs", "snapshots"]
    ) -> pa.Table: ...
    @property
    def blocks(self) -> pa.Table: ...
    @property
    def edges(self) -> pa.Table: ...
    @property
    def qstrs(self) -> pa.Table: ...
    @property
    def strings(self) -> pa.Table: ...
    @property
    def free_runs(self) -> pa.Table: ...
    @property
    def snapshots(self) -> pa.Table: ...

class Capture:
    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> Snapshot: ...
    @property
    def snapshot_bytes(self) -> int: ...
    @property
    def dump_path(self) -> str: ...
    @property
    def profile(self) -> str: ...
    def snapshot(self, index: int) -> Snapshot: ...
    def analyze(
        self,
        out: PathLike,
        *,
        progress: Progress = True,
        follow: bool = False,
        idle: Optional[float] = None,
        publish_every: str = "1s",
        report: Optional[PathLike] = None,
        snapshots: Selection = "all",
        per_snapshot: bool = False,
        metrics_only: bool = False,
        layout: Literal["parts", "files"] = "parts",
        threads: Optional[int] = None,
        full_decode: bool = False,
        overwrite: bool = False,
        retention: bool = True,
        frames: bool = False,
        movie: Optional[PathLike] = None,
        scale: int = 8,
        frame_layout: Literal["fill", "reference"] = "fill",
        frame_step: int = 1,
        fps: int = 10,
    ) -> dict[str, Any]: ...
    def why(self, address: int, snapshot: int = -1) -> dict[str, Any]: ...

def open(
    path: PathLike,
    elf: Optional[PathLike] = None,
    firmware_bin: Optional[PathLike] = None,
    firmware_map: Optional[PathLike] = None,
    profile: Optional[PathLike] = None,
) -> Capture: ...
def analyze(
    capture: Union[Capture, PathLike],
    out: PathLike,
    *,
    progress: Progress = True,
    follow: bool = False,
    idle: Optional[float] = None,
    publish_every: str = "1s",
    report: Optional[PathLike] = None,
    snapshots: Selection = "all",
    per_snapshot: bool = False,
    metrics_only: bool = False,
    layout: Literal["parts", "files"] = "parts",
    threads: Optional[int] = None,
    full_decode: bool = False,
    overwrite: bool = False,
    retention: bool = True,
    frames: bool = False,
    movie: Optional[PathLike] = None,
    scale: int = 8,
    frame_layout: Literal["fill", "reference"] = "fill",
    frame_step: int = 1,
    fps: int = 10,
) -> dict[str, Any]: ...
def summary(out: PathLike) -> dict[str, Any]: ...
def leaks(out: PathLike, capture: Optional[Union[Capture, PathLike]] = None) -> dict[str, Any]: ...
def diff(
    out: PathLike, a: int, b: int, top: int = 10, capture: Optional[Union[Capture, PathLike]] = None
) -> dict[str, Any]: ...
def why(capture: Union[Capture, PathLike], address: int, snapshot: int = -1) -> dict[str, Any]: ...
def synth(
    out: PathLike,
    *,
    board: Literal["samd21", "samd51"] = "samd21",
    layout: Literal["circuitpython3", "micropython", "micropython64", "circuitpython10"] = "circuitpython3",
    snapshots: int = 100,
    seed: int = 1,
    workload: Literal["light", "busy"] = "light",
    every: int = 1,
    start_after: int = 0,
    events: bool = False,
    log_marks: bool = False,
    leak: bool = False,
) -> dict[str, Any]: ...
