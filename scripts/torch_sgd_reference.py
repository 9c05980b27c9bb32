#!/usr/bin/env python3
"""PyTorch reference for rdd's fused SGD: reads a JSON case, runs torch.optim.SGD, prints JSON.

Input (argv[1]): {"w": [...], "grads": [[...], ...] (one list per step), "lrs": [...],
                  "momentum": m, "weight_decay": wd, "nesterov": bool}
Output (stdout): {"w": [...], "momentum_buffer": [...]}
"""
import json
import sys

import torch


def main():
    with open(sys.argv[1]) as f:
        case = json.load(f)
    w = torch.nn.Parameter(torch.tensor(case["w"], dtype=torch.float32))
    opt = torch.optim.SGD([w], lr=case["lrs"][0], momentum=case["momentum"],
                          weight_decay=case["weight_decay"], nesterov=case["nesterov"])
    for grad, lr in zip(case["grads"], case["lrs"]):
        for group in opt.param_groups:
            group["lr"] = lr
        w.grad = torch.tensor(grad, dtype=torch.float32)
        opt.step()
    buf = opt.state[w]["momentum_buffer"]
    print(json.dumps({"w": w.detach().tolist(), "momentum_buffer": buf.tolist()}))


if __name__ == "__main__":
    main()
