# A soak-test-like program for a MicroPython board (pasted at the REPL): sensor
# readings formatted as strings, lists and dicts that grow and shrink, a few
# classes and closures, bytearrays, a slow leak through a global list, explicit
# collections, and bursts that drive the heap into MemoryError.
import gc

class Sensor:
    def __init__(self, name):
        self.name = name
        self.readings = []
    def read(self, t):
        v = (t * 37 % 101) / 7.0
        self.readings.append(v)
        if len(self.readings) > 24:
            self.readings = self.readings[-12:]
        return v

def make_scaler(k):
    def scale(x):
        return x * k
    return scale

history = []
cache = {}
sensors = [Sensor("s%d" % i) for i in range(4)]
scalers = [make_scaler(k) for k in (1, 2, 3)]
for t in range(900):
    s = sensors[t % 4]
    v = scalers[t % 3](s.read(t))
    line = "%s,%d,%.3f" % (s.name, t, v)
    if t % 5 == 0:
        history.append(line)
    cache[t % 50] = (t, line, bytearray(8 + t % 24))
    if t % 17 == 0:
        cache = {k: cache[k] for k in list(cache)[-20:]}
    if t % 97 == 0:
        gc.collect()
    if t % 211 == 0:
        burst = []
        try:
            while True:
                burst.append(bytes(64 + len(burst) % 200))
        except MemoryError:
            pass
        burst = None
print("DONE", len(history), gc.mem_free())
