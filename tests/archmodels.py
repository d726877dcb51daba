"""Small but faithful versions of real network architectures, built in code (no downloads).

Each model is a ``qmodels.QModel`` (QuantStub -> ``body`` -> DeQuantStub) shaped like the block
it is named after in torchvision's quantizable models, scaled down so that a test runs in
seconds:

=====================  ==========================================================  ============
name                   what it is                                                  output
=====================  ==========================================================  ============
mobilenet_v2           3 inverted-residual blocks (1x1 expand, 3x3 depthwise,      1x10 logits
                       1x1 project; ReLU6; the first strided, two with skip add)
mobilenet_v3           2 MobileNetV3 blocks with hardswish and squeeze-excitation  1x10 logits
                       (adaptive avg pool, 1x1 conv, ReLU, 1x1 conv, hardsigmoid,
                       mul), one strided k3, one k5 with skip add; V3's head
resnet_bottleneck      ResNet-50 bottleneck (1x1, 3x3 strided, 1x1, expansion 4)   1x10 logits
                       with a 1x1/s2 conv+BN downsample, then an identity
                       bottleneck; add+ReLU
shufflenet_v2          ShuffleNetV2 units: a strided unit (two branches) and a     1x10 logits
                       basic unit (chunk into halves), cat, channel shuffle
                       (view -> transpose -> view); head x.mean([2, 3]) -> fc
inception              stem conv + a GoogLeNet Inception block: 1x1 | 1x1->3x3 |   1x10 logits
                       1x1->3x3->3x3 | maxpool(3, s1, p1, ceil_mode)->1x1, cat
unet_decoder           a tiny U-Net: 2 encoder levels with max pools, decoder      1x5x16x16
                       with nearest x2 and bilinear x2 upsampling, each cat with   per-pixel
                       its skip, per-pixel 1x1 classifier                          class scores
=====================  ==========================================================  ============

The classifiers end in a global pool (adaptive avg pool -> flatten, or ShuffleNetV2's mean)
and a linear layer, so "top-1" is the argmax over the 10 logits.
The U-Net has no single top-1: its top-1 is counted per pixel (argmax over the 5 class channels
at each of the 16x16 pixels), see ``pixel_top1``.

Conv + BN (+ ReLU) are fused by ``fuse_list`` as torchvision's quantizable models do; ReLU6,
hardswish and hardsigmoid cannot be fused in eager mode and stay standalone quantized ops. They
are preceded by ``.contiguous()`` (``qmodels`` docstring): qnnpack's relu6 on a channels_last
tensor is wrong in PyTorch itself.

The measuring code shared by ``tests/test_architectures.py`` and ``scripts/fidelity_table.py``
is here too (``build``, ``measure``), so the test and the README table report the same numbers.
"""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional

import qmodels as Q

__all__ = ["ARCHS", "FX_ARCHS", "PER_PIXEL", "CASES", "MobileNetV2Stage", "MobileNetV3Blocks",
           "ResNetBottleneck", "ShuffleNetV2Units", "InceptionBlock", "UNetDecoder", "pixel_top1",
           "top1_agreement", "build", "run_saved", "measure", "Measured", 
           "markdown_table"]


# ------------------------------------------------------------------------------ building blocks
class ConvBNAct(nn.Module):
    """Conv2d (no bias) + BatchNorm2d + activation, as torchvision's Conv2dNormActivation.

    ``act``: "relu" (fused into the conv), "relu6" / "hardswish" (standalone quantized ops,
    after ``.contiguous()``), or None.
    """

    def __init__(self, cin, cout, k=1, stride=1, groups=1, act="relu"):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act_kind = act
        if act == "relu":
            self.act = nn.ReLU()
        elif act == "relu6":
            self.act = nn.ReLU6()
        elif act == "hardswish":
            self.act = nn.Hardswish()
        elif act is not None:
            raise ValueError(act)

    def fuse_group(self):
        return ["conv", "bn", "act"] if self.act_kind == "relu" else ["conv", "bn"]

    def forward(self, x):
        y = self.bn(self.conv(x))
        if self.act_kind == "relu":
            return self.act(y)
        if self.act_kind is not None:
            return self.act(y.contiguous())
        return y


