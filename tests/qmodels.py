"""Small quantized PyTorch test models, built in code, plus PyTorch references.

Every model is an eager-mode float model (QuantStub → body → DeQuantStub) that is
quantized here with eager PTQ/QAT or FX. Parameters are initialised from a local
generator, so a model is identical across processes and does not depend on the
global torch RNG state of whichever test runs first.

Why the details below matter for a converter test suite:

* ``.contiguous()`` precedes every relu6/hardtanh/clamp: under qnnpack a conv returns
  a channels_last quantized tensor, and torch 2.13's quantized relu6/hardtanh/clamp
  mislabel such data as NCHW (torch-quant-forms.md §8 pitfall 13; without it the
  qnnpack reference of InvertedResidual is off by up to 204 LSB). It shows up in
  traced graphs as ``aten::contiguous``, which a converter must treat as identity.
* ``grid_input`` puts every input value exactly on the input quantizer's grid so
  PyTorch (round half to even) and circle QUANTIZE (round half away) cannot differ
  at the very first op.
* ``reference`` reports the output's qparams so a test can express errors in LSB.
"""
import contextlib
import copy
import warnings

import torch
import torch.ao.quantization as tq
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional

from qreference import (  # the engines and references (qreference.py), re-exported: Q.reference ...
    ENGINES, QParams, Reference, _quiet, engine_ctx, grid_input, input_qparams, reference)  # noqa: F401

__all__ = [
    "ENGINES",
    "FX_FLOAT_ONLY",
    "QModel",
    "ConvReluConvConv",
    "InvertedResidual",
    "BasicBlock",
    "Classifier",
    "MODELS",
    "SINGLE_OP_MODELS",
    "QParams",
    "Reference",
    "engine_ctx",
    "quantize_eager",
    "quantize_fx",
    "trace_and_save",
    "input_qparams",
    "grid_input",
    "reference",
    "all_models",
]

# Single-op models that FX leaves entirely in float (nn.Flatten and Tensor.reshape
# alone get no quantize_per_tensor in FX), so quantize_fx gives nothing to test.
FX_FLOAT_ONLY = frozenset(["flatten", "reshape"])


# ----------------------------------------------------------------------------------
# Deterministic parameter initialisation
# ----------------------------------------------------------------------------------

def _init_params(module, seed, gain=1.5, spread=0.2, gamma_span=1.0):
    """Re-initialise conv/linear/BN parameters from a private generator.

    BN gets non-trivial statistics on purpose: with PyTorch's default init
    (mean 0, var 1, gamma 1, beta 0) conv+BN folding would be nearly a no-op and a
    converter that forgot the fold would still pass.

    Weights ~ N(0, gain^2 / fan_in); biases, BN beta and BN mean ~ N(0, spread^2);
    BN gamma ~ U(0.5, 0.5 + gamma_span); BN var ~ U(0.5, 1.5).
    """
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (gain / fan_in ** 0.5))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * spread)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=g) * gamma_span + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * spread)
                m.running_mean.copy_(torch.randn(c, generator=g) * spread)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)


class QModel(nn.Module):
    """Base: QuantStub → ``body`` → DeQuantStub.

    Subclasses define ``body(x)`` on the (quantized) tensor and list their fusable
    module groups in ``fuse_list``. The stubs are named ``quant``/``dequant`` because
    ``grid_input`` and ``reference`` look them up by those names.
    """

    def __init__(self):
        super().__init__()
        self.quant = tq.QuantStub()
        self.dequant = tq.DeQuantStub()

    def fuse_list(self):
        # type: () -> List[List[str]]
        return []

    def body(self, x):
        raise NotImplementedError

    def forward(self, x):
        return self.dequant(self.body(self.quant(x)))


# ----------------------------------------------------------------------------------
# Whole-network test models
# ----------------------------------------------------------------------------------

class ConvReluConvConv(QModel):
    """Conv(3,8,3,p1) → ReLU → Conv(8,8,3,s2,p1) → Conv(8,4,1). Input 1x3x16x16."""

    input_shape = (1, 3, 16, 16)

    def __init__(self, seed=0):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(8, 4, 1)
        _init_params(self, seed)

    def fuse_list(self):
        return [["conv1", "relu1"]]

    def body(self, x):
        return self.conv3(self.conv2(self.relu1(self.conv1(x))))


