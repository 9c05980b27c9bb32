#!/usr/bin/env bash
# A run a user can leave alone for a week (issue 16), end to end on the CPU with tiny models:
#   signal       SIGTERM mid-run → checkpoint + resume command; resuming gives the uninterrupted run's
#                weights byte for byte; a second signal stops at once; dead writers' *.tmp.* removed; in a
#                validation or the final evaluation it stops within an image
#   folder       a second run into a held --out is refused (pid, host); an --out holding a run is
#                refused unless --resume or --overwrite; metrics.jsonl has wall-clock times
#   data         a corrupt sample stops the run before its first step, or is skipped and listed with
#                --skip-bad-samples; the check is cached; a data error the check cannot see (pixels)
#                still leaves a checkpoint
#   moved        resume after moving the dataset; a dataset with other files is refused
#   metadata     eval / predict / export without --model and --width (the weights' metadata)
#   tensorboard  TensorBoard's own reader loads tb/ and sees the scalars and images (skipped, exit 77,
#                without the tensorboard Python package)
#   list         --dataset list validates on --val-list, and without it not at all
#   diagnostics  a diverged run names the non-finite weights; NaN in a weights file is refused at load; a
#                loss term exactly 0 for --warn-zero-loss iterations is warned about once; numeric ranges
# Usage: e2e_trust.sh RDD_BINARY WORK_DIR section
set -euo pipefail
RDD="$1"
W="$2"
SECTION="$3"
rm -rf "$W" && mkdir -p "$W"
export RDD_NUM_THREADS=2
PY=/usr/bin/python3
fail() { echo "E2E FAILURE: $*" >&2; exit 1; }
expect_error() {  # expect_error "substring" cmd...: the command must fail and say substring
  local want="$1"; shift
  if "$@" > "$W/err.txt" 2>&1; then fail "expected failure: $*"; fi
  grep -qF -- "$want" "$W/err.txt" || { cat "$W/err.txt" >&2; fail "message '$want' missing for: $*"; }
}
wait_for_iterations() {  # wait_for_iterations FILE N: until metrics FILE holds N iteration records
  for _ in $(seq 1 600); do
    [ -f "$1" ] && [ "$(grep -c '"loss"' "$1" || true)" -ge "$2" ] && return 0
    sleep 0.05
  done
  fail "no $2 iterations in $1"
}
dead_pid() { sh -c 'echo $$'; }  # a process that has ended
term_after_iterations() {  # term_after_iterations METRICS N LOG cmd...: run cmd, SIGTERM it after N records; rc=its exit
  local metrics="$1" n="$2" log="$3"; shift 3
  "$@" > "$log" 2>&1 &
  local pid=$!
  wait_for_iterations "$metrics" "$n"
  kill -TERM "$pid"
  rc=0; wait "$pid" || rc=$?
}

"$RDD" synth --out "$W/data" --train 12 --val 4 --size 64x128 --seed 5 > /dev/null
SMALL=(--crop 64 --crop-w 128 --batch 2 --workers 2 --print-every 1000 --model deeplabv3_resnet18 --width 0.125)
DATA=(--dataset cityscapes --data-root "$W/data")

