# heapvis capture script for gdb, written by `heapvis gdb-script` for one build.
#
#   gdb -batch -ex 'target extended-remote :3333' -x capture.py firmware.elf
#
# Appends the board's RAM to the dump at every EVERY-th gc_alloc, at each
# MemoryError and at each collection, and writes one line per snapshot to the
# sidecar beside the dump: its index, host time, event, the size requested,
# the stack pointer and the innermost frames. The addresses come from the ELF
# heapvis read; the script checks that gdb has the same build loaded.
#
# Snapshot at gc_alloc's entry: the heap as the request finds it. At
# m_malloc_fail: after gc_alloc has collected and still found no run long
# enough. At gc_collect_start: before marking. At gc_collect_end's entry (with
# collection snapshots): the mark phase has set the MARK bits, nothing is swept;
# they are final unless the mark stack overflowed (`marks_complete`). The stack
# pointer of that snapshot is where the GC's stack scan started: the first
# argument of the gc_collect_root call that scanned the stack.
import json
import os
import time

import gdb

CONFIG = json.loads(r"""@CONFIG@""")

RAM_START = CONFIG["ram_start"]
RAM_BYTES = CONFIG["ram_end"] - CONFIG["ram_start"]
# The first argument of a call at the function's entry, by architecture, when
# the build has no debug info naming it.
FIRST_ARG = [("aarch64", "x0"), ("x86-64", "rdi"), ("riscv", "a0"), ("xtensa", "a2"), ("arm", "r0")]


def number(expr):
    """An expression's value as an unsigned number (a pointer, a register)."""
    return int(gdb.parse_and_eval("(unsigned long long)(%s)" % expr)) & CONFIG["address_mask"]


def argument(names):
    """A call's first argument: by its name in the debug info, else its register."""
    frame = gdb.selected_frame()
    for name in names:
        try:
            return int(frame.read_var(name))
        except (ValueError, gdb.error):
            pass
    arch = frame.architecture().name()
    for key, register in FIRST_ARG:
        if key in arch:
            try:
                return number("$" + register)
            except gdb.error:
                return None
    return None


def frames():
    names = []
    frame = gdb.newest_frame()
    while frame is not None and len(names) < CONFIG["frames"]:
        names.append(frame.name() or "0x%x" % frame.pc())
        try:
            frame = frame.older()
        except gdb.error:
            break
    return names


class Capture:
    def __init__(self):
        # Never appended to an earlier capture: two captures in one dump would
        # read as one run. Said before the target runs; the files are made at
        # the first snapshot, once the build is known to be the right one.
        for path in (CONFIG["dump"], CONFIG["sidecar"]):
            if os.path.exists(path):
                raise gdb.GdbError("heapvis: %s exists: move the earlier capture away first" % path)
        self.dump = None
        self.events = None
        self.snapshots = 0
        self.allocs = 0
        self.stack_scan = None
        self.inferior = gdb.selected_inferior()

    def snapshot(self, event, sp, **extra):
        if self.snapshots == 0:
            # Here, not before `run`: a position-independent program moves
            # only once it is started.
            check_build()
            self.dump = open(CONFIG["dump"], "xb")
            self.events = open(CONFIG["sidecar"], "x")
        ram = self.inferior.read_memory(RAM_START, RAM_BYTES)
        self.dump.write(ram)
        self.dump.flush()
        line = {"snapshot": self.snapshots, "time": time.time(), "event": event, "sp": sp}
        line.update(extra)
        if self.snapshots == 0:
            # What this capture breaks at: an event not listed is unknown to
            # heapvis, not absent.
            line["watched"] = WATCHED
        line["frames"] = frames()
        # After the dump: the sidecar never names a snapshot the dump lacks.
        self.events.write(json.dumps(line) + "\n")
        self.events.flush()
        self.snapshots += 1

    def close(self):
        for f in (self.dump, self.events):
            if f is not None:
                f.close()


def registers():
    """The stopped frame's general registers, as a tuple."""
    frame = gdb.selected_frame()
    try:
        names = [r.name for r in frame.architecture().registers("general")]
    except (AttributeError, gdb.error):  # gdb before 12
        names = ["pc", "sp"]
    values = []
    for name in names:
        try:
            values.append(int(frame.read_register(name)))
        except (gdb.error, ValueError):
            values.append(None)
    return tuple(values)


last_hit = None


class Stop(gdb.Breakpoint):
    """A breakpoint that takes a snapshot (or notes something) and goes on."""

    def __init__(self, function, action):
        super().__init__(function, internal=True)
        self.action = action

    def stop(self):
        global last_hit
        # Some gdb servers (qemu's, seen on a Cortex-M) report a breakpoint
        # twice for one call: stepping off it, the target re-runs the
        # instruction. Nothing has run between the two, so every register is
        # the same; a real second call differs at least in one.
        hit = (self.number, registers())
        if hit == last_hit:
            return False
        last_hit = hit
        try:
            self.action()
        except Exception as e:  # shown, and the target stays stopped
            print("heapvis capture: %s at %s: %s" % (type(e).__name__, self.location, e))
            return True
        return False


capture = None
WATCHED = []


def on_alloc():
    capture.allocs += 1
    if capture.allocs % CONFIG["every"] == 0:
        capture.snapshot("alloc", number("$sp"), requested_bytes=argument(CONFIG["alloc_size_args"]))


def on_memory_error():
    capture.snapshot("memory_error", number("$sp"), requested_bytes=argument(CONFIG["memory_error_size_args"]))


def on_collect_start():
    capture.stack_scan = None
    capture.snapshot("collect_start", number("$sp"))


def on_collect_root():
    ptrs = argument(["ptrs"])
    if ptrs is not None and CONFIG["stack_bottom"] <= ptrs < CONFIG["stack_top"]:
        capture.stack_scan = ptrs


def on_collect_end():
    sp = capture.stack_scan if capture.stack_scan is not None else number("$sp")
    extra = {}
    try:
        extra["marks_complete"] = number(CONFIG["stack_overflow"]) == 0
    except gdb.error:
        pass
    capture.snapshot("collect_end", sp, **extra)


def check_build():
    """gdb's symbols must be the ELF's heapvis read (a PIE, another build: no)."""
    for name, address in CONFIG["check_symbols"].items():
        try:
            found = number("&" + name)
        except gdb.error:
            continue
        if found != address:
            raise gdb.GdbError(
                "heapvis: gdb has %s at 0x%x, the ELF heapvis read has it at 0x%x: "
                "load the same build (not position-independent)" % (name, found, address)
            )


def main():
    global capture
    gdb.execute("set pagination off")
    gdb.execute("set confirm off")
    if CONFIG["target"]:
        gdb.execute("target " + CONFIG["target"])
    capture = Capture()
    WATCHED.extend(["alloc", "collect_start"])
    Stop(CONFIG["alloc"], on_alloc)
    Stop(CONFIG["collect_start"], on_collect_start)
    if CONFIG["memory_error"]:
        Stop(CONFIG["memory_error"], on_memory_error)
        WATCHED.append("memory_error")
    if CONFIG["collect_end"]:
        Stop(CONFIG["collect_end"], on_collect_end)
        WATCHED.append("collect_end")
        if CONFIG["collect_root"]:
            Stop(CONFIG["collect_root"], on_collect_root)
    gdb.events.exited.connect(lambda _: capture.close())
    try:
        gdb.execute("run" if CONFIG["run"] else "continue")
    finally:
        capture.close()
        print("heapvis capture: %d snapshot(s) of %d bytes in %s" % (capture.snapshots, RAM_BYTES, CONFIG["dump"]))


main()
