#!/usr/bin/env bash
# End to end on the CPU with tiny models and images, through the built binary:
#   synth → train (teacher) → distill (KD + RDD) → eval → predict,
#   exact resume (6 iterations == 3 + resume 3, byte for byte),
#   SIGKILL during training leaves a loadable checkpoint,
#   bad input refused with a clear message and a non-zero exit.
# Usage: e2e_trainer.sh RDD_BINARY WORK_DIR [section]
set -euo pipefail
RDD="$1"
W="$2"
SECTION="${3:-all}"
rm -rf "$W" && mkdir -p "$W"
export RDD_NUM_THREADS=2
fail() { echo "E2E FAILURE: $*" >&2; exit 1; }
expect_error() {  # expect_error "substring" cmd...: the command must fail and say substring
  local want="$1"; shift
  if "$@" > "$W/err.txt" 2>&1; then fail "expected failure: $*"; fi
  grep -qF -- "$want" "$W/err.txt" || { cat "$W/err.txt" >&2; fail "message '$want' missing for: $*"; }
}

"$RDD" synth --out "$W/data" --train 12 --val 4 --size 64x128 --seed 5 > /dev/null
DATA=(--dataset cityscapes --data-root "$W/data")
SMALL=(--crop 64 --crop-w 128 --batch 2 --workers 2 --print-every 1000)
T=(--model deeplabv3_resnet18 --width 0.25)
S=(--model deeplabv3_resnet18 --width 0.125)

