# %% [markdown]
# # heapvis in a notebook
#
# A night's soak test in a few cells: open a capture, look at one snapshot in
# Polars, analyse every snapshot, then ask what leaks and what holds it.
# Cells are in the "percent" format that Jupyter (jupytext), VS Code and
# PyCharm open as a notebook; run from the repository's root
# (`python3 docs/python-example.py` runs it whole, and so does the test suite).

# %%
import pathlib
import tempfile

import duckdb
import polars as pl

import heapvis

work = pathlib.Path(tempfile.mkdtemp(prefix="heapvis-example-"))

# %% [markdown]
# ## A capture
# The committed sample is a CircuitPython 3.0 SAMD21 capture. For a busy heap
# with a leak we also make one with the simulator: thousands of small objects,
# a heap mostly full, and a program that leaks through two globals.

# %%
sample = heapvis.open("data/sample")
heapvis.synth(work / "night", board="samd21", workload="busy", snapshots=1500, every=2, events=True,
              leak=True, seed=4)
night = heapvis.open(work / "night")
print(sample, night, sep="\n")

# %% [markdown]
# ## One snapshot, in Polars
# Every per-snapshot table is a `pyarrow.Table`; Polars and pandas take it
# without a copy.

# %%
last = night.snapshot(-1)
blocks = pl.from_arrow(last.blocks)
by_kind = (blocks.group_by("kind").agg(pl.len().alias("allocations"), pl.col("bytes").sum())
           .sort("bytes", descending=True))
print(by_kind.head(8))
figures = last.snapshots.to_pylist()[0]
assert blocks.height == figures["allocation_count"]
assert pl.from_arrow(last.free_runs)["bytes"].max() == figures["longest_free_run_bytes"]

# %% [markdown]
# ## The whole night
# `analyze` writes the Parquet tables the CLI writes (a progress bar shows in
# a notebook and in a terminal); `summary` reads the answers back.

# %%
out = work / "out"
run = heapvis.analyze(night, out)
summary = heapvis.summary(out)
print(run["snapshots"], "snapshots;", summary["figures"]["memory_errors"], "MemoryError(s)")
curve = duckdb.sql(f"SELECT snapshot, used_bytes, free_bytes, longest_free_run_bytes "
                   f"FROM read_parquet('{out}/snapshots/*.parquet') ORDER BY snapshot").pl()
assert curve.height == len(night) == run["snapshots"]

# %% [markdown]
# ## What leaks, and what holds it

# %%
leaks = heapvis.leaks(out, night)
for s in leaks["suspects"][:2]:
    print(f"{s['owner']}: +{s['bytes_per_1000']:.0f} bytes per 1,000 snapshots; e.g. {s['example']['path']}")
assert {s["owner"] for s in leaks["suspects"][:2]} == {"__main__.history", "__main__.cache"}

example = leaks["suspects"][0]["example"]
why = heapvis.why(night, example["address"], snapshot=example["snapshot"])
print(why["python"], "held by", " <- ".join(why["dominators"][:4]))
assert why["reachable"]
