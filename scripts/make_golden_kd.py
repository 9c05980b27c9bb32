#!/usr/bin/python3
"""Golden cases for rdd's comparison KD terms (kind=kd_term) from a PyTorch transcription of the CIRKD /
RDD release's losses/ (github.com/winycg/CIRKD, github.com/sunyueue/RDD) and DIST's segmentation loss
(github.com/hunto/DIST_KD).

    /usr/bin/python3 scripts/make_golden_kd.py OUT_DIR

Writes one safetensors file per case, `kd_<method>_<name>.safetensors`, holding
  - golden.student.<slot>, golden.teacher.<slot> for the slots the method reads (main | aux | feature):
    (N, C, h, w) f32; golden.label (N, H, W) int32, -1 = ignore;
  - golden.param.<name>: the method's learnable parameters and buffers under the reference module's own
    state_dict names (FitNet's and CWD's adapter `conv.weight`);
  - golden.expected.loss (1,) f64 for a method with one term, or golden.expected.loss.<term> for each of
    its terms (DSD: psd, csd; DIST with an aux weight: main, aux);
    golden.expected.grad.student.<slot> and golden.expected.grad.param.<name> (f32): the gradients of the
    plain sum of the method's unweighted terms (DIST: main + aux_weight * aux);
and metadata kind=kd_term, method=at|fitnet|cwd|skd|ifvd|dsd|dist (cwd: variant=logit|feature), slots
(comma-separated), case, and the hyper-parameters under the reference's argument names (cwd:
temperature; ifvd: num_classes; dsd: tau (CSD's softmax temperature); dist: beta, gamma, tau, aux_weight;
informational: the scripts' lambda).

Everything is evaluated in float64 from the float32 inputs; autograd gives the gradients. The
transcriptions follow the released modules' forward passes:
  - at: F.normalize(f.pow(2).mean(1).view(N, -1)); loss (a_S - a_T)^2 .mean()
  - fitnet: ((conv1x1(f_S) - f_T)^2).mean()
  - cwd: CriterionCWD(norm_type='channel', divergence='kl', temperature): the adapter when the channel
    counts differ; softmax over h*w of x/T per (n, c); KLDivLoss(reduction='sum') / (n * c) * T^2 with n, c
    read from the student's input (before the adapter)
  - skd: MaxPool2d(2, 2, ceil_mode=True), F.normalize(dim=1), bmm(F^T, F), mean of the squared difference
  - ifvd: labels nearest-resized to h x w; per class centre sum/(count + 1e-6); CosineSimilarity(dim=1);
    MSELoss. An ignored pixel's cosine (with its own feature) is taken as exactly 1 (the released code's
    is 1 up to rounding)
  - dsd: CriterionDoubleSimKD([aux, feature, main]): PSD with residual attention over the three pairs,
    CSD with AvgPool2d(2, 2, ceil_mode=True), softmax(x/tau) over positions, bmm(P, P^T)
  - dist: rows = pixels, softmax over classes at tau; 1 - mean pearson (inter) and the same over the
    transposed matrix (intra); tau^2 * (beta * inter + gamma * intra)
  - cirkd: CriterionMiniBatchCrossImagePair + StudentSegContrast (see cirkd_loss)
  - adv_g: utils/sagan.py's Discriminator (conv_dim from the metadata) and losses/adv.py's hinge losses
    (see adv_step): expected.loss.g, expected.loss.d, the student's gradient, the discriminator's
    gradients (of g + d) and its buffers after the three forwards (u, v, BN statistics)
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np as st  # noqa: E402


def normalize(x, dim=1):
    return F.normalize(x, p=2, dim=dim)


def attention_map(f):
    return normalize(f.pow(2).mean(1).view(f.size(0), -1))


def at_loss(s, t, label, params, meta):
    return {"": (attention_map(s["feature"]) - attention_map(t["feature"])).pow(2).mean()}


def fitnet_loss(s, t, label, params, meta):
    y = F.conv2d(s["feature"], params["conv.weight"])
    return {"": ((y - t["feature"]) ** 2).mean()}


def cwd_loss(s, t, label, params, meta):
    x_s = s["main"] if meta["variant"] == "logit" else s["feature"]
    x_t = t["main"] if meta["variant"] == "logit" else t["feature"]
    tau = float(meta["temperature"])
    n, c, h, w = x_s.shape  # read before the adapter, as the released module does
    if x_s.size(1) != x_t.size(1):
        x_s = F.conv2d(x_s, params["conv.weight"])
    norm_s = (x_s / tau).reshape(x_s.size(0), x_s.size(1), -1).softmax(-1)
    norm_t = (x_t / tau).reshape(x_t.size(0), x_t.size(1), -1).softmax(-1)
    loss = F.kl_div(norm_s.log(), norm_t, reduction="sum") / (n * c)
    return {"": loss * tau ** 2}


def skd_loss(s, t, label, params, meta):
    pool = torch.nn.MaxPool2d(2, 2, 0, ceil_mode=True)

    def sim(f):
        f = normalize(pool(f))
        f = f.reshape(f.size(0), f.size(1), -1)
        return torch.bmm(f.transpose(1, 2), f)

    return {"": ((sim(s["feature"]) - sim(t["feature"])) ** 2).mean()}


def ifvd_loss(s, t, label, params, meta):
    classes = int(meta["num_classes"])
    f_s, f_t = s["feature"], t["feature"]
    size = (f_s.shape[2], f_s.shape[3])
    tar = F.interpolate(label.unsqueeze(1).float(), size, mode="nearest")

    def cos_to_centre(f):
        tar_f = tar.expand(f.size())
        centre = f.clone()
        for i in range(classes):
            mask = (tar_f == i).double()
            c = ((mask * f).sum(-1).sum(-1) / (mask.sum(-1).sum(-1) + 1e-6)).unsqueeze(-1).unsqueeze(-1)
            centre = (1 - mask) * centre + mask * c
        cos = torch.nn.CosineSimilarity(dim=1)(f, centre)
        # A pixel without a class keeps its own feature as "centre": cos(f, f) = 1 up to rounding (1e-16)
        # in the released code; rdd (and this script) use the exact 1, with zero gradient.
        labelled = (tar[:, 0] >= 0) & (tar[:, 0] < classes)
        return torch.where(labelled, cos, torch.ones_like(cos))

    return {"": torch.nn.MSELoss()(cos_to_centre(f_s), cos_to_centre(f_t))}


def dsd_loss(s, t, label, params, meta):
    tau = float(meta["tau"])

    def residuals(xs):
        a = [attention_map(x) for x in xs]
        return [normalize(a[m] - a[n]) for n in range(len(a) - 1) for m in range(n + 1, len(a))]

    ra_s = residuals([s["aux"], s["feature"], s["main"]])
    ra_t = residuals([t["aux"], t["feature"], t["main"]])
    psd = sum((normalize(a) - normalize(b)).pow(2).mean() for a, b in zip(ra_s, ra_t)) / len(ra_s)
    pool = torch.nn.AvgPool2d(2, 2, 0, ceil_mode=True)

    def csim(x):
        x = pool(x)
        x = F.softmax(x.reshape(x.size(0), x.size(1), -1) / tau, dim=-1)
        return torch.bmm(x, x.transpose(1, 2))

    csd = ((csim(s["main"]) - csim(t["main"])) ** 2).mean()
    return {"psd": psd, "csd": csd}


def pearson(a, b, eps=1e-8):
    a = a - a.mean(1).unsqueeze(1)
    b = b - b.mean(1).unsqueeze(1)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist_one(z_s, z_t, beta, gamma, tau):
    c = z_s.shape[1]
    y_s = (z_s.transpose(1, 3).reshape(-1, c) / tau).softmax(dim=1)
    y_t = (z_t.transpose(1, 3).reshape(-1, c) / tau).softmax(dim=1)
    inter = 1 - pearson(y_s, y_t).mean()
    intra = 1 - pearson(y_s.transpose(0, 1), y_t.transpose(0, 1)).mean()
    return tau ** 2 * (beta * inter + gamma * intra)


def dist_loss(s, t, label, params, meta):
    beta, gamma, tau = float(meta["beta"]), float(meta["gamma"]), float(meta["tau"])
    out = {"main": dist_one(s["main"], t["main"], beta, gamma, tau)}
    if float(meta["aux_weight"]) > 0:
        out["aux"] = dist_one(s["aux"], t["aux"], beta, gamma, tau)
    else:
        out = {"": out["main"]}
    return out


def cirkd_loss(s, t, label, params, meta):
    """CriterionMiniBatchCrossImagePair + StudentSegContrast (one process: the all-gather is the identity).

    The release's random choices are made irrelevant by the case: contrast sizes equal the memory sizes
    (every row is a key; a permutation of the keys leaves the KL unchanged) and at most 16 pixels of a class
    per image (perm[:K] covers 0..K-1): rows are written in source order. Updates params' buffers in place.
    """
    tau, kd_t = float(meta["contrast_temperature"]), float(meta["contrast_kd_temperature"])
    f_s, f_t = s["feature"], t["feature"]
    # mini-batch pixel-to-pixel
    ns, nt = normalize(f_s), normalize(f_t)
    b = f_s.shape[0]
    mb = 0
    for i in range(b):
        for j in range(b):
            ss = ns[i].reshape(ns.shape[1], -1).t() @ ns[j].reshape(ns.shape[1], -1)
            st_ = nt[i].reshape(nt.shape[1], -1).t() @ nt[j].reshape(nt.shape[1], -1)
            mb = mb + F.kl_div(F.log_softmax(ss / tau, dim=1), F.softmax(st_ / tau, dim=1), reduction="batchmean")
    mb = mb / (b * b)
    # memory
    x = F.conv2d(f_s, params["project_head.0.weight"])
    x = F.batch_norm(x, params["project_head.1.running_mean"], params["project_head.1.running_var"],
                     params["project_head.1.weight"], params["project_head.1.bias"], training=True, momentum=0.1,
                     eps=1e-5)
    params["project_head.1.num_batches_tracked"] += 1
    x = F.conv2d(F.relu(x), params["project_head.3.weight"])
    s_feats = normalize(x)
    t_feats = normalize(f_t)
    h, w = s_feats.shape[2], s_feats.shape[3]
    labels = F.interpolate(label.unsqueeze(1).double(), (h, w), mode="nearest").squeeze(1).long()
    # enqueue (before the contrast), as _dequeue_and_enqueue on the detached teacher features
    pq, sq = params["teacher_pixel_queue"], params["teacher_segment_queue"]
    pptr, sptr = params["pixel_queue_ptr"], params["segment_queue_ptr"]
    keys = t_feats.detach()
    dim = keys.shape[1]
    mem, rmem = pq.shape[1], sq.shape[1]
    with torch.no_grad():
        for bs in range(keys.shape[0]):
            this_feat = keys[bs].reshape(dim, -1)
            this_label = labels[bs].reshape(-1)
            for lb in [int(v) for v in torch.unique(this_label) if v != -1]:
                idxs = (this_label == lb).nonzero()
                feat = torch.mean(this_feat[:, idxs], dim=1).squeeze(1)
                ptr = int(sptr[lb])
                sq[lb, ptr, :] = F.normalize(feat.view(-1), p=2, dim=0)
                sptr[lb] = (ptr + 1) % rmem
                num = idxs.shape[0]
                k = min(num, 16)
                assert num <= 16, "the case must keep a class at <= 16 pixels per image"
                if meta["pixel_queue"] == "released":
                    src = torch.arange(k)                 # this_feat[:, perm[:K]], perm a permutation of range(num)
                else:
                    src = idxs[:k, 0]                     # K pixels of the class
                feat = this_feat[:, src].t()
                ptr = int(pptr[lb])
                if ptr + k >= mem:
                    pq[lb, -k:, :] = F.normalize(feat, p=2, dim=1)
                    pptr[lb] = 0
                else:
                    pq[lb, ptr:ptr + k, :] = F.normalize(feat, p=2, dim=1)
                    pptr[lb] = (ptr + k) % mem
    flat = labels.reshape(-1)
    valid = flat != -1
    sa = s_feats.permute(0, 2, 3, 1).reshape(-1, dim)[valid]
    ta = t_feats.permute(0, 2, 3, 1).reshape(-1, dim)[valid]
    if int(valid.sum()) == 0:  # the release's NaN; rdd: 0
        zero = 0 * (s_feats ** 2).mean()
        return {"minibatch": mb, "pixel": zero, "region": zero}

    def contrast(queue):
        xk = queue.reshape(-1, dim)  # every row of every class, class-major (as _sample_negative)
        s_l = sa @ xk.t() / tau
        t_l = ta @ xk.t() / tau
        return F.kl_div(F.log_softmax(s_l / kd_t, dim=1), F.softmax(t_l.detach() / kd_t, dim=1),
                        reduction="batchmean") * kd_t ** 2

    return {"minibatch": mb, "pixel": contrast(pq), "region": contrast(sq)}


class SnConv(torch.nn.Module):
    """SpectralNorm(nn.Conv2d(..., 4, 2, 1)) as utils/sagan.py (state_dict names module.bias,
    module.weight_u, module.weight_v, module.weight_bar): weight_bar trained; weight_u, weight_v
    Parameters without gradient whose .data each forward replaces (one power iteration)."""

    def __init__(self, cin, cout, k=4, stride=2, pad=1):
        super().__init__()
        self.stride, self.pad = stride, pad
        m = torch.nn.Module()
        m.bias = torch.nn.Parameter(torch.zeros(cout, dtype=torch.float64))
        m.weight_u = torch.nn.Parameter(torch.zeros(cout, dtype=torch.float64), requires_grad=False)
        m.weight_v = torch.nn.Parameter(torch.zeros(cin * k * k, dtype=torch.float64), requires_grad=False)
        m.weight_bar = torch.nn.Parameter(torch.zeros(cout, cin, k, k, dtype=torch.float64))
        self.module = m

    def forward(self, x):
        def l2n(v):
            return v / (v.norm() + 1e-12)
        m = self.module
        h = m.weight_bar.shape[0]
        m.weight_v.data = l2n(torch.mv(torch.t(m.weight_bar.view(h, -1).data), m.weight_u.data))
        m.weight_u.data = l2n(torch.mv(m.weight_bar.view(h, -1).data, m.weight_v.data))
        sigma = m.weight_u.dot(m.weight_bar.view(h, -1).mv(m.weight_v))
        return F.conv2d(x, m.weight_bar / sigma.expand_as(m.weight_bar), m.bias, self.stride, self.pad)


class SelfAttn(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.query_conv = torch.nn.Conv2d(c, c // 8, 1).double()
        self.key_conv = torch.nn.Conv2d(c, c // 8, 1).double()
        self.value_conv = torch.nn.Conv2d(c, c, 1).double()
        self.gamma = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self, x):
        b, c, h, w = x.size()
        q = self.query_conv(x).view(b, -1, h * w).permute(0, 2, 1)
        k = self.key_conv(x).view(b, -1, h * w)
        att = F.softmax(torch.bmm(q, k), dim=-1)
        v = self.value_conv(x).view(b, -1, h * w)
        out = torch.bmm(v, att.permute(0, 2, 1)).view(b, c, h, w)
        return self.gamma * out + x


class Discriminator(torch.nn.Module):
    """utils/sagan.py's Discriminator (preprocess_GAN_mode=1: BN), conv_dim as a parameter."""

    def __init__(self, k, d):
        super().__init__()
        self.l1 = torch.nn.Sequential(SnConv(k, d), torch.nn.LeakyReLU(0.1))
        self.l2 = torch.nn.Sequential(SnConv(d, 2 * d), torch.nn.LeakyReLU(0.1))
        self.l3 = torch.nn.Sequential(SnConv(2 * d, 4 * d), torch.nn.LeakyReLU(0.1))
        self.l4 = torch.nn.Sequential(SnConv(4 * d, 8 * d), torch.nn.LeakyReLU(0.1))
        self.last = torch.nn.Sequential(torch.nn.Conv2d(8 * d, 1, 4).double())
        self.attn1 = SelfAttn(4 * d)
        self.attn2 = SelfAttn(8 * d)
        self.preprocess_additional = torch.nn.BatchNorm2d(k).double()

    def forward(self, x):
        out = self.l3(self.l2(self.l1(self.preprocess_additional(x))))
        out = self.attn1(out)
        out = self.attn2(self.l4(out))
        return self.last(out)


