#!/usr/bin/env bash
# Boot the firmware under qemu-system-arm (mps2-an386) with MODEL loaded into PSRAM at 0x21000000.
# Usage: run.sh ELF MODEL   (exit status = the firmware's: 0 ok, 1 error or panic)
set -euo pipefail
exec qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
  -semihosting-config enable=on,target=native \
  -device loader,file="$2",addr=0x21000000,force-raw=on -kernel "$1"
