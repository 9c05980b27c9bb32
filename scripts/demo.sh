#!/usr/bin/env bash
# The main job, on synthetic street scenes (no download): set-up, build, generate data, train a
# teacher, train the student three ways — baseline (plain CE), KD, KD + RDD — evaluate each, and
# write prediction images. Its last three lines are
#   baseline <mIoU>
#   kd <mIoU>
#   rdd <mIoU>
# (percent on the synthetic val split, two decimals).
#
# On a machine with an NVIDIA GPU it uses the GPU build with bigger models and images; otherwise a
# CPU-only build (faster to compile) with small ones, finishing in about 15 minutes on 2 cores.
#   DEMO_OUT=dir   where everything goes (default: demo_out)
#   DEMO_FORCE_CPU=1   use the CPU configuration even when a GPU is present
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${DEMO_OUT:-$root/demo_out}"
t0=$(date +%s)
say() { printf '[demo %4ds] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }

bash scripts/setup.sh

source scripts/demo_scale.sh
if [ $gpu = 1 ]; then
  say "GPU found: building with CUDA in $build/"
else
  say "no GPU: CPU-only build in $build/ (the binary runs anywhere; the CUDA build also falls back to the CPU)"
fi
cmake -S . -B "$build" -G Ninja "${build_config[@]}" > /dev/null
cmake --build "$build" --target rdd -j "$(nproc)" > "$out.build.log" 2>&1 || { tail -30 "$out.build.log"; exit 1; }
rdd="$build/rdd"
say "built $rdd"

rm -rf "$out"
mkdir -p "$out"
"$rdd" synth --out "$out/data" "${SYNTH[@]}" --seed "$SYNTH_SEED"
DATA=(--dataset cityscapes --data-root "$out/data" --seed 1 --print-every 50)

say "training the teacher (${TEACHER[*]})"
"$rdd" train "${DATA[@]}" "${CROP[@]}" "${DEVICE[@]}" "${TEACHER[@]}" "${TEACHER_RUN[@]}" --out "$out/teacher" > "$out/teacher.log" 2>&1 \
  || { tail -20 "$out/teacher.log"; exit 1; }
T=(--teacher "${TEACHER[1]}" --teacher-width "${TEACHER[3]}" --teacher-weights "$out/teacher/weights.safetensors")

say "student 1/3: baseline (plain cross-entropy)"
"$rdd" train "${DATA[@]}" "${CROP[@]}" "${DEVICE[@]}" "${STUDENT[@]}" "${STUDENT_RUN[@]}" --out "$out/baseline" > "$out/baseline.log" 2>&1 \
  || { tail -20 "$out/baseline.log"; exit 1; }
say "student 2/3: logit KD (λ = 1, T = 1)"
"$rdd" distill "${DATA[@]}" "${CROP[@]}" "${DEVICE[@]}" "${STUDENT[@]}" "${STUDENT_RUN[@]}" "${T[@]}" --kd 1 \
  --out "$out/kd" > "$out/kd.log" 2>&1 || { tail -20 "$out/kd.log"; exit 1; }
say "student 3/3: KD + RDD (TFE then TSE xor, t = 0.7)"
"$rdd" distill "${DATA[@]}" "${CROP[@]}" "${DEVICE[@]}" "${STUDENT[@]}" "${STUDENT_RUN[@]}" "${T[@]}" --kd 1 \
  --rdd tfe,tse "${DISTILL[@]}" --out "$out/rdd" > "$out/rdd.log" 2>&1 || { tail -20 "$out/rdd.log"; exit 1; }

say "prediction images"
val_imgs="$out/val_images"
mkdir -p "$val_imgs"
for f in $(ls "$out"/data/leftImg8bit/val/*/*.png | head -4); do cp "$f" "$val_imgs/"; done
for run in teacher baseline kd rdd; do
  model=("${STUDENT[@]}")
  [ $run = teacher ] && model=("${TEACHER[@]}")
  "$rdd" predict "${model[@]}" --weights "$out/$run/weights.safetensors" --input "$val_imgs" --out "$out/predictions/$run" \
    --overlay "${DEVICE[0]}" "${DEVICE[1]}" > "$out/predict_$run.log" 2>&1 || { tail -5 "$out/predict_$run.log"; exit 1; }
done

miou() { /usr/bin/python3 -c "import json,sys; print('%.2f' % (100 * json.load(open(sys.argv[1]))['miou']))" "$1/eval.json"; }
say "done in $(( $(date +%s) - t0 )) s; everything is in $out"
echo
echo "synthetic Cityscapes-layout scenes, val split ($(ls "$out"/data/leftImg8bit/val/*/*.png | wc -l) images), mIoU %:"
echo "  teacher  ${TEACHER[*]}: $(miou "$out/teacher")"
echo "  students ${STUDENT[*]}, three ways:"
echo "  predictions (colourised, and overlaid on the image): $out/predictions/{teacher,baseline,kd,rdd}/"
echo "  curves: /usr/bin/python3 scripts/plot_metrics.py $out/baseline $out/kd $out/rdd --out $out/curves.png"
echo "baseline $(miou "$out/baseline")"
echo "kd $(miou "$out/kd")"
echo "rdd $(miou "$out/rdd")"
