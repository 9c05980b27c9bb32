#!/usr/bin/python3
"""Golden cases for rdd's losses (kind=loss) from a PyTorch transcription of the released RDD code.

    /usr/bin/python3 scripts/make_golden_losses.py OUT_DIR [--seed S]

Writes one safetensors file per case, `loss_<name>.safetensors`, holding
  - golden.s_main, golden.s_aux (absent without a student aux head), golden.t_main, golden.t_aux
    (N, C, h, w) f32 logits at output stride 8; golden.label (N, H, W) int32, -1 = ignore;
    golden.class_weights (C) f32 when the TSE CE is class-weighted (none otherwise);
  - golden.expected.task, golden.expected.kd, golden.expected.cwd (when cwd_weight != 0),
    golden.expected.total: (1,) f64 scalars; golden.expected.grad.s_main, golden.expected.grad.s_aux:
    d total / d student logits, f32;
  - golden.f32_err.<output> ((1,) f64) for each of those outputs (task, kd, cwd, total, grad.s_main,
    grad.s_aux): the reference's own float32 error envelope, the largest relative error of three float32
    evaluations of the transcription (PyTorch's default kernels, channels_last logits, two threads)
    against the expected values;
and metadata kind=loss, stage=tfe|tse|none|blend, tse_mode=xor|or|and|ohem, thresh, min_kept, aux_weight,
kd_weight, temperature, cwd_weight, cwd_temperature, tfe_direction=aux_main|main_aux, case.

total = task + kd_weight·kd + cwd_weight·cwd, with kd and cwd the unweighted values.

The transcription (github.com/sunyueue/RDD, train_onlykd_two_stage_diff.py and losses/, as described in
shared/rdd-method.md §1) is evaluated in float64 from the float32 inputs; autograd gives the gradients:
  - stage none (the baseline): CrossEntropyLoss(ignore_index=-1, 'mean') of the bilinearly upsampled
    (align_corners=True) main logits + aux_weight · the same for aux.
  - stage tfe: RD = exp(-sum_c KLDivLoss('none')(log_softmax(t_main), softmax(t_aux))) = exp(-KL(aux||main))
    at stride 8, upsampled with align_corners=True to the LABEL size (the released code hard-codes 512x1024)
    and squeezed on the channel dim only; task = mean over all N*H*W of RD * (CE_main + aux_weight*CE_aux),
    CE unweighted with reduction 'none' (ignored pixels 0, counted in the mean).
  - stage tse: OhemCrossEntropy2d.forward_with_teacher_student per head pair; get_mask fills ignored
    positions with probability 1, sorts all N*H*W GT-probs and raises the threshold to the
    min(N*H*W, min_kept)-th smallest when that exceeds thresh; kept = prob <= threshold; hard = valid & kept;
    sel = hard_S xor/or/and hard_T (ohem: hard_S); CrossEntropyLoss(weight=class_weights, ignore_index=-1)
    over the selected pixels. task = pair(main) + aux_weight * pair(aux).
  - stage blend (train_onlykd_two_stage_diff_warmup_lamda.py, the soft switch; metadata iteration,
    warmup_iters, max_iterations, iteration >= warmup_iters): task = (1 - lam)*TSE + lam*TFE with
    lam = (iteration - max_iterations)/(warmup_iters - max_iterations).
  - kd: kl_div(log_softmax(s/T), softmax(t/T), 'batchmean') * T^2 over the (N*h*w, C) rows of the main
    logits; cwd (CIRKD CriterionCWD, logits, no adapter): kl_div(log_softmax(s/tau over h*w),
    softmax(t/tau over h*w), 'sum') * tau^2 / (N*C).
Where the released code crashes or gives NaN, this script defines rdd's behaviour:
  - min_kept > number of valid pixels (released: `kept` undefined, crash): the same rule is applied, so
    the k-th smallest is an ignored pixel's 1 and every valid pixel is hard;
  - an empty selection, or every pixel ignored (released: 0/0 = NaN): that CE term is 0 with zero gradient.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np as st  # noqa: E402

CITYSCAPES_WEIGHTS = [0.8373, 0.9180, 0.8660, 1.0345, 1.0166, 0.9969, 0.9754, 1.0489, 0.8786, 1.0023,
                      0.9539, 0.9843, 1.1116, 0.9037, 1.0865, 1.0955, 1.0865, 1.1529, 1.0507]


def up(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def seg_ce(logits, target, weight=None, reduction="mean"):
    """SegCrossEntropyLoss: upsample to the label size, CE with ignore_index=-1."""
    out = F.cross_entropy(up(logits, target.shape[1:]), target, weight=weight, ignore_index=-1, reduction=reduction)
    if reduction == "mean" and not torch.isfinite(out):  # every pixel ignored: rdd defines 0
        return (logits * 0).sum()
    return out


def get_mask(pred, target, thresh, min_kept):
    """OhemCrossEntropy2d.get_mask on upsampled logits pred (N, C, H, W): (hard, kept), flat (N*H*W)."""
    n, c, h, w = pred.shape
    target = target.reshape(-1)
    valid = target.ne(-1)
    target = target * valid.long()
    prob = F.softmax(pred, dim=1).transpose(0, 1).reshape(c, -1)
    # released: `if min_kept > num_valid: print(...)` and `kept` stays undefined; rdd proceeds (see above)
    prob = prob.masked_fill(~valid, 1)
    mask_prob = prob[target, torch.arange(len(target))]
    threshold = thresh
    if min_kept > 0:
        index = mask_prob.argsort()
        threshold_index = index[min(len(index), min_kept) - 1]
        if mask_prob[threshold_index] > thresh:
            threshold = mask_prob[threshold_index]
    kept = mask_prob.le(threshold)
    return valid & kept, kept


def tse_pair(s, t, target, mode, thresh, min_kept, weight):
    size = target.shape[1:]
    s_up = up(s, size)
    with torch.no_grad():
        hard_s, _ = get_mask(s_up.detach(), target, thresh, min_kept)
        hard_t, _ = get_mask(up(t, size), target, thresh, min_kept)
    if mode == "xor":
        sel = hard_s ^ hard_t
    elif mode == "or":
        sel = hard_s | hard_t
    elif mode == "and":
        sel = hard_s & hard_t
    else:
        sel = hard_s
    tgt = target.reshape(-1).clone()
    tgt[~sel] = -1
    tgt = tgt.view_as(target)
    if int(sel.sum()) == 0:  # released: NaN; rdd: 0
        return (s * 0).sum()
    return F.cross_entropy(s_up, tgt, weight=weight, ignore_index=-1)


def tfe_map(t_main, t_aux, size, direction):
    with torch.no_grad():
        if direction == "aux_main":  # released: KLDivLoss(log_softmax(main), softmax(aux)) = KL(aux || main)
            kl = torch.nn.KLDivLoss(reduction="none")(F.log_softmax(t_main, 1), F.softmax(t_aux, 1)).sum(1)
        else:  # paper Eq. 6: KL(main || aux)
            kl = torch.nn.KLDivLoss(reduction="none")(F.log_softmax(t_aux, 1), F.softmax(t_main, 1)).sum(1)
        rd = torch.exp(-kl).unsqueeze(1)
        return up(rd, size).squeeze(1)


def kd_loss(s, t, temperature):
    c = s.shape[1]
    ps = F.log_softmax(s.permute(0, 2, 3, 1).reshape(-1, c) / temperature, dim=1)
    pt = F.softmax(t.permute(0, 2, 3, 1).reshape(-1, c) / temperature, dim=1)
    return F.kl_div(ps, pt, reduction="batchmean") * temperature ** 2


def cwd_loss(s, t, tau):
    n, c, h, w = s.shape
    ps = F.log_softmax(s.reshape(n, c, -1) / tau, dim=-1)
    pt = F.softmax(t.reshape(n, c, -1) / tau, dim=-1)
    return F.kl_div(ps, pt, reduction="sum") * tau ** 2 / (n * c)


def evaluate(case, dtype=torch.float64, variant="default"):
    """The transcription in `dtype` (float64: the expected values; float32 in a `variant` of PyTorch's
    kernels: the envelope); returns the outputs by the runner's names (task, kd, [cwd,] total, grad.s_main,
    [grad.s_aux]) as numpy arrays."""
    m = case["meta"]
    fmt = torch.channels_last if variant == "channels_last" else torch.contiguous_format

    def logits(key):
        return torch.from_numpy(case[key]).to(dtype).contiguous(memory_format=fmt)

    threads = torch.get_num_threads()
    torch.set_num_threads(2 if variant == "threads2" else 1)
    try:
        return _evaluate(case, m, logits, dtype)
    finally:
        torch.set_num_threads(threads)


def _evaluate(case, m, logits, dtype):
    s_main = logits("s_main").requires_grad_(True)
    s_aux = logits("s_aux").requires_grad_(True) if case.get("s_aux") is not None else None
    t_main = logits("t_main")
    t_aux = logits("t_aux")
    label = torch.from_numpy(case["label"]).long()
    weight = torch.from_numpy(case["class_weights"]).to(dtype) if case.get("class_weights") is not None else None
    aux_w = float(m["aux_weight"])
    stage = m["stage"]
    if stage == "none":
        task = seg_ce(s_main, label)
        if s_aux is not None:
            task = task + aux_w * seg_ce(s_aux, label)
    elif stage == "tfe":
        rd = tfe_map(t_main, t_aux, label.shape[1:], m["tfe_direction"])
        per_pixel = seg_ce(s_main, label, reduction="none")
        if s_aux is not None:
            per_pixel = per_pixel + aux_w * seg_ce(s_aux, label, reduction="none")
        task = (rd * per_pixel).mean()
    else:
        args = (m["tse_mode"], float(m["thresh"]), int(m["min_kept"]), weight)
        task = tse_pair(s_main, t_main, label, *args)
        if s_aux is not None:
            task = task + aux_w * tse_pair(s_aux, t_aux, label, *args)
        if stage == "blend":  # train_onlykd_two_stage_diff_warmup_lamda.py, iteration >= warmup
            it, warm, last = int(m["iteration"]), int(m["warmup_iters"]), int(m["max_iterations"])
            lam = (it - last) / (warm - last)
            rd = tfe_map(t_main, t_aux, label.shape[1:], m["tfe_direction"])
            per_pixel = seg_ce(s_main, label, reduction="none")
            if s_aux is not None:
                per_pixel = per_pixel + aux_w * seg_ce(s_aux, label, reduction="none")
            task = (1 - lam) * task + lam * (rd * per_pixel).mean()
    kd = kd_loss(s_main, t_main, float(m["temperature"]))
    total = task + float(m["kd_weight"]) * kd
    cwd = None
    if float(m["cwd_weight"]) != 0:
        cwd = cwd_loss(s_main, t_main, float(m["cwd_temperature"]))
        total = total + float(m["cwd_weight"]) * cwd
    total.backward()
    out = {
        "task": np.array([task.item()], dtype=np.float64),
        "kd": np.array([kd.item()], dtype=np.float64),
        "total": np.array([total.item()], dtype=np.float64),
        "grad.s_main": s_main.grad.double().contiguous().numpy(),
    }
    if cwd is not None:
        out["cwd"] = np.array([cwd.item()], dtype=np.float64)
    if s_aux is not None:
        out["grad.s_aux"] = s_aux.grad.double().contiguous().numpy()
    for k, v in out.items():
        if not np.all(np.isfinite(v)):
            raise RuntimeError("case %s: %s is not finite" % (m["case"], k))
    return out


F32_VARIANTS = ["default", "channels_last", "threads2"]


def relative_error(got, want):
    """train::golden_relative_error: ‖got − want‖ / ‖want‖ (absolute when want is all zero)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    diff = float(np.sqrt(np.sum((got - want) ** 2)))
    if not np.isfinite(diff):
        return float("inf")
    norm = float(np.sqrt(np.sum(want ** 2)))
    return diff / norm if norm > 0 else diff


