#!/usr/bin/env bash
# Boot the firmware under qemu-system-aarch64 with MODEL loaded at 0x44000000.
# Usage: run.sh ELF MODEL   (exit status = the firmware's)
set -euo pipefail
exec qemu-system-aarch64 -machine virt -cpu cortex-a76 -m 1024 -nic none -nographic \
  -semihosting-config enable=on,target=native \
  -device loader,file="$2",addr=0x44000000,force-raw=on -kernel "$1"
