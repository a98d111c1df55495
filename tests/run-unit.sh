#!/usr/bin/env bash
# Runs cmocka test binaries (cwd tests/), prints each one's output, and ends with one line
# "N passed, N failed" counting individual tests over all binaries (a crashed binary counts as
# one failure). Exit status is non-zero if anything failed.
# usage: tests/run-unit.sh LABEL BIN...
set -u
label=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
pass=0; fail=0
for bin in "$@"; do
  echo "== $label: $(basename "$bin")"
  out=$(cd "$here" && "$bin" 2>&1); rc=$?
  printf '%s\n' "$out"
  p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0}))
  if [ $rc -ne 0 ] && [ "${f:-0}" = 0 ]; then fail=$((fail + 1)); echo "!! $bin exited $rc"; fi
done
echo "$label: $pass passed, $fail failed"
[ $fail -eq 0 ]
