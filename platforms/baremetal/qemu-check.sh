#!/usr/bin/env bash
# Boot a bare-metal example under qemu-system and check that its tokens equal the Linux CLI's.
#
# Usage: qemu-check.sh RUN_SH ELF MODEL TERN
#   RUN_SH  the board's run.sh (boots ELF with MODEL loaded at the board's model address)
#   TERN    the host `tern` binary
# The firmware prints `... prompt "P", n N` first and `ids: a b c` at the end; this script runs
# `tern run MODEL -p P -n N --temp 0 --json` and compares `generated_ids`; a board that also
# streams the weights prints `streamed ids: ...`, compared the same way. Exit 0 only if the
# board exits 0 within 300 s and the ids are equal.
set -euo pipefail
run=$1 elf=$2 model=$3 tern=$4
log=$(mktemp)
trap 'rm -f "$log"' EXIT
t0=$(date +%s%N)
rc=0
timeout 300 "$run" "$elf" "$model" >"$log" 2>&1 || rc=$?
t1=$(date +%s%N)
cat "$log"
echo "qemu: exit $rc in $(( (t1 - t0) / 1000000 )) ms, model $(stat -c %s "$model") bytes ($model)"
[ "$rc" = 0 ] || { echo "FAIL: the firmware exited with $rc (124 = timeout)"; exit 1; }
head=$(grep -m1 -E 'prompt ".*", n [0-9]+$' "$log") || { echo "FAIL: no prompt line"; exit 1; }
prompt=$(sed -E 's/.*prompt "(.*)", n [0-9]+$/\1/' <<<"$head")
n=$(sed -E 's/.*, n ([0-9]+)$/\1/' <<<"$head")
got=$(sed -n 's/^ids: *//p' "$log")
streamed=$(sed -n 's/^streamed ids: *//p' "$log")
want=$("$tern" run "$model" -p "$prompt" -n "$n" --temp 0 --json | jq -r '.generated_ids | map(tostring) | join(" ")')
echo "board ids: $got"
echo "tern  ids: $want   (tern run $model -p \"$prompt\" -n $n --temp 0)"
[ -n "$want" ] && [ "$got" = "$want" ] || { echo "FAIL: token ids differ"; exit 1; }
if grep -q '^streamed ids:' "$log"; then
  echo "streamed ids: $streamed"
  [ "$streamed" = "$want" ] || { echo "FAIL: streamed token ids differ"; exit 1; }
fi
echo "OK: same tokens"