def adv_step(case):
    """One step of the release's adversarial terms (weights 1): G's hinge on D(s), D's on D(t), D(s.detach()),
    three forwards then the backwards of both (G's reaches the discriminator too)."""
    meta = case["meta"]
    k, d = case["student.main"].shape[1], int(meta["conv_dim"])
    net = Discriminator(k, d)
    state = {name: torch.from_numpy(v.copy()) for name, v in case["params"].items()}
    net.load_state_dict({n: (v.double() if v.dtype != torch.int64 else v) for n, v in state.items()})
    net.train()
    s = torch.from_numpy(case["student.main"]).double().requires_grad_(True)
    t = torch.from_numpy(case["teacher.main"]).double()
    g = -net(s).mean()
    out_fake, out_real = net(s.detach()), net(t)
    dl = F.relu(1.0 - out_real).mean() + F.relu(1.0 + out_fake).mean()
    (g + dl).backward()
    out = {"golden.expected.loss.g": np.array([g.item()]), "golden.expected.loss.d": np.array([dl.item()]),
           "golden.expected.grad.student.main": s.grad.float().numpy()}
    for name, p in net.named_parameters():
        if p.requires_grad:
            g = p.grad.float().numpy()
            if name.endswith("key_conv.bias"):
                # The key bias adds the same q_i·b to every energy of row i: the row softmax cancels it, so
                # its gradient is exactly 0 (autograd leaves rounding noise, ~1e-18, that a relative
                # comparison would blow up).
                g = np.zeros_like(g)
            out["golden.expected.grad.param." + name] = g
    for name, v in net.state_dict().items():
        if "weight_u" in name or "weight_v" in name or name.startswith("preprocess_additional.running") or \
                name.endswith("num_batches_tracked"):
            out["golden.expected.param." + name] = v.numpy() if v.dtype == torch.int64 else v.float().numpy()
    return out


