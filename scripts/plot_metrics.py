#!/usr/bin/python3
"""Plot training curves from rdd's metrics.jsonl files: loss terms and validation mIoU vs iteration.

    /usr/bin/python3 scripts/plot_metrics.py runs/baseline runs/rdd --out curves.png
    /usr/bin/python3 scripts/plot_metrics.py runs/rdd/metrics.jsonl --out rdd.png --smooth 0.98 --log-y

Each argument is a run folder (its metrics.jsonl is read) or a JSON-lines file. `rdd train` / `rdd
distill` write one record per iteration ({"iter", "lr", "loss", "task", "task.main", "task.aux", "kd",
...}) and one per validation ({"iter", "val_miou", "val_pixel_accuracy"}). Runs are overlaid, each in
its own colour and labelled with its folder name.

Panels: the total loss; the loss terms (task, task.main, task.aux, kd, cwd, ...: one line style per
term); validation mIoU (%). Losses are smoothed with a bias-corrected exponential moving average
(--smooth, 0 = raw; the raw total loss is drawn faintly behind). A dotted vertical line marks
RDD's switch from the TFE to the TSE stage. After a resume the file holds some
iterations twice: the later record wins. A summary per run (last iteration, final and best mIoU) is
printed. Needs matplotlib (Debian: python3-matplotlib).
"""
import argparse
import json
import math
import os
import sys

NOT_TERMS = {"iter", "time", "lr", "img_per_s", "val_miou", "val_pixel_accuracy", "loss", "task.tfe_share"}


class PlotError(Exception):
    pass


def metrics_path(arg):
    if os.path.isdir(arg):
        path = os.path.join(arg, "metrics.jsonl")
        if not os.path.isfile(path):
            raise PlotError("%s: no metrics.jsonl in this folder (is it an rdd run folder?)" % arg)
        return path
    if not os.path.exists(arg):
        raise PlotError("%s: no such file or folder" % arg)
    return arg


def run_label(path):
    path = os.path.abspath(path)
    if os.path.basename(path) == "metrics.jsonl":
        return os.path.basename(os.path.dirname(path)) or path
    return os.path.splitext(os.path.basename(path))[0]


