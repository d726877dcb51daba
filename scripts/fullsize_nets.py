"""The full-size sweep's (scripts/fullsize_sweep.py) building blocks and its MobileNet, ResNet and
ShuffleNet networks, written the way torchvision's *quantizable* models are (see that file's
docstring). The other networks, the ARCHS table and the recipes: scripts/fullsize_models.py."""
import os
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
warnings.filterwarnings("ignore")

import torch  # noqa: E402
import torch.ao.quantization as tq  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.ao.nn.quantized import FloatFunctional  # noqa: E402

import archmodels as A  # noqa: E402
import qmodels as Q  # noqa: E402


# ------------------------------------------------------------------------------ helpers
def _make_divisible(v, divisor=8, min_value=None):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d [+ activation], torchvision's Conv2dNormActivation."""

    def __init__(self, cin, cout, k=3, stride=1, groups=1, act=nn.ReLU, dilation=1, padding=None, eps=1e-5):
        if padding is None:
            padding = (k - 1) // 2 * dilation if isinstance(k, int) else tuple((kk - 1) // 2 for kk in k)
        layers = [nn.Conv2d(cin, cout, k, stride, padding, dilation=dilation, groups=groups, bias=False),
                  nn.BatchNorm2d(cout, eps=eps)]
        if act is not None:
            layers.append(act(inplace=True) if act in (nn.ReLU, nn.ReLU6, nn.Hardswish) else act())
        super().__init__(*layers)


class QNet(nn.Module):
    """QuantStub -> body -> DeQuantStub, and ``fuse_model`` as torchvision's quantizable nets."""

    def __init__(self):
        super().__init__()
        self.quant = tq.QuantStub()
        self.dequant = tq.DeQuantStub()

    def fuse_list(self):
        groups = []
        for name, m in self.named_modules():
            if isinstance(m, ConvBNAct):
                n = 3 if len(m) == 3 and isinstance(m[2], nn.ReLU) else 2
                groups.append([name + ".%d" % i for i in range(n)])
        return groups + self.extra_fuse()

    def extra_fuse(self):
        return []

    def forward(self, x):
        x = self.quant(x)
        x = self.body(x)
        return self.dequant(x)


def init_params(model, seed=0):
    """qmodels' deterministic init, a little tamer for deep full-size networks."""
    Q._init_params(model, seed, gain=1.4, spread=0.1, gamma_span=0.5)
    return model


