#!/usr/bin/env bash
# The demo's comparison over several seeds: the demo's synthetic scenes and teacher (scripts/demo.sh, at the
# same scale: scripts/demo_scale.sh), then the same student three ways — baseline (plain CE), logit KD,
# KD + RDD — for seeds 1..S (the seed sets the student's initialisation, the loader's order and
# augmentation, and dropout; seed 1 is the demo's own runs). Prints mean ± sample std of the val mIoU per
# arm and the paired per-seed differences, and writes STUDY_OUT/study.json and STUDY_OUT/study.png (bars
# with ±1 std error bars, one dot per seed, the teacher as a line).
#   STUDY_SEEDS=3        number of seeds
#   STUDY_OUT=dir        where everything goes (default: study_out)
#   RDD=path/to/rdd      use this binary instead of set-up and a build
#   DEMO_FORCE_CPU=1     the CPU scale even when a GPU is present
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${STUDY_OUT:-$root/study_out}"
seeds="${STUDY_SEEDS:-3}"
t0=$(date +%s)
say() { printf '[study %5ds] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }

source scripts/demo_scale.sh
if [ -n "${RDD:-}" ]; then
  rdd="$RDD"
else
  bash scripts/setup.sh
  cmake -S . -B "$build" -G Ninja "${build_config[@]}" > /dev/null
  cmake --build "$build" --target rdd -j "$(nproc)" > "$out.build.log" 2>&1 || { tail -30 "$out.build.log"; exit 1; }
  rdd="$build/rdd"
fi
machine="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
if [ $gpu = 1 ]; then
  machine="$machine, $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
else
  machine="$machine, no GPU"
fi
say "rdd: $rdd; $seeds seeds; $machine"

rm -rf "$out"
mkdir -p "$out"
"$rdd" synth --out "$out/data" "${SYNTH[@]}" --seed "$SYNTH_SEED" > "$out/synth.log" 2>&1
DATA=(--dataset cityscapes --data-root "$out/data" --print-every 50)
: > "$out/times.txt"
run() {  # NAME rdd-args...: one run, its wall time to times.txt
  local name=$1 s
  shift
  s=$(date +%s)
  "$rdd" "$@" --out "$out/$name" > "$out/$name.log" 2>&1 || { tail -20 "$out/$name.log"; exit 1; }
  echo "$name $(( $(date +%s) - s ))" >> "$out/times.txt"
  say "$name: $(/usr/bin/python3 -c "import json,sys; print('%.2f' % (100 * json.load(open(sys.argv[1]))['miou']))" "$out/$name/eval.json") mIoU % ($(( $(date +%s) - s )) s)"
}

say "teacher (${TEACHER[*]}, seed 1, as the demo's)"
run teacher train "${DATA[@]}" --seed 1 "${CROP[@]}" "${DEVICE[@]}" "${TEACHER[@]}" "${TEACHER_RUN[@]}"
T=(--teacher "${TEACHER[1]}" --teacher-width "${TEACHER[3]}" --teacher-weights "$out/teacher/weights.safetensors")
for ((s = 1; s <= seeds; ++s)); do
  mkdir -p "$out/seed$s"
  say "seed $s: baseline, KD, KD + RDD"
  run "seed$s/baseline" train "${DATA[@]}" --seed "$s" "${CROP[@]}" "${DEVICE[@]}" "${STUDENT[@]}" "${STUDENT_RUN[@]}"
  run "seed$s/kd" distill "${DATA[@]}" --seed "$s" "${CROP[@]}" "${DEVICE[@]}" "${STUDENT[@]}" "${STUDENT_RUN[@]}" \
    "${T[@]}" --kd 1
  run "seed$s/rdd" distill "${DATA[@]}" --seed "$s" "${CROP[@]}" "${DEVICE[@]}" "${STUDENT[@]}" "${STUDENT_RUN[@]}" \
    "${T[@]}" --kd 1 --rdd tfe,tse "${DISTILL[@]}"
done
wall=$(( $(date +%s) - t0 ))
/usr/bin/python3 scripts/study_summary.py "$out" --seeds "$seeds" --wall "$wall" --machine "$machine" \
  --scale "teacher ${TEACHER[*]} ${TEACHER_RUN[*]}; students ${STUDENT[*]} ${STUDENT_RUN[*]}; ${SYNTH[*]}"
