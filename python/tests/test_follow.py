"""`heapvis.analyze(..., follow=True)` beside a writer process appending a
capture as gdb does (`tests/support/append_capture.py`): once the dump is idle,
or at an interrupt, the folder holds the tables one run over the finished file
writes, byte for byte."""

import _thread
import shutil
import subprocess
import sys
import threading
import time

import heapvis
from conftest import REPO, run_cli

APPEND = REPO / "tests" / "support" / "append_capture.py"


def parquet_files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


def growing(source, folder, first_snapshot_bytes):
    """`folder` with `source`'s firmware and its first snapshot, and a writer
    process appending the rest of the capture."""
    folder.mkdir()
    for f in ("firmware.bin", "firmware.map"):
        shutil.copy(source / f, folder / f)
    data = (source / "ram.bin").read_bytes()
    (folder / "ram.bin").write_bytes(data[:first_snapshot_bytes])
    rest = folder.parent / f"{folder.name}-rest"
    rest.mkdir()
    (rest / "ram.bin").write_bytes(data[first_snapshot_bytes:])
    (folder / "ram.events.jsonl").write_text("")
    return subprocess.Popen([sys.executable, str(APPEND), str(rest), str(folder), "7", str(first_snapshot_bytes)])


def test_following_a_growing_dump_ends_in_the_batch_runs_tables(cli, synth, tmp_path):
    source = synth("follow-source", "--board", "samd51", "--workload", "busy", "--snapshots", "160", "--seed", "9",
                   "--start-after", "20000")
    snapshot_bytes = heapvis.open(source).snapshot_bytes
    run_cli(cli, "analyze", source, "-o", tmp_path / "batch", "-q")
    writer = growing(source, tmp_path / "live", snapshot_bytes)
    seen = []
    result = heapvis.analyze(tmp_path / "live", tmp_path / "out", follow=True, idle=1.5, publish_every="200ms",
                             progress=lambda done, total: seen.append((done, total)))
    assert writer.wait(timeout=60) == 0
    assert result["snapshots"] == 160 and result["failed"] == 0 and not result["interrupted"]
    # It saw the dump grow (not only the finished file), and got to its end.
    assert min(total for _, total in seen) < 160 and seen[-1] == (160, 160)
    assert parquet_files(tmp_path / "out") == parquet_files(tmp_path / "batch")


def test_an_interrupt_stops_the_follow_with_its_tables_whole(cli, synth, tmp_path):
    source = synth("follow-source-2", "--board", "samd21", "--workload", "busy", "--snapshots", "120", "--seed", "5")
    snapshot_bytes = heapvis.open(source).snapshot_bytes
    run_cli(cli, "analyze", source, "-o", tmp_path / "batch", "-q")
    writer = growing(source, tmp_path / "live", snapshot_bytes)

    def interrupt_once_written():
        writer.wait(timeout=60)
        time.sleep(0.5)
        _thread.interrupt_main()  # as Ctrl-C, or a notebook's interrupt button

    threading.Thread(target=interrupt_once_written, daemon=True).start()
    result = heapvis.analyze(tmp_path / "live", tmp_path / "out", follow=True, progress=False)
    assert result["interrupted"] and result["snapshots"] == 120
    assert parquet_files(tmp_path / "out") == parquet_files(tmp_path / "batch")