def adv_case(gen, n=2, k=5, d=8, h=64, w=64):
    """Random discriminator weights (PyTorch's defaults would leave gamma 0: a non-zero gamma exercises the
    attention's backward), logits at the smallest size the release's discriminator takes."""
    net = Discriminator(k, d)
    params = {}
    for name, v in net.state_dict().items():
        if v.dtype == torch.int64:
            params[name] = np.array(2, dtype=np.int64)
        elif "weight_u" in name or "weight_v" in name:
            u = torch.randn(v.shape, generator=gen, dtype=torch.float64)
            params[name] = (u / u.norm()).float().numpy()
        elif name.endswith("running_var"):
            params[name] = (1 + torch.rand(v.shape, generator=gen, dtype=torch.float64)).float().numpy()
        elif name.endswith("gamma"):
            params[name] = np.array([0.5], dtype=np.float32)
        else:
            fan = max(1, int(np.prod(v.shape[1:]))) if v.dim() > 1 else 16
            params[name] = (torch.rand(v.shape, generator=gen, dtype=torch.float64) * 2 - 1).mul(
                1 / np.sqrt(fan)).float().numpy()
    params["preprocess_additional.weight"] += 1
    case = make_case(gen, "adv_g", ["main"], n=n, classes=k, h=h, w=w, H=h * 2, W=w * 2, conv_dim=d,
                     lambda_adv=0.001, lambda_d=0.1)
    case["params"] = params
    return case


