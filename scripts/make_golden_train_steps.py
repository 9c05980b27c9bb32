#!/usr/bin/python3
"""Golden cases for whole training steps (kind=train_steps) from a PyTorch transcription of the reference
training loop (github.com/sunyueue/RDD, train_onlykd_two_stage_diff.py; shared/rdd-method.md §1-2).

    /usr/bin/python3 scripts/make_golden_train_steps.py OUT_DIR [--cases all|name,name] [--seed 0]
        [--perturb all|name,name] [--perturb-cases all|name,name] [--perturbed-dir DIR] [--report]

One safetensors file per case, `train_<case>.safetensors`, holding
  - golden.student.<state_dict name>: the student's initial parameters and BN buffers (num_batches_tracked
    as int64); golden.teacher.<name>: the frozen teacher's (absent when the case has no teacher);
  - golden.batch.<i>.image (N, 3, H, W) f32 (already normalised) and golden.batch.<i>.label (N, H, W) int32
    (-1 = ignore), i = 1..steps: the batch of iteration i;
  - golden.expected.student.<name>: every parameter and BN buffer after `steps` iterations;
    golden.expected.momentum.<name>: SGD's momentum buffer of every parameter after them;
    golden.expected.loss.task.<i>, golden.expected.loss.kd.<i>: (1,) f64, the task term and the KD term
    (unweighted; 0 without KD) of iteration i, evaluated before that iteration's update;
  - golden.f32_err.<output> ((1,) f64) for every output above (<output> = student.<name>, momentum.<name>,
    loss.task.<i>, loss.kd.<i>): the reference's own float32 error envelope, the largest error (measured as
    the runner measures rdd's, see golden_error) of several float32 runs of this same loop in PyTorch
    (default kernels; channels_last; oneDNN off; two threads) against the float64 run that gives the
    expected values;
and metadata kind=train_steps, case, student, student_width, teacher (`none` without one), teacher_width,
num_classes, steps, lr, momentum, weight_decay, power, max_iterations, warmup_iters, aux_weight, kd_weight,
kd_temperature, rdd (tfe,tse | none), tse_mode, thresh, min_kept, class_weights (cityscapes | none),
dropout=0, and the margins the case keeps from every kink (margin.*, see below).

The loop, iteration i = 1..steps (the reference's order; the expected values come from float64):
    lr_i = lr·(1 − (i − 1)/max_iterations)^power        set on the optimizer before the step
    s = student(image_i)                                  train mode (BN on batch statistics), no dropout
    t = teacher(image_i)                                  eval mode, no_grad
    task = CE(main) + aux_weight·CE(aux)                  rdd=none
         | mean(RD·(CE_main + aux_weight·CE_aux))         rdd=tfe,tse and i < warmup_iters (TFE)
         | OHEM_xor(main) + aux_weight·OHEM_xor(aux)      rdd=tfe,tse and i ≥ warmup_iters (TSE)
    kd = KL(t_main ‖ s_main) at T (main head only)
    loss = task + kd_weight·kd;  zero_grad; backward; torch.optim.SGD(lr_i, momentum, weight_decay).step()
with the losses of scripts/make_golden_losses.py (the same transcription the kind=loss cases use).

A 6-step run from random weights is chaotic: where an input sits on a kink, float32 and float64 take
different branches and the runs part. The cases keep away from every kink, by construction where it can be
arranged and by a check of the float64 run (the case is rejected and the next seed tried otherwise):
  - ReLU / ReLU6: every BatchNorm that feeds one gets per-channel β (and, before ReLU6, a smaller γ) chosen on
    a calibration pass so that the channel's whole range lies at least 20% of its spread above 0 (on) or below
    0 (off; about a quarter of the ReLU channels), and below 6 before ReLU6; the last BN of a residual block
    and of a ResNet shortcut is 'on', so the sum after the residual add is positive too. The check:
    margin.relu = min |ReLU input| (and |6 − x| for ReLU6) over every step.
  - max pooling (the ResNet stem): margin.maxpool = the smallest lead of a window's maximum over its
    runner-up, relative to the channel's spread (windows of a channel that is off, all exact zeros, aside).
  - OHEM (TSE): margin.ohem_student / margin.ohem_teacher = the smallest distance of a valid pixel's GT-class
    probability from the threshold in use (and of the min_kept-th smallest from 0.7 and from its successor);
    the teacher does not drift, the student does (its weights differ by ~1e-5 between float32 and float64).
  - and, as the last word, every float32 variant must land 5x inside the limits (the runner's: parameters
    2e-4, BN running statistics 1e-3, momentum 2e-2, losses 1e-5).
Residual branches start small (their last BN's γ × 0.1), as in make_golden_models.py, and the batch is 4, so
the image-pooling branch's BN sees 4 values per channel.

--perturb writes, beside each case, copies whose expected values come from a deliberately wrong loop
(`train_<case>__<mistake>.safetensors` in --perturbed-dir): lr_off_by_one (the LR of iteration i instead of
i − 1), wd_outside_momentum (w −= lr·(m + wd·w) with m = μm + g), bn_momentum_0.01, aux_weight_1 (1 instead
of the case's aux weight), switch_late (TFE while i ≤ warmup_iters), kd_on_aux (KD on the aux head too),
teacher_train_mode. rdd's runner must fail on every one of them. --report prints, per case, each float32
variant's worst error/limit and each mistake's.
"""
import argparse
import contextlib
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_golden_losses as gl  # noqa: E402
import safetensors_np as st  # noqa: E402
import torch_models as tm  # noqa: E402

