#!/usr/bin/env bash
# Captures a real MicroPython board's heap as a soak test would: runs the qemu
# port's firmware (BOARD=NETDUINO2, built with -g) under gdb, feeds it
# soak_program.py at the REPL, and runs the capture script `heapvis gdb-script`
# writes for the build: RAM appended to ram.bin at every 40th gc_alloc (EVERY=N: every Nth), each
# MemoryError and each collection's start and end of marking, with the sidecar
# ram.events.jsonl (time, event, requested bytes, stack pointer, frames).
#   capture.sh FIRMWARE_ELF OUTDIR [SECONDS]
# HEAPVIS names the heapvis binary (default: this checkout's release build).
set -euo pipefail
elf=$(realpath "$1"); out=$2; seconds=${3:-240}
here=$(cd "$(dirname "$0")" && pwd)
heapvis=${HEAPVIS:-$here/../../target/release/heapvis}
mkdir -p "$out"; cd "$out"; rm -f ram.bin ram.events.jsonl
cp "$elf" firmware.elf
"$heapvis" gdb-script firmware.elf --every "${EVERY:-40}" --collections --target 'remote :1234' -o capture.py
# The program in paste mode (Ctrl-E ... Ctrl-D), after the REPL is up.
( sleep 3; printf '\005'; cat "$here/soak_program.py"; printf '\004'; sleep "$seconds" ) |
  timeout "$seconds" qemu-system-arm -machine netduino2 -nographic -monitor null -semihosting \
    -serial stdio -S -gdb tcp::1234 -kernel firmware.elf > uart.txt 2>&1 &
sleep 1
timeout "$seconds" gdb-multiarch -batch -x capture.py firmware.elf > gdb.txt 2>&1 || true
wait || true
ls -la ram.bin
tail -3 uart.txt