# Buffers (no gradient; compared after the step).
BUFFERS = {"project_head.1.running_mean", "project_head.1.running_var", "project_head.1.num_batches_tracked",
           "teacher_pixel_queue", "pixel_queue_ptr", "teacher_segment_queue", "segment_queue_ptr"}

METHODS = {"at": at_loss, "fitnet": fitnet_loss, "cwd": cwd_loss, "skd": skd_loss, "ifvd": ifvd_loss,
           "dsd": dsd_loss, "dist": dist_loss, "cirkd": cirkd_loss}


def evaluate(case):
    meta = case["meta"]
    if meta["method"] == "adv_g":
        return adv_step(case)
    slots = meta["slots"].split(",")
    s = {k: torch.from_numpy(case["student." + k]).double().requires_grad_(True) for k in slots}
    t = {k: torch.from_numpy(case["teacher." + k]).double() for k in slots}
    params = {}
    for k, v in case["params"].items():
        if v.dtype == np.int64:
            params[k] = torch.from_numpy(v.copy())
        elif k in BUFFERS:
            params[k] = torch.from_numpy(v.copy()).double()
        else:
            params[k] = torch.from_numpy(v).double().requires_grad_(True)
    label = torch.from_numpy(case["label"]).long()
    losses = METHODS[meta["method"]](s, t, label, params, meta)
    total = 0
    for name, value in losses.items():
        weight = float(meta["aux_weight"]) if (meta["method"] == "dist" and name == "aux") else 1.0
        total = total + weight * value
    total.backward()
    out = {}
    for name, value in losses.items():
        out["golden.expected.loss" + ("." + name if name else "")] = np.array([value.item()], dtype=np.float64)
    for k in slots:
        g = s[k].grad if s[k].grad is not None else torch.zeros_like(s[k])
        out["golden.expected.grad.student." + k] = g.float().numpy()
    for k, p in params.items():
        if k in BUFFERS:
            out["golden.expected.param." + k] = p.numpy() if p.dtype == torch.int64 else p.float().numpy()
        else:
            out["golden.expected.grad.param." + k] = p.grad.float().numpy()
    for k, v in out.items():
        if not np.all(np.isfinite(v)):
            raise RuntimeError("case %s: %s is not finite" % (meta["case"], k))
    return out


