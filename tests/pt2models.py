"""Small float models and the PT2E recipes that quantize them, for test_pt2.py and bench_pt2.py.

Every model is built in code with parameters drawn from a local generator (identical in every
process), quantized by one of the recipes below, exported with ``torch.export`` and saved as a
``.pt2``. ``Quantized.reference(x)`` runs the exported program itself: that is what the converted
circle model must reproduce.

Recipes (``RECIPES``):

* ``xnnpack`` / ``xnnpack_pt``: torchao's XNNPACK quantizer, int8 activations, int8 weights
  per-channel / per-tensor; the float model is exported with ``strict=True`` (a non-strict export
  leaves cat and pools unannotated). ``xnnpack_w128``: per-channel with weights -128..127.
* ``x86``, ``arm``: the Inductor quantizers, which quantize only conv/linear inputs (partly
  quantized graphs: uint8 / int8 activations, the rest float).
* ``fx``: FX ``prepare_fx`` + ``_convert_to_reference_decomposed_fx`` (x86 qconfig: uint8
  activations with reduce_range, 0..127), then ``torch.export``.
* ``a16w8``: a small custom quantizer: int16 symmetric activations (+-32767), int8 symmetric
  per-channel weights, int32 bias with scale s_in * s_w[c] (DerivedQuantizationSpec).

``fold_quantize=False`` keeps float weights and an explicit ``quantize_per_channel`` in the graph.
"""
import copy
import os
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# torchao's deprecation notices and the reduce_range notice say nothing about the converter
warnings.filterwarnings("ignore", message=r"(?s).*(deprecated|reduce_range)", category=UserWarning)

__all__ = ["MODELS", "RECIPES", "Quantized", "quantize", "grid_inputs", "built_once", "make_model",
           "engine_reference"]


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


# --------------------------------------------------------------------------- quantizers
def _xnnpack(per_channel, weight_qmin=-127):
    from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=per_channel,
                                                                           weight_qmin=weight_qmin))


def _x86():
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer, get_default_x86_inductor_quantization_config)
    return X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())


def _arm():
    from torchao.quantization.pt2e.quantizer.arm_inductor_quantizer import (
        ArmInductorQuantizer, get_default_arm_inductor_quantization_config)
    return ArmInductorQuantizer().set_global(get_default_arm_inductor_quantization_config())


def _a16w8():
    """int16 activations (symmetric, +-32767 as luci's S16 wants), int8 per-channel weights, and
    int32 biases whose scale is derived from the input and weight scales."""
    from torchao.quantization.pt2e import MinMaxObserver, PerChannelMinMaxObserver
    from torchao.quantization.pt2e.quantizer import (DerivedQuantizationSpec, QuantizationAnnotation,
                                                     QuantizationSpec, Quantizer, SharedQuantizationSpec)

    act = QuantizationSpec(dtype=torch.int16, quant_min=-32767, quant_max=32767,
                           qscheme=torch.per_tensor_symmetric,
                           observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2 ** -20))
    weight = QuantizationSpec(dtype=torch.int8, quant_min=-127, quant_max=127, ch_axis=0,
                              qscheme=torch.per_channel_symmetric,
                              observer_or_fake_quant_ctr=PerChannelMinMaxObserver)
    aten = torch.ops.aten
    weighted = (aten.conv2d.default, aten.linear.default)
    shared = (aten.relu.default, aten.hardtanh.default, aten.max_pool2d.default, aten.avg_pool2d.default,
              aten.adaptive_avg_pool2d.default, aten.flatten.using_ints, aten.view.default,
              aten.mean.dim)
    # own output grid (sigmoid's fixed int16 grid is not modelled: the observer chooses)
    binary = (aten.add.Tensor, aten.mul.Tensor, aten.cat.default, aten.hardswish.default,
              aten.sigmoid.default)

    def bias_of(node):
        def derive(observers):
            s_in, _ = observers[0].calculate_qparams()
            s_w, zp_w = observers[1].calculate_qparams()
            return (s_in * s_w).float(), torch.zeros_like(zp_w, dtype=torch.int32)
        return DerivedQuantizationSpec(derived_from=[(node.args[0], node), (node.args[1], node)],
                                       derive_qparams_fn=derive, dtype=torch.int32,
                                       quant_min=-2 ** 31, quant_max=2 ** 31 - 1,
                                       qscheme=torch.per_channel_symmetric, ch_axis=0)

    class A16W8Quantizer(Quantizer):
        def annotate(self, model):
            for n in model.graph.nodes:
                if n.op != "call_function":
                    continue
                if n.target in weighted:
                    specs = {n.args[0]: act, n.args[1]: weight}
                    if len(n.args) > 2 and n.args[2] is not None:
                        specs[n.args[2]] = bias_of(n)
                    out = act
                elif n.target in shared:
                    specs, out = {n.args[0]: act}, SharedQuantizationSpec((n.args[0], n))
                elif n.target in binary:
                    ins = n.args[0] if n.target == aten.cat.default else n.args[:2]
                    ins = [i for i in ins if isinstance(i, torch.fx.Node)]
                    specs, out = {i: act for i in ins if isinstance(i, torch.fx.Node)}, act
                else:
                    continue
                n.meta["quantization_annotation"] = QuantizationAnnotation(
                    input_qspec_map=specs, output_qspec=out, _annotated=True)
            return model

        def validate(self, model):
            pass

    return A16W8Quantizer()


