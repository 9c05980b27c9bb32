"""PyTorch transcription of the segmentation models rdd implements (models/ in C++).

Written from the architecture as released with the RDD paper (derived from CIRKD): the module names
follow the reference so that state_dict keys are the names rdd registers its parameters under
(`pretrained.layer1.0.conv1.weight`, `head.aspp.b4.gap.1.running_var`, `auxlayer.block.4.bias`, ...).
torchvision is not used; the backbones are written out here.

    model = build_model("deeplabv3_resnet18", num_classes=19)          # reference sizes
    model = build_model("psp_resnet18", num_classes=5, width=0.125)    # a small test model
    main, aux, feature = model(x)          # ResNet models (aux = FCN head on layer3)
    main, feature = model(x)               # MobileNetV2 models

`width` multiplies every channel count (scaled(c) = max(1, int(c·width + 0.5))); width 1 is the
reference architecture exactly. rdd's C++ registry applies the same rule, so the same names and
shapes come out of both. `dropout=False` builds the model without dropout (training-mode golden
cases compare with dropout disabled).

Run directly to print each registered model's parameter count and a dilation-correct multiply-add
count:  /usr/bin/python3 scripts/torch_models.py [--input 512x1024]
"""
import argparse
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

MODEL_NAMES = [
    "deeplabv3_resnet101",
    "deeplabv3_resnet50",
    "deeplabv3_resnet18",
    "psp_resnet101",
    "psp_resnet18",
    "deeplabv3_mobilenetv2",
    "psp_mobilenetv2",
]


def scaled(c, width):
    """Channel count c under the width multiplier (the same rule as models/registry.cpp)."""
    if width == 1.0:
        return c
    return max(1, int(c * width + 0.5))


def _dropout(p, enabled):
    return nn.Dropout(p) if enabled else nn.Identity()


# ------------------------------------------------------------------------------------------------
# ResNet-v1b / v1s (resnetv1b.py): deep 3x3 stem (v1s) or 7x7 stem (v1b), dilated to OS 8 or 16.
# ------------------------------------------------------------------------------------------------
class BasicBlockV1b(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None, previous_dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(False)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, previous_dilation, dilation=previous_dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + identity)


class BottleneckV1b(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None, previous_dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(False)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + identity)


RESNET_SPECS = {18: (BasicBlockV1b, [2, 2, 2, 2]), 34: (BasicBlockV1b, [3, 4, 6, 3]),
                50: (BottleneckV1b, [3, 4, 6, 3]), 101: (BottleneckV1b, [3, 4, 23, 3])}


