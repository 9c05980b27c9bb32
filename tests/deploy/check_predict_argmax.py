"""The exported DeepLabV3-ResNet18 (width 1) labels a synthetic val image as `rdd predict` does.

    check_predict_argmax.py RDD_BINARY WORK_DIR

Through the built binary: synthetic Cityscapes scenes (`rdd synth`), a few training iterations (`rdd train`:
learned weights and moved BatchNorm statistics, so folding them is not a no-op), `rdd export --input HxW
--resize-to-input --argmax`, and `rdd predict` on a val image. Then, as a deployment consumer would, with only
the .onnx file: read the normalisation and the palette from its metadata_props, feed the PNG to ONNX Runtime,
colour its "labels" output with the palette and compare pixel by pixel with rdd's prediction PNG. Passes when
they agree on at least 99.9% of the pixels (near-ties of the upsampled logits may flip a few).

Exit codes: 0 pass, 1 fail, 77 skipped (ONNX Runtime not installed for this Python: scripts/setup.sh does it).
"""

import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np

SIZE = (128, 256)  # H, W


def run(cmd, log):
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        print(open(log).read())
        raise SystemExit(f"FAILED: {' '.join(cmd)} (exit {r.returncode})")


def main():
    rdd, work = sys.argv[1], sys.argv[2]
    try:
        import onnxruntime as ort
    except ImportError:
        print(f"SKIP: onnxruntime is not installed for {sys.executable} (scripts/setup.sh installs it)")
        return 77
    from PIL import Image

    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    env_threads = {"RDD_NUM_THREADS": "2"}
    os.environ.update(env_threads)
    h, w = SIZE
    run([rdd, "synth", "--out", f"{work}/data", "--train", "4", "--val", "1", "--size", f"{h}x{w}", "--seed", "7"],
        f"{work}/synth.txt")
    run([rdd, "train", "--dataset", "cityscapes", "--data-root", f"{work}/data", "--model", "deeplabv3_resnet18",
         "--crop", str(h), "--crop-w", str(w), "--batch", "2", "--workers", "2", "--iters", "3", "--lr", "0.01",
         "--device", "cpu", "--print-every", "1000", "--out", f"{work}/train"], f"{work}/train.txt")
    weights = f"{work}/train/weights.safetensors"
    onnx_path = f"{work}/r18.onnx"
    run([rdd, "export", "--model", "deeplabv3_resnet18", "--weights", weights, "--out", onnx_path, "--input",
         f"{h}x{w}", "--resize-to-input", "--argmax"], f"{work}/export.txt")
    image_path = sorted(glob.glob(f"{work}/data/leftImg8bit/val/*/*.png"))[0]
    run([rdd, "predict", "--model", "deeplabv3_resnet18", "--weights", weights, "--input", image_path, "--out",
         f"{work}/pred"], f"{work}/predict.txt")
    stem = os.path.splitext(os.path.basename(image_path))[0]
    rdd_colours = np.asarray(Image.open(f"{work}/pred/{stem}_pred.png").convert("RGB"))

    # The consumer's side: everything from the .onnx file.
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    mean = np.array(json.loads(meta["mean"]), dtype=np.float32)
    std = np.array(json.loads(meta["std"]), dtype=np.float32)
    palette = np.array(json.loads(meta["palette"]), dtype=np.uint8)
    if len({tuple(c) for c in palette}) != len(palette):
        raise SystemExit("FAILED: the palette has repeated colours; the comparison needs distinct ones")
    pixels = np.asarray(Image.open(image_path).convert("RGB")).astype(np.float32)  # (H, W, 3) RGB
    if meta["channel_order"] == "BGR":
        pixels = pixels[:, :, ::-1]
    x = ((pixels - mean) / std).transpose(2, 0, 1)[None].copy()  # (1, 3, H, W)
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": x})))
    labels = outputs["labels"][0]  # (H, W) int64
    if labels.shape != (h, w):
        raise SystemExit(f"FAILED: labels {labels.shape}, expected {(h, w)}")
    ort_colours = palette[labels]
    agree = float(np.mean(np.all(ort_colours == rdd_colours, axis=2)))
    classes = len(np.unique(labels))
    print(f"ONNX Runtime {ort.__version__}: {onnx_path} ({meta['model']} width {meta['width']}, BN folded "
          f"{meta['fold_bn']}) on {os.path.basename(image_path)} {h}x{w}: labels agree with `rdd predict` on "
          f"{100 * agree:.4f}% of {h * w} pixels ({classes} classes predicted)")
    if agree < 0.999:
        print("FAILED: below 99.9%")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