QUANTIZERS = {"xnnpack": lambda: _xnnpack(True), "xnnpack_pt": lambda: _xnnpack(False),
              # weights -128..127: the range TICO 0.3.0 accepts (it refuses XNNPACK's -127..127)
              "xnnpack_w128": lambda: _xnnpack(True, weight_qmin=-128),
              "x86": _x86, "arm": _arm, "a16w8": _a16w8}
RECIPES = tuple(QUANTIZERS) + ("fx",)


# --------------------------------------------------------------------------- quantize + export
class Quantized(object):
    """A quantized, exported model: ``ep`` (ExportedProgram) and what a test needs to check it."""

    def __init__(self, name, recipe, ep, shapes):
        self.name, self.recipe, self.ep, self.shapes = name, recipe, ep, shapes
        self._module = None

    def save(self, path):
        torch.export.save(self.ep, path)
        return path

    def reference(self, inputs):
        """The exported program's own outputs for numpy ``inputs`` (float32 numpy list)."""
        if self._module is None:
            self._module = self.ep.module()
        with torch.no_grad():
            out = self._module(*[torch.from_numpy(np.ascontiguousarray(a)) for a in inputs])
        outs = out if isinstance(out, (tuple, list)) else [out]
        return [o.detach().numpy() for o in outs]

    def input_grids(self):
        """(scale, zero_point, qmin, qmax) of the quantizer reading each input, or None."""
        return [_input_grid(self.ep, i) for i in range(len(self.shapes))]

    def output_scale(self):
        """The scale of the dequantize that makes each output, or None for a float output."""
        out = []
        nodes = {n.name: n for n in self.ep.graph.nodes}
        ret = [n for n in self.ep.graph.nodes if n.op == "output"][0].args[0]
        for r in ret:
            n = nodes[r.name]
            out.append(float(n.args[1]) if "dequantize_per_tensor" in str(n.target) else None)
        return out