class InvertedResidual(QModel):
    """MobileNetV2 block: 1x1 expand+BN+ReLU6, 3x3 dw+BN+ReLU6, 1x1 project+BN, skip add.

    Input 1x8x16x16. Eager fusion cannot fold ReLU6 into the conv, so ReLU6 stays
    a standalone quantized op, as in torchvision's quantized MobileNetV2.
    """

    input_shape = (1, 8, 16, 16)

    def __init__(self, seed=0, channels=8, expand=3):
        super().__init__()
        hidden = channels * expand
        self.expand = nn.Conv2d(channels, hidden, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(hidden)
        self.expand_act = nn.ReLU6()
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.dw_bn = nn.BatchNorm2d(hidden)
        self.dw_act = nn.ReLU6()
        self.project = nn.Conv2d(hidden, channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(channels)
        self.skip_add = FloatFunctional()
        _init_params(self, seed)

    def fuse_list(self):
        return [["expand", "expand_bn"], ["dw", "dw_bn"], ["project", "project_bn"]]

    def body(self, x):
        y = self.expand_act(self.expand_bn(self.expand(x)).contiguous())
        y = self.dw_act(self.dw_bn(self.dw(y)).contiguous())
        y = self.project_bn(self.project(y))
        return self.skip_add.add(x, y)


class BasicBlock(QModel):
    """ResNet basic block with a strided 1x1 downsample; 1x8x16x16 → 1x16x8x8."""

    input_shape = (1, 8, 16, 16)

    def __init__(self, seed=0, cin=8, cout=16):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.down_bn = nn.BatchNorm2d(cout)
        self.add_relu = FloatFunctional()
        _init_params(self, seed)

    def fuse_list(self):
        return [["conv1", "bn1", "relu1"], ["conv2", "bn2"], ["down", "down_bn"]]

    def body(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.add_relu.add_relu(y, self.down_bn(self.down(x)))


class Classifier(QModel):
    """conv+relu → conv(s2)+relu → flatten(16x4x4) → Linear(256,32)+ReLU → Linear(32,10).

    Input 1x3x8x8. The flatten of a map with H·W > 1 is deliberate: NCHW and NHWC
    flatten orders differ, so a converter must permute (pitfall 6).
    """

    input_shape = (1, 3, 8, 8)

    def __init__(self, seed=0):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(256, 32)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(32, 10)
        _init_params(self, seed)

    def fuse_list(self):
        return [["conv1", "relu1"], ["conv2", "relu2"], ["fc1", "relu3"]]

    def body(self, x):
        y = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc2(self.relu3(self.fc1(self.flatten(y))))


MODELS = {
    "conv_relu_conv_conv": (ConvReluConvConv, ConvReluConvConv.input_shape),
    "inverted_residual": (InvertedResidual, InvertedResidual.input_shape),
    "basic_block": (BasicBlock, BasicBlock.input_shape),
    "classifier": (Classifier, Classifier.input_shape),
}  # type: Dict[str, Tuple[Callable[..., QModel], Tuple[int, ...]]]


# ----------------------------------------------------------------------------------
# Single-op models
# ----------------------------------------------------------------------------------
#
# Binary ops (add, mul, cat, ...) need two quantized operands with *different*
# qparams to be a meaningful test, but the registry gives one input shape. They
# therefore combine the quantized input with a 1x1 conv of it: the conv is the
# best-covered op, and its output has its own scale/zero point.

class _Seq(QModel):
    """A chain of modules between the stubs; ``fuse`` names groups to fuse."""

    def __init__(self, mods, fuse=(), contiguous_before=(), seed=0):
        super().__init__()
        self.names = []
        for name, mod in mods:
            setattr(self, name, mod)
            self.names.append(name)
        self._fuse = [list(f) for f in fuse]
        self._contig = set(contiguous_before)
        _init_params(self, seed)

    def fuse_list(self):
        return [list(f) for f in self._fuse]

    def body(self, x):
        for name in self.names:
            if name in self._contig:
                x = x.contiguous()
            x = getattr(self, name)(x)
        return x


class _Binary(QModel):
    """``op(x, conv1x1(x))`` through a FloatFunctional, or a scalar op on ``x``."""

    def __init__(self, op, channels=4, seed=0):
        super().__init__()
        self.op = op
        if not op.endswith("_scalar"):
            self.conv = nn.Conv2d(channels, channels, 1)
        self.ff = FloatFunctional()
        _init_params(self, seed)

    def body(self, x):
        if self.op == "add_scalar":
            # QFunctional.add_scalar is not observed: its output qparams are derived
            # from the input's (same scale, shifted zero point).
            return self.ff.add_scalar(x, 0.75)
        if self.op == "mul_scalar":
            return self.ff.mul_scalar(x, -1.5)
        y = self.conv(x)
        if self.op == "add":
            return self.ff.add(x, y)
        if self.op == "add_relu":
            return self.ff.add_relu(x, y)
        if self.op == "mul":
            return self.ff.mul(x, y)
        if self.op == "cat":
            return self.ff.cat([x, y], dim=1)
        raise ValueError(self.op)


class _Func(QModel):
    """A functional/tensor-method op applied to the quantized input."""

    def __init__(self, op, seed=0):
        super().__init__()
        self.op = op

    def body(self, x):
        if self.op == "reshape":
            return x.reshape(1, 4, 16)           # constant target shape, rank change
        if self.op == "view":
            return x.view(x.size(0), -1)         # traced as aten::size + view: common idiom
        if self.op == "mean":
            return torch.mean(x, dim=(2, 3), keepdim=True)
        raise ValueError(self.op)


def _conv(cin=4, cout=8, k=3, **kw):
    return nn.Conv2d(cin, cout, k, **kw)


SINGLE_OP_MODELS = {
    # convolution variants
    "conv": (lambda: _Seq([("conv", _conv(padding=1))]), (1, 4, 8, 8)),
    "conv_nobias": (lambda: _Seq([("conv", _conv(padding=1, bias=False))]), (1, 4, 8, 8)),
    "depthwise_conv": (lambda: _Seq([("conv", _conv(8, 8, padding=1, groups=8))]), (1, 8, 8, 8)),
    "depthwise_conv_mult2": (lambda: _Seq([("conv", _conv(4, 8, padding=1, groups=4))]),
                             (1, 4, 8, 8)),
    "grouped_conv": (lambda: _Seq([("conv", _conv(8, 8, padding=1, groups=2))]), (1, 8, 8, 8)),
    # 3x3/s2/p1 on an even size is NOT TFLite SAME (SAME pads at the end only)
    "conv_s2_p1": (lambda: _Seq([("conv", _conv(stride=2, padding=1))]), (1, 4, 16, 16)),
    "conv_k5_p1": (lambda: _Seq([("conv", _conv(k=5, padding=1))]), (1, 4, 16, 16)),
    "conv_relu_fused": (lambda: _Seq([("conv", _conv(padding=1)), ("relu", nn.ReLU())],
                                     fuse=[["conv", "relu"]]), (1, 4, 8, 8)),
    "linear": (lambda: _Seq([("fc", nn.Linear(16, 8))]), (2, 16)),
    "linear_relu_fused": (lambda: _Seq([("fc", nn.Linear(16, 8)), ("relu", nn.ReLU())],
                                       fuse=[["fc", "relu"]]), (2, 16)),
    # binary / scalar ops
    "add": (lambda: _Binary("add"), (1, 4, 8, 8)),
    "add_relu": (lambda: _Binary("add_relu"), (1, 4, 8, 8)),
    "mul": (lambda: _Binary("mul"), (1, 4, 8, 8)),
    "add_scalar": (lambda: _Binary("add_scalar"), (1, 4, 8, 8)),
    "mul_scalar": (lambda: _Binary("mul_scalar"), (1, 4, 8, 8)),
    "cat": (lambda: _Binary("cat"), (1, 4, 8, 8)),
    # activations. relu/relu6/hardtanh follow an (unfused) conv: that is where they
    # occur in real models, and where qnnpack hands them channels_last tensors.
    "relu": (lambda: _Seq([("conv", _conv(padding=1)), ("relu", nn.ReLU())]), (1, 4, 8, 8)),
    "relu6": (lambda: _Seq([("conv", _conv(padding=1)), ("act", nn.ReLU6())],
                           contiguous_before=["act"]), (1, 4, 8, 8)),
    "hardtanh": (lambda: _Seq([("conv", _conv(padding=1)), ("act", nn.Hardtanh(0.0, 6.0))],
                              contiguous_before=["act"]), (1, 4, 8, 8)),
    "hardswish": (lambda: _Seq([("act", nn.Hardswish())]), (1, 4, 8, 8)),
    "sigmoid": (lambda: _Seq([("act", nn.Sigmoid())]), (1, 4, 8, 8)),
    # pooling and shape ops
    "max_pool2d": (lambda: _Seq([("pool", nn.MaxPool2d(2, 2))]), (1, 4, 8, 8)),
    "avg_pool2d": (lambda: _Seq([("pool", nn.AvgPool2d(2, 2))]), (1, 4, 8, 8)),
    "adaptive_avg_pool2d": (lambda: _Seq([("pool", nn.AdaptiveAvgPool2d(1))]), (1, 4, 8, 8)),
    "flatten": (lambda: _Seq([("flatten", nn.Flatten())]), (1, 4, 4, 4)),
    "reshape": (lambda: _Func("reshape"), (1, 4, 4, 4)),
    "view": (lambda: _Func("view"), (1, 4, 4, 4)),
    "mean": (lambda: _Func("mean"), (1, 4, 8, 8)),
    # eval-mode dropout is an identity and torch.jit.trace records no node for it:
    # the traced file is just the conv. It checks the converter is not confused by
    # a module that vanishes, e.g. when mapping module names.
    "dropout": (lambda: _Seq([("conv", _conv(padding=1)), ("drop", nn.Dropout(0.25))]),
                (1, 4, 8, 8)),
}  # type: Dict[str, Tuple[Callable[[], QModel], Tuple[int, ...]]]


# ----------------------------------------------------------------------------------
# Quantization recipes
# ----------------------------------------------------------------------------------

def _batches(shape, seed, n=8):
    g = torch.Generator().manual_seed(int(seed))
    return [torch.randn(tuple(shape), generator=g) for _ in range(n)]


def quantize_eager(model, engine, example_shape, qat=False, seed=0):
    """Eager-mode PTQ (or QAT) of a copy of ``model`` with ``engine``'s default qconfig.

    Returns the converted model; ``model`` itself is left float. QAT does a couple
    of SGD steps so fake-quant observers and BN statistics actually move, then
    converts: the result has the same form as PTQ (torch-quant-forms.md §2).
    """
    m = copy.deepcopy(model)
    with engine_ctx(engine), _quiet():
        if not qat:
            m.eval()
            m.qconfig = tq.get_default_qconfig(engine)
            if m.fuse_list():
                tq.fuse_modules(m, m.fuse_list(), inplace=True)
            tq.prepare(m, inplace=True)
            with torch.no_grad():
                for x in _batches(example_shape, seed):
                    m(x)
        else:
            m.train()
            m.qconfig = tq.get_default_qat_qconfig(engine)
            if m.fuse_list():
                tq.fuse_modules_qat(m, m.fuse_list(), inplace=True)
            tq.prepare_qat(m, inplace=True)
            opt = torch.optim.SGD(m.parameters(), lr=1e-3)
            g = torch.Generator().manual_seed(int(seed) + 1)
            for x in _batches(example_shape, seed, n=3):
                opt.zero_grad()
                y = m(x)
                loss = (y - torch.randn(y.shape, generator=g)).pow(2).mean()
                loss.backward()
                opt.step()
            m.eval()
            with torch.no_grad():
                for x in _batches(example_shape, seed):
                    m(x)
        tq.convert(m, inplace=True)
    return m


def quantize_fx(model, engine, example_shape, seed=0):
    """FX graph-mode PTQ of a copy of ``model``.

    The eager models work unchanged: FX drops QuantStub/DeQuantStub (it places its
    own quantize_per_tensor at the input) and traces FloatFunctional calls into
    quantized ops. FX also fuses conv/linear+relu itself, for F.relu as well as
    nn.ReLU, so the ``relu`` single-op model is fused here but not in eager mode.
    """
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    m = copy.deepcopy(model).eval()
    calib = _batches(example_shape, seed)
    with engine_ctx(engine), _quiet():
        p = prepare_fx(m, tq.get_default_qconfig_mapping(engine), (calib[0],))
        with torch.no_grad():
            for x in calib:
                p(x)
        return convert_fx(p)


def trace_and_save(qmodel, example_shape, path, engine=None):
    """``torch.jit.trace`` + ``torch.jit.save``; returns the traced module.

    Pass ``engine`` when the model was quantized under a non-default engine:
    tracing runs the model, and the packed weights belong to that engine.
    """
    x = torch.zeros(tuple(example_shape))
    ctx = engine_ctx(engine) if engine is not None else contextlib.nullcontext()
    with ctx, _quiet(), torch.no_grad(), warnings.catch_warnings():
        # The tracer warns that qparams become constants: that is exactly the
        # traced form the importer reads (torch-quant-forms.md §4.1).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # check_trace re-runs the model and compares; the caller compares outputs
        # after reload anyway, so skip the cost.
        traced = torch.jit.trace(qmodel.eval(), x, check_trace=False)
        torch.jit.save(traced, str(path))
    return traced


def all_models():
    """name → (factory, input_shape) for every model in this module."""
    d = dict(MODELS)
    d.update(SINGLE_OP_MODELS)
    return d