# The runner's limits (train/golden_train_steps.cpp) and its floor for tensors whose expected value is ~0.
LIMITS = {"param": 2e-4, "bn": 1e-3, "momentum": 2e-2, "loss": 1e-5}
FLOOR = 1e-4  # a tensor's error is measured against max(‖expected‖, FLOOR·‖its whole group‖)
ACCEPT = 0.2  # every float32 variant within ACCEPT·limit
# The smallest margins from the kinks the float64 run may show (module doc). The float32 runs' own drift from
# float64 over 6 steps, measured: max-pool inputs ≤ 6e-7 of the channel's spread, ReLU inputs ~1e-6,
# the student's GT-probs ≤ 1.2e-6, the (frozen, more confident) teacher's ≤ 7e-6.
MARGINS = {"relu": 1e-3, "maxpool": 2e-6, "ohem_student": 1e-5, "ohem_teacher": 1e-4}
TEACHER_LABEL_MARGIN = 1e-3  # labels where the teacher's GT-prob is this close to thresh become ignored

CASES = {
    # The switch in the middle: TFE at iterations 1-3, TSE at 4-6; aux head (R18), KD, Cityscapes weights.
    "r18_rdd_switch_kd": dict(student="deeplabv3_resnet18", teacher="deeplabv3_resnet18", rdd="tfe,tse",
                              warmup_iters=4, kd_weight=1.0, num_classes=19, class_weights="cityscapes"),
    # No aux head (MobileNetV2): TFE at 1-2, TSE at 3-6 (the teacher's aux head still gives TFE its map).
    "mbv2_rdd_switch_kd": dict(student="deeplabv3_mobilenetv2", teacher="deeplabv3_resnet18", rdd="tfe,tse",
                               warmup_iters=3, kd_weight=1.0, kd_temperature=2.0, num_classes=19,
                               class_weights="cityscapes"),
    # KD off: the RDD task term alone, switch at 3, unweighted TSE CE, 5 classes.
    "r18_rdd_nokd": dict(student="deeplabv3_resnet18", teacher="deeplabv3_resnet18", rdd="tfe,tse",
                         warmup_iters=3, kd_weight=0.0, num_classes=5, class_weights="none"),
    # The baseline loop (`rdd train`): CE + aux CE, no teacher.
    "r18_baseline": dict(student="deeplabv3_resnet18", teacher="none", rdd="none", kd_weight=0.0,
                         num_classes=19),
    "mbv2_baseline": dict(student="deeplabv3_mobilenetv2", teacher="none", rdd="none", kd_weight=0.0,
                          num_classes=19),
    # KD without RDD (`rdd distill --kd 1`): CE + aux CE + KD.
    "r18_kd": dict(student="deeplabv3_resnet18", teacher="deeplabv3_resnet18", rdd="none", kd_weight=1.0,
                   num_classes=19),
}
DEFAULTS = dict(student_width=0.125, teacher_width=0.25, steps=6, batch=4, height=32, width=40, lr=0.02,
                momentum=0.9, weight_decay=5e-3, power=0.9, max_iterations=8, warmup_iters=0, aux_weight=0.4,
                kd_weight=0.0, kd_temperature=1.0, tse_mode="xor", thresh=0.7, min_kept=300,
                class_weights="none", ignore=0.1, teacher_agree=0.75)

MISTAKES = ["lr_off_by_one", "wd_outside_momentum", "bn_momentum_0.01", "aux_weight_1", "switch_late", "kd_on_aux",
            "teacher_train_mode"]


