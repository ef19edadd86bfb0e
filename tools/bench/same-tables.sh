#!/usr/bin/env bash
# Whether two heapvis binaries write byte-identical tables on the busy
# captures (tools/bench/busy-captures.sh) and the committed sample: the check
# every speed change is held to. Prints one line a capture, exits 1 on any
# difference.
#   tools/bench/same-tables.sh OLD_BINARY NEW_BINARY [EXTRA ANALYZE ARGS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
old=$(realpath "$1"); new=$(realpath "$2"); shift 2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
profile() { # the profile a capture is read with
    case $1 in
        *micropython64*) echo --profile data/profiles/micropython-1.2x-64bit-synthetic.toml ;;
        *micropython*) echo --profile data/profiles/micropython-1.2x-synthetic.toml ;;
        *circuitpython10*) echo --profile data/profiles/circuitpython-10-synthetic.toml ;;
    esac
}
status=0
for dump in data/sample bench-data/samd51-*-1g; do
    [[ -s $dump/ram.bin ]] || continue
    for which in old new; do
        bin=$old; [[ $which == new ]] && bin=$new
        rm -rf "$work/out"
        # shellcheck disable=SC2046
        "$bin" analyze "$dump" $(profile "$dump") -o "$work/out" -q --layout files "$@"
        (cd "$work/out" && md5sum ./*.parquet) > "$work/$which.md5"
    done
    if cmp -s "$work/old.md5" "$work/new.md5"; then
        echo "same: $dump"
    else
        echo "DIFFERENT: $dump"; status=1
    fi
done
exit $status
