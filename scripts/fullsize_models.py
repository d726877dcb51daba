"""The full-size sweep's (scripts/fullsize_sweep.py) GoogLeNet, Inception-v3, segmentation and
detection networks, the ARCHS table of every network and the recipes (``quantize``). The building
blocks and the MobileNet, ResNet and ShuffleNet networks: scripts/fullsize_nets.py."""
import copy

import torch
import torch.ao.quantization as tq
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional

from fullsize_nets import (BasicBlock, Bottleneck, ConvBNAct, InvertedResidualV2, MobileNetV2,
                           MobileNetV3Large, QNet, ResNet, ShuffleNetV2, _inverted_residual_fuse)
import qmodels as Q


# ------------------------------------------------------------------------------ GoogLeNet
def _transform_input(x):
    # torchvision's transform_input (pretrained GoogLeNet / Inception-v3): float, before QuantStub
    x0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
    x1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
    x2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
    return torch.cat((x0, x1, x2), 1)


def BasicConv2d(cin, cout, k, stride=1, padding=None):
    return ConvBNAct(cin, cout, k, stride, padding=padding if padding is not None else 0, eps=0.001)


class GInception(nn.Module):
    def __init__(self, cin, ch1, ch3r, ch3, ch5r, ch5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(cin, ch1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, ch3r, 1), BasicConv2d(ch3r, ch3, 3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(cin, ch5r, 1), BasicConv2d(ch5r, ch5, 3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), BasicConv2d(cin, pool_proj, 1))
        self.cat = FloatFunctional()

    def forward(self, x):
        return self.cat.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNet(QNet):
    def __init__(self, num_classes=1000, transform_input=False):
        super().__init__()
        self.transform_input = transform_input
        self.conv1 = BasicConv2d(3, 64, 7, 2, 3)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception3a = GInception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = GInception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception4a = GInception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = GInception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = GInception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = GInception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = GInception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.inception5a = GInception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = GInception(832, 384, 192, 384, 48, 128, 128)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        if self.transform_input:
            x = _transform_input(x)
        return super().forward(x)

    def body(self, x):
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        for n in ("4a", "4b", "4c", "4d", "4e"):
            x = getattr(self, "inception" + n)(x)
        x = self.maxpool4(x)
        x = self.inception5b(self.inception5a(x))
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(self.dropout(x))


# ------------------------------------------------------------------------------ Inception-v3
class InceptionA(nn.Module):
    def __init__(self, cin, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)
        self.myop = FloatFunctional()

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return self.myop.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)
        self.myop = FloatFunctional()

    def forward(self, x):
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return self.myop.cat([b3, bd, bp], 1)


class InceptionC(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)
        self.myop = FloatFunctional()

    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for i in range(1, 6):
            bd = getattr(self, "branch7x7dbl_%d" % i)(bd)
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return self.myop.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)
        self.myop = FloatFunctional()

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, "branch7x7x3_%d" % i)(b7)
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return self.myop.cat([b3, b7, bp], 1)


class InceptionE(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)
        self.myop1 = FloatFunctional()
        self.myop2 = FloatFunctional()
        self.myop3 = FloatFunctional()

    def forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = self.myop1.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = self.myop2.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return self.myop3.cat([b1, b3, bd, bp], 1)