def mistake_applies(mistake, case):
    if mistake == "aux_weight_1":
        return case["student"].startswith("deeplabv3_resnet") or case["student"].startswith("psp_resnet")
    if mistake == "switch_late":
        return case["rdd"] != "none"
    if mistake == "kd_on_aux":
        return case["kd_weight"] > 0 and "resnet" in case["student"]
    if mistake == "teacher_train_mode":
        return case["teacher"] != "none"
    return True


# ------------------------------------------------------------------------------------------------
# The cases' networks: where each BatchNorm's output goes, and the kink-free initial state.
# ------------------------------------------------------------------------------------------------
def bn_roles(model):
    """BatchNorm2d module → 'relu' | 'relu6' | 'residual' | 'linear' (what its output feeds)."""
    roles = {}
    for m in model.modules():
        if isinstance(m, nn.Sequential):
            kids = list(m.children())
            for a, b in zip(kids, kids[1:]):
                if isinstance(a, nn.BatchNorm2d):
                    roles[a] = "relu6" if isinstance(b, nn.ReLU6) else "relu" if isinstance(b, nn.ReLU) else "linear"
        if isinstance(m, tm.BasicBlockV1b):
            roles[m.bn1] = "relu"
            roles[m.bn2] = "residual"
            if m.downsample is not None:
                roles[m.downsample[1]] = "residual"
        if isinstance(m, tm.ResNetV1b) and m.deep_stem:
            for bn in (m.bn1, m.bn2, m.bn3):
                roles[bn] = "relu"
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d) and m not in roles:
            roles[m] = "linear"
    return roles


def shape_student(model, images, batch, gen, p_on=0.75, rel_margin=0.2):
    """images: the case's batches one after the other (k·batch images), each normalised by BN on its own as
    in training. p_on: the share of ReLU channels that are on (0.5 for the BN before the ResNet stem's max
    pooling: fewer live windows, fewer near-ties)."""
    """Per-channel BN affine parameters that keep every ReLU/ReLU6 input away from its kinks (module doc),
    chosen in one pass over `images` with hooks that replace each BN's output by the training-mode one of
    each batch (its own mean and variance) with the β they set, so that later layers see what iteration 1
    of every batch will."""
    roles = bn_roles(model)
    share = {bn: p_on for bn in roles}
    for m in model.modules():
        if isinstance(m, tm.ResNetV1b) and m.deep_stem:
            share[m.bn3] = 0.5
    with torch.no_grad():
        for bn, role in roles.items():
            bn.weight.copy_(1 + 0.25 * torch.randn(bn.weight.shape, generator=gen))
            bn.bias.copy_(0.1 * torch.randn(bn.bias.shape, generator=gen))
            if role == "residual":
                bn.weight.mul_(0.1)  # residual branches start small (make_golden_models.py)
        for m in model.modules():  # MobileNetV2's projection BN before a residual add: small too
            if isinstance(m, tm.InvertedResidual) and m.use_res_connect:
                m.conv[-1].weight.mul_(0.1)

    def hook(bn, inputs, out):
        role = roles[bn]
        with torch.no_grad():
            g, b = bn.weight, bn.bias
            x = inputs[0]
            xb = x.reshape(-1, batch, *x.shape[1:])  # (k, N, C, H, W): BN over each batch on its own
            mean = xb.mean(dim=(1, 3, 4), keepdim=True)
            var = xb.var(dim=(1, 3, 4), unbiased=False, keepdim=True)
            xhat = ((xb - mean) / torch.sqrt(var + bn.eps)).reshape(x.shape)
            if role == "linear":
                return g.view(1, -1, 1, 1) * xhat + b.view(1, -1, 1, 1)
            gx = g.view(1, -1, 1, 1) * xhat
            lo = gx.amin(dim=(0, 2, 3))
            hi = gx.amax(dim=(0, 2, 3))
            spread = (hi - lo).clamp_min(1e-3)
            if role == "relu6":  # the whole on-range below 6: spread ≤ 3
                scale = (3.0 / spread).clamp(max=1.0)
                g.mul_(scale)
                lo, hi, spread = lo * scale, hi * scale, (spread * scale)
            on = torch.rand(g.shape, generator=gen) < share[bn]
            if role == "residual":
                on[:] = True
            margin = rel_margin * spread + 0.02
            b.copy_(torch.where(on, -lo + margin, -hi - margin))
            return g.view(1, -1, 1, 1) * xhat + b.view(1, -1, 1, 1)

    handles = [bn.register_forward_hook(hook) for bn in roles]
    momenta = {bn: bn.momentum for bn in roles}
    for bn in roles:
        bn.momentum = 0.0  # the calibration pass leaves the running statistics alone
    model.train()
    with torch.no_grad():
        model(images)
    for h in handles:
        h.remove()
    for bn in roles:
        bn.momentum = momenta[bn]


