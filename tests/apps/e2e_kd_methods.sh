#!/usr/bin/env bash
# End to end on the CPU with tiny models: every comparison KD method (rdd/kd_terms.h) trains through the
# built binary alone and with RDD (--rdd tfe,tse), logs its own terms and their cost (ms.<term>,
# share.<term>) in metrics.jsonl, and resumes exactly: 6 iterations == 3 + resume 3, weights and checkpoint
# (the methods' adapters, buffers and optimizer state included) byte for byte.
# Usage: e2e_kd_methods.sh RDD_BINARY WORK_DIR [method ...]
set -euo pipefail
RDD="$1"
W="$2"
shift 2
rm -rf "$W" && mkdir -p "$W"
export RDD_NUM_THREADS=2
fail() { echo "E2E FAILURE: $*" >&2; exit 1; }

"$RDD" synth --out "$W/data" --train 12 --val 4 --size 64x128 --seed 5 > /dev/null
DATA=(--dataset cityscapes --data-root "$W/data")
SMALL=(--crop 64 --crop-w 128 --batch 2 --workers 2 --print-every 1000)
"$RDD" train "${DATA[@]}" "${SMALL[@]}" --model deeplabv3_resnet18 --width 0.25 --iters 3 --out "$W/teacher" \
  > "$W/teacher.txt" 2>&1 || { cat "$W/teacher.txt"; fail "teacher training"; }
# Student 0.125 (16-channel feature) and teacher 0.25 (32 channels): the adapters map 16 → 32.
S=(--model deeplabv3_resnet18 --width 0.125 --teacher deeplabv3_resnet18 --teacher-width 0.25
   --teacher-weights "$W/teacher/weights.safetensors" --iters 6 --save-every 2 --seed 9)

