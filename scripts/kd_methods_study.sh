#!/usr/bin/env bash
# The comparison KD methods at the synthetic demo scale of scripts/demo.sh (CPU, fixed seeds), two studies:
#
#   bash scripts/kd_methods_study.sh methods   every method alone and with RDD, a fixed 200 iterations each
#   bash scripts/kd_methods_study.sh equal     baseline, KD, FitNet and KD + RDD at one equal compute budget
#                                              (--budget-seconds, STUDY_BUDGET seconds each, default 60)
#
# Each prints a markdown table (mIoU % on the synthetic val split, iterations, measured step cost). Tiny
# models, short schedules, synthetic data: differences of a point or two are within run-to-run noise at
# this scale (see the README). Uses an existing CPU build (STUDY_BUILD, default build-cpu; built if absent).
#   STUDY_OUT=dir     where everything goes (default: study_out)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mode="${1:-methods}"
out="${STUDY_OUT:-$root/study_out}"
build="${STUDY_BUILD:-build-cpu}"
budget="${STUDY_BUDGET:-60}"
t0=$(date +%s)
say() { printf '[study %4ds] %s\n' "$(( $(date +%s) - t0 ))" "$*" >&2; }

if [ ! -x "$build/rdd" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRDD_CUDA=OFF > /dev/null
  cmake --build "$build" --target rdd -j "$(nproc)" > "$out.build.log" 2>&1 || { tail -30 "$out.build.log"; exit 1; }
fi
rdd="$build/rdd"

# The demo's CPU scale: 96×192 scenes, a half-width ResNet-18 teacher, eighth-width students, batch 8.
SYNTH=(--train 300 --val 60 --size 96x192)
CROP=(--crop 96 --crop-w 192)
TEACHER=(--model deeplabv3_resnet18 --width 0.5)
STUDENT=(--model deeplabv3_resnet18 --width 0.125)
RUN=(--batch 8 --lr 0.02 --device cpu --workers 2 --cache --seed 1 --print-every 50)
RDD=(--rdd tfe,tse --warmup-fraction 0.1 --min-kept 7000)

mkdir -p "$out"
if [ ! -f "$out/teacher/weights.safetensors" ]; then
  rm -rf "$out/data"
  "$rdd" synth --out "$out/data" "${SYNTH[@]}" --seed 2026 > /dev/null
  say "training the teacher (${TEACHER[*]}, 300 iterations)"
  "$rdd" train --dataset cityscapes --data-root "$out/data" "${CROP[@]}" "${RUN[@]}" "${TEACHER[@]}" --iters 300 \
    --out "$out/teacher" > "$out/teacher.log" 2>&1 || { tail -20 "$out/teacher.log"; exit 1; }
fi
DATA=(--dataset cityscapes --data-root "$out/data")
T=(--teacher "${TEACHER[1]}" --teacher-width "${TEACHER[3]}" --teacher-weights "$out/teacher/weights.safetensors")

miou() { /usr/bin/python3 -c "import json,sys; print('%.2f' % (100 * json.load(open(sys.argv[1]))['miou']))" "$1/eval.json"; }
iters() { /usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['iters'])" "$1/config.json"; }
step_ms() {  # mean measured step time over the run (metrics.jsonl), ms
  /usr/bin/python3 -c "
import json, sys
v = [json.loads(l).get('step_ms') for l in open(sys.argv[1]) if '\"step_ms\"' in l]
v = [x for x in v if x is not None]
print('%.0f' % (sum(v) / len(v)) if v else '-')" "$1/metrics.jsonl"
}

# run NAME COMMAND FLAGS...: trains (skipped when its eval.json exists), then prints a table row.
run() {
  local name="$1" cmd="$2"
  shift 2
  local dir
  dir="$out/$mode/$(printf '%s' "$name" | tr -c 'A-Za-z0-9+' '_' | tr -s '_')"
  if [ ! -f "$dir/eval.json" ]; then
    say "$name: $cmd $*"
    local extra=("${T[@]}")
    [ "$cmd" = train ] && extra=()
    "$rdd" "$cmd" "${DATA[@]}" "${CROP[@]}" "${RUN[@]}" "${STUDENT[@]}" "${extra[@]}" "$@" --out "$dir" \
      > "$dir.log" 2>&1 || { tail -20 "$dir.log"; exit 1; }
  fi
  printf '| %s | %s | %s | %s |\n' "$name" "$(miou "$dir")" "$(iters "$dir")" "$(step_ms "$dir")"
}

mkdir -p "$out/$mode"
echo "synthetic Cityscapes-layout scenes (96x192, val 60 images), teacher ${TEACHER[*]}: $(miou "$out/teacher") mIoU %"
echo
echo "| student ${STUDENT[*]} | mIoU % | iterations | ms/step |"
echo "|---|---|---|---|"
if [ "$mode" = methods ]; then
  N=(--iters 200)
  run baseline train "${N[@]}"
  run "KD (λ 1)" distill "${N[@]}" --kd 1
  run "KD + RDD" distill "${N[@]}" --kd 1 "${RDD[@]}"
  # The methods at their released weights (CIRKD's and RDD's scripts); SKD and IFVD without the adversarial
  # term the scripts pair them with: the release's discriminator needs logits of at least 64x64.
  declare -a NAMES=("SKD (λ 10) + KD" "IFVD (λ 20) + KD" "CWD (logit 3, feature 50) + KD" "CIRKD + KD"
                    "AT (λ 10000) + KD" "DSD (PSD 1000, CSD 10)" "DIST (λ 1)" "FitNet (λ 1)")
  declare -a FLAGSETS=("--kd 1 --skd 10" "--kd 1 --ifvd 20" "--kd 1 --cwd 3 --cwd-feature 50" "--kd 1 --cirkd 1"
                       "--kd 1 --at 10000" "--dsd 1" "--dist 1" "--fitnet 1")
  for i in "${!NAMES[@]}"; do
    # shellcheck disable=SC2206
    F=(${FLAGSETS[$i]})
    run "${NAMES[$i]}" distill "${N[@]}" "${F[@]}"
    run "${NAMES[$i]} + RDD" distill "${N[@]}" "${F[@]}" "${RDD[@]}"
  done
elif [ "$mode" = equal ]; then
  B=(--budget-seconds "$budget")
  run "baseline, ${budget} s" train "${B[@]}"
  run "KD (λ 1), ${budget} s" distill "${B[@]}" --kd 1
  run "FitNet (λ 1), ${budget} s" distill "${B[@]}" --fitnet 1
  run "KD + RDD, ${budget} s" distill "${B[@]}" --kd 1 "${RDD[@]}"
else
  echo "usage: $0 methods|equal" >&2
  exit 2
fi
say "done; runs in $out/$mode"
