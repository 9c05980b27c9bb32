#!/usr/bin/env bash
# The golden rule over many seeds: generate the model and loss golden cases (scripts/make_golden_models.py,
# scripts/make_golden_losses.py) for seeds 0..S-1, run `rdd selftest --golden` on each set and summarise:
# failures, the worst error/limit, and the worst ratio of rdd's error to the reference's own float32
# envelope (over every output with an envelope, and over the outputs whose limit the envelope sets,
# i.e. 3·envelope > rtol).
#   bash scripts/golden_seed_sweep.sh RDD [SEEDS=20] [OUT=/tmp/rdd_golden_sweep] [extra selftest flags, e.g. --cpu-only]
#   SWEEP_KINDS="models losses" (default) picks the generators; SWEEP_FIRST=K starts at seed K (default 0).
set -uo pipefail
rdd=${1:?usage: golden_seed_sweep.sh RDD [SEEDS] [OUT] [selftest flags]}
seeds=${2:-20}
out=${3:-/tmp/rdd_golden_sweep}
shift $(( $# < 3 ? $# : 3 ))
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py=/usr/bin/python3
mkdir -p "$out"
: > "$out/all.txt"
status=0
for kind in ${SWEEP_KINDS:-models losses}; do
  for ((s = ${SWEEP_FIRST:-0}; s < seeds; ++s)); do
    dir="$out/$kind.$s"
    rm -rf "$dir"
    "$py" "$root/scripts/make_golden_$kind.py" "$dir" --seed "$s" > "$dir.gen.log" 2>&1 \
      || { echo "$kind seed $s: the generator failed"; tail -5 "$dir.gen.log"; status=1; continue; }
    "$rdd" selftest --golden "$dir" "$@" > "$dir.txt" 2>&1 || status=1
    sed "s/^/$kind $s /" "$dir.txt" >> "$out/all.txt"
    printf '%-7s seed %2d: %s\n' "$kind" "$s" "$(grep '^golden:' "$dir.txt")"
    rm -rf "$dir"
  done
done
# Per-output lines: KIND SEED case device output error envelope limit result
awk '
  NF == 9 && ($9 == "pass" || $9 == "FAIL") && $6 ~ /^[0-9.e+-]+$/ {
    k = $1; n[k]++; if ($9 == "FAIL") f[k]++
    err = $6 + 0; lim = $8 + 0
    if (err / lim > wl[k]) { wl[k] = err / lim; wlw[k] = "seed " $2 " " $3 " " $4 " " $5 }
    if ($7 != "-" && $7 + 0 > 0) {
      r = err / ($7 + 0)
      if (r > we[k]) { we[k] = r; wew[k] = "seed " $2 " " $3 " " $4 " " $5 " (error " $6 ", envelope " $7 ")" }
      if (3 * $7 > lim * 0.999 && 3 * $7 >= 1e-4) {
        g[k]++
        if (r > wg[k]) { wg[k] = r; wgw[k] = "seed " $2 " " $3 " " $4 " " $5 " (error " $6 ", envelope " $7 ")" }
      }
    }
  }
  END {
    for (k in n) {
      printf "%s: %d outputs, %d failed; worst error/limit %.3g (%s)\n", k, n[k], f[k], wl[k], wlw[k]
      printf "%s: worst error/f32 envelope %.3g (%s)\n", k, we[k], wew[k]
      printf "%s: %d outputs whose limit is 3x their envelope; worst error/envelope among them %.3g (%s)\n",
             k, g[k], wg[k], wgw[k]
    }
  }' "$out/all.txt"
exit $status