case "$SECTION" in
signal)
  R=("${DATA[@]}" "${SMALL[@]}" --iters 150 --save-every 1000 --seed 3)
  "$RDD" train "${R[@]}" --out "$W/full" > "$W/full.txt" 2>&1 || { cat "$W/full.txt"; fail "uninterrupted run"; }
  term_after_iterations "$W/sig/metrics.jsonl" 5 "$W/sig.txt" "$RDD" train "${R[@]}" --out "$W/sig"
  [ "$rc" = 143 ] || { cat "$W/sig.txt"; fail "SIGTERM: exit $rc, want 143"; }
  grep -q "stopped by SIGTERM after [0-9]* iterations; checkpoint written to $W/sig/checkpoint.safetensors" "$W/sig.txt" \
    || { cat "$W/sig.txt"; fail "no stop message naming the checkpoint"; }
  [ -f "$W/sig/checkpoint.safetensors" ] || fail "no checkpoint after SIGTERM"
  [ ! -e "$W/sig/rdd.lock" ] || fail "the lock file outlived the run"
  n=$(grep -c '"loss"' "$W/sig/metrics.jsonl")
  [ "$n" -lt 150 ] || fail "the run was not stopped early ($n iterations)"
  # A temporary file of a writer that died (SIGKILL mid-write) is removed by the next run, with a note.
  stale="checkpoint.safetensors.tmp.$(dead_pid)"
  echo partial > "$W/sig/$stale"
  # The printed resume command, pasted as it is (it names the binary as it was run), continues the run to
  # the uninterrupted run's weights, byte for byte.
  cmd=$(grep -A1 "^continue with:" "$W/sig.txt" | tail -1)
  case "$cmd" in "  $RDD train "*) ;; *) fail "no resume command starting with '$RDD train': '$cmd'";; esac
  eval "$cmd" > "$W/resumed.txt" 2>&1 || { cat "$W/resumed.txt"; fail "the resume command"; }
  grep -q "removed 1 temporary file left by a writer that no longer runs: $stale" "$W/resumed.txt" \
    || { cat "$W/resumed.txt"; fail "stale temporary not reported"; }
  [ ! -e "$W/sig/$stale" ] || fail "stale temporary not removed"
  cmp "$W/full/weights.safetensors" "$W/sig/weights.safetensors" \
    || fail "SIGTERM + resume and the uninterrupted run give different weights"
  [ "$(grep -c '"loss"' "$W/sig/metrics.jsonl")" = 150 ] || fail "metrics.jsonl does not hold each iteration once"
  # A second signal stops at once, without a checkpoint.
  "$RDD" train "${DATA[@]}" "${SMALL[@]}" --iters 100000 --save-every 100000 --out "$W/twice" > "$W/twice.txt" 2>&1 &
  pid=$!
  wait_for_iterations "$W/twice/metrics.jsonl" 2
  kill -INT "$pid"; kill -TERM "$pid"  # two kinds: two of one kind sent at once may arrive as one
  rc=0; wait "$pid" || rc=$?
  [ "$rc" = 130 ] || [ "$rc" = 143 ] || { cat "$W/twice.txt"; fail "second signal: exit $rc, want 130 or 143"; }
  grep -q "second signal: stopping at once" "$W/twice.txt" || { cat "$W/twice.txt"; fail "no second-signal message"; }
  grep -q "stopped by SIGTERM" "$W/twice.txt" && fail "the second signal did not stop at once"
  # A signal during a validation stops it within an image: that iteration's checkpoint, no further step.
  "$RDD" synth --out "$W/bigval" --train 4 --val 400 --size 128x256 --seed 6 > /dev/null  # ~3 s of validation
  V=(--dataset cityscapes --data-root "$W/bigval" "${SMALL[@]}" --save-every 100000)
  term_after_iterations "$W/inval/metrics.jsonl" 1 "$W/inval.txt" "$RDD" train "${V[@]}" --iters 1000 --val-every 1 \
    --out "$W/inval"
  [ "$rc" = 143 ] || { cat "$W/inval.txt"; fail "SIGTERM in a validation: exit $rc, want 143"; }
  grep -q "validation at 1 interrupted by a stop request: not recorded" "$W/inval.txt" \
    || { cat "$W/inval.txt"; fail "the validation was not interrupted"; }
  grep -q "stopped by SIGTERM after 1 iteration; checkpoint written" "$W/inval.txt" \
    || { cat "$W/inval.txt"; fail "no checkpoint of iteration 1"; }
  [ "$(grep -c '"loss"' "$W/inval/metrics.jsonl")" = 1 ] || fail "a step ran after the interrupted validation"
  grep -q val_miou "$W/inval/metrics.jsonl" && fail "an interrupted validation was recorded"
  # In the final evaluation: the weights are kept and named, nothing is claimed about their mIoU.
  term_after_iterations "$W/infinal/metrics.jsonl" 1 "$W/infinal.txt" "$RDD" train "${V[@]}" --iters 1 --out "$W/infinal"
  [ "$rc" = 143 ] || { cat "$W/infinal.txt"; fail "SIGTERM in the final evaluation: exit $rc, want 143"; }
  grep -qF "the final evaluation was stopped by SIGTERM. Weights in $W/infinal/weights.safetensors" "$W/infinal.txt" \
    || { cat "$W/infinal.txt"; fail "no message naming the weights"; }
  [ -f "$W/infinal/weights.safetensors" ] || fail "no weights after a stop in the final evaluation"
  [ ! -e "$W/infinal/eval.json" ] || fail "eval.json written for an interrupted evaluation"
  ;;
