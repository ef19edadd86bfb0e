"""The README's Python examples run as a user would paste them, in a fresh
folder: the quick look at a snapshot in Polars, and the Dask fan-out of two
simulated boards on a local cluster."""

import re
import runpy

from conftest import REPO


def readme_python_blocks():
    text = (REPO / "README.md").read_text()
    section = text[text.index("## From Python"):text.index("## Frames and the fragmentation movie")]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_snapshot_example_gives_polars_frames(monkeypatch):
    monkeypatch.chdir(REPO)  # it opens data/sample
    first = readme_python_blocks()[0]
    assert "heapvis.open(" in first and "pl.from_arrow" in first
    namespace = {}
    exec(compile(first, "README.md", "exec"), namespace)
    blocks = namespace["blocks"]
    assert blocks.height > 0 and {"kind", "bytes", "retained_bytes"} <= set(blocks.columns)


def test_the_dask_example_runs_on_a_local_cluster(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    local = next(b for b in readme_python_blocks() if "heapvis.dask.analyze([" in b)
    script = tmp_path / "night.py"
    script.write_text(local)
    runpy.run_path(str(script), run_name="__main__")
    printed = capsys.readouterr().out
    assert "{'board-a': 400, 'board-b': 400}" in printed
    for board in ("board-a", "board-b"):
        assert (tmp_path / "night" / "tables" / f"capture={board}" / "heapvis-manifest.toml").exists()
