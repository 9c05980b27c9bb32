#!/usr/bin/python3
"""Convert PyTorch checkpoints to rdd safetensors, under rdd's (= the reference's) parameter names.

    /usr/bin/python3 scripts/convert_pth.py deeplabv3_resnet101_citys_best_model.pth teacher.safetensors \\
        --model deeplabv3_resnet101                      # a whole model (the CIRKD/RDD teacher)
    /usr/bin/python3 scripts/convert_pth.py resnet18-imagenet.pth r18.safetensors \\
        --model deeplabv3_resnet18 --kind backbone       # an ImageNet backbone for `rdd train --init --non-strict`

Two kinds of input:

  teacher (alias: weights)  a whole segmentation model: a state_dict (keys `pretrained.*`, `head.*`,
            `auxlayer.*`), possibly with DistributedDataParallel's `module.` prefix and possibly wrapped
            in {"state_dict": ...} or {"model": ...}. Every entry of the model must be present with its
            shape (BN num_batches_tracked counters, absent before PyTorch 0.4.1, are filled with 0);
            extra entries are skipped and listed. Metadata: kind=weights, model, num_classes,
            width (what `rdd eval/predict/distill --teacher-weights` check).
  backbone  an ImageNet classifier: CIRKD/CSAIL deep-stem ResNets (`conv1.weight`, `bn1.*`, ...,
            `conv3.weight`, `bn3.*`), deep-stem ResNets whose stem is one Sequential (`conv1.0.weight`,
            `conv1.1.*`, `conv1.3.weight`, `conv1.4.*`, `conv1.6.weight`, then `bn1.*` for the
            128-channel BN), torchvision ResNets (`conv1.weight` 7x7: their stem does not fit rdd's deep
            3x3 stem and is skipped) and CSAIL MobileNetV2 (`features.*`). Keys get the model's backbone
            prefix (`pretrained.` or `pretrained.net.`); the classifier (`fc.*`, `classifier.*`) and
            anything the model lacks or holds in another shape is skipped and listed. Metadata:
            kind=backbone, model. Load with `rdd train --init FILE --non-strict`.

--kind auto (the default) picks teacher when the checkpoint has `head.*` entries, backbone otherwise.
--num-classes is read from the classifier's shape when not given. Float tensors are written as F32,
integer buffers (num_batches_tracked) as I64. Only torch (CPU) and numpy are needed.
"""
import argparse
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np as st  # noqa: E402
import torch_models as tm  # noqa: E402


class ConvertError(Exception):
    pass


def load_state_dict(path):
    """A flat {name: tensor} from a .pth file; non-tensor entries are returned separately."""
    if not os.path.isfile(path):
        raise ConvertError("%s: no such file" % path)
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # pickle, zip or torch errors: say which file
        raise ConvertError("%s: cannot be read by torch.load (%s: %s)" % (path, type(e).__name__, e))
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    # {"state_dict": ...}, {"model": ...}, {"net": ...} wrappers (training checkpoints), possibly nested.
    for _ in range(3):
        if isinstance(obj, dict):
            inner = next((obj[k] for k in ("state_dict", "model", "net") if isinstance(obj.get(k), dict)), None)
            if inner is not None:
                obj = inner
                continue
            if isinstance(obj.get("model"), torch.nn.Module):
                obj = obj["model"].state_dict()
        break
    if not isinstance(obj, dict):
        raise ConvertError("%s: holds a %s, not a state_dict" % (path, type(obj).__name__))
    tensors, other = {}, []
    for k, v in obj.items():
        k = str(k)
        while k.startswith("module."):  # DataParallel / DistributedDataParallel
            k = k[len("module."):]
        if torch.is_tensor(v):
            if k in tensors:
                raise ConvertError("%s: two entries map to %s" % (path, k))
            tensors[k] = v.detach().cpu()
        else:
            other.append(k)
    if not tensors:
        raise ConvertError("%s: no tensors found" % path)
    return tensors, other


