#!/usr/bin/python3
"""PyTorch reference for rdd's bilinear resize (layers/resize.h): F.interpolate(mode='bilinear').

Usage: torch_parity_resize.py IN.safetensors OUT.safetensors

IN holds, for each case <name>, `x.<name>` (N, C, H, W) f32 and `r.<name>` (N, C, out_h, out_w) f32 (an
upstream gradient), and metadata `<name>` = "out_h out_w align_corners(0|1)". OUT gets `y.<name>` (the
forward output) and `dx.<name>` (d sum(y * r) / dx), both computed by PyTorch in float32 on the CPU.
Files are read and written with scripts/safetensors_np.py.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np as st  # noqa: E402


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    tensors, meta = st.load(sys.argv[1])
    out = {}
    for name, spec in meta.items():
        oh, ow, ac = (int(v) for v in spec.split())
        x = torch.from_numpy(tensors["x." + name]).requires_grad_(True)
        r = torch.from_numpy(tensors["r." + name])
        y = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=bool(ac))
        (y * r).sum().backward()
        out["y." + name] = y.detach().numpy().astype(np.float32)
        out["dx." + name] = x.grad.numpy().astype(np.float32)
    st.save(sys.argv[2], out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
