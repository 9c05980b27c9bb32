"""Independent reference for rdd's cv2-style resampling: PyTorch's bilinear (align_corners=False) and
legacy nearest interpolation, which use the same source-coordinate rules as cv2.resize with a dsize.

usage: resize_reference.py IN_RGB.png IN_LABEL.png OUT_H OUT_W OUT_RGB.png OUT_LABEL.png
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

src, lab, oh, ow, out_rgb, out_lab = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
img = torch.from_numpy(np.array(Image.open(src).convert("RGB"))).permute(2, 0, 1)[None].double()
up = F.interpolate(img, size=(oh, ow), mode="bilinear", align_corners=False)
rgb = np.floor(up[0].permute(1, 2, 0).numpy() + 0.5).clip(0, 255).astype(np.uint8)
Image.fromarray(rgb, "RGB").save(out_rgb)
l = torch.from_numpy(np.array(Image.open(lab)))[None, None].double()
ln = F.interpolate(l, size=(oh, ow), mode="nearest")
Image.fromarray(ln[0, 0].numpy().astype(np.uint8), "L").save(out_lab)
print("ok")
