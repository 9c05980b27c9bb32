#!/usr/bin/env bash
# Run everything that needs a GPU from an already built tree, and print one summary table:
# the GPU test cases, the GPU self-test, the PyTorch golden cases on the GPU, and the throughput
# benchmarks. Meant for a lent GPU machine, where nothing can be installed: build elsewhere (or here),
# then
#   BUILD_DIR=build PYTHON=python3 bash scripts/gpu_check.sh [step ...]
# Steps (default: all but sanitize): tests selftest golden bench distill e2e multi sanitize.
# sanitize: the GPU test cases of engine, layers and rdd under compute-sanitizer memcheck and racecheck
# (out-of-bounds accesses and shared-memory races that a parity check can miss; 10-100x slower). Logs go to $LOG_DIR (default: gpu_check/).
# Each step runs under `timeout` so that one hang cannot eat the whole session.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${BUILD_DIR:-build}"
rdd="$build/rdd"
py="${PYTHON:-python3}"
logs="${LOG_DIR:-gpu_check}"
mkdir -p "$logs"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(tests selftest golden bench distill e2e multi)
summary=()

# run NAME SECONDS COMMAND...: log to $logs/NAME.log, remember pass/fail and the time taken.
run() {
  local name="$1" limit="$2"; shift 2
  local t0=$(date +%s%N)
  echo "=== $name: $*" | tee "$logs/$name.log"
  timeout --kill-after=10 "$limit" "$@" >> "$logs/$name.log" 2>&1
  local rc=$?
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  local dt="$((ms / 1000)).$(( (ms % 1000) / 100 ))"
  local verdict=PASS
  [ $rc -ne 0 ] && verdict="FAIL(rc=$rc)"
  [ $rc -eq 124 ] && verdict="TIMEOUT(${limit}s)"
  summary+=("$(printf '%-34s %-14s %7ss' "$name" "$verdict" "$dt")")
  tail -n 25 "$logs/$name.log"
}

bench() {  # bench NAME ARGS...: one `rdd bench` line in the summary with its img/s
  local name="$1"; shift
  run "$name" 180 "$rdd" bench --device cuda "$@"
}

has() { local s; for s in "${steps[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

nvidia-smi -L || { echo "no GPU visible"; exit 1; }

if has tests; then
  for t in engine layers models rdd data dist train apps deploy; do
    run "test_${t}_gpu" 150 "$build/tests/test_$t" --rdd-gpu-only --test-suite=gpu,silicon
  done
fi
if has selftest; then
  run selftest 300 "$rdd" selftest
fi
if has golden; then
  run golden_generate_models 300 "$py" scripts/make_golden_models.py "$build/tests/golden_models"
  run golden_generate_losses 300 "$py" scripts/make_golden_losses.py "$build/tests/golden_losses"
  run golden_models 300 "$rdd" selftest --golden "$build/tests/golden_models"
  run golden_losses 300 "$rdd" selftest --golden "$build/tests/golden_losses"
  run golden_generate_train_steps 600 "$py" scripts/make_golden_train_steps.py "$build/tests/golden_train_steps"
  run golden_train_steps 300 "$rdd" selftest --golden "$build/tests/golden_train_steps"
fi
if has bench; then
  bench bench_r18_forward --model deeplabv3_resnet18 --mode forward --crop 512x1024 --batch 8 --iterations 10 --fold-bn
  bench bench_r18_train --model deeplabv3_resnet18 --mode train --crop 512x1024 --batch 8 --iterations 10
  bench bench_r18_train_tf32 --model deeplabv3_resnet18 --mode train --crop 512x1024 --batch 8 --iterations 10 --tf32
  bench bench_psp18_train --model psp_resnet18 --mode train --crop 512x1024 --batch 8 --iterations 10
  bench bench_mnv2_train --model deeplabv3_mobilenetv2 --mode train --crop 512x1024 --batch 8 --iterations 10
  bench bench_r101_forward --model deeplabv3_resnet101 --mode forward --crop 512x1024 --batch 8 --iterations 5
fi
if has distill; then
  bench bench_distill_r101_r18 --model deeplabv3_resnet18 --mode distill --teacher deeplabv3_resnet101 \
    --crop 512x1024 --batch 8 --iterations 10 --ops --layers
  bench bench_distill_r101_r18_tf32 --model deeplabv3_resnet18 --mode distill --teacher deeplabv3_resnet101 \
    --crop 512x1024 --batch 8 --iterations 10 --tf32
fi
if has e2e; then
  for s in pipeline resume kill errors; do
    run "e2e_$s" 600 bash tests/apps/e2e_trainer.sh "$rdd" "$build/tests/apps_e2e_$s" "$s"
  done
fi

if has multi; then
  # The data-parallel path on one GPU (--gpus 1: launcher, rendezvous, NCCL all-reduce, SyncBN) against
  # the plain single process, same run; then all GPUs of this machine when there are several.
  m="$logs/multi"
  rm -rf "$m" && mkdir -p "$m"
  "$rdd" synth --out "$m/data" --train 64 --val 16 --size 256x512 --seed 3 > /dev/null
  D=(--dataset cityscapes --data-root "$m/data" --crop 256 --crop-w 512 --batch 16 --workers 4 --cache --print-every 20)
  run multi_teacher 300 "$rdd" train "${D[@]}" --model deeplabv3_resnet50 --width 0.5 --iters 2 --out "$m/teacher"
  DI=("${D[@]}" --model deeplabv3_resnet18 --width 0.25 --teacher deeplabv3_resnet50 --teacher-width 0.5
      --teacher-weights "$m/teacher/weights.safetensors" --kd 1 --rdd tfe,tse --warmup-iters 20 --iters 100)
  run multi_single_process 300 "$rdd" distill "${DI[@]}" --device cuda --out "$m/single"
  run multi_gpus1_nccl 300 "$rdd" distill "${DI[@]}" --gpus 1 --out "$m/gpus1"
  run multi_eval_gpus1 300 "$rdd" eval --dataset cityscapes --data-root "$m/data" --model deeplabv3_resnet18 \
    --width 0.25 --weights "$m/gpus1/weights.safetensors" --gpus 1
  n=$(nvidia-smi -L | wc -l)
  if [ "$n" -gt 1 ]; then
    nb=16; [ $((16 % n)) -ne 0 ] && nb=$((2 * n))  # --batch is global: it must split over the ranks
    run "multi_gpus${n}_nccl" 300 "$rdd" distill "${DI[@]}" --batch "$nb" --gpus "$n" --out "$m/gpusN"
  fi
fi

if has sanitize; then
  if command -v compute-sanitizer > /dev/null 2>&1; then
    for t in engine layers rdd dist; do
      run "memcheck_$t" 600 compute-sanitizer --tool memcheck --error-exitcode 99 \
        "$build/tests/test_$t" --rdd-gpu-only --test-suite=gpu,silicon
      run "racecheck_$t" 600 compute-sanitizer --tool racecheck --error-exitcode 99 \
        "$build/tests/test_$t" --rdd-gpu-only --test-suite=gpu,silicon
    done
  else
    summary+=("$(printf '%-34s %-14s' sanitize "SKIPPED (no compute-sanitizer)")")
  fi
fi

echo
echo "=== summary ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -1))"
printf '%s\n' "${summary[@]}"
for f in "$logs"/bench_*.log "$logs"/multi_*.log; do
  [ -f "$f" ] && grep -H -E "throughput:|img/s,|mIoU [0-9]" "$f" | tail -2
done
exit 0