# ------------------------------------------------------------------------------ MobileNetV2
class InvertedResidualV2(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hid = int(round(cin * t))
        self.use_res_connect = stride == 1 and cin == cout
        layers = [ConvBNAct(cin, hid, 1)] if t != 1 else []
        layers += [ConvBNAct(hid, hid, 3, stride, groups=hid), nn.Conv2d(hid, cout, 1, bias=False),
                   nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.skip_add = FloatFunctional()

    def forward(self, x):
        if self.use_res_connect:
            return self.skip_add.add(x, self.conv(x))
        return self.conv(x)


def _inverted_residual_fuse(model):
    """The projection conv + BN of every InvertedResidualV2 below ``model``."""
    out = []
    for name, m in model.named_modules():
        if isinstance(m, InvertedResidualV2):
            k = len(m.conv)
            out.append([name + ".conv.%d" % (k - 2), name + ".conv.%d" % (k - 1)])
    return out


class MobileNetV2(QNet):
    """torchvision quantizable MobileNetV2 (ReLU6 replaced by ReLU, as its _replace_relu does)."""

    def __init__(self, num_classes=1000):
        super().__init__()
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1)]
        c = 32
        feats = [ConvBNAct(3, c, 3, 2)]
        for t, ch, n, s in cfg:
            for i in range(n):
                feats.append(InvertedResidualV2(c, ch, s if i == 0 else 1, t))
                c = ch
        feats.append(ConvBNAct(c, 1280, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def extra_fuse(self):
        return _inverted_residual_fuse(self)

    def body(self, x):
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        return self.classifier(x)


# ------------------------------------------------------------------------------ MobileNetV3
class SqueezeExcitation(nn.Module):
    def __init__(self, c, squeeze):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()
        self.skip_mul = FloatFunctional()

    def _scale(self, x):
        s = self.avgpool(x)
        s = self.fc1(s)
        s = self.activation(s)
        s = self.fc2(s)
        return self.scale_activation(s)

    def forward(self, x):
        return self.skip_mul.mul(self._scale(x), x)


class InvertedResidualV3(nn.Module):
    def __init__(self, cin, k, exp, cout, se, act, stride):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        A = nn.Hardswish if act == "HS" else nn.ReLU
        layers = []
        if exp != cin:
            layers.append(ConvBNAct(cin, exp, 1, act=A))
        layers.append(ConvBNAct(exp, exp, k, stride, groups=exp, act=A))
        if se:
            layers.append(SqueezeExcitation(exp, _make_divisible(exp // 4, 8)))
        layers.append(ConvBNAct(exp, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.skip_add = FloatFunctional()

    def forward(self, x):
        y = self.block(x)
        return self.skip_add.add(y, x) if self.use_res_connect else y


class MobileNetV3Large(QNet):
    CFG = [(16, 3, 16, 16, False, "RE", 1), (16, 3, 64, 24, False, "RE", 2), (24, 3, 72, 24, False, "RE", 1),
           (24, 5, 72, 40, True, "RE", 2), (40, 5, 120, 40, True, "RE", 1), (40, 5, 120, 40, True, "RE", 1),
           (40, 3, 240, 80, False, "HS", 2), (80, 3, 200, 80, False, "HS", 1), (80, 3, 184, 80, False, "HS", 1),
           (80, 3, 184, 80, False, "HS", 1), (80, 3, 480, 112, True, "HS", 1), (112, 3, 672, 112, True, "HS", 1),
           (112, 5, 672, 160, True, "HS", 2), (160, 5, 960, 160, True, "HS", 1), (160, 5, 960, 160, True, "HS", 1)]

    def __init__(self, num_classes=1000):
        super().__init__()
        layers = [ConvBNAct(3, 16, 3, 2, act=nn.Hardswish)]
        for cfg in self.CFG:
            layers.append(InvertedResidualV3(*cfg))
        layers.append(ConvBNAct(160, 960, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(960, 1280), nn.Hardswish(inplace=True), nn.Dropout(0.2),
                                        nn.Linear(1280, num_classes))

    def extra_fuse(self):
        return [[n + ".fc1", n + ".activation"] for n, m in self.named_modules()
                if isinstance(m, SqueezeExcitation)]

    def body(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


# ------------------------------------------------------------------------------ ResNet / ResNeXt
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.add_relu = FloatFunctional()

    def fuse(self):
        return [["conv1", "bn1", "relu"], ["conv2", "bn2"]]

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.add_relu.add_relu(out, identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu1 = nn.ReLU(inplace=False)
        self.relu2 = nn.ReLU(inplace=False)
        self.downsample = downsample
        self.skip_add_relu = FloatFunctional()

    def fuse(self):
        return [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"], ["conv3", "bn3"]]

    def forward(self, x):
        identity = x
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.skip_add_relu.add_relu(out, identity)


class ResNet(QNet):
    def __init__(self, block, layers, groups=1, width_per_group=64, num_classes=1000):
        super().__init__()
        self.inplanes, self.groups, self.base_width = 64, groups, width_per_group
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups, base_width=self.base_width))
        return nn.Sequential(*layers)

    def extra_fuse(self):
        out = [["conv1", "bn1", "relu"]]
        for name, m in self.named_modules():
            if isinstance(m, (BasicBlock, Bottleneck)):
                out += [[name + "." + p for p in g] for g in m.fuse()]
                if m.downsample is not None:
                    out.append([name + ".downsample.0", name + ".downsample.1"])
        return out

    def body(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


# ------------------------------------------------------------------------------ ShuffleNetV2
class ShuffleUnit(A.ShuffleUnit):
    """tests/archmodels.py's unit (cat, channel shuffle) with this file's ConvBNAct."""

    conv_bn_act = ConvBNAct


class ShuffleNetV2(QNet):
    def __init__(self, repeats=(4, 8, 4), channels=(24, 116, 232, 464, 1024), num_classes=1000):
        super().__init__()
        self.conv1 = ConvBNAct(3, channels[0], 3, 2)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c = channels[0]
        for i, (n, co) in enumerate(zip(repeats, channels[1:4])):
            units = [ShuffleUnit(c, co, 2)] + [ShuffleUnit(co, co, 1) for _ in range(n - 1)]
            setattr(self, "stage%d" % (i + 2), nn.Sequential(*units))
            c = co
        self.conv5 = ConvBNAct(c, channels[-1], 1)
        self.fc = nn.Linear(channels[-1], num_classes)

    def body(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        x = self.conv5(x)
        x = x.mean([2, 3])
        return self.fc(x)