def calibrate_running_stats(model, batches):
    """Running statistics = a cumulative average over the given batches (eval-mode BN is not the identity);
    num_batches_tracked back to 0."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        for x in batches:
            model(x)
    for bn in bns:
        bn.momentum = 0.1
        bn.num_batches_tracked.zero_()


def classifier_convs(model):
    """The 1×1 classifier convs: main (and aux)."""
    out = []
    head = model.head
    out.append(head.block[4] if isinstance(head, tm._DeepLabHead) else head.classifier)
    if getattr(model, "has_aux", False):
        out.append(model.auxlayer.block[4])
    return out


def scale_logits(model, x, target_std, train):
    """Scale each classifier so that its logits have about target_std (std over every logit) on x, in
    training mode (batch statistics; running statistics untouched) or eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    model.train(train)
    with torch.no_grad():
        outs = model(x)
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    with torch.no_grad():
        for conv, logits in zip(classifier_convs(model), outs[:-1]):
            k = target_std / float(logits.std())
            conv.weight.mul_(k)
            conv.bias.mul_(k)


# ------------------------------------------------------------------------------------------------
# The reference training loop.
# ------------------------------------------------------------------------------------------------
def poly_lr(base, it, max_it, power, off_by_one=False):
    return base * (1 - (it - (0 if off_by_one else 1)) / max_it) ** power


def class_weight_tensor(case, dtype):
    if case["class_weights"] == "cityscapes":
        if case["num_classes"] != 19:
            raise ValueError("class_weights=cityscapes needs 19 classes")
        return torch.tensor(gl.CITYSCAPES_WEIGHTS, dtype=dtype)
    return None


def ohem_margin(logits, target, thresh, min_kept):
    """The smallest distance of a valid pixel's GT-prob from the threshold get_mask uses (and of the
    min_kept-th smallest GT-prob from thresh and from the next one up, where they decide the threshold)."""
    with torch.no_grad():
        n, c, h, w = logits.shape
        tgt = target.reshape(-1)
        valid = tgt.ne(-1)
        prob = F.softmax(logits, dim=1).transpose(0, 1).reshape(c, -1)
        prob = prob.masked_fill(~valid, 1)
        mp = prob[tgt * valid.long(), torch.arange(len(tgt))]
        srt = mp.sort().values
        threshold = thresh
        margins = []
        if min_kept > 0:
            k = min(len(srt), min_kept) - 1
            margins.append(abs(float(srt[k]) - thresh))
            if float(srt[k]) > thresh:
                threshold = float(srt[k])
                if k + 1 < len(srt):
                    margins.append(float(srt[k + 1] - srt[k]))
        d = (mp[valid] - threshold).abs()
        if min_kept > 0 and threshold != thresh:  # the min_kept-th pixel itself sits on the threshold
            d = d[d > 0]
        if d.numel():
            margins.append(float(d.min()))
        return min(margins) if margins else float("inf")


def task_loss(case, it, s, t, label, weight, mistake, margins):
    aux_w = 1.0 if mistake == "aux_weight_1" else case["aux_weight"]
    s_main = s[0]
    s_aux = s[1] if len(s) == 3 else None
    if case["rdd"] == "none":
        task = gl.seg_ce(s_main, label)
        if s_aux is not None:
            task = task + aux_w * gl.seg_ce(s_aux, label)
        return task
    t_main, t_aux = t[0], t[1]
    tfe = it <= case["warmup_iters"] if mistake == "switch_late" else it < case["warmup_iters"]
    if tfe:
        rd = gl.tfe_map(t_main, t_aux, label.shape[1:], "aux_main")
        per_pixel = gl.seg_ce(s_main, label, reduction="none")
        if s_aux is not None:
            per_pixel = per_pixel + aux_w * gl.seg_ce(s_aux, label, reduction="none")
        return (rd * per_pixel).mean()
    args = (case["tse_mode"], case["thresh"], case["min_kept"], weight)
    pairs = [(s_main, t_main)] + ([(s_aux, t_aux)] if s_aux is not None else [])
    if margins is not None:
        size = label.shape[1:]
        for sl, tl in pairs:
            margins["ohem_student"] = min(margins["ohem_student"],
                                          ohem_margin(gl.up(sl.detach(), size), label, case["thresh"], case["min_kept"]))
            margins["ohem_teacher"] = min(margins["ohem_teacher"],
                                          ohem_margin(gl.up(tl, size), label, case["thresh"], case["min_kept"]))
    task = gl.tse_pair(s_main, t_main, label, *args)
    if s_aux is not None:
        task = task + aux_w * gl.tse_pair(s_aux, t_aux, label, *args)
    return task