folder)
  R=("${DATA[@]}" "${SMALL[@]}" --iters 2)
  "$RDD" train "${DATA[@]}" "${SMALL[@]}" --iters 100000 --save-every 100000 --out "$W/held" > "$W/held.txt" 2>&1 &
  pid=$!
  wait_for_iterations "$W/held/metrics.jsonl" 1
  expect_error "--out $W/held is in use by another run: pid $pid on host $(hostname)" "$RDD" train "${R[@]}" --out "$W/held"
  kill -TERM "$pid"; wait "$pid" || true
  "$RDD" train "${R[@]}" --out "$W/done" > /dev/null 2>&1 || fail "first run"
  lines=$(wc -l < "$W/done/metrics.jsonl")
  grep -q '"iter":1,.*"time":1[0-9]\{9\}\.[0-9]*' "$W/done/metrics.jsonl" || fail "metrics.jsonl has no wall-clock time"
  expect_error "--out $W/done already holds a run" "$RDD" train "${R[@]}" --out "$W/done"
  [ "$(wc -l < "$W/done/metrics.jsonl")" = "$lines" ] || fail "a refused run changed metrics.jsonl"
  expect_error "--overwrite and --resume contradict" "$RDD" train "${R[@]}" --out "$W/done" --overwrite \
    --resume "$W/done/checkpoint.safetensors"
  echo '{"iter":99,"loss":1}' >> "$W/done/metrics.jsonl"  # a record only the earlier run has
  "$RDD" train "${R[@]}" --out "$W/done" --overwrite > "$W/over.txt" 2>&1 || { cat "$W/over.txt"; fail "--overwrite"; }
  grep -q "removed the earlier run's" "$W/over.txt" || fail "--overwrite did not say what it removed"
  grep -q '"iter":99' "$W/done/metrics.jsonl" && fail "--overwrite kept the earlier run's records"
  [ "$(grep -c '"loss"' "$W/done/metrics.jsonl")" = 2 ] || fail "the overwriting run's records are missing"
  ;;
data)
  cp -r "$W/data" "$W/bad"
  img=$(ls "$W"/bad/leftImg8bit/train/*/*.png | sed -n 3p)
  head -c 600 "$img" > "$W/cut.png" && mv "$W/cut.png" "$img"
  expect_error "has 1 bad sample, found before the first step" "$RDD" train --dataset cityscapes --data-root "$W/bad" \
    "${SMALL[@]}" --iters 3 --out "$W/stopped"
  grep -qF "$img: truncated PNG" "$W/err.txt" || { cat "$W/err.txt"; fail "the bad file is not named"; }
  grep -q "skip-bad-samples" "$W/err.txt" || fail "the message does not name --skip-bad-samples"
  [ ! -s "$W/stopped/metrics.jsonl" ] || fail "a step ran before the data check failed"
  "$RDD" train --dataset cityscapes --data-root "$W/bad" "${SMALL[@]}" --iters 3 --out "$W/skipped" \
    --skip-bad-samples > "$W/skipped.txt" 2>&1 || { cat "$W/skipped.txt"; fail "--skip-bad-samples"; }
  grep -q "leaving out 1 bad training sample of 12" "$W/skipped.txt" || { cat "$W/skipped.txt"; fail "no skip list"; }
  grep -qF "$img" "$W/skipped/bad_samples.txt" || fail "bad_samples.txt does not list the file"
  grep -q '"samples": 11' "$W/skipped/config.json" || fail "the run did not train on 11 samples"
  # The next run in the folder reads the check from its cache.
  "$RDD" train --dataset cityscapes --data-root "$W/bad" "${SMALL[@]}" --iters 3 --out "$W/skipped" --skip-bad-samples \
    --overwrite > "$W/cached.txt" 2>&1 || { cat "$W/cached.txt"; fail "second run"; }
  grep -q "12 of 12 samples known good or bad from $W/skipped/data_check.json" "$W/cached.txt" \
    || { cat "$W/cached.txt"; fail "the data check was not cached"; }
  # Pixels that do not decode behind a sound header and end: found when loaded, after a checkpoint.
  cp -r "$W/data" "$W/pixels"
  img=$(ls "$W"/pixels/leftImg8bit/train/*/*.png | sed -n 7p)
  "$PY" - "$img" << 'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