def _input_grid(ep, index):
    user_inputs = [s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    name = user_inputs[index]
    for n in ep.graph.nodes:
        if "quantize_per_tensor" in str(n.target) and "dequantize" not in str(n.target) and \
                getattr(n.args[0], "name", None) == name:
            return float(n.args[1]), int(n.args[2]), int(n.args[3]), int(n.args[4])
    return None


def _calibration(shapes, n, seed):
    g = torch.Generator().manual_seed(seed)
    return [tuple(torch.randn(*s, generator=g) for s in shapes) for _ in range(n)]


def quantize(name, recipe, seed=0, fold_quantize=True, calib=6):
    """Quantize model ``name`` with ``recipe``; returns a ``Quantized`` (or a pair
    (folded, unfolded) when ``fold_quantize`` is 'both', from one calibration)."""
    import torch.ao.quantization.fx._decomposed  # noqa: F401  registers quantized_decomposed ops
    model, shapes = make_model(name, seed)
    example = tuple(torch.randn(*s) for s in shapes)
    batches = _calibration(shapes, calib, seed + 1)
    if recipe == "fx":
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import _convert_to_reference_decomposed_fx, prepare_fx
        prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), example)
        with torch.no_grad():
            for b in batches:
                prepared(*b)
        converted = [_convert_to_reference_decomposed_fx(prepared)]
    else:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        # strict=True keeps the source_fn_stack the XNNPACK quantizer's cat/pool annotators need
        gm = torch.export.export(model, example, strict=True).module()
        prepared = prepare_pt2e(gm, QUANTIZERS[recipe]())
        with torch.no_grad():
            for b in batches:
                prepared(*b)
        folds = [True, False] if fold_quantize == "both" else [bool(fold_quantize)]
        converted = [convert_pt2e(copy.deepcopy(prepared) if len(folds) > 1 else prepared, fold_quantize=f)
                     for f in folds]
    out = [Quantized(name, recipe, torch.export.export(c, example), shapes) for c in converted]
    return out if len(out) > 1 else out[0]


def grid_inputs(q, seed=7, margin=0):
    """Inputs that lie exactly on each input quantizer's grid, so PyTorch's rounding (half to
    even) and circle QUANTIZE's (half away) see exact codes. Float inputs of unquantized models
    are plain normal samples."""
    rng = np.random.RandomState(seed)
    out = []
    for shape, grid in zip(q.shapes, q.input_grids()):
        if grid is None:
            out.append(rng.randn(*shape).astype(np.float32))
            continue
        scale, zp, qmin, qmax = grid
        # about three standard deviations of a unit normal, clipped to the quantizer's range
        codes = np.clip(np.round(rng.randn(*shape) / scale) + zp, qmin + margin, qmax - margin)
        out.append(((codes - zp) * np.float32(scale)).astype(np.float32))
    return out


def built_once(cache, folder, name, recipe):
    """(Quantized, .pt2 path in ``folder``, inputs on the input grid, the program's own outputs),
    made once per ``cache`` dict (one per test module) for each (name, recipe)."""
    key = (name, recipe)
    if key not in cache:
        q = quantize(name, recipe)
        path = q.save(os.path.join(folder, "%s_%s.pt2" % (name, recipe)))
        x = grid_inputs(q)
        cache[key] = (q, path, x, q.reference(x))
    return cache[key]


# --------------------------------------------------------------------------- PyTorch's spread
def engine_reference(q, inputs, engine):
    """The same quantized program run on PyTorch's integer kernels (``quantized::conv2d`` ...
    on ``engine``: 'qnnpack' adds an int32 bias and requantizes in integers, like TFLite/onert;
    'x86' equals the float simulation). The difference to ``q.reference`` is PyTorch's own
    spread: how far two correct executions of one quantized model drift apart through depth.

    Reads graphs of per-tensor int8/uint8 activations where every op's output is quantized
    (XNNPACK-style); int8 runs as quint8 with the zero point moved by 128 (exact)."""
    from torch.ao.nn.quantized import functional as qF
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        return _run_engine(q.ep.module(), inputs, qF)
    finally:
        torch.backends.quantized.engine = old


def _qparams_of(node):
    s, zp, dtype = float(node.args[1]), int(node.args[2]), node.args[5]
    return s, zp + 128 if dtype == torch.int8 else zp


def _output_qparams(node):
    """(scale, zp, fuse_relu) of the quantize reading ``node`` (maybe after a relu)."""
    users = list(node.users)
    if len(users) == 1 and users[0].target == torch.ops.aten.relu.default:
        s, zp, _ = _output_qparams(users[0])
        return s, zp, True
    qs = [u for u in users if "quantize_per_tensor" in str(u.target) and "dequantize" not in str(u.target)]
    if len(qs) != len(users) or not qs:
        raise ValueError("engine_reference: %s is not followed by a quantize" % node)
    s, zp = _qparams_of(qs[0])
    return s, zp, False