def kink_hooks(model, margins):
    """Forward pre-hooks recording margin.relu and margin.maxpool (module doc)."""
    handles = []

    def relu_hook(m, inputs):
        x = inputs[0].detach()
        d = x.abs().min()
        if isinstance(m, nn.ReLU6):
            d = torch.minimum(d, (6 - x).abs().min())
        margins["relu"] = min(margins["relu"], float(d))

    def pool_hook(m, inputs):
        x = inputs[0].detach()
        xp = F.pad(x, (1, 1, 1, 1), value=float("-inf"))
        win = xp.unfold(2, 3, 2).unfold(3, 3, 2).reshape(*x.shape[:2], -1, 9)
        top = win.topk(2, dim=-1).values
        gap = top[..., 0] - top[..., 1]
        spread = (x.amax(dim=(2, 3)) - x.amin(dim=(2, 3))).unsqueeze(-1)
        live = spread > 0  # a channel that is off is all exact zeros: its ties route no gradient
        if bool(live.any()):
            rel = (gap / spread.clamp_min(1e-30))[live.expand_as(gap)]
            margins["maxpool"] = min(margins["maxpool"], float(rel.min()))

    for m in model.modules():
        if isinstance(m, (nn.ReLU, nn.ReLU6)):
            handles.append(m.register_forward_pre_hook(relu_hook))
        if isinstance(m, nn.MaxPool2d):
            handles.append(m.register_forward_pre_hook(pool_hook))
    return handles


@contextlib.contextmanager
def variant_context(variant):
    threads = torch.get_num_threads()
    try:
        if variant == "threads2":
            torch.set_num_threads(2)
        else:
            torch.set_num_threads(1)
        if variant == "no_onednn":
            with torch.backends.mkldnn.flags(enabled=False):
                yield
        else:
            yield
    finally:
        torch.set_num_threads(threads)


def run_loop(case, state_s, state_t, batches, dtype, variant="default", mistake=None, margins=None):
    """The reference loop from the initial states; returns (student state_dict, momentum by name, losses)."""
    student = tm.build_model(case["student"], num_classes=case["num_classes"], width=case["student_width"],
                             dropout=False)
    student.load_state_dict(state_s)
    student = student.to(dtype)
    teacher = None
    if case["teacher"] != "none":
        teacher = tm.build_model(case["teacher"], num_classes=case["num_classes"], width=case["teacher_width"],
                                 dropout=False)
        teacher.load_state_dict(state_t)
        teacher = teacher.to(dtype)
        teacher.train() if mistake == "teacher_train_mode" else teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    if mistake == "bn_momentum_0.01":
        for m in student.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.01
    fmt = torch.channels_last if variant == "channels_last" else torch.contiguous_format
    student = student.to(memory_format=fmt)
    if teacher is not None:
        teacher = teacher.to(memory_format=fmt)
    student.train()
    wd = case["weight_decay"]
    opt = torch.optim.SGD(student.parameters(), lr=case["lr"], momentum=case["momentum"],
                          weight_decay=0.0 if mistake == "wd_outside_momentum" else wd)
    weight = class_weight_tensor(case, dtype)
    handles = kink_hooks(student, margins) if margins is not None else []
    losses = []
    with variant_context(variant):
        for it, (x, y) in enumerate(batches, 1):
            lr = poly_lr(case["lr"], it, case["max_iterations"], case["power"], mistake == "lr_off_by_one")
            for g in opt.param_groups:
                g["lr"] = lr
            x = torch.from_numpy(x).to(dtype).contiguous(memory_format=fmt)
            label = torch.from_numpy(y).long()
            s = student(x)
            t = None
            if teacher is not None:
                with torch.no_grad():
                    t = teacher(x)
            task = task_loss(case, it, s, t, label, weight, mistake, margins)
            kd = torch.zeros((), dtype=dtype)
            if case["kd_weight"] > 0:
                kd = gl.kd_loss(s[0], t[0], case["kd_temperature"])
                if mistake == "kd_on_aux":
                    kd = kd + gl.kd_loss(s[1], t[1], case["kd_temperature"])
            loss = task + case["kd_weight"] * kd
            opt.zero_grad()
            loss.backward()
            before = [p.detach().clone() for p in student.parameters()] if mistake == "wd_outside_momentum" else None
            opt.step()
            if before is not None:
                with torch.no_grad():
                    for p, w in zip(student.parameters(), before):
                        p.sub_(lr * wd * w)
            losses.append((float(task), float(kd)))
    for h in handles:
        h.remove()
    state = {k: v.detach().clone().contiguous() for k, v in student.state_dict().items()}
    names = {id(p): n for n, p in student.named_parameters()}
    momentum = {names[id(p)]: opt.state[p]["momentum_buffer"].detach().clone().contiguous()
                for p in student.parameters()}
    return state, momentum, losses