def expected_and_envelope(case):
    """golden.expected.* (scalars f64, gradients f32) and golden.f32_err.* (the largest error of the
    float32 variants against the stored expected values)."""
    ref = evaluate(case)
    expected = {k: (v if v.size == 1 and k in ("task", "kd", "cwd", "total") else v.astype(np.float32))
                for k, v in ref.items()}
    tensors = {"golden.expected." + k: v for k, v in expected.items()}
    envelope = {k: 0.0 for k in expected}
    for variant in F32_VARIANTS:
        got = evaluate(case, torch.float32, variant)
        for k, want in expected.items():
            envelope[k] = max(envelope[k], relative_error(got[k], want))
    for k, e in envelope.items():
        tensors["golden.f32_err." + k] = np.array([e], dtype=np.float64)
    return tensors


DEFAULT_META = dict(kind="loss", stage="tse", tse_mode="xor", thresh="0.7", min_kept="200", aux_weight="0.4",
                    kd_weight="1.0", temperature="1.0", cwd_weight="0", cwd_temperature="4.0",
                    tfe_direction="aux_main")


def make_inputs(gen, n, c, h, w, H, W, aux=True, ignore=0.1, scale=2.0, weights=False):
    def logits():
        return (torch.randn(n, c, h, w, generator=gen, dtype=torch.float64) * scale).float().numpy()

    label = torch.randint(0, c, (n, H, W), generator=gen, dtype=torch.int64)
    label[torch.rand(n, H, W, generator=gen) < ignore] = -1
    case = {"s_main": logits(), "t_main": logits(), "t_aux": logits(), "label": label.int().numpy()}
    case["s_aux"] = logits() if aux else None
    if weights:
        if c == 19:
            case["class_weights"] = np.array(CITYSCAPES_WEIGHTS, dtype=np.float32)
        else:
            case["class_weights"] = (0.5 + torch.rand(c, generator=gen)).float().numpy()
    return case


