#!/usr/bin/env bash
# The train_steps golden rule has teeth: every perturbed case (a case whose expected values come from a
# deliberately wrong training loop, scripts/make_golden_train_steps.py --perturb) must FAIL in rdd's
# runner, its worst output at least MIN_RATIO times outside its limit.
#   golden_perturbed.sh RDD DIR [MIN_RATIO=8]
set -uo pipefail
rdd=$1
dir=$2
min=${3:-8}
out=$("$rdd" selftest --golden "$dir" --cpu-only 2>&1)
rc=$?
echo "$out" | grep -E '^(= |golden:)|\(case\)' -A1
if [ $rc -ne 1 ]; then
  echo "FAILED: rdd selftest --golden exited $rc on the perturbed cases; they must fail (exit 1)"
  exit 1
fi
files=$(ls "$dir"/*.safetensors | wc -l)
echo "$out" | awk -v min="$min" -v n="$files" '
  /^= / {
    cases++
    match($0, /worst error\/limit [^ ]+/)
    r = substr($0, RSTART + 18, RLENGTH - 18) + 0
    if (r < min) { bad++; print "NOT CAUGHT by " min "x: " $0 }
  }
  / \(case\) / { broken++ }
  END {
    if (cases != n || bad || broken) {
      printf "FAILED: %d of %d perturbed cases ran, %d caught by less than %gx, %d could not run\n", cases, n, bad, min, broken
      exit 1
    }
    printf "all %d perturbed cases fail, each by at least %gx its limit\n", cases, min
  }'