# ------------------------------------------------------------------------------------------------
# Outputs and their errors (the runner's measure).
# ------------------------------------------------------------------------------------------------
def outputs_of(state, momentum, losses):
    """{output name: (group, float64 numpy)}; groups: param, bn, count, momentum, loss."""
    out = {}
    param_names = set(momentum)
    for k, v in state.items():
        group = "param" if k in param_names else "count" if v.dtype == torch.int64 else "bn"
        out["student." + k] = (group, v.double().numpy() if group != "count" else v.numpy())
    for k, v in momentum.items():
        out["momentum." + k] = ("momentum", v.double().numpy())
    for i, (task, kd) in enumerate(losses, 1):
        out["loss.task.%d" % i] = ("loss", np.array([task]))
        out["loss.kd.%d" % i] = ("loss", np.array([kd]))
    return out


def group_norms(outs):
    norms = {}
    for group, v in outs.values():
        if group in ("param", "bn", "momentum"):
            norms[group] = norms.get(group, 0.0) + float(np.sum(np.asarray(v, dtype=np.float64) ** 2))
    return {g: n ** 0.5 for g, n in norms.items()}


def golden_error(got, want, group_norm):
    """‖got − want‖ / max(‖want‖, FLOOR·‖group‖) (the absolute ‖got − want‖ when both are 0); counters: 0 or inf."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    diff = float(np.sqrt(np.sum((got - want) ** 2)))
    if not np.isfinite(diff):
        return float("inf")
    den = max(float(np.sqrt(np.sum(want ** 2))), FLOOR * group_norm)
    return diff / den if den > 0 else diff


def errors_against(outs, ref, norms):
    errs = {}
    for name, (group, want) in ref.items():
        got = outs[name][1]
        if group == "count":
            errs[name] = 0.0 if np.array_equal(got, want) else float("inf")
        else:
            errs[name] = golden_error(got, want, norms.get(group, 0.0))
    return errs


def worst_by_group(errs, ref):
    worst = {}
    for name, e in errs.items():
        group = ref[name][0]
        limit = LIMITS.get(group)
        if limit is None:
            if e != 0:
                worst.setdefault("count", (float("inf"), name))
            continue
        r = e / limit
        if group not in worst or r > worst[group][0]:
            worst[group] = (r, name)
    return worst


# ------------------------------------------------------------------------------------------------
# Making a case.
# ------------------------------------------------------------------------------------------------
VARIANTS = ["default", "channels_last", "no_onednn", "threads2"]


def random_images(gen, n, h, w):
    """(n, 3, h, w) f32 'normalised images': pixel noise + a smooth field + a per-image, per-channel offset.
    Images that differ in their global statistics keep the image-pooling branch's BN (4 values per channel at
    batch 4) well conditioned; with noise alone the 4 pooled values are nearly equal and float32's error in
    x − mean is ~1e-4 there."""
    noise = torch.rand(n, 3, h, w, generator=gen, dtype=torch.float64) * 2 - 1
    contrast = 0.5 + torch.rand(n, 1, 1, 1, generator=gen, dtype=torch.float64)
    offset = torch.rand(n, 3, 1, 1, generator=gen, dtype=torch.float64) * 2 - 1
    return (contrast * noise + offset).float()


def make_inputs(case, seed):
    """Initial states and batches for one attempt."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n, h, w, k = case["batch"], case["height"], case["width"], case["steps"]
    images = [random_images(gen, n, h, w) for _ in range(k)]
    all_images = torch.cat(images).double()

    teacher, state_t = None, None
    if case["teacher"] != "none":
        teacher = tm.build_model(case["teacher"], num_classes=case["num_classes"], width=case["teacher_width"],
                                 dropout=False).double()
        with torch.no_grad():
            for m in teacher.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.copy_(1 + 0.25 * torch.randn(m.weight.shape, generator=gen))
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
            for m in teacher.modules():
                if isinstance(m, tm.BasicBlockV1b):
                    m.bn2.weight.mul_(0.1)
        calibrate_running_stats(teacher, [all_images])
        scale_logits(teacher, all_images, 3.0, train=False)  # a confident teacher: its OHEM masks are not all-hard
        state_t = {k2: (v.float() if v.is_floating_point() else v).clone() for k2, v in teacher.state_dict().items()}

    student = tm.build_model(case["student"], num_classes=case["num_classes"], width=case["student_width"],
                             dropout=False).double()
    shape_student(student, all_images, n, gen)
    scale_logits(student, all_images, 1.0, train=True)
    calibrate_running_stats(student, [all_images])
    state_s = {k2: (v.float() if v.is_floating_point() else v).clone() for k2, v in student.state_dict().items()}

    # Labels: mostly the teacher's answer (a teacher that is right on most pixels, as after training), some
    # random classes, some ignored; without a teacher, the student's own argmax plays that part.
    c = case["num_classes"]
    batches = []
    ref_model = teacher if teacher is not None else student
    ref_model.eval()
    for x in images:
        with torch.no_grad():
            logits = ref_model(x.double())[0]
        guess = gl.up(logits, (h, w)).argmax(1)
        rnd = torch.randint(0, c, (n, h, w), generator=gen)
        label = torch.where(torch.rand(n, h, w, generator=gen) < case["teacher_agree"], guess, rnd)
        label[torch.rand(n, h, w, generator=gen) < case["ignore"]] = -1
        if teacher is not None:  # keep the teacher's GT-probs (both heads) off the OHEM threshold
            with torch.no_grad():
                outs = teacher(x.double())
            valid = label.ne(-1)
            idx = (label * valid.long()).unsqueeze(1)
            for logits in outs[:-1]:
                p = F.softmax(gl.up(logits, (h, w)), dim=1).gather(1, idx).squeeze(1)
                label[valid & ((p - case["thresh"]).abs() < TEACHER_LABEL_MARGIN)] = -1
        batches.append((x.numpy(), label.int().numpy()))
    return state_s, state_t, batches


