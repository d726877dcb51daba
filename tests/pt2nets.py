"""The small float models of pt2models.py (re-exported there): single ops, blocks and tiny
networks, with parameters drawn from a local generator; ``MODELS`` maps a name to (factory, input
shapes)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def _init(model, seed):
    """Deterministic weights and non-trivial BatchNorm statistics (BN is folded by PT2E)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (1.5 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
    return model.eval()


# --------------------------------------------------------------------------- single ops
class Conv(nn.Module):
    def __init__(self, cin=3, cout=8, k=3, stride=1, padding=1, groups=1, relu=False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, groups=groups)
        self.relu = nn.ReLU() if relu else None

    def forward(self, x):
        y = self.conv(x)
        return self.relu(y) if self.relu is not None else y


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(x)


class Add(nn.Module):
    def forward(self, x, y):
        return x + y


class Cat(nn.Module):
    def forward(self, x, y):
        return torch.cat([x, y], 1)


class Mul(nn.Module):
    def forward(self, x, y):
        return x * y


class ConvThen(nn.Module):
    """A conv followed by one shape or activation op (PT2E quantizers annotate such ops by
    sharing or following a quantized producer)."""

    def __init__(self, what):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.what = what

    def forward(self, x):
        y = self.conv(x)
        if self.what == "mean":
            return y.mean((2, 3), keepdim=True)
        if self.what == "view":
            return y.view(1, -1)
        if self.what == "hardswish":
            return F.hardswish(y)
        if self.what == "sigmoid":
            return torch.sigmoid(y)
        raise ValueError(self.what)


class ConvMaxPool(nn.Module):
    """max_pool2d is annotated by sharing its input's qparams, so it needs a quantized producer."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        return F.max_pool2d(self.conv(x), 2)


class ConvPoolLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        y = F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1)
        return self.fc(torch.flatten(y, 1))


class ConvAvgPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        return F.avg_pool2d(self.conv(x), 2)


class TransformInput(nn.Module):
    """torchvision GoogLeNet / Inception-v3 ``transform_input`` (``x[:, i]`` -> unsqueeze ->
    ``* c + d`` -> cat, before the first quantizer; XNNPACK quantizes the constants and the
    arithmetic), then a conv."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        x0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
        x1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
        x2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
        return self.conv(torch.cat((x0, x1, x2), 1))


class Normalize(nn.Module):
    """``(x / 255 - mean) / std`` with (1, 3, 1, 1) buffers, ``c - x`` and ``add(.., alpha)``,
    all float before the first quantizer, then a conv."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1))

    def forward(self, x):
        y = (x / 255.0 - self.mean) / self.std
        return self.conv(torch.add(0.5 - y, self.mean, alpha=0.5))


class SliceFeatures(nn.Module):
    """Slices of a quantized feature map (PT2E shares the input's qparams, or quantizes the
    slice onto the next op's grid): channels into a conv, spatial crops into a cat, a whole-axis
    slice (an alias), and ``x[:, i]`` / squeeze / unsqueeze views no quantizer annotates."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        z = self.conv2(y[:, 2:6])
        crop = y[:, :, 1:5, 2:7]
        one = y[:, 7].unsqueeze(1)[:, :, 1:5, 2:7]
        last = y[:, -1:].squeeze(1).unsqueeze(1)[:, :, 1:5, 2:7]
        return torch.cat([z[:, :, 1:5, 2:7], crop[:, :3], one, last], 1)[:, 0:12]


# --------------------------------------------------------------------------- blocks
class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand + ReLU6, 3x3 depthwise + ReLU6, 1x1 project, residual add."""

    def __init__(self, c=8, expand=4, stride=1):
        super().__init__()
        h = c * expand
        self.use_res = stride == 1
        self.conv = nn.Sequential(
            nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, h, 3, stride=stride, padding=1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, c if self.use_res else c * 2, 1, bias=False), nn.BatchNorm2d(c if self.use_res else c * 2))

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.use_res else y


class BasicBlock(nn.Module):
    """ResNet's block: conv-bn-relu, conv-bn, add the input, relu."""

    def __init__(self, c=8):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(x + y)


class TinyMobileNet(nn.Module):
    """A MobileNetV2-like classifier: stem, a stack of inverted residuals, pool, linear."""

    def __init__(self, widths=(16, 16, 24, 24, 32, 32), classes=10):
        super().__init__()
        layers = [nn.Sequential(nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False),
                                nn.BatchNorm2d(widths[0]), nn.ReLU6())]
        c = widths[0]
        for w in widths[1:]:
            if w == c:
                layers.append(InvertedResidual(c, 4, 1))
            else:  # a widening block without residual (stride 2)
                layers.append(Downsample(c, w))
                c = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(c, classes))

    def forward(self, x):
        y = self.features(x)
        y = F.adaptive_avg_pool2d(y, 1).flatten(1)
        return self.classifier(y)


class Downsample(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        h = cin * 4
        self.conv = nn.Sequential(
            nn.Conv2d(cin, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, h, 3, stride=2, padding=1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return self.conv(x)


# name -> (factory, input shapes)
MODELS = {
    "conv": (lambda: Conv(), [(1, 3, 8, 8)]),
    "conv_relu": (lambda: Conv(relu=True), [(1, 3, 8, 8)]),
    "conv_s2": (lambda: Conv(4, 8, 3, stride=2, padding=1), [(1, 4, 9, 9)]),
    "dwconv": (lambda: Conv(8, 8, 3, padding=1, groups=8), [(1, 8, 8, 8)]),
    "linear": (lambda: Linear(), [(1, 16)]),
    "add": (lambda: Add(), [(1, 8, 6, 6), (1, 8, 6, 6)]),
    "cat": (lambda: Cat(), [(1, 4, 6, 6), (1, 8, 6, 6)]),
    "mul": (lambda: Mul(), [(1, 8, 6, 6), (1, 8, 6, 6)]),
    "conv_mean": (lambda: ConvThen("mean"), [(1, 3, 8, 8)]),
    "conv_view": (lambda: ConvThen("view"), [(1, 3, 8, 8)]),
    "conv_hardswish": (lambda: ConvThen("hardswish"), [(1, 3, 8, 8)]),
    "conv_sigmoid": (lambda: ConvThen("sigmoid"), [(1, 3, 8, 8)]),
    "conv_maxpool": (lambda: ConvMaxPool(), [(1, 3, 8, 8)]),
    "conv_avgpool": (lambda: ConvAvgPool(), [(1, 3, 8, 8)]),
    "transform_input": (lambda: TransformInput(), [(1, 3, 8, 8)]),
    "normalize": (lambda: Normalize(), [(1, 3, 8, 8)]),
    "slice_features": (lambda: SliceFeatures(), [(1, 3, 8, 8)]),
    "conv_pool_linear": (lambda: ConvPoolLinear(), [(1, 3, 8, 8)]),
    "inverted_residual": (lambda: InvertedResidual(8, 4), [(1, 8, 8, 8)]),
    "basic_block": (lambda: BasicBlock(8), [(1, 8, 8, 8)]),
    "mobilenet": (lambda: TinyMobileNet(), [(4, 3, 32, 32)]),
    "mobilenet_large": (lambda: TinyMobileNet((32, 32, 32, 48, 48, 48, 64, 64, 64, 96, 96, 96, 96)),
                        [(1, 3, 96, 96)]),
}


def make_model(name, seed=0):
    factory, shapes = MODELS[name]
    return _init(factory(), seed), shapes