def _run_engine(gm, inputs, qF):
    aten = torch.ops.aten
    qd = torch.ops.quantized_decomposed
    env = {}
    feed = iter(inputs)

    def val(a):
        if isinstance(a, torch.fx.Node):
            return env[a]
        if isinstance(a, (list, tuple)):
            return type(a)(val(x) for x in a)
        return a

    for n in gm.graph.nodes:
        if n.op == "placeholder":
            env[n] = torch.from_numpy(np.ascontiguousarray(next(feed)))
            continue
        if n.op == "get_attr":
            obj = gm
            for part in n.target.split("."):
                obj = getattr(obj, part)
            env[n] = obj
            continue
        if n.op == "output":
            outs = [val(a) for a in n.args[0]]
            return [(o.dequantize() if o.is_quantized else o).numpy() for o in outs]
        if n.op != "call_function":
            continue   # _guards_fn
        t, a = n.target, [val(x) for x in n.args]
        if t == qd.quantize_per_tensor.default:
            s, zp = _qparams_of(n)
            if a[0].is_quantized and abs(a[0].q_scale() - s) < 1e-12 and a[0].q_zero_point() == zp:
                env[n] = a[0]   # an op already produced it on this grid (relu, pool, flatten)
            elif a[0].is_quantized:   # a pool's own output grid: requantize
                env[n] = torch.quantize_per_tensor(a[0].dequantize(), s, zp, torch.quint8)
            else:
                env[n] = torch.quantize_per_tensor(a[0], s, zp, torch.quint8)
        elif t == qd.dequantize_per_tensor.default and a[0].is_quantized:
            env[n] = a[0]
        elif t in (qd.dequantize_per_channel.default, qd.dequantize_per_tensor.default):
            if t == qd.dequantize_per_channel.default:
                env[n] = torch._make_per_channel_quantized_tensor(a[0], a[1].double(), a[2], a[3])
            else:
                env[n] = torch._make_per_tensor_quantized_tensor(a[0], a[1], a[2])
        elif t in (aten.conv2d.default, aten.linear.default):
            s, zp, relu = _output_qparams(n)
            x, w = a[0], a[1]
            b = a[2] if len(a) > 2 else None
            if t == aten.linear.default:
                packed = torch.ops.quantized.linear_prepack(w, b)
                op = torch.ops.quantized.linear_relu if relu else torch.ops.quantized.linear
            else:
                geo = [list(a[i]) if len(a) > i else d for i, d in ((3, [1, 1]), (4, [0, 0]), (5, [1, 1]))]
                geo = [g * 2 if len(g) == 1 else g for g in geo]
                groups = a[6] if len(a) > 6 else 1
                packed = torch.ops.quantized.conv2d_prepack(w, b, geo[0], geo[1], geo[2], groups)
                op = torch.ops.quantized.conv2d_relu if relu else torch.ops.quantized.conv2d
            env[n] = op(x.contiguous(), packed, s, zp)
        elif t == aten.add.Tensor:
            s, zp, relu = _output_qparams(n)
            op = torch.ops.quantized.add_relu if relu else torch.ops.quantized.add
            env[n] = op(a[0], a[1], s, zp)
        elif t == aten.relu.default:
            env[n] = a[0] if a[0].is_quantized and _fused(n) else torch.relu(a[0])
        elif t == aten.hardtanh.default:
            env[n] = qF.hardtanh(a[0].contiguous(), a[1], a[2])   # contiguous: see qmodels.py
        elif t == aten.cat.default:
            s, zp, _ = _output_qparams(n)
            env[n] = torch.ops.quantized.cat(a[0], a[1] if len(a) > 1 else 0, s, zp)
        elif t in (aten.max_pool2d.default, aten.adaptive_avg_pool2d.default, aten.avg_pool2d.default,
                   aten.flatten.using_ints, aten.view.default, aten.dropout.default, aten.mean.dim):
            env[n] = getattr(t, "_overloadpacket")(*a) if t != aten.dropout.default else a[0]
        else:
            raise ValueError("engine_reference: no integer kernel for %s" % t)
    raise AssertionError("no output node")


def _fused(relu_node):
    p = relu_node.args[0]
    return p.target in (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default, torch.ops.aten.add.Tensor)