class SqueezeExcitation(nn.Module):
    """torchvision's quantizable SE: avg pool -> 1x1 conv -> ReLU -> 1x1 conv -> hardsigmoid -> * x."""

    def __init__(self, c, squeeze):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(squeeze, c, 1)
        self.hardsigmoid = nn.Hardsigmoid()
        self.skip_mul = FloatFunctional()

    def fuse_group(self):
        return ["fc1", "relu"]

    def forward(self, x):
        s = self.fc2(self.relu(self.fc1(self.avgpool(x))))
        s = self.hardsigmoid(s.contiguous())
        return self.skip_mul.mul(s, x)


class ArchModel(Q.QModel):
    """Collects the fuse groups of every ConvBNAct / SE below it, by module path."""

    extra_fuse = ()

    def fuse_list(self):
        groups = []
        for path, m in self.named_modules():
            if isinstance(m, (ConvBNAct, SqueezeExcitation)):
                groups.append([path + "." + n for n in m.fuse_group()])
        return groups + [list(g) for g in self.extra_fuse]


def _init(model, seed):
    Q._init_params(model, seed)
    return model


# ------------------------------------------------------------------------------ MobileNetV2
class InvertedResidualV2(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.expand = ConvBNAct(cin, hidden, 1, act="relu6")
        self.dw = ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act="relu6")
        self.project = ConvBNAct(hidden, cout, 1, act=None)
        if self.use_res:
            self.skip_add = FloatFunctional()

    def forward(self, x):
        y = self.project(self.dw(self.expand(x)))
        return self.skip_add.add(x, y) if self.use_res else y


