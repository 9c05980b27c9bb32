#!/usr/bin/python3
"""PyTorch reference for rdd's Conv2d and BatchNorm2d (layers/conv2d.h, layers/batchnorm2d.h).

Usage: torch_parity_convbn.py IN.safetensors OUT.safetensors

IN holds the cases the C++ tests wrote. Each case is a metadata entry "<case>" -> config and tensors
"<case>.<name>" (all float32):

  "conv STRIDE PADDING DILATION GROUPS"   tensors x, w, [b], r
      -> y = F.conv2d(x, w, b, ...), and by autograd of sum(y * r): dx, dw, [db]
  "bn train|eval MOMENTUM EPS"            tensors x, weight, bias, running_mean, running_var, r
      -> nn.BatchNorm2d in that mode: y, dx, dweight, dbias (autograd of sum(y * r)), and the module's
         running_mean, running_var and num_batches_tracked after the forward

OUT holds "<case>.<output>" for each, computed by PyTorch in float32 on the CPU.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np as st  # noqa: E402


def tensor(tensors, case, name, grad=False):
    t = torch.from_numpy(tensors[case + "." + name].astype(np.float32))
    return t.requires_grad_(True) if grad else t


def run_conv(tensors, case, args, out):
    stride, padding, dilation, groups = (int(v) for v in args)
    x = tensor(tensors, case, "x", True)
    w = tensor(tensors, case, "w", True)
    b = tensor(tensors, case, "b", True) if case + ".b" in tensors else None
    y = F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    (y * tensor(tensors, case, "r")).sum().backward()
    out[case + ".y"] = y.detach().numpy()
    out[case + ".dx"] = x.grad.numpy()
    out[case + ".dw"] = w.grad.numpy()
    if b is not None:
        out[case + ".db"] = b.grad.numpy()


def run_bn(tensors, case, args, out):
    mode, momentum, eps = args[0], float(args[1]), float(args[2])
    x = tensor(tensors, case, "x", True)
    bn = torch.nn.BatchNorm2d(x.shape[1], eps=eps, momentum=momentum)
    with torch.no_grad():
        bn.weight.copy_(tensor(tensors, case, "weight"))
        bn.bias.copy_(tensor(tensors, case, "bias"))
        bn.running_mean.copy_(tensor(tensors, case, "running_mean"))
        bn.running_var.copy_(tensor(tensors, case, "running_var"))
    bn.train(mode == "train")
    y = bn(x)
    (y * tensor(tensors, case, "r")).sum().backward()
    out[case + ".y"] = y.detach().numpy()
    out[case + ".dx"] = x.grad.numpy()
    out[case + ".dweight"] = bn.weight.grad.numpy()
    out[case + ".dbias"] = bn.bias.grad.numpy()
    out[case + ".running_mean"] = bn.running_mean.numpy()
    out[case + ".running_var"] = bn.running_var.numpy()
    out[case + ".num_batches_tracked"] = np.array(bn.num_batches_tracked.item(), dtype=np.int64)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    tensors, metadata = st.load(sys.argv[1])
    out = {}
    for case, config in sorted(metadata.items()):
        kind, *args = config.split()
        if kind == "conv":
            run_conv(tensors, case, args, out)
        elif kind == "bn":
            run_bn(tensors, case, args, out)
        else:
            raise ValueError("case %r: unknown kind %r" % (case, kind))
    out = {k: np.ascontiguousarray(v) for k, v in out.items()}
    st.save(sys.argv[2], out)
    print("torch_parity_convbn: %d cases, torch %s" % (len(metadata), torch.__version__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
