# The demo's scale, shared by scripts/demo.sh and scripts/study.sh (sourced, not run). Sets `gpu` (1 when an
# NVIDIA GPU answers and DEMO_FORCE_CPU is not 1), `build` and the flag arrays SYNTH, CROP, TEACHER,
# STUDENT, TEACHER_RUN, STUDENT_RUN, DISTILL, DEVICE, and `build_config` (the cmake flags of the build).
gpu=0
if [ "${DEMO_FORCE_CPU:-0}" != 1 ] && command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi -L > /dev/null 2>&1; then
  gpu=1
fi
if [ $gpu = 1 ]; then
  build=build
  build_config=(-DCMAKE_BUILD_TYPE=Release)
  # The demo scale on a GPU: 256×512 scenes, a ResNet-50 teacher at half width, ResNet-18 students.
  SYNTH=(--train 600 --val 100 --size 256x512)
  CROP=(--crop 256 --crop-w 512)
  TEACHER=(--model deeplabv3_resnet50 --width 0.5)
  STUDENT=(--model deeplabv3_resnet18 --width 0.25)
  TEACHER_RUN=(--iters 3000 --batch 16 --lr 0.02)
  STUDENT_RUN=(--iters 2000 --batch 16 --lr 0.02)
  DISTILL=(--warmup-iters 200 --min-kept 100000)
  DEVICE=(--device cuda --workers 4 --cache)
else
  build=build-cpu
  build_config=(-DCMAKE_BUILD_TYPE=Release -DRDD_CUDA=OFF)
  # The demo scale on 2 cores: 96×192 scenes, a half-width ResNet-18 teacher, eighth-width students.
  SYNTH=(--train 300 --val 60 --size 96x192)
  CROP=(--crop 96 --crop-w 192)
  TEACHER=(--model deeplabv3_resnet18 --width 0.5)
  STUDENT=(--model deeplabv3_resnet18 --width 0.125)
  TEACHER_RUN=(--iters 300 --batch 8 --lr 0.02)
  STUDENT_RUN=(--iters 200 --batch 8 --lr 0.02)
  # TFE for the first 10% (as the paper's 4k of 40k); min-kept scaled like the paper's 100k of
  # 4×512×1024 pixels (≈4.8%) to this batch of 8×96×192.
  DISTILL=(--warmup-iters 20 --min-kept 7000)
  DEVICE=(--device cpu --workers 2 --cache)
fi
SYNTH_SEED=2026
