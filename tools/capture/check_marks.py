#!/usr/bin/env python3
"""Holds heapvis' reachability to the firmware's own mark phase on a real capture.

    heapvis analyze CAPTURE -o OUT --per-snapshot
    check_marks.py OUT CAPTURE/ram.events.jsonl

For every `collect_end` snapshot of the sidecar whose marks are complete (gdb at
gc_collect_end's entry, nothing swept, the mark stack did not overflow:
`heapvis gdb-script --collections`), the allocations heapvis calls reachable must be exactly the
MARK-ed ones. (The simulator's `collect_marked` snapshots count too.) Prints
the agreement per snapshot and in all; exits 1 on any disagreement.
"""
import json
import sys

import duckdb

out, events = sys.argv[1], sys.argv[2]
lines = [json.loads(line) for line in open(events)]
marked = [
    e["snapshot"]
    for e in lines
    if e.get("event") == "collect_marked" or (e.get("event") == "collect_end" and e.get("marks_complete"))
]
overflowed = sum(1 for e in lines if e.get("event") == "collect_end" and e.get("marks_complete") is False)
if not marked:
    sys.exit("no snapshot with complete marks in " + events)
con = duckdb.connect()
con.execute(f"create table b as select snapshot, reachable, marked from '{out}/blocks/*.parquet'")
totals = [0, 0, 0, 0]
for s in marked:
    row = con.execute(
        "select count(*), count(*) filter (where marked), "
        "count(*) filter (where reachable and not marked), count(*) filter (where marked and not reachable) "
        f"from b where snapshot = {s}"
    ).fetchone()
    totals = [t + r for t, r in zip(totals, row)]
    print(f"snapshot {s}: {row[0]} allocations, {row[1]} marked; reachable but not marked {row[2]}, marked but not reachable {row[3]}")
print(f"{overflowed} mark phase(s) left out: the mark stack overflowed, MARK bits not final yet")
print(f"{len(marked)} mark phases: {totals[0]} allocations, {totals[1]} marked; "
      f"reachable but not marked {totals[2]}, marked but not reachable {totals[3]}")
sys.exit(1 if totals[2] or totals[3] else 0)
