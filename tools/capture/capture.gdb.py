# gdb script: snapshots a MicroPython board's RAM into ram.bin as a soak test
# would, at every EVERY-th gc_alloc and at each collection's start and end, and
# writes the capture's sidecar, ram.events.jsonl: one JSON line per snapshot
# with its index, host time, event and stack pointer.
#
# At gc_collect_end's entry (`collect_end`) the mark phase has set the MARK
# bits, and nothing is swept. They are final unless the GC's mark stack
# overflowed (`mem.gc_stack_overflow`: gc_collect_end rescans first); the line
# says which, as `marks_complete`. (A breakpoint after the rescan, in the
# static functions gc_collect_end calls, lands at the wrong place once they are
# inlined.) The stack pointer of a collection's snapshots is where the GC's
# stack scan started: the first argument of the gc_collect_root call that
# scanned the stack, so that heapvis scans exactly what the GC scanned. At
# gc_alloc it is $sp.
#
# Used by capture.sh: gdb-multiarch -batch -x capture.gdb.py firmware.elf, with
# qemu waiting for gdb on port 1234.
import json
import time

import gdb

EVERY = 40
count = 0
snapshots = 0
stack_scan = None
events = open("ram.events.jsonl", "w")


def value(expr):
    return int(gdb.parse_and_eval(expr)) & 0xFFFFFFFF


STACK_LO, STACK_HI = value("&_ebss"), value("&_estack")


def snapshot(event, sp, **extra):
    global snapshots
    gdb.execute("append binary memory ram.bin &_sdata &_estack", to_string=True)
    line = {"snapshot": snapshots, "time": time.time(), "event": event, "sp": sp, **extra}
    events.write(json.dumps(line) + "\n")
    events.flush()
    snapshots += 1


class Alloc(gdb.Breakpoint):
    def stop(self):
        global count
        count += 1
        if count % EVERY == 0:
            snapshot("alloc", value("$sp"))
        return False


class CollectRoot(gdb.Breakpoint):
    """Remembers where the stack scan of this collection starts."""

    def stop(self):
        global stack_scan
        ptrs = value("$r0")
        if STACK_LO <= ptrs < STACK_HI:
            stack_scan = ptrs
        return False


class Collect(gdb.Breakpoint):
    def __init__(self, spec, event):
        super().__init__(spec)
        self.event = event

    def stop(self):
        global stack_scan
        if self.event == "collect_start":
            stack_scan = None
        if self.event == "collect_end":
            sp = stack_scan if stack_scan is not None else value("$sp")
            complete = value("mp_state_ctx.mem.gc_stack_overflow") == 0
            snapshot(self.event, sp, marks_complete=complete)
        else:
            snapshot(self.event, value("$sp"))
        return False


gdb.execute("set pagination off")
gdb.execute("target remote :1234")
Alloc("gc_alloc")
CollectRoot("gc_collect_root")
Collect("gc_collect_start", "collect_start")
Collect("gc_collect_end", "collect_end")
gdb.execute("continue")
