"""Write golden cases for rdd's models from the PyTorch transcription (scripts/torch_models.py).

    /usr/bin/python3 scripts/make_golden_models.py OUT_DIR [--models all|name,name] [--modes eval,train]
        [--width 0.125] [--num-classes 5] [--input 2x3x40x48] [--seed 0]

One safetensors file per (model, mode), `<model>_w<width>_<mode>.safetensors`, holding
  - the model's weights and buffers under their state_dict names (num_batches_tracked as int64), as the
    model is before the forward;
  - golden.input (N, 3, H, W) f32;
  - golden.expected.main, golden.expected.aux (ResNet models), golden.expected.feature;
  - training mode only: golden.grad.main, golden.grad.aux, golden.grad.feature (upstream gradients of
    loss = Σ main·grad.main + Σ aux·grad.aux + Σ feature·grad.feature), golden.expected.grad.<param>
    for every parameter, and golden.expected.buffer.<name> (running statistics after the step);
  - golden.f32_err.<output> ((1,) f64) for every output above (main, aux, feature, grad.<param>,
    buffer.<name>): the reference's own float32 error envelope, the largest error of four float32 runs of
    the same model in PyTorch (default kernels, channels_last, oneDNN off, two threads) and, in training
    mode, of the float64 run whose backward takes every near-kink branch the other way (a ReLU input within
    1e-6 of 0, a max-pool near-tie: branches float32 may take either way), against the float64 expected
    values, measured as rdd's runner measures its own (models::golden_error: gradients against the whole
    gradient's norm where their own is ~0);
and metadata kind=model, model, num_classes, width, mode, near_kinks.relu, near_kinks.maxpool (training
mode: how many such branches the case has).

Weights: the reference initialisation, then BN affine parameters perturbed and running statistics
calibrated on two random batches (so eval-mode BN is not the identity). The expected values are computed
in float64 from the float32-rounded weights and input, then stored as float32. Training-mode cases run
with dropout disabled (BN uses batch statistics).
"""
import argparse
import contextlib
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np as st  # noqa: E402
import torch_models as tm  # noqa: E402