def model_entries(name, num_classes, width):
    """The model's state_dict: name -> shape (built on the meta device: no memory, no arithmetic)."""
    model = tm.build_model(name, num_classes, width).to("meta")
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def infer_num_classes(name, width, tensors):
    """The class count from the classifier shapes: the entries whose shape follows num_classes."""
    a, b = model_entries(name, 19, width), model_entries(name, 20, width)
    for k in sorted(a):
        if a[k] != b[k] and k in tensors:
            return int(tensors[k].shape[0])
    raise ConvertError("cannot tell the number of classes: the checkpoint has none of %s's classifier entries (%s); "
                       "pass --num-classes" % (name, ", ".join(k for k in sorted(a) if a[k] != b[k])))


def backbone_prefix(model_name):
    return "pretrained.net." if model_name.endswith("mobilenetv2") else "pretrained."


# A deep stem written as one Sequential (conv1 = [conv 3->64, BN, ReLU, conv 64->64, BN, ReLU, conv 64->128],
# then bn1 = BN(128)) -> rdd's conv1/bn1/conv2/bn2/conv3/bn3.
SEQUENTIAL_STEM = [(r"^conv1\.0\.", "conv1."), (r"^conv1\.1\.", "bn1."), (r"^conv1\.3\.", "conv2."),
                   (r"^conv1\.4\.", "bn2."), (r"^conv1\.6\.", "conv3."), (r"^bn1\.", "bn3.")]


def backbone_names(tensors):
    """Renames a backbone checkpoint's keys to the layout of rdd's backbones (before the prefix).
    Returns ({new name: tensor}, description of the layout)."""
    keys = set(tensors)
    if "conv1.0.weight" in keys:
        out = {}
        for k, v in tensors.items():
            for pat, rep in SEQUENTIAL_STEM:
                if re.match(pat, k):
                    k = re.sub(pat, rep, k)
                    break
            out[k] = v
        return out, "deep-stem ResNet, stem as one Sequential (conv1.0 ... conv1.6, bn1 -> bn3)"
    if any(k.startswith("features.") for k in keys):
        return dict(tensors), "MobileNetV2 (features.*)"
    if "conv1.weight" in keys and tuple(tensors["conv1.weight"].shape[2:]) == (7, 7):
        return dict(tensors), "ResNet with a 7x7 stem (torchvision layout; rdd's models use the deep 3x3 stem)"
    return dict(tensors), "deep-stem ResNet (CIRKD/CSAIL layout: conv1..conv3, bn1..bn3)"


def shape_str(t):
    return "(" + ",".join(str(d) for d in t) + ")"


def listing(title, names, out):
    if names:
        out.append("%s %d:" % (title, len(names)))
        out.extend("  " + n for n in names)


