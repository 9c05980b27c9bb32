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
and metadata kind=model, model, num_classes, width, mode.

Weights: the reference initialisation, then BN affine parameters perturbed and running statistics
calibrated on two random batches (so eval-mode BN is not the identity). The expected values are computed
in float64 from the float32-rounded weights and input, then stored as float32. Training-mode cases run
with dropout disabled (BN uses batch statistics).
"""
import argparse
import os
import sys

import torch

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
    model = model.double()
    xd = x.double()
    if mode == "eval":
        model.eval()
        with torch.no_grad():
            outs = model(xd)
    else:
        model.train()
        outs = model(xd)
    main, feature = outs[0], outs[-1]
    aux = outs[1] if len(outs) == 3 else None
    tensors["golden.expected.main"] = main.detach().float().numpy()
    tensors["golden.expected.feature"] = feature.detach().float().numpy()
    if aux is not None:
        tensors["golden.expected.aux"] = aux.detach().float().numpy()
    if mode == "train":
        gm = torch.randn(main.shape, generator=gen).double()
        gf = 0.5 * torch.randn(feature.shape, generator=gen).double()
        loss = (main * gm).sum() + (feature * gf).sum()
        tensors["golden.grad.main"] = gm.float().numpy()
        tensors["golden.grad.feature"] = gf.float().numpy()
        if aux is not None:
            ga = torch.randn(aux.shape, generator=gen).double()
            loss = loss + (aux * ga).sum()
            tensors["golden.grad.aux"] = ga.float().numpy()
        loss.backward()
        # Structurally zero gradients (e.g. the bias of a BN whose output reaches the loss only through
        # another training-mode BN, which removes per-channel constants) come out at float64 rounding
        # level; they are stored as exact zeros, which the runner compares against the scale of the
        # whole gradient instead of their own.
        total = sum(float(p.grad.norm()) ** 2 for p in model.parameters()) ** 0.5
        for pname, p in model.named_parameters():
            g = p.grad.float()
            if float(p.grad.norm()) <= 1e-11 * total:
                g = torch.zeros_like(g)
            tensors["golden.expected.grad." + pname] = g.numpy()
        for bname, b in model.named_buffers():
            tensors["golden.expected.buffer." + bname] = (b.numpy() if b.dtype == torch.int64
                                                          else b.float().numpy())
    meta = {"kind": "model", "model": name, "num_classes": str(num_classes), "mode": mode,
            "width": repr(float(width))}
    return tensors, meta


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
