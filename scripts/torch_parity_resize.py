#!/usr/bin/python3
"""PyTorch reference for rdd's bilinear resize (layers/resize.h): F.interpolate(mode='bilinear').

Usage: torch_parity_resize.py DIR
DIR/cases.txt has one case a line: "name n c h w out_h out_w align_corners(0|1)". For each case the C++
test wrote DIR/<name>.x.f32 (the input, N*C*H*W little-endian f32) and DIR/<name>.r.f32 (an upstream
gradient of the output's shape); this script writes DIR/<name>.y.f32 (the forward output) and
DIR/<name>.dx.f32 (d sum(y*r) / dx), both computed by PyTorch in float32 on the CPU.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "cases.txt")) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            name = parts[0]
            n, c, h, w, oh, ow, ac = (int(v) for v in parts[1:])
            x = np.fromfile(os.path.join(d, name + ".x.f32"), dtype="<f4").reshape(n, c, h, w)
            r = np.fromfile(os.path.join(d, name + ".r.f32"), dtype="<f4").reshape(n, c, oh, ow)
            xt = torch.from_numpy(x.copy()).requires_grad_(True)
            y = F.interpolate(xt, size=(oh, ow), mode="bilinear", align_corners=bool(ac))
            (y * torch.from_numpy(r.copy())).sum().backward()
            y.detach().numpy().astype("<f4").tofile(os.path.join(d, name + ".y.f32"))
            xt.grad.numpy().astype("<f4").tofile(os.path.join(d, name + ".dx.f32"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