def convert(src, dst, model_name, kind="auto", num_classes=None, width=1.0, log=print):
    if model_name not in tm.MODEL_NAMES:
        raise ConvertError("--model: unknown model '%s' (known: %s)" % (model_name, ", ".join(tm.MODEL_NAMES)))
    tensors, other = load_state_dict(src)
    if kind == "auto":
        kind = "teacher" if any(k.startswith("head.") for k in tensors) else "backbone"
    if kind == "weights":
        kind = "teacher"
    lines = []
    listing("skipped (not tensors)", sorted(other), lines)

    if kind == "teacher":
        if num_classes is None:
            num_classes = infer_num_classes(model_name, width, tensors)
        want = model_entries(model_name, num_classes, width)
        missing = sorted(k for k in want if k not in tensors)
        # Checkpoints written before PyTorch 0.4.1 have no BN num_batches_tracked counters; they do not
        # affect the model (rdd's BN uses a fixed momentum), so they are filled with 0 and said so.
        counters = [k for k in missing if k.endswith(".num_batches_tracked")]
        if counters:
            tensors = dict(tensors)
            for k in counters:
                tensors[k] = torch.zeros((), dtype=torch.int64)
            missing = [k for k in missing if k not in counters]
            lines.append("filled %d BatchNorm num_batches_tracked counters absent from the file with 0" % len(counters))
        bad = sorted("%s: file %s, %s %s" % (k, shape_str(tensors[k].shape), model_name, shape_str(want[k]))
                     for k in want if k in tensors and tuple(tensors[k].shape) != want[k]
                     and not (want[k] == () and tuple(tensors[k].shape) == (1,)))
        if missing or bad:
            msg = ["%s does not hold a %s (num_classes %d, width %g):" % (src, model_name, num_classes, width)]
            listing("missing", missing, msg)
            listing("shape differs", bad, msg)
            if all(k.startswith("pretrained.") for k in tensors):
                msg.append("(only backbone entries: is this an ImageNet backbone? use --kind backbone)")
            raise ConvertError("\n".join(msg))
        kept = {k: tensors[k] for k in want}
        listing("skipped (not in %s)" % model_name, sorted(k for k in tensors if k not in want), lines)
        metadata = {"kind": "weights", "model": model_name, "num_classes": str(num_classes),
                    "width": "%f" % width, "source": os.path.basename(src)}
    elif kind == "backbone":
        renamed, layout = backbone_names(tensors)
        prefix = backbone_prefix(model_name)
        want = model_entries(model_name, num_classes or 19, width)
        kept, skipped_absent, skipped_shape = {}, [], []
        for k, v in renamed.items():
            name = k if k.startswith(prefix) else prefix + k
            if name not in want:
                skipped_absent.append(k)
            elif tuple(v.shape) != want[name] and not (want[name] == () and tuple(v.shape) == (1,)):
                skipped_shape.append("%s: file %s, %s %s" % (k, shape_str(v.shape), model_name, shape_str(want[name])))
            else:
                kept[name] = v
        backbone = sorted(k for k in want if k.startswith(prefix))
        missing = [k for k in backbone if k not in kept]
        if not kept:
            raise ConvertError("%s (%s): no tensor fits %s's backbone (%s*); is --model right?"
                               % (src, layout, model_name, prefix))
        lines.insert(0, "layout: " + layout)
        listing("skipped (not in %s's backbone, e.g. the classifier)" % model_name, sorted(skipped_absent), lines)
        listing("skipped (shape differs)", sorted(skipped_shape), lines)
        listing("backbone entries not in the file (they keep rdd's initialisation)", missing, lines)
        metadata = {"kind": "backbone", "model": model_name, "width": "%f" % width, "source": os.path.basename(src)}
    else:
        raise ConvertError("--kind: '%s' (teacher, backbone or auto)" % kind)

    arrays = {}
    for k, v in kept.items():
        if v.is_floating_point():
            arrays[k] = v.float().contiguous().numpy()
        else:
            arrays[k] = v.long().contiguous().numpy()
    out_dir = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(out_dir):
        raise ConvertError("%s: the folder %s does not exist" % (dst, out_dir))
    st.save(dst, arrays, metadata)
    for line in lines:
        log(line)
    log("wrote %s: %d tensors, kind=%s, model=%s" % (dst, len(arrays), metadata["kind"], model_name))
    return kept, metadata


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog=__doc__[__doc__.index("Two kinds"):],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="PyTorch checkpoint (.pth)")
    ap.add_argument("output", help="safetensors file to write")
    ap.add_argument("--model", required=True, help="rdd model name: " + ", ".join(tm.MODEL_NAMES))
    ap.add_argument("--kind", default="auto", choices=["auto", "teacher", "weights", "backbone"])
    ap.add_argument("--num-classes", type=int, default=None,
                    help="classes of a whole model (default: read from the classifier's shape)")
    ap.add_argument("--width", type=float, default=1.0, help="channel width multiplier (1: the reference models)")
    a = ap.parse_args(argv)
    try:
        convert(a.input, a.output, a.model, a.kind, a.num_classes, a.width)
    except ConvertError as e:
        print("convert_pth.py: error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
