#!/usr/bin/env bash
# Captures a real MicroPython board's heap as a soak test would: runs the qemu
# port's firmware (BOARD=NETDUINO2, built with -g) under gdb, feeds it
# soak_program.py at the REPL, and appends RAM (_sdata.._estack) to ram.bin at
# every 40th gc_alloc and each collection's start and end, with the sidecar
# ram.events.jsonl (each snapshot's event and stack pointer).
#   capture.sh FIRMWARE_ELF OUTDIR [SECONDS]
set -euo pipefail
elf=$(realpath "$1"); out=$2; seconds=${3:-240}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"; cd "$out"; rm -f ram.bin ram.events.jsonl gc_info.txt
cp "$elf" firmware.elf
# The program in paste mode (Ctrl-E ... Ctrl-D), after the REPL is up.
( sleep 3; printf '\005'; cat "$here/soak_program.py"; printf '\004'; sleep "$seconds" ) |
  timeout "$seconds" qemu-system-arm -machine netduino2 -nographic -monitor null -semihosting \
    -serial stdio -S -gdb tcp::1234 -kernel firmware.elf > uart.txt 2>&1 &
sleep 1
timeout "$seconds" gdb-multiarch -batch -x "$here/capture.gdb.py" firmware.elf > gdb.txt 2>&1 || true
wait || true
ls -la ram.bin
tail -3 uart.txt