def make_case(name, mode, width, num_classes, shape, seed):
    torch.manual_seed(seed)
    model = tm.build_model(name, num_classes=num_classes, width=width, dropout=(mode == "eval"))
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(1 + 0.25 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
        # Residual branches start small (as zero_init_residual would, but not zero): a deep stack of
        # training-mode BN blocks at full gain has exploding gradients, so float32 itself (PyTorch's
        # too) lands percent-level away from float64 and the comparison would measure conditioning,
        # not the implementation.
        for m in model.modules():
            last_bn = None
            if isinstance(m, (tm.BasicBlockV1b, tm.BottleneckV1b)):
                last_bn = m.bn3 if isinstance(m, tm.BottleneckV1b) else m.bn2
            elif isinstance(m, tm.InvertedResidual) and m.use_res_connect:
                last_bn = m.conv[-1]
            if last_bn is not None:
                last_bn.weight.mul_(0.1)
        # Calibrate the running statistics: a cumulative average over two random batches.
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None
        model.train()
        for _ in range(2):
            model(torch.randn(shape, generator=gen))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 0.1
        for p in model.parameters():  # weights exactly representable in f32
            p.copy_(p.float())
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    tensors = {k: (v.numpy() if v.dtype == torch.int64 else v.float().numpy()) for k, v in state.items()}

    x = torch.rand(shape, generator=gen) * 2 - 1
    tensors["golden.input"] = x.numpy()
    upstream = {}  # training mode: the upstream gradients, drawn in float64 and rounded to float32
    ref = run_model(name, num_classes, width, mode, state, x, torch.float64, upstream, gen)
    for k, v in upstream.items():
        tensors["golden.grad." + k] = v.float().numpy()
    # Structurally zero gradients (e.g. the bias of a BN whose output reaches the loss only through
    # another training-mode BN, which removes per-channel constants) come out at float64 rounding
    # level; they are stored as exact zeros (the runner measures every gradient against the scale of the
    # whole gradient where its own is ~0: golden_error's floor).
    total = group_norm([v for k, v in ref.items() if k.startswith("grad.")])
    expected = {}
    for k, v in ref.items():
        if k.startswith("grad.") and float(np.sqrt(np.sum(v ** 2))) <= 1e-11 * total:
            v = np.zeros_like(v)
        expected[k] = v if v.dtype == np.int64 else v.astype(np.float32)
    for k, v in expected.items():
        tensors["golden.expected." + k] = v
    # The reference's own float32 envelope: float32 runs of the same model (default kernels, channels_last,
    # oneDNN off, two threads) and, in training mode, the float64 run with every near-kink branch taken the
    # other way (KINK_DELTA), each output's error against the float64 expected values measured as the
    # runner measures rdd's.
    grads = [v for k, v in expected.items() if k.startswith("grad.")]
    total = group_norm(grads)
    envelope = {}
    kinks = {}
    for variant in F32_VARIANTS + (["kink_flip"] if mode == "train" else []):
        dtype = torch.float64 if variant == "kink_flip" else torch.float32
        got = run_model(name, num_classes, width, mode, state, x, dtype, upstream, None, variant, kinks)
        for k, want in expected.items():
            e = golden_error(got[k], want, total if k.startswith("grad.") else 0.0)
            envelope[k] = max(envelope.get(k, 0.0), e)
    for k, e in envelope.items():
        tensors["golden.f32_err." + k] = np.array([e], dtype=np.float64)
    meta = {"kind": "model", "model": name, "num_classes": str(num_classes), "mode": mode,
            "width": repr(float(width))}
    for k, v in kinks.items():
        meta["near_kinks." + k] = str(v)
    return tensors, meta


F32_VARIANTS = ["default", "channels_last", "no_onednn", "threads2"]
# A ReLU/ReLU6 input within KINK_DELTA of 0 (or 6), or a max-pool window whose winner leads its runner-up
# by less than KINK_DELTA, is a branch float32 may take either way (float32's own error on these
# activations, measured against float64: ~1e-7 to 1e-6 typically, up to 4e-5 on the largest): the
# kink_flip variant takes all of them the other way in the backward (float64, the forward unchanged).
KINK_DELTA = 1e-6


class _FlipRelu(torch.autograd.Function):
    """ReLU (hi = inf) or ReLU6 (hi = 6) whose backward mask is flipped within delta of a kink."""

    @staticmethod
    def forward(ctx, x, hi, delta):
        ctx.save_for_backward(x)
        ctx.hi, ctx.delta = hi, delta
        return x.clamp(0, hi)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        mask = (x > 0) & (x < ctx.hi)
        near = (x.abs() < ctx.delta) | ((x - ctx.hi).abs() < ctx.delta)
        return g * (mask ^ near).to(g.dtype), None, None


class _FlipMaxPool(torch.autograd.Function):
    """MaxPool2d(3, 2, 1) whose backward routes a window's gradient to the runner-up where it is within
    delta of the winner."""

    @staticmethod
    def forward(ctx, x, delta):
        ctx.save_for_backward(x)
        ctx.delta = delta
        return F.max_pool2d(x, 3, 2, 1)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        n, c, h, w = x.shape
        win = F.pad(x, (1, 1, 1, 1), value=float("-inf")).unfold(2, 3, 2).unfold(3, 3, 2)  # (n, c, oh, ow, 3, 3)
        oh, ow = win.shape[2], win.shape[3]
        top = win.reshape(n, c, oh, ow, 9).topk(2, dim=-1)
        near = (top.values[..., 0] - top.values[..., 1]) < ctx.delta
        idx = torch.where(near, top.indices[..., 1], top.indices[..., 0])
        onehot = F.one_hot(idx, 9).to(g.dtype) * g.unsqueeze(-1)  # (n, c, oh, ow, 9)
        cols = onehot.reshape(n, c, oh, ow, 3, 3).permute(0, 1, 4, 5, 2, 3).reshape(n, c * 9, oh * ow)
        dx = F.fold(cols, (h + 2, w + 2), 3, stride=2)[:, :, 1:-1, 1:-1]
        return dx, None


def kink_flip(model, counts):
    """Hooks that make `model`'s ReLUs and max pools _FlipRelu/_FlipMaxPool, counting the near-kink values
    into counts['relu'] and counts['maxpool']."""
    def relu_hook(m, inputs, out):
        x = inputs[0]
        hi = 6.0 if isinstance(m, torch.nn.ReLU6) else float("inf")
        near = (x.abs() < KINK_DELTA) | ((x - hi).abs() < KINK_DELTA)
        counts["relu"] = counts.get("relu", 0) + int(near.sum())
        return _FlipRelu.apply(x, hi, KINK_DELTA)

    def pool_hook(m, inputs, out):
        if (m.kernel_size, m.stride, m.padding) not in ((3, 2, 1), ((3, 3), (2, 2), (1, 1))):
            raise ValueError("kink_flip handles MaxPool2d(3, 2, 1) only")
        x = inputs[0]
        win = F.pad(x, (1, 1, 1, 1), value=float("-inf")).unfold(2, 3, 2).unfold(3, 3, 2)
        top = win.reshape(*win.shape[:4], 9).topk(2, dim=-1).values
        live = top[..., 0] > 0  # ties among a ReLU's zeros route gradient that its backward drops anyway
        counts["maxpool"] = counts.get("maxpool", 0) + int(((top[..., 0] - top[..., 1] < KINK_DELTA) & live).sum())
        return _FlipMaxPool.apply(x, KINK_DELTA)

    for m in model.modules():
        if isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6)):
            m.register_forward_hook(relu_hook)
        if isinstance(m, torch.nn.MaxPool2d):
            m.register_forward_hook(pool_hook)