def read_run(path):
    """{"train": {iter: record}, "val": {iter: record}} from a JSON-lines file."""
    train, val = {}, {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise PlotError("%s line %d: not JSON (%s)" % (path, n, e))
            if not isinstance(rec, dict) or "iter" not in rec:
                raise PlotError("%s line %d: a record without \"iter\"" % (path, n))
            it = int(rec["iter"])
            if "val_miou" in rec:
                val[it] = rec
            else:
                train[it] = rec  # after a resume, the later record of an iteration wins
    if not train and not val:
        raise PlotError("%s: empty (no metrics records)" % path)
    return {"train": train, "val": val}


def ema(values, alpha):
    """Bias-corrected exponential moving average (TensorBoard's smoothing); NaN/inf values are skipped."""
    out, acc, weight = [], 0.0, 0.0
    for v in values:
        if v is not None and math.isfinite(v):
            acc = alpha * acc + (1 - alpha) * v
            weight = alpha * weight + (1 - alpha)
        out.append(acc / weight if weight > 0 else float("nan"))
    return out


def series(records, key):
    its = sorted(records)
    xs = [i for i in its if key in records[i]]
    return xs, [float(records[i][key]) for i in xs]


def tfe_to_tse(train):
    """The first iteration of RDD's TSE stage (task.tfe_share falls from 1), or None."""
    xs, ys = series(train, "task.tfe_share")
    for k in range(1, len(xs)):
        if ys[k - 1] >= 1 and ys[k] < 1:
            return xs[k]
    return None


def plot(runs, out, smooth, log_y, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_terms, ax_miou) = plt.subplots(1, 3, figsize=(18, 5.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1))]
    terms = sorted({k for r in runs for rec in r["data"]["train"].values() for k in rec
                    if k not in NOT_TERMS and isinstance(rec[k], (int, float))})
    for i, r in enumerate(runs):
        colour = colours[i % len(colours)]
        train, val = r["data"]["train"], r["data"]["val"]
        xs, ys = series(train, "loss")
        if xs:
            if smooth > 0:
                ax_loss.plot(xs, ys, color=colour, alpha=0.2, linewidth=0.8)
            ax_loss.plot(xs, ema(ys, smooth), color=colour, linewidth=1.6, label=r["label"])
        for j, term in enumerate(terms):
            xs, ys = series(train, term)
            if xs:
                ax_terms.plot(xs, ema(ys, smooth), color=colour, linestyle=styles[j % len(styles)], linewidth=1.3,
                              label="%s: %s" % (r["label"], term))
        switch = tfe_to_tse(train)
        if switch is not None:
            for ax in (ax_loss, ax_terms):
                ax.axvline(switch, color=colour, linestyle=(0, (1, 4)), alpha=0.8, linewidth=1.5)
            ax_terms.plot([], [], color=colour, linestyle=(0, (1, 4)), alpha=0.8, linewidth=1.5,
                          label="%s: TFE→TSE at %d" % (r["label"], switch))
        xs, ys = series(val, "val_miou")
        if xs:
            ax_miou.plot(xs, [100 * y for y in ys], color=colour, marker="o", markersize=4, linewidth=1.6,
                         label="%s (best %.2f)" % (r["label"], 100 * max(ys)))
    smooth_note = " (EMA %.3g)" % smooth if smooth > 0 else ""
    ax_loss.set_title("total loss" + smooth_note)
    ax_terms.set_title("loss terms" + smooth_note)
    ax_miou.set_title("validation mIoU")
    ax_miou.set_ylabel("mIoU (%)")
    for ax in (ax_loss, ax_terms, ax_miou):
        ax.set_xlabel("iteration")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, "no records", ha="center", va="center", transform=ax.transAxes, color="grey")
    if log_y:
        from matplotlib.ticker import FormatStrFormatter, LogLocator
        for ax in (ax_loss, ax_terms):
            ax.set_yscale("log")
            ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def summary(runs):
    lines = []
    for r in runs:
        train, val = r["data"]["train"], r["data"]["val"]
        last = max(train) if train else 0
        s = "%s: %d training records, last iteration %d" % (r["label"], len(train), last)
        if train and "loss" in train[last]:
            s += ", last loss %.4g" % train[last]["loss"]
        if val:
            final = val[max(val)]["val_miou"]
            best_it = max(val, key=lambda i: val[i]["val_miou"])
            s += ", final mIoU %.2f%%, best %.2f%% at %d" % (100 * final, 100 * val[best_it]["val_miou"], best_it)
        lines.append(s)
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__[__doc__.index("Each argument"):],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run folders (with metrics.jsonl) or metrics.jsonl files")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--smooth", type=float, default=0.9, help="EMA factor in [0, 1) for the losses (default 0.9)")
    ap.add_argument("--log-y", action="store_true", help="logarithmic loss axes")
    ap.add_argument("--title", default="", help="figure title")
    a = ap.parse_args(argv)
    try:
        if not 0 <= a.smooth < 1:
            raise PlotError("--smooth %g is outside [0, 1)" % a.smooth)
        out_dir = os.path.dirname(os.path.abspath(a.out))
        if not os.path.isdir(out_dir):
            raise PlotError("--out %s: the folder %s does not exist" % (a.out, out_dir))
        runs = []
        for arg in a.runs:
            path = metrics_path(arg)
            runs.append({"label": run_label(path), "path": path, "data": read_run(path)})
        labels = [r["label"] for r in runs]
        for r in runs:  # two runs with the same folder name: use the paths
            if labels.count(r["label"]) > 1:
                r["label"] = os.path.relpath(r["path"])
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise PlotError("matplotlib is not installed (Debian: apt-get install python3-matplotlib)")
        plot(runs, a.out, a.smooth, a.log_y, a.title)
    except PlotError as e:
        print("plot_metrics.py: error: %s" % e, file=sys.stderr)
        return 1
    for line in summary(runs):
        print(line)
    print("wrote", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
