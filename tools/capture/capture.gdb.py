# gdb script: snapshots a MicroPython board's RAM into ram.bin as a soak test
# would, at every EVERY-th gc_alloc and at each collection's start and end.
# Used by capture.sh: gdb-multiarch -batch -x capture.gdb.py firmware.elf, with
# qemu waiting for gdb on port 1234.
import gdb

EVERY = 40
count = 0


def snapshot():
    gdb.execute("append binary memory ram.bin &_sdata &_estack", to_string=True)


class Alloc(gdb.Breakpoint):
    def stop(self):
        global count
        count += 1
        if count % EVERY == 0:
            snapshot()
        return False


class Collect(gdb.Breakpoint):
    def stop(self):
        snapshot()
        return False


gdb.execute("set pagination off")
gdb.execute("target remote :1234")
Alloc("gc_alloc")
Collect("gc_collect_start")
Collect("gc_collect_end")
gdb.execute("continue")