FLOOR = 1e-4  # models/golden.h kGoldenFloor


def group_norm(arrays):
    return float(np.sqrt(sum(float(np.sum(np.asarray(a, dtype=np.float64) ** 2)) for a in arrays)))


def golden_error(got, want, group):
    """models::golden_error: ‖got − want‖ / max(‖want‖, FLOOR·group) (absolute when that is 0)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    diff = float(np.sqrt(np.sum((got - want) ** 2)))
    if not np.isfinite(diff):
        return float("inf")
    den = max(float(np.sqrt(np.sum(want ** 2))), FLOOR * group)
    return diff / den if den > 0 else diff


@contextlib.contextmanager
def f32_variant(variant):
    threads = torch.get_num_threads()
    torch.set_num_threads(2 if variant == "threads2" else 1)
    try:
        if variant == "no_onednn":
            with torch.backends.mkldnn.flags(enabled=False):
                yield
        else:
            yield
    finally:
        torch.set_num_threads(threads)


def run_model(name, num_classes, width, mode, state, x, dtype, upstream, gen, variant="default", kinks=None):
    """Outputs of one pass of the model from `state` in `dtype`: main/aux/feature; training mode also
    grad.<param> (of Σ out·upstream gradient) and buffer.<name> after the step. With `gen`, the upstream
    gradients are drawn into `upstream` (float64 values rounded to float32); without, they are read."""
    model = tm.build_model(name, num_classes=num_classes, width=width, dropout=(mode == "eval"))
    model.load_state_dict(state)
    model = model.to(dtype)
    fmt = torch.channels_last if variant == "channels_last" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    if variant == "kink_flip":
        kink_flip(model, kinks)
    xd = x.to(dtype).contiguous(memory_format=fmt)
    out = {}
    with f32_variant(variant):
        if mode == "eval":
            model.eval()
            with torch.no_grad():
                outs = model(xd)
        else:
            model.train()
            outs = model(xd)
        main, feature = outs[0], outs[-1]
        aux = outs[1] if len(outs) == 3 else None
        out["main"] = main.detach().double().numpy()
        out["feature"] = feature.detach().double().numpy()
        if aux is not None:
            out["aux"] = aux.detach().double().numpy()
        if mode == "train":
            if gen is not None:
                upstream["main"] = torch.randn(main.shape, generator=gen).double().float()
                upstream["feature"] = (0.5 * torch.randn(feature.shape, generator=gen).double()).float()
                if aux is not None:
                    upstream["aux"] = torch.randn(aux.shape, generator=gen).double().float()
            loss = (main * upstream["main"].to(dtype)).sum() + (feature * upstream["feature"].to(dtype)).sum()
            if aux is not None:
                loss = loss + (aux * upstream["aux"].to(dtype)).sum()
            loss.backward()
            for pname, p in model.named_parameters():
                out["grad." + pname] = p.grad.detach().double().numpy()
            for bname, b in model.named_buffers():
                out["buffer." + bname] = b.numpy() if b.dtype == torch.int64 else b.detach().double().numpy()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--models", default="all")
    ap.add_argument("--modes", default="eval,train")
    ap.add_argument("--width", type=float, default=0.125)
    ap.add_argument("--num-classes", type=int, default=5)
    ap.add_argument("--input", default="2x3x40x48")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    names = tm.MODEL_NAMES if a.models == "all" else a.models.split(",")
    shape = tuple(int(v) for v in a.input.split("x"))
    if len(shape) != 4 or shape[1] != 3:
        ap.error("--input must be Nx3xHxW")
    os.makedirs(a.out_dir, exist_ok=True)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    for i, name in enumerate(names):
        for mode in a.modes.split(","):
            if mode not in ("eval", "train"):
                ap.error("unknown mode " + mode)
            tensors, meta = make_case(name, mode, a.width, a.num_classes, shape, a.seed + 17 * i)
            path = os.path.join(a.out_dir, "%s_w%g_%s.safetensors" % (name, a.width, mode))
            st.save(path, tensors, meta)
            print("wrote", path, flush=True)


if __name__ == "__main__":
    main()
