#!/usr/bin/python3
"""Summarise scripts/study.sh: mean ± sample standard deviation of the val mIoU of each arm over the seeds,
the paired per-seed differences, a JSON and a bar chart.

    /usr/bin/python3 scripts/study_summary.py STUDY_OUT --seeds S [--wall SECONDS] [--machine TEXT] [--scale TEXT]

Reads STUDY_OUT/teacher/eval.json and STUDY_OUT/seed<s>/{baseline,kd,rdd}/eval.json (s = 1..S) and
STUDY_OUT/times.txt; writes STUDY_OUT/study.json and STUDY_OUT/study.png; prints a table.
"""
import argparse
import json
import math
import os

ARMS = [("baseline", "baseline (CE)"), ("kd", "+ logit KD"), ("rdd", "+ KD + RDD")]


def mean_std(values):
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, float("nan")
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def miou(path):
    with open(os.path.join(path, "eval.json")) as f:
        return 100.0 * json.load(f)["miou"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seeds", type=int, required=True)
    ap.add_argument("--wall", type=float, default=None)
    ap.add_argument("--machine", default="")
    ap.add_argument("--scale", default="")
    a = ap.parse_args()
    seeds = list(range(1, a.seeds + 1))
    result = {"seeds": seeds, "machine": a.machine, "scale": a.scale, "wall_s": a.wall,
              "teacher_miou": miou(os.path.join(a.out, "teacher")), "arms": {}, "paired": {}}
    times = {}
    tpath = os.path.join(a.out, "times.txt")
    if os.path.exists(tpath):
        for line in open(tpath):
            name, sec = line.split()
            times[name] = float(sec)
    result["run_wall_s"] = times
    per_arm = {}
    for arm, _ in ARMS:
        values = [miou(os.path.join(a.out, "seed%d" % s, arm)) for s in seeds]
        m, sd = mean_std(values)
        per_arm[arm] = values
        result["arms"][arm] = {"miou": values, "mean": m, "std": sd}
    for a1, a2 in (("kd", "baseline"), ("rdd", "baseline"), ("rdd", "kd")):
        d = [x - y for x, y in zip(per_arm[a1], per_arm[a2])]
        m, sd = mean_std(d)
        result["paired"]["%s-%s" % (a1, a2)] = {"diff": d, "mean": m, "std": sd}
    with open(os.path.join(a.out, "study.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")

    print("mIoU %% on the synthetic val split over %d seeds (mean ± sample std):" % len(seeds))
    print("  teacher (seed 1): %.2f" % result["teacher_miou"])
    for arm, label in ARMS:
        r = result["arms"][arm]
        print("  %-15s %6.2f ± %.2f   seeds: %s" % (label, r["mean"], r["std"], "  ".join("%.2f" % v for v in r["miou"])))
    for k, r in result["paired"].items():
        print("  paired %-13s %+6.2f ± %.2f" % (k, r["mean"], r["std"]))
    if a.wall is not None:
        print("  wall time: %.0f s (%s)" % (a.wall, a.machine))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = range(len(ARMS))
    means = [result["arms"][arm]["mean"] for arm, _ in ARMS]
    stds = [0 if math.isnan(result["arms"][arm]["std"]) else result["arms"][arm]["std"] for arm, _ in ARMS]
    ax.bar(xs, means, yerr=stds, capsize=8, color=["#999999", "#5b8fd9", "#d9735b"], alpha=0.85)
    for i, (arm, _) in enumerate(ARMS):
        ax.scatter([i + 0.25] * len(seeds), result["arms"][arm]["miou"], color="black", s=14, zorder=3)
    ax.axhline(result["teacher_miou"], color="green", linestyle="--", label="teacher %.2f" % result["teacher_miou"])
    ax.set_xticks(list(xs))
    ax.set_xticklabels([label for _, label in ARMS])
    ax.set_ylabel("val mIoU %")
    ax.set_title("student over %d seeds (mean ± std, dots: seeds)" % len(seeds))
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "study.png"), dpi=120)
    print("wrote %s and %s" % (os.path.join(a.out, "study.json"), os.path.join(a.out, "study.png")))


if __name__ == "__main__":
    main()