class MobileNetV2Stage(ArchModel):
    """3 inverted residuals 16->24 (s2) -> 24 -> 24, then 1x1 conv, pool, flatten, linear."""

    input_shape = (1, 16, 16, 16)

    def __init__(self, seed=0, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            InvertedResidualV2(16, 24, 2, 4),
            InvertedResidualV2(24, 24, 1, 4),
            InvertedResidualV2(24, 24, 1, 4),
            ConvBNAct(24, 48, 1, act="relu6"))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(48, classes)
        _init(self, seed)

    def body(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


# ------------------------------------------------------------------------------ MobileNetV3
class InvertedResidualV3(nn.Module):
    def __init__(self, cin, hidden, cout, k, stride, se=True, act="hardswish"):
        super().__init__()
        self.use_res = stride == 1 and cin == cout
        self.expand = ConvBNAct(cin, hidden, 1, act=act)
        self.dw = ConvBNAct(hidden, hidden, k, stride, groups=hidden, act=act)
        self.se = SqueezeExcitation(hidden, max(8, hidden // 4)) if se else None
        self.project = ConvBNAct(hidden, cout, 1, act=None)
        if self.use_res:
            self.skip_add = FloatFunctional()

    def forward(self, x):
        y = self.dw(self.expand(x))
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return self.skip_add.add(x, y) if self.use_res else y


class MobileNetV3Blocks(ArchModel):
    """2 V3 blocks (k3 s2 16->24, k5 s1 24->24 with skip), both with SE and hardswish; V3's
    head: 1x1 conv + hardswish, pool, flatten, linear + hardswish, dropout, linear."""

    input_shape = (1, 16, 16, 16)

    def __init__(self, seed=0, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            InvertedResidualV3(16, 64, 24, 3, 2),
            InvertedResidualV3(24, 72, 24, 5, 1),
            ConvBNAct(24, 48, 1, act="hardswish"))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(48, 32)
        self.hardswish = nn.Hardswish()
        self.dropout = nn.Dropout(0.2)
        self.fc2 = nn.Linear(32, classes)
        _init(self, seed)

    def body(self, x):
        y = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.fc2(self.dropout(self.hardswish(self.fc1(y))))


# ------------------------------------------------------------------------------ ResNet
class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = ConvBNAct(cin, planes, 1)
        self.conv2 = ConvBNAct(planes, planes, 3, stride)
        self.conv3 = ConvBNAct(planes, cout, 1, act=None)
        self.downsample = ConvBNAct(cin, cout, 1, stride, act=None) if (stride != 1 or cin != cout) else None
        self.skip_add_relu = FloatFunctional()

    def forward(self, x):
        identity = self.downsample(x) if self.downsample is not None else x
        return self.skip_add_relu.add_relu(self.conv3(self.conv2(self.conv1(x))), identity)


class ResNetBottleneck(ArchModel):
    """Bottleneck 16->32 (planes 8, 3x3 strided, conv+BN downsample), identity bottleneck,
    pool, flatten, fc."""

    input_shape = (1, 16, 16, 16)

    def __init__(self, seed=0, classes=10):
        super().__init__()
        self.layer = nn.Sequential(Bottleneck(16, 8, 2), Bottleneck(32, 8, 1))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, classes)
        _init(self, seed)

    def body(self, x):
        return self.fc(torch.flatten(self.avgpool(self.layer(x)), 1))


# ------------------------------------------------------------------------------ ShuffleNetV2
def channel_shuffle(x, groups):
    # torchvision unpacks x.size(); single size() calls trace the same and FX can trace them too
    n, c, h, w = x.size(0), x.size(1), x.size(2), x.size(3)
    x = x.view(n, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(n, c, h, w)


class ShuffleUnit(nn.Module):
    # the conv+BN(+ReLU) block class: (cin, cout, k, stride, groups=, act=None | default ReLU);
    # scripts/fullsize_nets.py substitutes its torchvision-shaped one
    conv_bn_act = ConvBNAct

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        half = cout // 2
        cba = self.conv_bn_act
        if stride > 1:
            self.branch1 = nn.Sequential(cba(cin, cin, 3, stride, groups=cin, act=None),
                                         cba(cin, half, 1))
        b2_in = cin if stride > 1 else half
        self.branch2 = nn.Sequential(cba(b2_in, half, 1),
                                     cba(half, half, 3, stride, groups=half, act=None),
                                     cba(half, half, 1))
        self.cat = FloatFunctional()

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = self.cat.cat([x1, self.branch2(x2)], dim=1)
        else:
            out = self.cat.cat([self.branch1(x), self.branch2(x)], dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2Units(ArchModel):
    """Strided unit 16->32 and a basic unit 32->32, then 1x1 conv, pool, flatten, fc."""

    input_shape = (1, 16, 16, 16)

    def __init__(self, seed=0, classes=10):
        super().__init__()
        self.stage = nn.Sequential(ShuffleUnit(16, 32, 2), ShuffleUnit(32, 32, 1))
        self.conv5 = ConvBNAct(32, 64, 1)
        self.fc = nn.Linear(64, classes)
        _init(self, seed)

    def body(self, x):
        y = self.conv5(self.stage(x))
        return self.fc(y.mean([2, 3]))   # ShuffleNetV2's global pool is x.mean([2, 3])


# ------------------------------------------------------------------------------ Inception
class Inception(nn.Module):
    """GoogLeNet's Inception (torchvision uses 3x3 where the paper has 5x5)."""

    def __init__(self, cin, ch1, ch3red, ch3, ch5red, ch5, pool_proj):
        super().__init__()
        self.branch1 = ConvBNAct(cin, ch1, 1)
        self.branch2 = nn.Sequential(ConvBNAct(cin, ch3red, 1), ConvBNAct(ch3red, ch3, 3))
        self.branch3 = nn.Sequential(ConvBNAct(cin, ch5red, 1), ConvBNAct(ch5red, ch5, 3),
                                     ConvBNAct(ch5, ch5, 3))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     ConvBNAct(cin, pool_proj, 1))
        self.cat = FloatFunctional()

    def forward(self, x):
        return self.cat.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionBlock(ArchModel):
    """Stem conv 3x3/s2 (3->16), max pool 3/s2 ceil_mode, Inception (16 -> 8+12+6+6 = 32), pool,
    flatten, dropout, fc. Input 1x3x32x32."""

    input_shape = (1, 3, 32, 32)

    def __init__(self, seed=0, classes=10):
        super().__init__()
        self.conv1 = ConvBNAct(3, 16, 3, 2)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception = Inception(16, 8, 8, 12, 4, 6, 6)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(32, classes)
        _init(self, seed)

    def body(self, x):
        y = self.inception(self.maxpool1(self.conv1(x)))
        return self.fc(self.dropout(torch.flatten(self.avgpool(y), 1)))


# ------------------------------------------------------------------------------ U-Net
class UNetDecoder(ArchModel):
    """enc1 (3->8, 16x16) -> pool -> enc2 (8->16, 8x8) -> pool -> bottleneck (16->32, 4x4);
    nearest x2 -> cat enc2 -> dec2 (48->16); bilinear x2 -> cat enc1 -> dec1 (24->8);
    1x1 conv to 5 class scores per pixel. Input 1x3x16x16, output 1x5x16x16."""

    input_shape = (1, 3, 16, 16)
    classes = 5

    def __init__(self, seed=0, classes=5):
        super().__init__()
        self.enc1 = nn.Sequential(ConvBNAct(3, 8, 3), ConvBNAct(8, 8, 3))
        self.pool1 = nn.MaxPool2d(2)
        self.enc2 = ConvBNAct(8, 16, 3)
        self.pool2 = nn.MaxPool2d(2)
        self.bottleneck = ConvBNAct(16, 32, 3)
        self.cat2 = FloatFunctional()
        self.dec2 = ConvBNAct(48, 16, 3)
        self.cat1 = FloatFunctional()
        self.dec1 = ConvBNAct(24, 8, 3)
        self.head = nn.Conv2d(8, classes, 1)
        _init(self, seed)

    def body(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool1(e1))
        b = self.bottleneck(self.pool2(e2))
        d2 = self.dec2(self.cat2.cat([F.interpolate(b, scale_factor=2, mode="nearest"), e2], 1))
        up = F.interpolate(d2, scale_factor=2, mode="bilinear", align_corners=False)
        d1 = self.dec1(self.cat1.cat([up, e1], 1))
        return self.head(d1)


def pixel_top1(want, got):
    """Share of pixels where circle's argmax over the channel dim (1) is PyTorch's argmax, or tied
    with it (PyTorch's value at circle's pick equals PyTorch's maximum)."""
    want, got = np.asarray(want, np.float64), np.asarray(got, np.float64)
    pick = np.argmax(got, axis=1)
    at_pick = np.take_along_axis(want, pick[:, None], axis=1)[:, 0]
    return float(np.mean(at_pick >= want.max(axis=1)))


ARCHS = {
    "mobilenet_v2": MobileNetV2Stage,
    "mobilenet_v3": MobileNetV3Blocks,
    "resnet_bottleneck": ResNetBottleneck,
    "shufflenet_v2": ShuffleNetV2Units,
    "inception": InceptionBlock,
    "unet_decoder": UNetDecoder,
}
PER_PIXEL = frozenset(["unet_decoder"])   # top-1 per pixel, not per image
FX_ARCHS = ("mobilenet_v3", "resnet_bottleneck", "shufflenet_v2")
# (architecture, recipe, engine): eager PTQ of every architecture on both engines, FX of three
CASES = [(a, "ptq", e) for a in ARCHS for e in Q.ENGINES] + [(a, "fx", e) for a in FX_ARCHS for e in Q.ENGINES]


# ------------------------------------------------------------------------------ measuring
RUNTIME_LABELS = ("onert", "tico")


def other_engine(engine):
    return "x86" if engine == "qnnpack" else "qnnpack"


def _qmax(engine):
    # x86 calibrates activations with reduce_range (0..127): stay inside what it calibrated
    return 127 if engine == "x86" else 255


def build(arch, recipe, engine, folder, seed=0):
    """Quantize ``arch`` with ``recipe`` ('ptq': eager PTQ, or 'fx') under ``engine``, trace and
    save it. Returns (path, shape, x, quantized model); x lies on the input quantizer's grid."""
    cls = ARCHS[arch]
    shape = cls.input_shape
    model = cls(seed=seed)
    if recipe == "fx":
        q = Q.quantize_fx(model, engine, shape, seed=seed)
    elif recipe == "ptq":
        q = Q.quantize_eager(model, engine, shape, seed=seed)
    else:
        raise ValueError(recipe)
    path = os.path.join(str(folder), "%s_%s_%s.pt" % (arch, recipe, engine))
    Q.trace_and_save(q, shape, path, engine=engine)
    x = Q.grid_input(q, shape, seed=seed + 7, qmax=_qmax(engine))
    return path, shape, x, q


def run_saved(path, x, engine):
    """The saved TorchScript file run under ``engine`` (the file is repacked on load)."""
    with Q.engine_ctx(engine), Q._quiet(), torch.no_grad():
        return torch.jit.load(path)(torch.from_numpy(x)).numpy()


def top1_agreement(arch, want, got):
    """Top-1 agreement: per image for the classifiers, per pixel for the U-Net (tie-aware)."""
    if arch in PER_PIXEL:
        return pixel_top1(want, got)
    w = np.asarray(want, np.float64).reshape(want.shape[0], -1)
    g = np.asarray(got, np.float64).reshape(want.shape[0], -1)
    pick = np.argmax(g, axis=1)
    return float(np.mean(w[np.arange(len(w)), pick] >= w.max(axis=1)))


class Measured(object):
    """One case (architecture x recipe x engine) compared with PyTorch.

    Per runtime label ("onert": the fc_as_conv conversion under ``report.fidelity(runtime=
    "auto")``; "tico": luci's form on TICO): ``final`` (the report's final-output dict),
    ``layers`` (its rows), ``top1``, ``luci_errors``, ``table`` (the report as text). Shared:
    ``spread`` (max LSB between PyTorch's two engines on the same file and input) and
    ``spread_top1``.
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def worst_per_op(self, label):
        vals = [r["per_op"].get("max_lsb") for r in self.layers[label]]
        return max(v for v in vals if v is not None) if any(v is not None for v in vals) else None

    def per_op_on(self, label, runtime):
        """Layers whose per-op number came from ``runtime``."""
        return [r for r in self.layers[label] if r["per_op"].get("runtime") == runtime]


def measure(arch, recipe, engine, folder, seed=0):
    """Build one case and compare its two conversions with PyTorch (see ``Measured``)."""
    from onelib.pytorch_quant import api, report, runtimes, verify

    path, shape, x, _ = build(arch, recipe, engine, folder, seed)
    ref = run_saved(path, x, engine)
    other = run_saved(path, x, other_engine(engine))
    m = Measured(arch=arch, recipe=recipe, engine=engine, path=path, shape=shape, final={}, layers={},
                 top1={}, luci_errors={}, table={}, notes={})
    for label, kw, runtime in (("onert", {"fc_as_conv": True}, "auto"), ("tico", {}, "tico")):
        opts = api.ConvertOptions(input_shapes=[list(shape)], **kw)
        rep = report.fidelity(path, opts, x=x, runtime=runtime, engine=engine)
        m.final[label], m.layers[label], m.notes[label] = rep.final, rep.layers, list(rep.notes)
        m.table[label] = rep.table()
        conv = api.convert(path, opts)
        # each profile is checked against its own target: luci's rules only (luci), or luci's rules
        # with float islands allowed plus onert's hazards (onert)
        target = "luci" if opts.profile == "luci" else "onert"
        m.luci_errors[label] = [str(f) for f in verify.errors(verify.verify_circle(conv.circle, target=target))]
        if arch in PER_PIXEL:
            # report's top-k is per image; run the converted bytes once more for the per-pixel top-1
            if rep.final["runtime"] == "onert":
                y = runtimes.run_onert(conv.circle, [x])[0]
            else:
                y = runtimes.run_tico(conv.circle, [x])[0]
            m.top1[label] = pixel_top1(ref, y)
        else:
            m.top1[label] = rep.final["top1"]
    scale = m.final["tico"]["scale"]
    m.spread = int(np.rint(np.abs(other.astype(np.float64) - ref) / scale).max())
    m.spread_top1 = top1_agreement(arch, ref, other)
    return m


# ------------------------------------------------------------------------------ README table
def _pct(v):
    return "-" if v is None else ("%.0f%%" % (100.0 * v) if v in (0.0, 1.0) else "%.1f%%" % (100.0 * v))


def markdown_table(results):
    """The README table: one row per case, from ``Measured`` results (in the given order)."""
    head = ["architecture", "engine", "recipe", "e2e max LSB onert", "e2e max LSB TICO",
            "exact outputs onert / TICO", "PyTorch spread (LSB)", "worst per-op LSB onert / TICO",
            "top-1 agreement onert / TICO"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["--:"] * 6) + "|"]
    marks = set()
    for m in results:
        on = m.final["onert"]
        on_lsb = "-" if on["max_lsb"] is None else str(on["max_lsb"])
        if on["runtime"] != "onert":
            on_lsb += " (TICO)\*"
            marks.add("*")
        top = " / ".join(_pct(m.top1[k]) for k in RUNTIME_LABELS)
        if m.arch in PER_PIXEL:
            top += " (per pixel)"
        lines.append("| " + " | ".join([
            m.arch, m.engine, {"ptq": "eager PTQ", "fx": "FX PTQ"}[m.recipe], on_lsb,
            str(m.final["tico"]["max_lsb"]),
            " / ".join(_pct(m.final[k]["exact_share"]) for k in RUNTIME_LABELS),
            str(m.spread),
            " / ".join(str(m.worst_per_op(k)) for k in RUNTIME_LABELS), top]) + " |")
    if "*" in marks:
        lines.append("")
        lines.append("\* onert 0.1.0 has no RESIZE_NEAREST_NEIGHBOR kernel: that model ran end to end on "
                     "TICO (its other ops per-op on onert).")
    return "\n".join(lines)
