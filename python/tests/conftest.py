"""Fixtures of the Python package's tests: the repository's committed sample,
the `heapvis` CLI (the independent path the package's results are held
against), and synthetic captures it writes."""

import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"


@pytest.fixture(scope="session")
def cli() -> pathlib.Path:
    """The CLI binary of this checkout (built by `make test` before pytest runs)."""
    exe = pathlib.Path(os.environ.get("HEAPVIS_BIN", REPO / "target" / "release" / "heapvis"))
    if not exe.exists():
        subprocess.run(["cargo", "build", "--release", "--bin", "heapvis"], cwd=REPO, check=True)
    return exe


def run_cli(cli, *args, check=True):
    return subprocess.run([str(cli), *map(str, args)], capture_output=True, text=True, check=check)


@pytest.fixture(scope="session")
def synth(cli, tmp_path_factory):
    """Writes (once per arguments) a synthetic capture with `heapvis synth`."""
    made = {}

    def make(name, *args):
        if name not in made:
            folder = tmp_path_factory.mktemp("captures") / name
            run_cli(cli, "synth", folder, *args)
            made[name] = folder
        return made[name]

    return make


@pytest.fixture(scope="session")
def busy(synth):
    """A busy samd51 heap (thousands of small objects, mostly full), with its sidecar."""
    return synth("busy", "--board", "samd51", "--workload", "busy", "--snapshots", "300", "--seed", "7",
                 "--events", "--leak", "--start-after", "14000", "--every", "4")


def pytest_terminal_summary(terminalreporter):
    """A closing line in cargo's format, for `make test`'s total of every suite."""
    stats = terminalreporter.stats
    count = lambda *keys: sum(len(stats.get(k, [])) for k in keys)  # noqa: E731
    passed, failed = count("passed"), count("failed", "error")
    status = "ok" if failed == 0 else "FAILED"
    terminalreporter.write_line(
        f"test result: {status}. {passed} passed; {failed} failed; {count('skipped')} ignored; "
        "0 measured; 0 filtered out (pytest, python/tests)")
