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

from pt2nets import MODELS, _init, make_model  # noqa: F401  (the models, pt2nets.py: re-exported)

# torchao's deprecation notices and the reduce_range notice say nothing about the converter
warnings.filterwarnings("ignore", message=r"(?s).*(deprecated|reduce_range)", category=UserWarning)

__all__ = ["MODELS", "RECIPES", "Quantized", "quantize", "grid_inputs", "built_once", "make_model",
           "engine_reference"]


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