def to_dtype_state(state, dtype):
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}


def make_case(name, seed, perturb=(), report=False, max_attempts=20):
    case = dict(DEFAULTS)
    case.update(CASES[name])
    for attempt in range(max_attempts):
        s = seed * 1000 + attempt
        state_s, state_t, batches = make_inputs(case, s)
        margins = {"relu": float("inf"), "maxpool": float("inf"), "ohem_student": float("inf"),
                   "ohem_teacher": float("inf")}
        st64, mom64, loss64 = run_loop(case, to_dtype_state(state_s, torch.float64),
                                       to_dtype_state(state_t, torch.float64) if state_t else None, batches,
                                       torch.float64, margins=margins)
        ok_margins = all(margins[k] >= v for k, v in MARGINS.items())
        if not ok_margins and not report:
            print("%s: attempt %d rejected (margins %s; needed %s)" % (
                name, attempt, {k: "%.2g" % v for k, v in margins.items()}, MARGINS), file=sys.stderr)
            continue
        ref = outputs_of(st64, mom64, loss64)
        norms = group_norms(ref)
        envelope = {k: 0.0 for k in ref}
        variant_worst = {}
        for v in VARIANTS:
            st32, mom32, loss32 = run_loop(case, state_s, state_t, batches, torch.float32, variant=v)
            errs = errors_against(outputs_of(st32, mom32, loss32), ref, norms)
            for k, e in errs.items():
                envelope[k] = max(envelope[k], e)
            variant_worst[v] = worst_by_group(errs, ref)
        ok_f32 = all(w[0] <= ACCEPT for vw in variant_worst.values() for w in vw.values())
        if report:
            print("%s attempt %d (seed %d): margins %s" % (name, attempt, s, {k: "%.3g" % v for k, v in margins.items()}))
            for v, vw in variant_worst.items():
                print("  f32 %-14s %s" % (v, "  ".join("%s %.3g (%s)" % (g, r, n) for g, (r, n) in sorted(vw.items()))))
        if ok_margins and ok_f32:
            break
        print("%s: attempt %d rejected (margins %s, f32 within %g of the limits: %s)" % (
            name, attempt, {k: "%.2g" % v for k, v in margins.items()}, ACCEPT, ok_f32), file=sys.stderr)
    else:
        raise RuntimeError("%s: no kink-free attempt in %d seeds" % (name, max_attempts))

    tensors = {}
    for k, v in state_s.items():
        tensors["golden.student." + k] = v.numpy()
    if state_t:
        for k, v in state_t.items():
            tensors["golden.teacher." + k] = v.numpy()
    for i, (x, y) in enumerate(batches, 1):
        tensors["golden.batch.%d.image" % i] = x
        tensors["golden.batch.%d.label" % i] = y
    expected = {}
    for k, (group, v) in ref.items():
        if group == "loss":
            expected["golden.expected." + k] = np.asarray(v, dtype=np.float64)
        elif group == "count":
            expected["golden.expected." + k] = v
        else:
            expected["golden.expected." + k] = v.astype(np.float32)
    tensors.update(expected)
    for k, e in envelope.items():
        tensors["golden.f32_err." + k] = np.array([e], dtype=np.float64)
    meta = {"kind": "train_steps", "case": name, "dropout": "0"}
    for key in ("student", "student_width", "teacher", "teacher_width", "num_classes", "steps", "lr", "momentum",
                "weight_decay", "power", "max_iterations", "warmup_iters", "aux_weight", "kd_weight",
                "kd_temperature", "rdd", "tse_mode", "thresh", "min_kept", "class_weights"):
        meta[key] = repr(case[key]) if isinstance(case[key], float) else str(case[key])
    for k, v in margins.items():
        meta["margin." + k] = "%.3g" % v
    meta["seed"] = str(s)

    perturbed = {}
    for mistake in perturb:
        if not mistake_applies(mistake, case):
            continue
        stp, momp, lossp = run_loop(case, to_dtype_state(state_s, torch.float64),
                                    to_dtype_state(state_t, torch.float64) if state_t else None, batches,
                                    torch.float64, mistake=mistake)
        outs = outputs_of(stp, momp, lossp)
        if report:
            worst = worst_by_group(errors_against(outs, ref, norms), ref)
            print("  mistake %-20s %s" % (mistake, "  ".join("%s %.3g (%s)" % (g, r, n) for g, (r, n) in sorted(worst.items()))))
        pt = {k: v for k, v in tensors.items() if not k.startswith("golden.expected.") and not k.startswith("golden.f32_err.")}
        for k, (group, v) in outs.items():
            pt["golden.expected." + k] = (np.asarray(v, dtype=np.float64) if group == "loss" else
                                          v if group == "count" else v.astype(np.float32))
        pm = dict(meta)
        pm["perturbed"] = mistake
        perturbed[mistake] = (pt, pm)
    return tensors, meta, perturbed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--cases", default="all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--perturb", default="", help="all or a comma-separated list of " + ", ".join(MISTAKES))
    ap.add_argument("--perturb-cases", default="all", help="the cases that get perturbed copies")
    ap.add_argument("--perturbed-dir", default=None)
    ap.add_argument("--report", action="store_true")
    a = ap.parse_args()
    names = list(CASES) if a.cases == "all" else a.cases.split(",")
    for n in names:
        if n not in CASES:
            ap.error("unknown case %s (known: %s)" % (n, ", ".join(CASES)))
    perturb = MISTAKES if a.perturb == "all" else [m for m in a.perturb.split(",") if m]
    for m in perturb:
        if m not in MISTAKES:
            ap.error("unknown mistake %s (known: %s)" % (m, ", ".join(MISTAKES)))
    os.makedirs(a.out_dir, exist_ok=True)
    pdir = a.perturbed_dir or os.path.join(a.out_dir, "perturbed")
    if perturb:
        os.makedirs(pdir, exist_ok=True)
    torch.set_num_threads(1)
    for n in names:
        mine = perturb if a.perturb_cases == "all" or n in a.perturb_cases.split(",") else []
        tensors, meta, perturbed = make_case(n, a.seed, mine, a.report)
        path = os.path.join(a.out_dir, "train_%s.safetensors" % n)
        st.save(path, tensors, meta)
        print("wrote", path, flush=True)
        for mistake, (pt, pm) in perturbed.items():
            p = os.path.join(pdir, "train_%s__%s.safetensors" % (n, mistake))
            st.save(p, pt, pm)
            print("wrote", p, flush=True)


if __name__ == "__main__":
    main()