class ResNetV1b(nn.Module):
    def __init__(self, depth, deep_stem=True, output_stride=8, width=1.0):
        super().__init__()
        block, layers = RESNET_SPECS[depth]
        s = lambda c: scaled(c, width)  # noqa: E731
        self.deep_stem = deep_stem
        if deep_stem:
            self.conv1 = nn.Conv2d(3, s(64), 3, 2, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(s(64))
            self.relu1 = nn.ReLU(False)
            self.conv2 = nn.Conv2d(s(64), s(64), 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(s(64))
            self.relu2 = nn.ReLU(False)
            self.conv3 = nn.Conv2d(s(64), s(128), 3, 1, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(s(128))
            self.relu3 = nn.ReLU(False)
            self.inplanes = s(128)
        else:
            self.conv1 = nn.Conv2d(3, s(64), 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(s(64))
            self.relu = nn.ReLU(False)
            self.inplanes = s(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, s(64), layers[0])
        self.layer2 = self._make_layer(block, s(128), layers[1], stride=2)
        if output_stride == 8:
            self.layer3 = self._make_layer(block, s(256), layers[2], stride=1, dilation=2)
            self.layer4 = self._make_layer(block, s(512), layers[3], stride=1, dilation=4)
        elif output_stride == 16:
            self.layer3 = self._make_layer(block, s(256), layers[2], stride=2)
            self.layer4 = self._make_layer(block, s(512), layers[3], stride=1, dilation=2)
        else:
            raise ValueError("output_stride must be 8 or 16")
        self.c3_channels = s(256) * block.expansion
        self.c4_channels = s(512) * block.expansion
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes, blocks, stride=1, dilation=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        # The reference's pattern: first block of a dilation-2 layer uses 1, of a dilation-4 layer 2.
        first = {1: 1, 2: 1, 4: 2}[dilation]
        layers = [block(self.inplanes, planes, stride, dilation=first, downsample=downsample,
                        previous_dilation=dilation)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, dilation=dilation, previous_dilation=dilation))
        return nn.Sequential(*layers)

    def forward(self, x):
        if self.deep_stem:
            x = self.relu1(self.bn1(self.conv1(x)))
            x = self.relu2(self.bn2(self.conv2(x)))
            x = self.relu3(self.bn3(self.conv3(x)))
        else:
            x = self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool(x)
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return c3, c4


# ------------------------------------------------------------------------------------------------
# MobileNetV2 (mobilenetv2.py), last 1x1 conv and classifier removed, dilated to OS 8.
# ------------------------------------------------------------------------------------------------
class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        if expand_ratio == 1:
            self.conv = nn.Sequential(
                nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                nn.ReLU6(False),
                nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup))
        else:
            self.conv = nn.Sequential(
                nn.Conv2d(inp, hidden, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(False),
                nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                nn.ReLU6(False),
                nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup))

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


MBV2_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                 (6, 320, 1, 1)]


class MobileNetV2(nn.Module):
    def __init__(self, width=1.0):
        super().__init__()
        input_channel = scaled(32, width)
        features = [nn.Sequential(nn.Conv2d(3, input_channel, 3, 2, 1, bias=False), nn.BatchNorm2d(input_channel),
                                  nn.ReLU6(False))]
        for t, c, n, s in MBV2_SETTINGS:
            out = scaled(c, width)
            for i in range(n):
                features.append(InvertedResidual(input_channel, out, s if i == 0 else 1, t))
                input_channel = out
        self.features = nn.Sequential(*features)
        self.out_channels = input_channel
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, (2.0 / n) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()

    def forward(self, x):
        return self.features(x)


class MobileNetV2Dilated(nn.Module):
    """The CSAIL `_nostride_dilate` surgery: features 7-13 dilation 2, 14-17 dilation 4 (OS 8)."""

    def __init__(self, width=1.0):
        super().__init__()
        self.net = MobileNetV2(width)
        total = len(self.net.features)
        for i in range(7, 14):
            self._nostride_dilate(self.net.features[i], 2)
        for i in range(14, total):
            self._nostride_dilate(self.net.features[i], 4)
        self.out_channels = self.net.out_channels

    @staticmethod
    def _nostride_dilate(block, dilate):
        for m in block.modules():
            if isinstance(m, nn.Conv2d):
                if m.stride == (2, 2):
                    m.stride = (1, 1)
                    if m.kernel_size == (3, 3):
                        m.dilation = (dilate // 2, dilate // 2)
                        m.padding = (dilate // 2, dilate // 2)
                elif m.kernel_size == (3, 3):
                    m.dilation = (dilate, dilate)
                    m.padding = (dilate, dilate)

    def forward(self, x):
        return self.net(x)


# ------------------------------------------------------------------------------------------------
# Heads (deeplabv3.py, pspnet.py, *_mobile.py)
# ------------------------------------------------------------------------------------------------
def _conv_bn_relu(cin, cout, k, padding=0, dilation=1):
    return [nn.Conv2d(cin, cout, k, padding=padding, dilation=dilation, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(False)]


class _FCNHead(nn.Module):
    def __init__(self, in_channels, nclass, dropout=True):
        super().__init__()
        inter = in_channels // 4
        self.block = nn.Sequential(*_conv_bn_relu(in_channels, inter, 3, padding=1), _dropout(0.1, dropout),
                                   nn.Conv2d(inter, nclass, 1))

    def forward(self, x):
        return self.block(x)


class _ASPPConv(nn.Module):
    def __init__(self, cin, cout, rate):
        super().__init__()
        self.block = nn.Sequential(*_conv_bn_relu(cin, cout, 3, padding=rate, dilation=rate))

    def forward(self, x):
        return self.block(x)


class _AsppPooling(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.gap = nn.Sequential(nn.AdaptiveAvgPool2d(1), *_conv_bn_relu(cin, cout, 1))

    def forward(self, x):
        return F.interpolate(self.gap(x), x.shape[2:], mode="bilinear", align_corners=True)


class _ASPP(nn.Module):
    def __init__(self, cin, cout, rates=(12, 24, 36), dropout=True):
        super().__init__()
        self.b0 = nn.Sequential(*_conv_bn_relu(cin, cout, 1))
        self.b1 = _ASPPConv(cin, cout, rates[0])
        self.b2 = _ASPPConv(cin, cout, rates[1])
        self.b3 = _ASPPConv(cin, cout, rates[2])
        self.b4 = _AsppPooling(cin, cout)
        self.project = nn.Sequential(*_conv_bn_relu(5 * cout, cout, 1), _dropout(0.5, dropout))

    def forward(self, x):
        feats = [self.b0(x), self.b1(x), self.b2(x), self.b3(x), self.b4(x)]
        return self.project(torch.cat(feats, dim=1))


class _DeepLabHead(nn.Module):
    def __init__(self, cin, width, nclass, dropout=True):
        super().__init__()
        self.aspp = _ASPP(cin, width, dropout=dropout)
        self.block = nn.Sequential(*_conv_bn_relu(width, width, 3, padding=1), _dropout(0.1, dropout),
                                   nn.Conv2d(width, nclass, 1))

    def forward(self, x):
        x = self.aspp(x)
        feature = self.block[0:4](x)
        return self.block[4](feature), feature


class _PyramidPooling(nn.Module):
    def __init__(self, cin):
        super().__init__()
        cout = int(cin / 4)
        self.bins = (1, 2, 3, 6)
        for i, _ in enumerate(self.bins):
            setattr(self, "conv%d" % (i + 1), nn.Sequential(*_conv_bn_relu(cin, cout, 1)))
        self.out_channels = cin + 4 * cout

    def forward(self, x):
        feats = [x]
        for i, b in enumerate(self.bins):
            conv = getattr(self, "conv%d" % (i + 1))
            feats.append(F.interpolate(conv(F.adaptive_avg_pool2d(x, b)), x.shape[2:], mode="bilinear",
                                       align_corners=True))
        return torch.cat(feats, dim=1)


class _PSPHead(nn.Module):
    def __init__(self, cin, width, nclass, dropout=True):
        super().__init__()
        self.psp = _PyramidPooling(cin)
        self.block = nn.Sequential(*_conv_bn_relu(self.psp.out_channels, width, 3, padding=1),
                                   _dropout(0.1, dropout))
        self.classifier = nn.Conv2d(width, nclass, 1)

    def forward(self, x):
        feature = self.block(self.psp(x))
        return self.classifier(feature), feature


# ------------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------------
class SegModel(nn.Module):
    """[main, aux, feature] for ResNet models (aux on layer3), [main, feature] for MobileNetV2."""

    def __init__(self, name, num_classes=19, width=1.0, dropout=True):
        super().__init__()
        head_kind, backbone = name.split("_", 1)
        s = lambda c: scaled(c, width)  # noqa: E731
        self.name = name
        if backbone.startswith("resnet"):
            depth = int(backbone[len("resnet"):])
            self.pretrained = ResNetV1b(depth, deep_stem=True, output_stride=8, width=width)
            c3, c4 = self.pretrained.c3_channels, self.pretrained.c4_channels
            big = depth >= 50
            self.has_aux = True
        elif backbone == "mobilenetv2":
            self.pretrained = MobileNetV2Dilated(width)
            c3, c4 = None, self.pretrained.out_channels
            big = False
            self.has_aux = False
        else:
            raise ValueError("unknown backbone " + backbone)
        if head_kind == "deeplabv3":
            self.head = _DeepLabHead(c4, s(256 if big else 128), num_classes, dropout)
        elif head_kind == "psp":
            self.head = _PSPHead(c4, s(512 if big else 128), num_classes, dropout)
        else:
            raise ValueError("unknown head " + head_kind)
        if self.has_aux:
            self.auxlayer = _FCNHead(c3, num_classes, dropout)

    def forward(self, x):
        if self.has_aux:
            c3, c4 = self.pretrained(x)
            main, feature = self.head(c4)
            return [main, self.auxlayer(c3), feature]
        main, feature = self.head(self.pretrained(x))
        return [main, feature]


def build_model(name, num_classes=19, width=1.0, dropout=True):
    if name not in MODEL_NAMES:
        raise ValueError("unknown model %s (known: %s)" % (name, ", ".join(MODEL_NAMES)))
    return SegModel(name, num_classes, width, dropout)


def conv_macs(model, shape):
    """(dilation-correct conv multiply-adds, the paper's count that ignores dilation) of one forward
    at `shape` (N, 3, H, W). Runs on the meta device: shapes only, no arithmetic."""
    import copy
    meta = copy.deepcopy(model).to("meta").eval()
    total, paper = [0], [0]

    def hook(m, inp, out):
        kk = m.kernel_size[0] * m.kernel_size[1]
        total[0] += out.numel() * m.in_channels // m.groups * kk
        x = inp[0]  # CIRKD utils/flops.py: (in + 2·pad − k)//stride + 1, no dilation, batch ignored
        oh = (x.shape[2] + 2 * m.padding[0] - m.kernel_size[0]) // m.stride[0] + 1
        ow = (x.shape[3] + 2 * m.padding[1] - m.kernel_size[1]) // m.stride[1] + 1
        paper[0] += m.in_channels * m.out_channels * kk * oh * ow // m.groups

    for m in meta.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        meta(torch.zeros(shape, device="meta"))
    return total[0], paper[0]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", default="512x1024")
    ap.add_argument("--num-classes", type=int, default=19)
    ap.add_argument("--no-macs", action="store_true")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--dump-keys", action="store_true",
                    help="print 'model name dtype d0,d1,..' (or '()') for every state_dict entry instead")
    a = ap.parse_args()
    if a.dump_keys:
        for n in MODEL_NAMES:
            m = build_model(n, a.num_classes, a.width).to("meta")
            for k, v in m.state_dict().items():
                shape = ",".join(str(d) for d in v.shape) or "()"
                print(n, k, str(v.dtype).replace("torch.", ""), shape)
        sys.exit(0)
    h, w = (int(v) for v in a.input.split("x"))
    for n in MODEL_NAMES:
        m = build_model(n, a.num_classes)
        params = sum(p.numel() for p in m.parameters())
        line = "%-24s %12d params" % (n, params)
        if not a.no_macs:
            macs, paper = conv_macs(m, (1, 3, h, w))
            line += "   %.2f GMAC  %.2f GFLOP at %dx%d (paper-style count %.1f GMAC)" % (
                macs / 1e9, 2 * macs / 1e9, h, w, paper / 1e9)
        print(line, flush=True)
