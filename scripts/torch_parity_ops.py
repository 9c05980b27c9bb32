#!/usr/bin/python3
"""PyTorch reference for rdd's ReLU/ReLU6, MaxPool2d, AdaptiveAvgPool2d and Dropout/Dropout2d
(layers/activation.h, layers/pooling.h, layers/dropout.h).

Usage: torch_parity_ops.py IN.safetensors OUT.safetensors

IN (written by the C++ tests) holds, for each case NAME listed in the metadata entry "cases"
(comma-separated), the input "NAME.x" (f32, NCHW) and an upstream gradient "NAME.r" of the output's
shape; the metadata entry "case.NAME" says what to run:

  "relu RELU6"                    F.relu (RELU6 = 0) or F.relu6 (RELU6 = 1)
  "maxpool K S P CEIL"            F.max_pool2d(x, K, S, P, ceil_mode=CEIL, return_indices=True)
  "adaptive OH OW"                F.adaptive_avg_pool2d(x, (OH, OW))
  "dropout P CHANNELWISE"         F.dropout / F.dropout2d with training=True; IN also holds rdd's
                                  output "NAME.y" of the same x (their RNGs differ, so the masks do too)

OUT gets, per case, "NAME.y" (the forward output) and "NAME.dx" (d sum(y * r) / dx by autograd), both
f32, plus "NAME.idx" (I32 argmax positions h*W + w) for maxpool. For dropout it gets "NAME.stats" (f64):
[torch fraction dropped, rdd fraction dropped, torch kept/x scale, rdd kept/x scale]; the C++ test
checks both fractions against p and both scales against 1/(1 - p). Everything runs in float32 on the CPU.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np as st  # noqa: E402


def with_grad(fn, x, r):
    """Runs y = fn(x), backpropagates sum(y * r); returns (y, dx, extra) as numpy."""
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    out = fn(xt)
    extra = None
    if isinstance(out, tuple):
        out, extra = out
    (out * torch.from_numpy(r.copy())).sum().backward()
    return out.detach().numpy(), xt.grad.numpy(), extra


def dropout_stats(y, x):
    """(fraction of elements set to 0, mean of y/x over the kept elements); x has no zeros."""
    kept = y != 0
    frac = 1.0 - kept.mean()
    scale = float((y[kept].astype(np.float64) / x[kept].astype(np.float64)).mean()) if kept.any() else 0.0
    return frac, scale


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    tensors, meta = st.load(sys.argv[1])
    out = {}
    for name in [c for c in meta.get("cases", "").split(",") if c]:
        spec = meta["case." + name].split()
        kind, args = spec[0], spec[1:]
        x = tensors[name + ".x"].astype(np.float32)
        r = tensors[name + ".r"].astype(np.float32) if name + ".r" in tensors else None
        if kind == "relu":
            fn = F.relu6 if int(args[0]) else F.relu
            y, dx, _ = with_grad(fn, x, r)
        elif kind == "maxpool":
            k, s, p, ceil = (int(a) for a in args)
            y, dx, idx = with_grad(
                lambda t: F.max_pool2d(t, k, s, p, ceil_mode=bool(ceil), return_indices=True), x, r)
            out[name + ".idx"] = idx.numpy().astype(np.int32)
        elif kind == "adaptive":
            oh, ow = (int(a) for a in args)
            y, dx, _ = with_grad(lambda t: F.adaptive_avg_pool2d(t, (oh, ow)), x, r)
        elif kind == "dropout":
            p, channelwise = float(args[0]), int(args[1])
            torch.manual_seed(0)
            fn = F.dropout2d if channelwise else F.dropout
            ty = fn(torch.from_numpy(x.copy()), p=p, training=True).numpy()
            t_frac, t_scale = dropout_stats(ty, x)
            r_frac, r_scale = dropout_stats(tensors[name + ".y"].astype(np.float32), x)
            out[name + ".stats"] = np.array([t_frac, r_frac, t_scale, r_scale], dtype=np.float64)
            continue
        else:
            raise ValueError("case %s: unknown kind %r" % (name, kind))
        out[name + ".y"] = y.astype(np.float32)
        out[name + ".dx"] = dx.astype(np.float32)
    st.save(sys.argv[2], out, {"torch": torch.__version__})
    return 0


if __name__ == "__main__":
    sys.exit(main())
