#!/usr/bin/env bash
# Times two heapvis binaries on one capture, alternated in the same minutes
# (the machine's speed varies from hour to hour), and prints each one's best
# wall and user time of ROUNDS runs.
#   tools/bench/side-by-side.sh OLD NEW CAPTURE ROUNDS [EXTRA ANALYZE ARGS...]
# e.g. tools/bench/side-by-side.sh /tmp/heapvis-old target/release/heapvis \
#        bench-data/samd51-micropython-busy-e1-s200000-1g 5 \
#        --profile data/profiles/micropython-1.2x-synthetic.toml
set -euo pipefail
old=$1; new=$2; dump=$3; rounds=$4; shift 4
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
for _ in $(seq "$rounds"); do
    for which in old new; do
        bin=$old; [[ $which == new ]] && bin=$new
        rm -rf "$work/out"
        /usr/bin/time -f "%e %U" -a -o "$work/$which" "$bin" analyze "$dump" -o "$work/out" -q "$@"
    done
done
for which in old new; do
    echo "$which: best wall and user seconds $(sort -n "$work/$which" | head -1)"
done