def make_case(gen, method, slots, n=2, classes=5, c_s=6, c_t=10, h=5, w=7, H=37, W=53, ignore=0.1, scale=2.0,
              params=None, label=None, **meta):
    def rnd(*shape, sc=scale):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * sc).float().numpy()

    case = {"params": {}}
    for side in ("student", "teacher"):
        for slot in slots:
            ch = classes if slot in ("main", "aux") else (c_s if side == "student" else c_t)
            case[side + "." + slot] = rnd(n, ch, h, w, sc=scale if slot != "feature" else 1.0)
    if label is None:
        label = torch.randint(0, classes, (n, H, W), generator=gen, dtype=torch.int64)
        label[torch.rand(n, H, W, generator=gen) < ignore] = -1
    case["label"] = label.int().numpy()
    for name, shape in (params or {}).items():
        case["params"][name] = (torch.rand(*shape, generator=gen, dtype=torch.float64) * 0.6 - 0.3).float().numpy()
    m = {"kind": "kd_term", "method": method, "slots": ",".join(slots)}
    m.update({k: str(v) for k, v in meta.items()})
    case["meta"] = m
    return case


def cases():
    gen = torch.Generator().manual_seed(20260115)
    out = []

    def add(name, case):
        case["meta"]["case"] = name
        out.append(("kd_%s_%s" % (case["meta"]["method"], name), case))

    add("basic", make_case(gen, "at", ["feature"], **{"lambda": 10000}))
    add("batch1_odd", make_case(gen, "at", ["feature"], n=1, h=7, w=3))
    add("basic", make_case(gen, "fitnet", ["feature"], params={"conv.weight": (10, 6, 1, 1)}))
    add("batch1", make_case(gen, "fitnet", ["feature"], n=1, h=3, w=9, params={"conv.weight": (10, 6, 1, 1)}))
    add("logit_T4", make_case(gen, "cwd", ["main"], variant="logit", temperature=4.0))
    add("feature_T4", make_case(gen, "cwd", ["feature"], variant="feature", temperature=4.0,
                                params={"conv.weight": (10, 6, 1, 1)}))
    add("feature_T1_batch1", make_case(gen, "cwd", ["feature"], n=1, variant="feature", temperature=1.0,
                                       params={"conv.weight": (10, 6, 1, 1)}))
    add("basic_odd", make_case(gen, "skd", ["feature"]))  # 5x7: ceil-mode pooling keeps a half window
    add("batch1_even", make_case(gen, "skd", ["feature"], n=1, h=6, w=8))
    add("basic", make_case(gen, "ifvd", ["feature"], num_classes=5))
    # class 5 never appears (labels in 0..4 while num_classes = 6), and half the pixels ignored
    add("class_absent", make_case(gen, "ifvd", ["feature"], num_classes=6, ignore=0.5))
    add("all_ignored", make_case(gen, "ifvd", ["feature"], num_classes=5, ignore=1.0))
    add("batch1", make_case(gen, "ifvd", ["feature"], n=1, num_classes=5, h=6, w=6, H=45, W=45))
    add("basic", make_case(gen, "dsd", ["aux", "feature", "main"], tau=4.0, lambda_psd=1000, lambda_csd=10))
    add("batch1_even", make_case(gen, "dsd", ["aux", "feature", "main"], n=1, h=6, w=8, tau=4.0))
    add("main_T1", make_case(gen, "dist", ["main"], beta=1.0, gamma=1.0, tau=1.0, aux_weight=0.0))
    add("aux_T4", make_case(gen, "dist", ["main", "aux"], beta=1.0, gamma=2.0, tau=4.0, aux_weight=0.4))
    add("batch1", make_case(gen, "dist", ["main"], n=1, classes=19, beta=1.0, gamma=1.0, tau=1.0, aux_weight=0.0))
    for name, mode in (("released", "released"), ("class_fill", "class")):
        add(name, cirkd_case(gen, mode))
    add("batch1", cirkd_case(gen, "released", n=1))
    add("all_ignored", cirkd_case(gen, "released", ignore=1.0))
    add("class_absent", cirkd_case(gen, "class", classes=6, label_classes=4))
    add("basic", adv_case(gen))
    add("batch1_wide", adv_case(gen, n=1, h=64, w=96))
    return out


