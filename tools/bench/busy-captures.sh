#!/usr/bin/env bash
# Writes the busy 1 GiB captures the soak and stage benches use into
# bench-data/ (the names and seed benches/soak.rs gives them, so the benches
# reuse them), with their profiles beside them in profiles.txt. Each takes a
# couple of seconds.
#   tools/bench/busy-captures.sh [HEAPVIS]
set -euo pipefail
cd "$(dirname "$0")/../.."
heapvis=${1:-target/release/heapvis}
synth() { # NAME ARGS...
    local dir=bench-data/$1; shift
    [[ -s $dir/ram.bin ]] || "$heapvis" synth "$dir" --board samd51 --snapshots 5461 --seed 7 "$@"
}
for layout in micropython circuitpython3 micropython64 circuitpython10; do
    synth "samd51-$layout-busy-e1-s200000-1g" --layout "$layout" --workload busy --start-after 200000
done
synth samd51-micropython-busy-e40-s0-1g --layout micropython --workload busy --every 40
synth samd51-circuitpython3-light-e1-s0-1g
