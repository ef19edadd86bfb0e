"""The notebook-style example in docs/ runs, top to bottom, as a user would
run it from the repository's root (its cells assert what they show)."""

import runpy

from conftest import REPO


def test_the_notebook_example_runs(monkeypatch):
    monkeypatch.chdir(REPO)
    namespace = runpy.run_path(str(REPO / "docs" / "python-example.py"), run_name="__main__")
    # It got to its last cell.
    assert namespace["why"]["reachable"] and len(namespace["leaks"]["suspects"]) >= 2