def cirkd_case(gen, fill, n=2, classes=5, label_classes=None, ignore=0.15):
    """CIRKD with small memories (wrap-around exercised: pointers start near the end), contrast = memory,
    labels at the feature size x 7 so that a class has at most 16 pixels per image at 4 x 5."""
    c_s, c_t, h, w = 6, 8, 4, 5
    pmem, rmem = 12, 5
    label_classes = label_classes or classes
    lab = torch.randint(0, label_classes, (n, h * 7, w * 7), generator=gen, dtype=torch.int64)
    lab[torch.rand(n, h * 7, w * 7, generator=gen) < ignore] = -1
    case = make_case(gen, "cirkd", ["feature"], n=n, classes=classes, c_s=c_s, c_t=c_t, h=h, w=w, label=lab,
                     params={"project_head.0.weight": (c_t, c_s, 1, 1), "project_head.3.weight": (c_t, c_t, 1, 1),
                             "project_head.1.weight": (c_t,), "project_head.1.bias": (c_t,)},
                     pixel_memory_size=pmem, region_memory_size=rmem, pixel_contrast_size=pmem,
                     region_contrast_size=rmem, contrast_temperature=0.1, contrast_kd_temperature=1.0,
                     pixel_queue=fill, lambda_minibatch=1, lambda_pixel=0.1, lambda_region=0.1)
    pr = case["params"]
    pr["project_head.1.weight"] += 1.0
    pr["project_head.1.running_mean"] = (torch.randn(c_t, generator=gen, dtype=torch.float64) * 0.1).float().numpy()
    pr["project_head.1.running_var"] = (1 + torch.rand(c_t, generator=gen, dtype=torch.float64)).float().numpy()
    pr["project_head.1.num_batches_tracked"] = np.array(3, dtype=np.int64)
    for name, size in (("teacher_pixel_queue", pmem), ("teacher_segment_queue", rmem)):
        q = torch.randn(classes, size, c_t, generator=gen, dtype=torch.float64)
        pr[name] = F.normalize(q, p=2, dim=2).float().numpy()
    pr["pixel_queue_ptr"] = torch.randint(0, pmem, (classes,), generator=gen, dtype=torch.int64).numpy()
    pr["segment_queue_ptr"] = torch.randint(0, rmem, (classes,), generator=gen, dtype=torch.int64).numpy()
    return case


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for name, case in cases():
        tensors = {"golden.label": case["label"]}
        for k, v in case.items():
            if k.startswith("student.") or k.startswith("teacher."):
                tensors["golden." + k] = v
        for k, v in case["params"].items():
            tensors["golden.param." + k] = v
        tensors.update(evaluate(case))
        st.save(os.path.join(out_dir, name + ".safetensors"), tensors, case["meta"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