if [ "$SECTION" = all ] || [ "$SECTION" = pipeline ]; then
  "$RDD" train "${DATA[@]}" "${SMALL[@]}" "${T[@]}" --iters 4 --out "$W/teacher" > "$W/teacher.txt" 2>&1 \
    || { cat "$W/teacher.txt"; fail "teacher training"; }
  for f in weights.safetensors checkpoint.safetensors config.json metrics.jsonl eval.json; do
    [ -s "$W/teacher/$f" ] || fail "teacher/$f missing"
  done
  [ "$(grep -c '"iter"' "$W/teacher/metrics.jsonl")" -ge 5 ] || fail "metrics.jsonl has too few records"
  grep -q '"miou"' "$W/teacher/eval.json" || fail "eval.json has no miou"

  "$RDD" distill "${DATA[@]}" "${SMALL[@]}" "${S[@]}" --teacher deeplabv3_resnet18 --teacher-width 0.25 \
    --teacher-weights "$W/teacher/weights.safetensors" --kd 1 --rdd tfe,tse --warmup-iters 3 --min-kept 500 \
    --iters 5 --out "$W/rdd" > "$W/rdd.txt" 2>&1 || { cat "$W/rdd.txt"; fail "distillation"; }
  grep -q '"kd"' "$W/rdd/metrics.jsonl" || fail "no kd term in the distillation metrics"
  # TFE for iterations 1-2, TSE from 3 on: the logged TFE share must switch from 1 to 0.
  grep '"iter":1,' "$W/rdd/metrics.jsonl" | grep -q '"task.tfe_share":1' || fail "iteration 1 is not TFE"
  grep '"iter":5,' "$W/rdd/metrics.jsonl" | grep -q '"task.tfe_share":0' || fail "iteration 5 is not TSE"

  "$RDD" eval "${DATA[@]}" "${S[@]}" --weights "$W/rdd/weights.safetensors" --json "$W/eval.json" > "$W/eval.txt" 2>&1 \
    || { cat "$W/eval.txt"; fail "eval"; }
  grep -q "mIoU" "$W/eval.txt" || fail "eval printed no mIoU"
  grep -q "car" "$W/eval.txt" || fail "eval printed no class names"
  grep -q '"pixel_accuracy"' "$W/eval.json" || fail "eval json"

  if "$RDD" predict --help > /dev/null 2>&1 && ! "$RDD" predict --help 2>&1 | grep -q "not implemented"; then
    img=$(ls "$W"/data/leftImg8bit/val/*/*.png | head -1)
    "$RDD" predict "${S[@]}" --weights "$W/rdd/weights.safetensors" --input "$img" --out "$W/pred" > "$W/pred.txt" 2>&1 \
      || { cat "$W/pred.txt"; fail "predict"; }
    ls "$W"/pred/*_pred.png > /dev/null 2>&1 || fail "predict wrote no PNG"
  fi
fi

if [ "$SECTION" = all ] || [ "$SECTION" = resume ]; then
  R=("${DATA[@]}" "${SMALL[@]}" "${S[@]}" --iters 6 --save-every 2 --seed 9)
  "$RDD" train "${R[@]}" --out "$W/full" > "$W/full.txt" 2>&1 || { cat "$W/full.txt"; fail "uninterrupted run"; }
  "$RDD" train "${R[@]}" --out "$W/part" --stop-after 3 > "$W/part1.txt" 2>&1 || { cat "$W/part1.txt"; fail "first half"; }
  "$RDD" train "${R[@]}" --out "$W/part" --resume "$W/part/checkpoint.safetensors" > "$W/part2.txt" 2>&1 \
    || { cat "$W/part2.txt"; fail "resumed half"; }
  cmp "$W/full/weights.safetensors" "$W/part/weights.safetensors" \
    || fail "6 iterations and 3 + resume 3 give different weights"
  cmp "$W/full/checkpoint.safetensors" "$W/part/checkpoint.safetensors" || fail "final checkpoints differ"
  # Resuming from a checkpoint older than the log (a run killed after its last save): every iteration
  # appears once in metrics.jsonl, the resumed run's record replacing the lost run's.
  "$RDD" train "${R[@]}" --out "$W/relog" --stop-after 3 > /dev/null 2>&1 || fail "relog 1"
  cp "$W/relog/checkpoint.safetensors" "$W/ck3.safetensors"
  "$RDD" train "${R[@]}" --out "$W/relog" --resume "$W/ck3.safetensors" --stop-after 5 > /dev/null 2>&1 || fail "relog 2"
  "$RDD" train "${R[@]}" --out "$W/relog" --resume "$W/ck3.safetensors" --stop-after 5 > /dev/null 2>&1 || fail "relog 3"
  n=$(grep -c '"loss"' "$W/relog/metrics.jsonl")
  dups=$(grep -o '"iter":[0-9]*,"loss"' "$W/relog/metrics.jsonl" | sort | uniq -d | tr '\n' ' ')
  [ "$n" = 5 ] && [ -z "$dups" ] || fail "metrics.jsonl has $n iteration records (want 5), repeated: $dups"
  # A resume with a different configuration is refused, naming the difference.
  expect_error "lr: saved 0.02, now 0.05" "$RDD" train "${R[@]}" --lr 0.05 --out "$W/part" --resume "$W/full/checkpoint.safetensors"
fi

if [ "$SECTION" = all ] || [ "$SECTION" = kill ]; then
  K=("${DATA[@]}" "${SMALL[@]}" "${S[@]}" --iters 400 --save-every 1 --out "$W/killed")
  for attempt in 1 2 3; do
    "$RDD" train "${K[@]}" > /dev/null 2>&1 &
    pid=$!
    # Wait for a first checkpoint, then kill at an arbitrary moment (often mid-write: one per iteration).
    for _ in $(seq 1 300); do [ -f "$W/killed/checkpoint.safetensors" ] && break; sleep 0.1; done
    sleep "0.$((RANDOM % 9 + 1))"
    kill -9 "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
    [ -f "$W/killed/checkpoint.safetensors" ] || fail "no checkpoint before the kill"
    # The last checkpoint loads and training continues from it.
    it=$(tr -d '\0' < "$W/killed/checkpoint.safetensors" | grep -ao '"iteration":"[0-9]*"' | head -1 | grep -o '[0-9]*')
    "$RDD" train "${K[@]}" --resume "$W/killed/checkpoint.safetensors" --stop-after $((it + 1)) > "$W/resume.txt" 2>&1 \
      || { cat "$W/resume.txt"; fail "the checkpoint left by SIGKILL does not load (attempt $attempt)"; }
    ls "$W"/killed/*.tmp* > /dev/null 2>&1 && echo "note: a temporary file from the killed write remains (harmless)"
    rm -f "$W"/killed/*.tmp*
  done
fi

if [ "$SECTION" = all ] || [ "$SECTION" = errors ]; then
  expect_error "unknown model 'deeplabv9'" "$RDD" train "${DATA[@]}" --model deeplabv9 --out "$W/x"
  expect_error "resnet" "$RDD" train "${DATA[@]}" --model deeplabv9 --out "$W/x"  # lists the known models
  expect_error "dataset" "$RDD" train --dataset kitti --data-root "$W/data" --out "$W/x"
  expect_error "$W/nowhere" "$RDD" train --dataset cityscapes --data-root "$W/nowhere" --out "$W/x"
  touch "$W/a_file"
  expect_error "--out $W/a_file/run" "$RDD" train "${DATA[@]}" "${SMALL[@]}" "${S[@]}" --iters 1 --out "$W/a_file/run"
  # A teacher file for another architecture (or width) is refused by name.
  "$RDD" train "${DATA[@]}" "${SMALL[@]}" "${S[@]}" --iters 1 --out "$W/small" > /dev/null 2>&1
  expect_error "width" "$RDD" distill "${DATA[@]}" "${SMALL[@]}" "${S[@]}" --teacher deeplabv3_resnet18 --teacher-width 0.25 \
    --teacher-weights "$W/small/weights.safetensors" --kd 1 --iters 1 --out "$W/x"
  expect_error "holds a 'deeplabv3_resnet18' model" "$RDD" distill "${DATA[@]}" "${SMALL[@]}" "${S[@]}" \
    --teacher psp_resnet18 --teacher-width 0.125 --teacher-weights "$W/small/weights.safetensors" --kd 1 --iters 1 --out "$W/x"
  expect_error "not 'checkpoint'" "$RDD" train "${DATA[@]}" "${SMALL[@]}" "${S[@]}" --iters 2 --out "$W/x" \
    --resume "$W/small/weights.safetensors"
  expect_error "drop --device" "$RDD" train "${DATA[@]}" "${SMALL[@]}" "${S[@]}" --iters 1 --gpus 2 --device cpu \
    --out "$W/x"
  if "$RDD" info | grep -q "^gpus: none"; then
    # --gpus (even 1) launches NCCL workers, which need GPUs: each says so and the launcher names the rank.
    expect_error "multi-process training runs on GPUs" "$RDD" train "${DATA[@]}" "${SMALL[@]}" "${S[@]}" --iters 1 \
      --gpus 1 --out "$W/x"
    expect_error "multi-process evaluation runs on GPUs" "$RDD" eval "${DATA[@]}" "${S[@]}" \
      --weights "$W/small/weights.safetensors" --gpus 2
  fi
  expect_error "--tse-mode" "$RDD" distill "${DATA[@]}" "${S[@]}" --teacher deeplabv3_resnet18 \
    --teacher-weights "$W/small/weights.safetensors" --tse-mode nand --out "$W/x"
fi
echo "e2e trainer ok ($SECTION)"
