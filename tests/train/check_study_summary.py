#!/usr/bin/python3
"""scripts/study_summary.py on a made-up study folder: the means, sample standard deviations and paired
differences it reports, and the JSON and PNG it writes.  check_study_summary.py SCRATCH_DIR"""
import json
import os
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = sys.argv[1]
values = {"baseline": [10.0, 12.0, 14.0], "kd": [15.0, 15.5, 16.0], "rdd": [16.0, 15.0, 17.0]}
os.makedirs(os.path.join(out, "teacher"), exist_ok=True)
json.dump({"miou": 0.24}, open(os.path.join(out, "teacher", "eval.json"), "w"))
for arm, vs in values.items():
    for s, v in enumerate(vs, 1):
        d = os.path.join(out, "seed%d" % s, arm)
        os.makedirs(d, exist_ok=True)
        json.dump({"miou": v / 100}, open(os.path.join(d, "eval.json"), "w"))
open(os.path.join(out, "times.txt"), "w").write("teacher 100\nseed1/baseline 30\n")
text = subprocess.run([sys.executable, os.path.join(root, "scripts", "study_summary.py"), out, "--seeds", "3",
                       "--wall", "123", "--machine", "test"], check=True, capture_output=True, text=True).stdout
print(text)
r = json.load(open(os.path.join(out, "study.json")))
assert abs(r["arms"]["baseline"]["mean"] - 12.0) < 1e-9 and abs(r["arms"]["baseline"]["std"] - 2.0) < 1e-9, r
assert abs(r["arms"]["kd"]["std"] - 0.5) < 1e-9, r
assert abs(r["paired"]["rdd-kd"]["mean"] - 0.5) < 1e-9, r  # (1 - 0.5 + 1) / 3
assert abs(r["teacher_miou"] - 24.0) < 1e-9 and r["wall_s"] == 123 and r["run_wall_s"]["teacher"] == 100, r
assert "12.00 ± 2.00" in text and "paired rdd-kd" in text, text
png = open(os.path.join(out, "study.png"), "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, len(png)
print("study_summary: ok")