i = b.find(b"IDAT")
for k in range(i + 40, i + 400):
    b[k] ^= 0x5A
open(sys.argv[1], "wb").write(b)
EOF
  expect_error "continue with --resume $W/mid/checkpoint.safetensors" "$RDD" train --dataset cityscapes \
    --data-root "$W/pixels" "${SMALL[@]}" --iters 30 --save-every 1000 --seed 1 --out "$W/mid"
  grep -qF "$img" "$W/err.txt" || fail "the mid-run data error does not name the file"
  [ -f "$W/mid/checkpoint.safetensors" ] || fail "no checkpoint after a mid-run data error"
  ;;
moved)
  R=(--dataset cityscapes "${SMALL[@]}" --iters 6 --save-every 2 --seed 9)
  "$RDD" train "${R[@]}" --data-root "$W/data" --out "$W/full" > /dev/null 2>&1 || fail "uninterrupted run"
  "$RDD" train "${R[@]}" --data-root "$W/data" --out "$W/part" --stop-after 3 > /dev/null 2>&1 || fail "first half"
  cp "$W/part/checkpoint.safetensors" "$W/ck3.safetensors"
  mkdir -p "$W/elsewhere" && mv "$W/data" "$W/elsewhere/cityscapes"
  "$RDD" train "${R[@]}" --data-root "$W/elsewhere/cityscapes" --out "$W/part" --resume "$W/part/checkpoint.safetensors" \
    > "$W/moved.txt" 2>&1 || { cat "$W/moved.txt"; fail "resume after moving the dataset"; }
  cmp "$W/full/weights.safetensors" "$W/part/weights.safetensors" || fail "the moved dataset's resume differs"
  # Another file list under the same path is another dataset.
  rm "$W"/elsewhere/cityscapes/leftImg8bit/train/*/*000027* "$W"/elsewhere/cityscapes/gtFine/train/*/*000027*
  expect_error "train_data: saved" "$RDD" train "${R[@]}" --data-root "$W/elsewhere/cityscapes" --out "$W/part2" \
    --resume "$W/ck3.safetensors"
  ;;
