"""Regressions found by ``scripts/fullsize_sweep.py`` (full-size torchvision-style networks), each
reproduced here with a SMALL model of the construct that failed.

* PT2E (XNNPACK, export strict=True): ShuffleNetV2's ``chunk`` and channel shuffle
  (view -> transpose -> contiguous -> view), MobileNetV3's SE ``hardsigmoid``, an SSD-style
  ``permute`` -> ``reshape`` -> ``cat`` head and a bilinear upsample were refused by the .pt2
  reader ("unsupported ops: aten.chunk.default, aten.transpose.int, aten.hardsigmoid.default ...").
* TorchScript: torchvision's GoogLeNet / Inception-v3 ``transform_input`` (float ``x[:, i]``,
  unsqueeze, ``* c + d``, cat before the QuantStub) and ``(x - mean) / std`` were refused
  ("aten::select", "aten::mul: arithmetic on tensors").
* onert 0.1.0's uint8 RESIZE_BILINEAR truncates: about half of the outputs of a quantized bilinear
  upsample were 1 LSB low (mean 0.47 LSB), which flipped 1.5% of a DeepLab-style head's pixel
  classes; bilinear now runs in float between DEQUANTIZE and QUANTIZE (mean < 0.1 LSB).

Each model is quantized, saved, converted from the file, run on onert (fc_as_conv) and on TICO,
and compared with PyTorch in LSB of the output scale.
"""
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import pt2models as M
import qmodels as Q
from oracles import lsb, run_onert, run_tico
from onelib.pytorch_quant import api

pytestmark = [pytest.mark.filterwarnings("ignore:.*deprecated:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*deprecated:FutureWarning")]

BLOCK_LSB = 2


# ------------------------------------------------------------------------------ PT2E models
def _cbr(cin, cout, k=1, s=1, g=1, relu=True):
    layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*(layers + [nn.ReLU()] if relu else layers))


class ShuffleUnits(nn.Module):
    """A strided ShuffleNetV2 unit and a basic one (chunk, cat, channel shuffle)."""

    def __init__(self):
        super().__init__()
        self.b1 = nn.Sequential(_cbr(8, 8, 3, 2, 8, relu=False), _cbr(8, 8))
        self.b2 = nn.Sequential(_cbr(8, 8), _cbr(8, 8, 3, 2, 8, relu=False), _cbr(8, 8))
        self.b3 = nn.Sequential(_cbr(8, 8), _cbr(8, 8, 3, 1, 8, relu=False), _cbr(8, 8))

    @staticmethod
    def shuffle(x):
        b, c, h, w = x.size()
        x = x.view(b, 2, c // 2, h, w)
        x = torch.transpose(x, 1, 2).contiguous()
        return x.view(b, -1, h, w)

    def forward(self, x):
        x = self.shuffle(torch.cat([self.b1(x), self.b2(x)], dim=1))
        x1, x2 = x.chunk(2, dim=1)
        return self.shuffle(torch.cat([x1, self.b3(x2)], dim=1))


class SEBlock(nn.Module):
    """MobileNetV3 squeeze-excitation: pool, 1x1, ReLU, 1x1, hardsigmoid, mul."""

    def __init__(self):
        super().__init__()
        self.conv = _cbr(3, 16, 3)
        self.fc1 = nn.Conv2d(16, 8, 1)
        self.fc2 = nn.Conv2d(8, 16, 1)

    def forward(self, x):
        x = self.conv(x)
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))
        return s * x


class DetHead(nn.Module):
    """SSD-style predictions: conv -> permute(0, 2, 3, 1) -> reshape(N, -1, 4), cat over two maps."""

    def __init__(self):
        super().__init__()
        self.c1 = _cbr(3, 8, 3, 2)
        self.c2 = _cbr(8, 8, 3, 2)
        self.p1 = nn.Conv2d(8, 3 * 4, 1)
        self.p2 = nn.Conv2d(8, 3 * 4, 1)

    def forward(self, x):
        f1 = self.c1(x)
        f2 = self.c2(f1)
        a = self.p1(f1).permute(0, 2, 3, 1).reshape(1, -1, 4)
        b = self.p2(f2).permute(0, 2, 3, 1).reshape(1, -1, 4)
        return torch.cat([a, b], dim=1)


