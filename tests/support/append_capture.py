"""Appends a finished capture to a growing one, as gdb does during a soak test.

    append_capture.py SRC_DIR DST_DIR SEED SNAPSHOT_BYTES

Copies SRC_DIR/ram.bin to DST_DIR/ram.bin in bursts of random sizes (a byte,
part of a snapshot, several snapshots), with pauses, so a reader sees partial
snapshots; after each whole snapshot, appends its line of
SRC_DIR/ram.events.jsonl (when there is one) to DST_DIR's, RAM first as the
capture script does. Prints `done` when everything is written.
"""
import os
import random
import sys
import time

src, dst, seed, snapshot_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
data = open(os.path.join(src, "ram.bin"), "rb").read()
events_path = os.path.join(src, "ram.events.jsonl")
lines = open(events_path).read().splitlines(keepends=True) if os.path.exists(events_path) else []
by_snapshot = {}
for line in lines:
    snap = int(line.split('"snapshot":', 1)[1].split(",", 1)[0].split("}", 1)[0])
    by_snapshot.setdefault(snap, []).append(line)

written = 0
whole = 0
with open(os.path.join(dst, "ram.bin"), "ab") as ram, open(os.path.join(dst, "ram.events.jsonl"), "a") as events:
    while written < len(data):
        n = rng.choice([1, 7, snapshot_bytes // 3, snapshot_bytes, 3 * snapshot_bytes + 5])
        ram.write(data[written:written + n])
        ram.flush()
        written += len(data[written:written + n])
        while (whole + 1) * snapshot_bytes <= written:
            for line in by_snapshot.get(whole, []):
                events.write(line)
            events.flush()
            whole += 1
        if rng.random() < 0.25:
            time.sleep(rng.random() * 0.15)
print("done")
