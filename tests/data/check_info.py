"""Independent check of `rdd info --dataset cityscapes`: recounts the pixels of every trainId (and the
ignored ones) from the gtFine labelIds PNGs with numpy + PIL and compares with rdd's report.

usage: check_info.py DATA_ROOT SPLIT INFO_OUTPUT.txt
"""
import glob
import re
import sys

import numpy as np
from PIL import Image

root, split, report = sys.argv[1], sys.argv[2], sys.argv[3]
label_ids = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
lut = np.full(256, -1, np.int64)
for train_id, label_id in enumerate(label_ids):
    lut[label_id] = train_id

counts = np.zeros(19, np.int64)
ignored = 0
files = sorted(glob.glob(f"{root}/gtFine/{split}/*/*_gtFine_labelIds.png"))
assert files, "no label files"
for f in files:
    t = lut[np.array(Image.open(f))]
    counts += np.bincount(t[t >= 0], minlength=19)
    ignored += int((t < 0).sum())

text = open(report).read()
got = {int(m.group(1)): int(m.group(2)) for m in re.finditer(r"^  (\d+) +.+? +(\d+) +[\d.]+%$", text, re.M)}
assert len(got) == 19, f"expected 19 class lines, got {len(got)}:\n{text}"
for c in range(19):
    assert got[c] == counts[c], f"class {c}: rdd says {got[c]}, numpy counts {counts[c]}"
m = re.search(r"^ignored: (\d+) of (\d+) pixels", text, re.M)
assert m and int(m.group(1)) == ignored, f"ignored: rdd says {m and m.group(1)}, numpy counts {ignored}"
assert int(m.group(2)) == ignored + int(counts.sum())
assert re.search(rf"^images: {len(files)}$", text, re.M), "image count"
print(f"check_info: {len(files)} images, 19 class counts and {ignored} ignored pixels agree")
