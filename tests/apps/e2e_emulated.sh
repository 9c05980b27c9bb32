#!/usr/bin/env bash
# The whole GPU training path on the emulated CUDA device (an RDD_CUDA=EMULATE build), against the CPU:
#   the same tiny distillation (KD + RDD, TFE for 2 iterations then TSE) with --device cpu and with
#   --device cuda: every logged loss term agrees per iteration within 1e-4 relative (measured: ~5e-7;
#   the two differ by f32 rounding in the GPU reductions), the final mIoU within 1 point;
#   eval of one set of weights on both devices: the same mIoU and pixel accuracy within 0.01 points;
#   predict on both devices: the label maps agree on at least 99.9% of the pixels (measured: all).
# Usage: e2e_emulated.sh RDD_BINARY WORK_DIR
set -euo pipefail
RDD="$1"
W="$2"
PY=/usr/bin/python3
rm -rf "$W" && mkdir -p "$W"
export RDD_NUM_THREADS=2
fail() { echo "E2E (emulated GPU) FAILURE: $*" >&2; exit 1; }

"$RDD" synth --out "$W/data" --train 8 --val 4 --size 64x128 --seed 5 > /dev/null
DATA=(--dataset cityscapes --data-root "$W/data")
SMALL=(--crop 64 --crop-w 128 --batch 2 --workers 2 --print-every 1000)
S=(--model deeplabv3_resnet18 --width 0.125)

"$RDD" train "${DATA[@]}" "${SMALL[@]}" --model deeplabv3_resnet18 --width 0.25 --iters 4 --device cpu \
  --out "$W/teacher" > "$W/teacher.txt" 2>&1 || { cat "$W/teacher.txt"; fail "teacher training"; }

for d in cpu cuda; do
  "$RDD" distill "${DATA[@]}" "${SMALL[@]}" "${S[@]}" --teacher deeplabv3_resnet18 --teacher-width 0.25 \
    --teacher-weights "$W/teacher/weights.safetensors" --kd 1 --rdd tfe,tse --warmup-iters 3 --min-kept 500 \
    --iters 5 --seed 3 --device "$d" --out "$W/rdd_$d" > "$W/rdd_$d.txt" 2>&1 \
    || { cat "$W/rdd_$d.txt"; fail "distillation on $d"; }
done
grep -q "emulated CUDA" "$W/rdd_cuda.txt" || fail "the cuda run does not say it ran on the emulated device"

for d in cpu cuda; do
  "$RDD" eval "${DATA[@]}" "${S[@]}" --weights "$W/rdd_cpu/weights.safetensors" --device "$d" --json "$W/eval_$d.json" \
    > "$W/eval_$d.txt" 2>&1 || { cat "$W/eval_$d.txt"; fail "eval on $d"; }
  "$RDD" predict "${S[@]}" --weights "$W/rdd_cpu/weights.safetensors" --input "$W/data/leftImg8bit/val/synthfrankfurt" \
    --out "$W/pred_$d" --device "$d" > "$W/pred_$d.txt" 2>&1 || { cat "$W/pred_$d.txt"; fail "predict on $d"; }
done

"$PY" - "$W" <<'EOF' || fail "the emulated GPU and the CPU disagree (numbers above)"
import json, os, sys
import matplotlib.image as mpimg
import numpy as np

w = sys.argv[1]
ok = True

def records(d):
    with open(os.path.join(w, f"rdd_{d}", "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if "iter" in r and "loss" in r]

cpu, gpu = records("cpu"), records("cuda")
if len(cpu) != 5 or len(gpu) != 5:
    print(f"expected 5 iteration records, got {len(cpu)} (cpu) and {len(gpu)} (cuda)"); ok = False
worst = 0.0
for a, b in zip(cpu, gpu):
    for k in ("loss", "task", "kd", "task.main", "task.aux", "task.tfe_share"):
        rel = abs(a[k] - b[k]) / max(abs(a[k]), 1e-6)
        worst = max(worst, rel)
        if rel > 1e-4:
            print(f"iteration {a['iter']} {k}: cpu {a[k]!r} cuda {b[k]!r} (relative {rel:.2e})"); ok = False
print(f"losses: worst relative difference over 5 iterations {worst:.2e} (limit 1e-4)")

def final_miou(d):
    with open(os.path.join(w, f"rdd_{d}", "eval.json")) as f:
        return json.load(f)["miou"]
m_cpu, m_gpu = final_miou("cpu"), final_miou("cuda")
print(f"final mIoU: cpu {m_cpu:.4f}, cuda {m_gpu:.4f}")
if abs(m_cpu - m_gpu) > 0.01:
    print("final mIoU differs by more than 1 point"); ok = False

def ev(d):
    with open(os.path.join(w, f"eval_{d}.json")) as f:
        return json.load(f)
e_cpu, e_gpu = ev("cpu"), ev("cuda")
for k in ("miou", "pixel_accuracy"):
    print(f"eval {k}: cpu {e_cpu[k]:.6f}, cuda {e_gpu[k]:.6f}")
    if abs(e_cpu[k] - e_gpu[k]) > 1e-4:
        print(f"eval {k} differs by more than 0.01 points"); ok = False

names = sorted(os.listdir(os.path.join(w, "pred_cpu")))
if not names or names != sorted(os.listdir(os.path.join(w, "pred_cuda"))):
    print("predict wrote different files on the two devices"); ok = False
same = total = 0
for n in names:
    a = mpimg.imread(os.path.join(w, "pred_cpu", n))
    b = mpimg.imread(os.path.join(w, "pred_cuda", n))
    eq = np.all(a == b, axis=-1) if a.ndim == 3 else a == b
    same += int(eq.sum()); total += eq.size
print(f"predict: {same}/{total} pixels agree")
if total == 0 or same < 0.999 * total:
    ok = False
sys.exit(0 if ok else 1)
EOF
echo "e2e on the emulated GPU: ok"