class InceptionV3(QNet):
    def __init__(self, num_classes=1000, transform_input=False):
        super().__init__()
        self.transform_input = transform_input
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, 2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, 2)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout()
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
        if self.transform_input:
            x = _transform_input(x)
        return super().forward(x)

    def body(self, x):
        for n in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                  "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                  "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"):
            x = getattr(self, n)(x)
        x = self.dropout(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


# ------------------------------------------------------------------------------ segmentation / detection
class ASPPPooling(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())

    def forward(self, x):
        size = x.shape[-2:]
        for mod in self:
            x = mod(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class DeepLabLite(QNet):
    """ResNet-ish stride-8 backbone (dilated last stage), DeepLabV3 ASPP head (rates 12, 24, 36, image
    pooling branch upsampled from 1x1), FCN-style classifier and bilinear upsample to the input size."""

    def __init__(self, num_classes=21):
        super().__init__()
        self.stem = nn.Sequential(ConvBNAct(3, 32, 3, 2), ConvBNAct(32, 64, 3, 2), ConvBNAct(64, 128, 3, 2),
                                  ConvBNAct(128, 256, 3, 1, dilation=2))
        convs = [ConvBNAct(256, 128, 1)] + [ConvBNAct(256, 128, 3, dilation=r) for r in (12, 24, 36)]
        self.aspp = nn.ModuleList(convs)
        self.aspp_pool = ASPPPooling(256, 128)
        self.cat = FloatFunctional()
        self.project = nn.Sequential(ConvBNAct(5 * 128, 128, 1), nn.Dropout(0.5))
        self.head = ConvBNAct(128, 128, 3)
        self.classifier = nn.Conv2d(128, num_classes, 1)

    def extra_fuse(self):
        return [["aspp_pool.1", "aspp_pool.2", "aspp_pool.3"]]

    def body(self, x):
        size = x.shape[-2:]
        f = self.stem(x)
        res = [c(f) for c in self.aspp] + [self.aspp_pool(f)]
        y = self.project(self.cat.cat(res, dim=1))
        y = self.classifier(self.head(y))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


class SSDLite(QNet):
    """MobileNetV2-ish backbone and an SSDlite head: per feature map depthwise+pointwise predictors,
    permute(0, 2, 3, 1) -> reshape(N, -1, K) -> cat over anchors, for boxes and for class scores."""

    def __init__(self, num_classes=91, anchors=6):
        super().__init__()
        self.k = num_classes
        self.b1 = nn.Sequential(ConvBNAct(3, 32, 3, 2), InvertedResidualV2(32, 16, 1, 1),
                                InvertedResidualV2(16, 24, 2, 6), InvertedResidualV2(24, 32, 2, 6),
                                InvertedResidualV2(32, 64, 2, 6), InvertedResidualV2(64, 96, 1, 6))  # 14x14
        self.b2 = nn.Sequential(InvertedResidualV2(96, 160, 2, 6), InvertedResidualV2(160, 320, 1, 6))  # 7x7
        self.b3 = nn.Sequential(ConvBNAct(320, 128, 1), ConvBNAct(128, 128, 3, 2, groups=128),
                                ConvBNAct(128, 256, 1))  # 4x4
        self.b4 = nn.Sequential(ConvBNAct(256, 64, 1), ConvBNAct(64, 64, 3, 2, groups=64),
                                ConvBNAct(64, 128, 1))   # 2x2
        chans = (96, 320, 256, 128)

        def pred(c, k):
            return nn.Sequential(ConvBNAct(c, c, 3, groups=c, act=nn.ReLU), nn.Conv2d(c, anchors * k, 1))
        self.reg = nn.ModuleList([pred(c, 4) for c in chans])
        self.cls = nn.ModuleList([pred(c, num_classes) for c in chans])
        self.cat_reg = FloatFunctional()
        self.cat_cls = FloatFunctional()

    def extra_fuse(self):
        return _inverted_residual_fuse(self)

    def forward(self, x):
        x = self.quant(x)
        f1 = self.b1(x)
        f2 = self.b2(f1)
        f3 = self.b3(f2)
        f4 = self.b4(f3)
        regs, clss = [], []
        for f, r, c in zip((f1, f2, f3, f4), self.reg, self.cls):
            n = f.shape[0]
            regs.append(r(f).permute(0, 2, 3, 1).reshape(n, -1, 4))
            clss.append(c(f).permute(0, 2, 3, 1).reshape(n, -1, self.k))
        return self.dequant(self.cat_reg.cat(regs, dim=1)), self.dequant(self.cat_cls.cat(clss, dim=1))


ARCHS = {
    "mobilenet_v2": (MobileNetV2, 224),
    "mobilenet_v3_large": (MobileNetV3Large, 224),
    "resnet18": (lambda: ResNet(BasicBlock, [2, 2, 2, 2]), 224),
    "resnet50": (lambda: ResNet(Bottleneck, [3, 4, 6, 3]), 224),
    "resnext50_32x4d": (lambda: ResNet(Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4), 224),
    "shufflenet_v2_x1_0": (ShuffleNetV2, 224),
    "googlenet": (GoogLeNet, 224),
    "googlenet_tf_input": (lambda: GoogLeNet(transform_input=True), 224),
    "inception_v3": (InceptionV3, 299),
    "deeplab_lite": (DeepLabLite, 224),
    "ssdlite": (SSDLite, 224),
}
PER_PIXEL = frozenset(["deeplab_lite"])
DENSE = frozenset(["deeplab_lite", "ssdlite"])   # top-1 per pixel / per anchor

DEFAULT_CASES = (
    [(a, r) for a in ARCHS for r in ("ptq_x86", "ptq_qnnpack")]
    + [(a, "fx_x86") for a in ("mobilenet_v2", "mobilenet_v3_large", "resnet18", "shufflenet_v2_x1_0",
                                "googlenet", "deeplab_lite")]
    + [(a, "pt2e_xnnpack") for a in ("mobilenet_v2", "resnet18", "shufflenet_v2_x1_0", "googlenet",
                                      "mobilenet_v3_large")])


# ------------------------------------------------------------------------------ quantize
def _calib(shape, n, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) for _ in range(n)]


def quantize(model, recipe, shape, calib):
    batches = _calib(shape, calib, 1)
    model = model.eval()
    if recipe.startswith("ptq_"):
        engine = recipe[4:]
        m = copy.deepcopy(model)
        with Q.engine_ctx(engine), Q._quiet(), torch.no_grad():
            m.qconfig = tq.get_default_qconfig(engine)
            tq.fuse_modules(m, m.fuse_list(), inplace=True)
            tq.prepare(m, inplace=True)
            for b in batches:
                m(b)
            tq.convert(m, inplace=True)
        return m, engine
    if recipe == "fx_x86":
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
        with Q.engine_ctx("x86"), Q._quiet(), torch.no_grad():
            p = prepare_fx(copy.deepcopy(model), tq.get_default_qconfig_mapping("x86"), (batches[0],))
            for b in batches:
                p(b)
            return convert_fx(p), "x86"
    if recipe == "pt2e_xnnpack":
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.testing.pt2e._xnnpack_quantizer import (XNNPACKQuantizer,
                                                             get_symmetric_quantization_config)
        example = (batches[0],)
        gm = torch.export.export(model, example, strict=True).module()
        prepared = prepare_pt2e(gm, XNNPACKQuantizer().set_global(
            get_symmetric_quantization_config(is_per_channel=True)))
        with torch.no_grad():
            for b in batches:
                prepared(b)
        return torch.export.export(convert_pt2e(prepared), example), None
    raise ValueError(recipe)