metadata)
  "$RDD" train "${DATA[@]}" "${SMALL[@]}" --iters 2 --preset mmseg --out "$W/run" > /dev/null 2>&1 || fail "training"
  WTS="$W/run/weights.safetensors"
  "$RDD" eval "${DATA[@]}" --weights "$WTS" --json "$W/eval.json" > "$W/eval.txt" 2>&1 || { cat "$W/eval.txt"; fail "eval"; }
  grep -q "mIoU" "$W/eval.txt" || fail "eval printed no mIoU"
  img=$(ls "$W"/data/leftImg8bit/val/*/*.png | head -1)
  "$RDD" predict --weights "$WTS" --input "$img" --out "$W/pred" > "$W/pred.txt" 2>&1 || { cat "$W/pred.txt"; fail "predict"; }
  ls "$W"/pred/*_pred.png > /dev/null 2>&1 || fail "predict wrote no PNG"
  "$RDD" export --weights "$WTS" --input 64x128 --out "$W/model.onnx" > "$W/export.txt" 2>&1 || { cat "$W/export.txt"; fail "export"; }
  [ -s "$W/model.onnx" ] || fail "export wrote nothing"
  # Flags, when given, must agree with the file.
  expect_error "has width 0.125000, but --width is 0.25" "$RDD" eval "${DATA[@]}" --weights "$WTS" --width 0.25
  for cmd in eval predict export; do  # 0 is not "not given"
    expect_error "--width" "$RDD" $cmd "${DATA[@]}" --weights "$WTS" --width 0 --input "$img" --out "$W/w0"
    grep -qF -- "--width 0 is outside [0.015625, 4]" "$W/err.txt" || { cat "$W/err.txt"; fail "$cmd --width 0: no range message"; }
  done
  expect_error "holds a 'deeplabv3_resnet18' model, not --model 'psp_resnet18'" "$RDD" predict --weights "$WTS" \
    --model psp_resnet18 --input "$img" --out "$W/pred2"
  expect_error "--preset cirkd disagrees with --weights" "$RDD" eval "${DATA[@]}" --weights "$WTS" --preset cirkd
  # An unwritable --json is refused before the evaluation.
  expect_error "--json $W/nowhere/e.json" "$RDD" eval "${DATA[@]}" --weights "$WTS" --json "$W/nowhere/e.json"
  grep -q "mIoU" "$W/err.txt" && fail "eval ran before refusing --json"
  ;;
tensorboard)
  "$RDD" train "${DATA[@]}" "${SMALL[@]}" --iters 4 --val-every 2 --out "$W/run" > /dev/null 2>&1 || fail "training"
  ls "$W"/run/tb/events.out.tfevents.* > /dev/null 2>&1 || fail "no event file in tb/"
  if ! "$PY" -c "import tensorboard" 2> /dev/null; then
    echo "the tensorboard Python package is not installed: event files not read back"
    exit 77
  fi
  "$PY" - "$W/run/tb" << 'EOF'
import sys
from tensorboard.backend.event_processing import event_accumulator as ea
acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0, ea.IMAGES: 0})
acc.Reload()
tags = acc.Tags()
for want in ["loss/total", "loss/task", "lr", "img_per_s", "val/miou", "val/pixel_accuracy"]:
    assert want in tags["scalars"], (want, tags["scalars"])
assert [e.step for e in acc.Scalars("loss/total")] == [1, 2, 3, 4], acc.Scalars("loss/total")
assert abs(acc.Scalars("lr")[0].value - 0.02) < 1e-7
assert [e.step for e in acc.Scalars("val/miou")] == [2, 4]
images = [t for t in tags["images"] if t.startswith("val/")]
assert len(images) == 3, tags["images"]
im = acc.Images(images[0])[-1]
assert im.step == 4 and im.height == 64 and im.width > 3 * 128 and im.encoded_image_string[:4] == b"\x89PNG", im
print("tensorboard reads", len(tags["scalars"]), "scalar tags and", len(images), "image tags")
EOF
  # A resumed run repeats what a stopped run logged after its checkpoint: TensorBoard shows each step once.
  R=("${DATA[@]}" "${SMALL[@]}" --iters 5 --save-every 1000)
  "$RDD" train "${R[@]}" --stop-after 3 --out "$W/resumed" > /dev/null 2>&1 || fail "first part"
  cp "$W/resumed/checkpoint.safetensors" "$W/ck3.safetensors"
  "$RDD" train "${R[@]}" --stop-after 4 --out "$W/resumed" --resume "$W/ck3.safetensors" > /dev/null 2>&1 || fail "second part"
  "$RDD" train "${R[@]}" --out "$W/resumed" --resume "$W/ck3.safetensors" > /dev/null 2>&1 || fail "third part"
  "$PY" - "$W/resumed/tb" << 'EOF'
import sys
from tensorboard.backend.event_processing import event_accumulator as ea
acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0})
acc.Reload()
steps = [e.step for e in acc.Scalars("loss/total")]
assert steps == [1, 2, 3, 4, 5], steps
EOF
  "$RDD" train "${DATA[@]}" "${SMALL[@]}" --iters 1 --no-tensorboard --out "$W/quiet" > /dev/null 2>&1 || fail "--no-tensorboard"
  [ ! -e "$W/quiet/tb" ] || fail "--no-tensorboard wrote tb/"
  ;;
diagnostics)
  expect_error "the student's weights hold" "$RDD" train "${DATA[@]}" "${SMALL[@]}" --iters 5 --lr 1e30 --out "$W/diverged"
  grep -q "non-finite values before this step" "$W/err.txt" || fail "the divergence message does not name the weights"
  "$RDD" train "${DATA[@]}" "${SMALL[@]}" --iters 1 --out "$W/run" > /dev/null 2>&1 || fail "training"
  "$PY" - "$W/run/weights.safetensors" "$W/nan.safetensors" << 'EOF'
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
name = next(k for k, v in h.items() if k != "__metadata__" and v["dtype"] == "F32" and k.endswith("conv1.weight"))
start = 8 + n + h[name]["data_offsets"][0]
b[start:start + 4] = struct.pack("<f", float("nan"))
open(sys.argv[2], "wb").write(b)
print(name)
EOF
  expect_error "NaN" "$RDD" eval "${DATA[@]}" --weights "$W/nan.safetensors"
  grep -q "diverged, or is damaged" "$W/err.txt" || fail "NaN weights not refused at load"
  # A distillation whose TSE stage selects no pixel: the task term is exactly 0, and the run says so once.
  Z=("${DATA[@]}" "${SMALL[@]}" --teacher deeplabv3_resnet18 --teacher-width 0.125 --teacher-weights
     "$W/run/weights.safetensors" --rdd tse --warmup-iters 0 --tse-mode and --tse-thresh 1e-6 --min-kept 0 --iters 5)
  "$RDD" distill "${Z[@]}" --warn-zero-loss 3 --out "$W/zero" > "$W/zero.txt" 2>&1 || { cat "$W/zero.txt"; fail "zero"; }
  [ "$(grep -c "the loss term 'task' has been exactly 0 for 3 iterations in a row (to iteration 3)" "$W/zero.txt")" = 1 ] \
    || { cat "$W/zero.txt"; fail "no single warning about the zero task loss"; }
  "$RDD" distill "${Z[@]}" --warn-zero-loss 0 --out "$W/zero_quiet" > "$W/zero_quiet.txt" 2>&1 || fail "zero, quiet"
  grep -q "exactly 0" "$W/zero_quiet.txt" && fail "--warn-zero-loss 0 still warned"
  "$RDD" train --help > "$W/help.txt"
  grep -q "Split: train, val, test or trainval" "$W/help.txt" || fail "--split help omits trainval"
  expect_error "--momentum 5 is outside [0, 1)" "$RDD" train "${DATA[@]}" "${SMALL[@]}" --momentum 5 --out "$W/x"
  expect_error "--power nan" "$RDD" train "${DATA[@]}" "${SMALL[@]}" --power nan --out "$W/x"
  expect_error "--width 1e-09 is outside" "$RDD" train "${DATA[@]}" --model deeplabv3_resnet18 --width 1e-9 --out "$W/x"
  ;;
list)
  # --dataset list validates on --val-list; without it the run is not validated (not on the training list).
  (cd "$W/data" && ls leftImg8bit/train/*/*.png | sed 's|leftImg8bit/\(.*\)_leftImg8bit.png|& gtFine/\1_gtFine_labelIds.png|' \
    > train.txt && ls leftImg8bit/val/*/*.png | sed 's|leftImg8bit/\(.*\)_leftImg8bit.png|& gtFine/\1_gtFine_labelIds.png|' > val.txt)
  L=(--dataset list --num-classes 34 --data-root "$W/data/train.txt" "${SMALL[@]}" --iters 2)
  "$RDD" train "${L[@]}" --val-list "$W/data/val.txt" --out "$W/with" > "$W/with.txt" 2>&1 || { cat "$W/with.txt"; fail "with --val-list"; }
  grep -q "mIoU .*(4 images" "$W/with.txt" || { cat "$W/with.txt"; fail "not validated on the 4 images of --val-list"; }
  "$RDD" train "${L[@]}" --out "$W/without" > "$W/without.txt" 2>&1 || { cat "$W/without.txt"; fail "without --val-list"; }
  grep -q "not validated (no --val-list)" "$W/without.txt" || { cat "$W/without.txt"; fail "validated without --val-list"; }
  [ ! -e "$W/without/eval.json" ] || fail "eval.json without validation data"
  expect_error "--val-every with --dataset list needs --val-list" "$RDD" train "${L[@]}" --val-every 1 --out "$W/x"
  ;;
*) fail "unknown section '$SECTION'" ;;
esac
echo "e2e trust ok ($SECTION)"