# method → its flags and the terms it logs.
declare -A FLAGS=(
  [at]="--at 100 --kd 1"                 [at_terms]="at"
  [fitnet]="--fitnet 1"                  [fitnet_terms]="fitnet"
  [cwd]="--cwd 1"                        [cwd_terms]="cwd"
  [cwd_feature]="--cwd-feature 1"        [cwd_feature_terms]="cwd_feature"
  [skd]="--skd 1"                        [skd_terms]="skd"
  [ifvd]="--ifvd 10"                     [ifvd_terms]="ifvd"
  [dsd]="--dsd 1"                        [dsd_terms]="psd csd"
  [dist]="--dist 1"                      [dist_terms]="dist dist_aux"
  [cirkd]="--cirkd 1 --kd 1 --cirkd-pixel-memory 64 --cirkd-region-memory 16 --cirkd-pixel-contrast 200 --cirkd-region-contrast 40"
  [cirkd_terms]="cirkd_minibatch cirkd_pixel cirkd_region"
)
METHODS=("$@")
[ ${#METHODS[@]} -gt 0 ] || METHODS=(at fitnet cwd cwd_feature skd ifvd dsd dist cirkd adv budget)

for m in "${METHODS[@]}"; do
  [ "$m" = adv ] && continue     # below: the discriminator needs logits of at least 64x64
  [ "$m" = budget ] && continue  # below
  [ -n "${FLAGS[$m]:-}" ] || fail "unknown method $m"
  for variant in alone rdd; do
    extra=()
    [ "$variant" = rdd ] && extra=(--rdd tfe,tse --warmup-iters 3 --min-kept 500)
    # shellcheck disable=SC2206
    M=(${FLAGS[$m]})
    run=("$RDD" distill "${DATA[@]}" "${SMALL[@]}" "${S[@]}" "${M[@]}" "${extra[@]}")
    d="$W/$m-$variant"
    "${run[@]}" --out "$d/full" > "$d.full.txt" 2>&1 || { cat "$d.full.txt"; fail "$m $variant: training"; }
    for term in ${FLAGS[${m}_terms]}; do
      grep -q "\"$term\":" "$d/full/metrics.jsonl" || fail "$m $variant: no '$term' in metrics.jsonl"
    done
    grep -q "\"ms.${FLAGS[${m}_terms]%% *}\"\\|\"ms.dsd\"\\|\"ms.cwd\"\\|\"ms.cirkd\"" "$d/full/metrics.jsonl" || fail "$m $variant: no term cost logged"
    grep -q '"share.rdd_task"' "$d/full/metrics.jsonl" || fail "$m $variant: no share of the step logged"
    if grep -q 'nan\|inf' "$d/full/metrics.jsonl"; then fail "$m $variant: a non-finite value in metrics.jsonl"; fi
    "${run[@]}" --out "$d/part" --stop-after 3 > "$d.part1.txt" 2>&1 || { cat "$d.part1.txt"; fail "$m $variant: first half"; }
    "${run[@]}" --out "$d/part" --resume "$d/part/checkpoint.safetensors" > "$d.part2.txt" 2>&1 \
      || { cat "$d.part2.txt"; fail "$m $variant: resumed half"; }
    cmp "$d/full/weights.safetensors" "$d/part/weights.safetensors" \
      || fail "$m $variant: 6 iterations and 3 + resume 3 give different weights"
    cmp "$d/full/checkpoint.safetensors" "$d/part/checkpoint.safetensors" \
      || fail "$m $variant: the final checkpoints differ (method state not restored exactly?)"
    echo "$m $variant: trains, logs ${FLAGS[${m}_terms]}, resumes exactly"
  done
done
# The adversarial term (SKD's recipe: KD 1, SKD 10, adversarial 0.001 / 0.1): the release's discriminator
# needs logits of at least 64x64, so 512x512 crops (fewer, slower iterations; a narrow discriminator).
if [[ " ${METHODS[*]} " == *" adv "* ]]; then
  "$RDD" synth --out "$W/data512" --train 4 --val 2 --size 512x512 --seed 5 > /dev/null
  D512=(--dataset cityscapes --data-root "$W/data512" --crop 512 --crop-w 512 --batch 2 --workers 2 --print-every 1000)
  "$RDD" train "${D512[@]}" --model deeplabv3_resnet18 --width 0.125 --iters 1 --out "$W/teacher512" \
    > "$W/teacher512.txt" 2>&1 || { cat "$W/teacher512.txt"; fail "teacher (512)"; }
  for variant in alone rdd; do
    extra=()
    [ "$variant" = rdd ] && extra=(--rdd tfe,tse --warmup-iters 2 --min-kept 5000)
    run=("$RDD" distill "${D512[@]}" --model deeplabv3_resnet18 --width 0.125 --teacher deeplabv3_resnet18
         --teacher-width 0.125 --teacher-weights "$W/teacher512/weights.safetensors" --iters 4 --save-every 2 --seed 9
         --kd 1 --skd 10 --adv 0.001 --adv-d 0.1 --adv-width 8 "${extra[@]}")
    d="$W/adv-$variant"
    "${run[@]}" --out "$d/full" > "$d.full.txt" 2>&1 || { cat "$d.full.txt"; fail "adv $variant: training"; }
    for term in adv_g adv_d ms.adv share.adv; do
      grep -q "\"$term\":" "$d/full/metrics.jsonl" || fail "adv $variant: no '$term' in metrics.jsonl"
    done
    "${run[@]}" --out "$d/part" --stop-after 2 > "$d.part1.txt" 2>&1 || { cat "$d.part1.txt"; fail "adv $variant: first half"; }
    "${run[@]}" --out "$d/part" --resume "$d/part/checkpoint.safetensors" > "$d.part2.txt" 2>&1 \
      || { cat "$d.part2.txt"; fail "adv $variant: resumed half"; }
    cmp "$d/full/weights.safetensors" "$d/part/weights.safetensors" || fail "adv $variant: resumed weights differ"
    cmp "$d/full/checkpoint.safetensors" "$d/part/checkpoint.safetensors" \
      || fail "adv $variant: the final checkpoints differ (discriminator or Adam state not restored exactly?)"
    echo "adv $variant: trains, logs adv_g adv_d, resumes exactly (discriminator and Adam state included)"
  done
fi
# Equal-compute budgets: --budget-tflop resolves the iterations from the traces and the terms' counts
# (deterministic: 3 + resume equals the whole run), --budget-seconds from a timed calibration (a resume keeps
# the saved iterations instead of timing again); both land in config.json and the checkpoint.
if [[ " ${METHODS[*]} " == *" budget "* ]]; then
  B=("$RDD" distill "${DATA[@]}" "${SMALL[@]}" "${S[@]}" --kd 1 --fitnet 1 --rdd tfe,tse --warmup-fraction 0.1
     --min-kept 500 --budget-tflop 0.01)
  "${B[@]}" --out "$W/budget/full" > "$W/budget.full.txt" 2>&1 || { cat "$W/budget.full.txt"; fail "budget: training"; }
  grep -q "budget: 0.01 TFLOP -> [0-9]* iterations" "$W/budget.full.txt" || { cat "$W/budget.full.txt"; fail "budget: no resolution logged"; }
  grep -q '"budget_tflop": 0.01' "$W/budget/full/config.json" || fail "budget: not in config.json"
  n=$(grep -c '"loss"' "$W/budget/full/metrics.jsonl")
  iters=$(sed -n 's/.*"iters": \([0-9]*\).*/\1/p' "$W/budget/full/config.json")
  [ "$n" = "$iters" ] && [ "$iters" -gt 3 ] || fail "budget: $n iterations logged, config says $iters"
  "${B[@]}" --out "$W/budget/part" --stop-after 3 > /dev/null 2>&1 || fail "budget: first half"
  "${B[@]}" --out "$W/budget/part" --resume "$W/budget/part/checkpoint.safetensors" > /dev/null 2>&1 || fail "budget: resumed half"
  cmp "$W/budget/full/weights.safetensors" "$W/budget/part/weights.safetensors" || fail "budget: resumed weights differ"
  T=("$RDD" distill "${DATA[@]}" "${SMALL[@]}" "${S[@]}" --kd 1 --budget-seconds 2)
  "${T[@]}" --out "$W/budget/sec" --stop-after 2 > "$W/budget.sec.txt" 2>&1 || { cat "$W/budget.sec.txt"; fail "budget seconds"; }
  grep -q "budget: 2 s -> [0-9]* iterations (.* s and" "$W/budget.sec.txt" || fail "budget seconds: no resolution logged"
  first=$(sed -n 's/.*"iters": \([0-9]*\).*/\1/p' "$W/budget/sec/config.json")
  "${T[@]}" --out "$W/budget/sec" --resume "$W/budget/sec/checkpoint.safetensors" > "$W/budget.sec2.txt" 2>&1 \
    || { cat "$W/budget.sec2.txt"; fail "budget seconds: resume"; }
  grep -q "budget:" "$W/budget.sec2.txt" && fail "budget seconds: the resume timed again"
  [ "$(grep -c '"loss"' "$W/budget/sec/metrics.jsonl")" = "$first" ] || fail "budget seconds: the resume did not keep $first iterations"
  echo "budget: TFLOP resolution resumes exactly; a seconds budget keeps its iterations on resume"
fi
# A method's parameters are in the checkpoint; resuming without the method is refused by name.
if [ -d "$W/fitnet-alone" ]; then
  "$RDD" distill "${DATA[@]}" "${SMALL[@]}" "${S[@]}" --out "$W/nofit" --resume "$W/fitnet-alone/part/checkpoint.safetensors" \
    > "$W/nofit.txt" 2>&1 && fail "resume without --fitnet was accepted"
  grep -q "fitnet" "$W/nofit.txt" || { cat "$W/nofit.txt"; fail "resume without --fitnet: no message naming it"; }
fi
echo "e2e kd methods: all passed"