def cases(seed=0):
    gen = torch.Generator().manual_seed(20240703 + seed)
    out = []

    def add(name, inputs, **meta):
        m = dict(DEFAULT_META)
        m.update({k: str(v) for k, v in meta.items()})
        m["case"] = name
        inputs["meta"] = m
        out.append((name, inputs))

    # Labels 37x53 from 5x7 logits: not a multiple of the logits' size.
    add("none_aux", make_inputs(gen, 2, 5, 5, 7, 37, 53), stage="none")
    add("none_noaux", make_inputs(gen, 2, 5, 5, 7, 37, 53, aux=False), stage="none")
    add("tfe_aux_T1", make_inputs(gen, 2, 5, 5, 7, 37, 53), stage="tfe")
    add("tfe_noaux_T4", make_inputs(gen, 2, 5, 5, 7, 37, 53, aux=False), stage="tfe", temperature=4.0)
    add("tfe_paper_direction", make_inputs(gen, 1, 6, 6, 6, 41, 43), stage="tfe", tfe_direction="main_aux")
    add("tfe_cwd", make_inputs(gen, 2, 5, 5, 7, 37, 53), stage="tfe", cwd_weight=0.5, cwd_temperature=4.0)
    for mode in ("xor", "or", "and", "ohem"):
        add("tse_%s_aux_cityscapes" % mode, make_inputs(gen, 2, 19, 6, 8, 45, 61, weights=True), tse_mode=mode,
            min_kept=300)
    add("tse_xor_noaux_T4", make_inputs(gen, 2, 5, 5, 7, 37, 53, aux=False, weights=True), temperature=4.0,
        min_kept=100)
    add("tse_xor_unweighted_thresh_only", make_inputs(gen, 2, 5, 5, 7, 37, 53), min_kept=0)
    add("tse_cwd_T1", make_inputs(gen, 2, 5, 5, 7, 37, 53, weights=True), cwd_weight=1.0, cwd_temperature=1.0)
    # The soft switch (released warmup_lamda variant): lambda = (30 - 40)/(10 - 40) = 1/3.
    add("blend_soft_switch", make_inputs(gen, 2, 5, 5, 7, 37, 53, weights=True), stage="blend", iteration=30,
        warmup_iters=10, max_iterations=40, min_kept=150)
    # Edge cases.
    add("edge_all_ignored_tse", make_inputs(gen, 2, 5, 5, 7, 37, 53, ignore=1.0))
    add("edge_all_ignored_tfe", make_inputs(gen, 2, 5, 5, 7, 37, 53, ignore=1.0), stage="tfe")
    add("edge_all_ignored_none", make_inputs(gen, 2, 5, 5, 7, 37, 53, ignore=1.0), stage="none")
    add("edge_min_kept_above_valid", make_inputs(gen, 2, 5, 5, 7, 37, 53, ignore=0.5), min_kept=1000000,
        tse_mode="and")
    add("edge_min_kept_above_valid_below_n", make_inputs(gen, 1, 5, 5, 7, 37, 53, ignore=0.6), min_kept=1500,
        tse_mode="or")
    add("edge_empty_selection", make_inputs(gen, 2, 5, 5, 7, 37, 53), thresh=0.0, min_kept=0, tse_mode="or")
    add("edge_empty_xor_same_masks", make_inputs(gen, 2, 5, 5, 7, 37, 53), thresh=1.0, min_kept=0)
    # Ties at the threshold: labels at the logits' size (no resize, so tied pixels stay bit-identical); most
    # pixels share one label and one logit vector (GT-prob e^3/(e^3+4) ~ 0.834 > 0.7) and min_kept lands inside that group,
    # so the threshold is raised to exactly the tied value and the whole group is kept.
    tie = make_inputs(gen, 2, 5, 9, 11, 9, 11, ignore=0.05)
    lab = tie["label"]
    tied_s = (torch.rand(lab.shape, generator=gen) < 0.8).numpy() & (lab >= 0)
    tied_t = (torch.rand(lab.shape, generator=gen) < 0.3).numpy() & (lab >= 0)
    lab[tied_s | tied_t] = 1  # one class and one logit vector: bit-identical GT-probs in any implementation
    for key, tied in (("s_main", tied_s), ("s_aux", tied_s), ("t_main", tied_t), ("t_aux", tied_t)):
        arr = tie[key]
        for n, y, x in zip(*tied.nonzero()):
            arr[n, :, y, x] = 0.0
            arr[n, 1, y, x] = 3.0
    add("edge_ties_at_threshold", tie, min_kept=60)
    return out


def main():
    args = sys.argv[1:]
    seed = 0
    if len(args) == 3 and args[1] == "--seed":
        seed = int(args[2])
        args = args[:1]
    if len(args) != 1:
        print(__doc__)
        return 2
    out_dir = args[0]
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    for name, case in cases(seed):
        tensors = {"golden.s_main": case["s_main"], "golden.t_main": case["t_main"], "golden.t_aux": case["t_aux"],
                   "golden.label": case["label"]}
        if case.get("s_aux") is not None:
            tensors["golden.s_aux"] = case["s_aux"]
        if case.get("class_weights") is not None:
            tensors["golden.class_weights"] = case["class_weights"]
        tensors.update(expected_and_envelope(case))
        st.save(os.path.join(out_dir, "loss_%s.safetensors" % name), tensors, case["meta"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