class SegHead(nn.Module):
    """FCN-style: strided convs, 1x1 classifier, bilinear upsample to the input size."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(_cbr(3, 8, 3, 2), _cbr(8, 8, 3, 2))
        self.cls = nn.Conv2d(8, 5, 1)

    def forward(self, x):
        return F.interpolate(self.cls(self.body(x)), size=x.shape[-2:], mode="bilinear", align_corners=False)


PT2_MODELS = {
    "shuffle_units": (ShuffleUnits, (1, 8, 12, 12)),
    "se_block": (SEBlock, (1, 3, 8, 8)),
    "det_head": (DetHead, (1, 3, 16, 16)),
    "seg_head": (SegHead, (1, 3, 16, 16)),
}


def _pt2e_xnnpack(model, shape, seed=0):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    M._init(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    batches = [torch.randn(shape, generator=g) for _ in range(4)]
    gm = torch.export.export(model.eval(), (batches[0],), strict=True).module()
    prepared = prepare_pt2e(gm, M._xnnpack(True))
    with torch.no_grad():
        for b in batches:
            prepared(b)
    return M.Quantized("m", "xnnpack", torch.export.export(convert_pt2e(prepared), (batches[0],)), [shape])


@pytest.mark.parametrize("name", sorted(PT2_MODELS))
def test_pt2e_xnnpack(name, tmp_path):
    factory, shape = PT2_MODELS[name]
    q = _pt2e_xnnpack(factory(), shape)
    path = q.save(str(tmp_path / (name + ".pt2")))
    x = M.grid_inputs(q)
    ref = q.reference(x)[0]
    # XNNPACK leaves a trailing upsample in float: count on an int8 grid spanning the output
    scale = q.output_scale()[0] or float(np.abs(ref).max()) / 127.0
    for oracle in ("onert", "tico"):
        conv = api.convert(path, api.ConvertOptions(fc_as_conv=(oracle == "onert")))
        if oracle == "onert":
            circle = str(tmp_path / (name + ".circle"))
            conv.save(circle)
            y = run_onert(circle, x)[0]
        else:
            y = run_tico(conv.circle, x)[0]
        assert y.shape == ref.shape
        assert lsb(y, ref, scale) <= BLOCK_LSB, (oracle, lsb(y, ref, scale))


# ------------------------------------------------------------------------------ TorchScript models
def _transform_input(x):
    x0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
    x1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
    x2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
    return torch.cat((x0, x1, x2), 1)


class TransformInput(Q.QModel):
    """GoogLeNet's transform_input, then QuantStub -> conv -> DeQuantStub."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return super().forward(_transform_input(x))

    def body(self, x):
        return self.conv(x)


class Normalize(TransformInput):
    """``(x - mean) / std`` with (1, 3, 1, 1) tensors and ``x / 255``, in float before QuantStub."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x):
        return Q.QModel.forward(self, (x / 255.0 - self.mean) / self.std)


class Bilinear(Q.QModel):
    """conv -> bilinear upsample x8 to a given size (FCN/DeepLab head)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def body(self, x):
        return F.interpolate(self.conv(x), size=(48, 48), mode="bilinear", align_corners=False)


def _ts_case(model, shape, engine, tmp_path, x=None):
    Q._init_params(model, 0)
    q = Q.quantize_eager(model, engine, shape)
    path = str(tmp_path / "m.pt")
    Q.trace_and_save(q, shape, path, engine=engine)
    if x is None:
        x = Q.grid_input(q, shape, qmax=127 if engine == "x86" else 255)
    ref = Q.reference(q, x, engine)
    outs = {}
    for oracle in ("onert", "tico"):
        conv = api.convert(path, api.ConvertOptions(input_shapes=[list(shape)]))
        circle = str(tmp_path / ("m_%s.circle" % oracle))
        conv.save(circle)
        y = (run_onert if oracle == "onert" else run_tico)(circle, x)[0]
        outs[oracle] = np.rint(np.abs(y.astype(np.float64) - ref.out) / ref.qparams.scale)
    return outs


@pytest.mark.parametrize("engine", Q.ENGINES)
@pytest.mark.parametrize("cls", [TransformInput, Normalize], ids=["transform_input", "normalize"])
def test_float_preprocessing(cls, engine, tmp_path):
    shape = (1, 3, 8, 8)
    x = np.random.RandomState(0).rand(*shape).astype(np.float32) * (255 if cls is Normalize else 1)
    for oracle, d in _ts_case(cls(), shape, engine, tmp_path, x).items():
        assert d.max() <= 1, (oracle, d.max())


@pytest.mark.parametrize("engine", Q.ENGINES)
def test_bilinear_upsample_rounds(engine, tmp_path):
    """RESIZE_BILINEAR stays quantized (the form luci and NPU backends take). onert 0.1.0's uint8
    kernel truncates where PyTorch rounds: within 1 LSB, but about half of its outputs are 1 LSB
    low (mean 0.47 LSB); TICO rounds like PyTorch. This pins both, so an onert fix is noticed."""
    for oracle, d in _ts_case(Bilinear(), (1, 3, 6, 6), engine, tmp_path).items():
        assert d.max() <= 1, (oracle, d.max())
        if oracle == "onert":
            assert 0.2 < d.mean() < 0.7, (oracle, d.mean())
        else:
            assert d.mean() < 0.1, (oracle, d.mean())
