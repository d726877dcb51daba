"""hardsigmoid, tanh, leaky_relu, elu, silu, gelu, softmax, log_softmax; the fixed-qparams rule
shared with sigmoid.

Two ways to lower a quantized unary op, and when each is used:

* the quantized circle op, when one exists, both runtimes run it, and PyTorch's output grid is the
  one circle requires. LOGISTIC, TANH and SOFTMAX have fixed output qparams in luci (uint8:
  1/256 and 0, 2/256 and 128, ``options.softmax_scale`` and 0). PyTorch's sigmoid and tanh
  always produce exactly those grids (its fixed-qparams ops), and its softmax does when it was
  quantized with the fixed-qparams observer (FX default).
* a float island: DEQUANTIZE -> the op in float32 -> QUANTIZE onto PyTorch's own output grid.
  This is how PyTorch itself computes these ops (dequantize, float op, requantize), so it is the
  same arithmetic and stays within 1 LSB on every input code (tests/test_unary_exhaustive.py).
  It is used where circle has no quantized op that onert and TICO run (hardsigmoid, leaky_relu,
  elu; hardswish in elementwise.py), and where PyTorch's output grid differs from the fixed one
  (a softmax or sigmoid observed to some other range): emitting the circle op with its fixed
  qparams and requantizing would round twice and change PyTorch's output grid, so we never do.
"""
import numpy as np

from ..circle.vocab import ACT
from ..errors import ConversionError
from ..ir import QParams, Tensor
from .ctx import nhwc_axis
from .declare import op, same_shape

# luci's fixed output qparams (one-conventions.md §5.3) per model dtype
FIXED_QPARAMS = {
    "LOGISTIC": {"uint8": (1.0 / 256.0, 0), "int16": (1.0 / 32768.0, 0)},
    "TANH": {"uint8": (2.0 / 256.0, 128), "int16": (1.0 / 32768.0, 0)},
}
SOFTMAX_SCALES = {"1/256": 1.0 / 256.0, "1/255": 1.0 / 255.0}


def fixed_qparams(kind, dtype, options=None):
    """(scale, zero point) circle requires on the output of ``kind`` for activations of ``dtype``."""
    if kind == "SOFTMAX":
        if dtype == "int16":
            return 1.0 / 32767.0, 0
        key = getattr(options, "softmax_scale", "1/256") or "1/256"
        if key not in SOFTMAX_SCALES:
            raise ConversionError("softmax_scale must be one of %s, not %r" % (sorted(SOFTMAX_SCALES), key))
        return SOFTMAX_SCALES[key], 0
    return FIXED_QPARAMS[kind].get(dtype)


def on_fixed_grid(t, kind, options=None):
    """True when quantized tensor ``t`` is exactly on circle's fixed output grid for ``kind``."""
    if t.qparams is None or not t.qparams.per_tensor:
        return False
    fixed = fixed_qparams(kind, t.dtype, options)
    return fixed is not None and np.float32(t.qparams.scale[0]) == np.float32(fixed[0]) \
        and int(t.qparams.zero_point[0]) == fixed[1]


class FloatIsland(object):
    """DEQUANTIZE -> float ops -> QUANTIZE to the source op's output grid (or float in and out
    when the source op already runs in float). ``x`` is the float input; emit the body with
    ``tmp``/``op`` and finish with ``done(last)``."""

    def __init__(self, ctx, op, x=None):
        self.ctx, self.src_op = ctx, op
        self.name = op.name
        xq = ctx.value(op.inputs[0]) if x is None else x
        self.x = xq
        if xq.qparams is not None:
            self.x = Tensor(op.name + "/float", xq.shape, "float32")
            ctx.emit("DEQUANTIZE", [xq], [self.x], {}, op.name + "/dequantize")

    def tmp(self, tag, shape=None):
        return Tensor("%s/%s" % (self.name, tag), self.x.shape if shape is None else shape, "float32")

    def const(self, tag, value):
        return self.ctx.const("%s/%s" % (self.name, tag), np.array([value], np.float32))

    def op(self, kind, inputs, tag, attrs=None, out=None):
        out = out or self.tmp(tag)
        self.ctx.emit(kind, inputs, [out], attrs or {}, "%s/%s" % (self.name, tag))
        return out

    def output(self, shape=None, tag="float_out", name=None):
        """The float tensor the body's last op must write (the result itself when the source op
        runs in float; otherwise what QUANTIZE reads, named ``tag``). ``name``: the island's
        result's, when not the source op output's (a TRANSPOSE after the island writes that)."""
        out = self.src_op.outputs[0]
        self.y = self.ctx.like(out, name=name) if shape is None else self.ctx.like(out, name=name, shape=shape)
        return self.y if out.qparams is None else self.tmp(tag, self.y.shape)

    def done(self, last):
        if self.y.qparams is not None:
            self.ctx.emit("QUANTIZE", [last], [self.y], {}, self.name)
        return self.y


def float_unary(ctx, op, kind, attrs=None, x=None):
    """The circle op ``kind`` applied in float32 between DEQUANTIZE and QUANTIZE."""
    isl = FloatIsland(ctx, op, x)
    y = isl.op(kind, [isl.x], "op", attrs, out=isl.output(None if x is None else x.shape))
    return isl.done(y)


def requantizable_from_fixed(out, kind, options):
    """luci profile: True when ``kind`` may run quantized on circle's fixed grid and then be
    requantized onto PyTorch's grid ``out`` with one integer QUANTIZE, within 1 LSB of PyTorch.

    Two roundings: the fixed grid's moves the value by at most half a fixed step, which is less
    than one step of PyTorch's grid when the fixed step is under twice PyTorch's; rounding that
    onto PyTorch's grid then gives PyTorch's code or its neighbour (e.g. luci's softmax grid 1/255
    onto PyTorch's 1/256). A much finer PyTorch grid would lose more: float then.
    """
    if options.profile != "luci" or out.qparams is None or not out.qparams.per_tensor:
        return False
    fixed = fixed_qparams(kind, out.dtype, options)
    return fixed is not None and float(np.float32(fixed[0])) < 2.0 * float(np.float32(out.qparams.scale[0]))


def on_fixed_grid_then_requantize(ctx, op, kind, x, attrs, name, shape=None):
    """``kind`` on quantized ``x`` onto circle's fixed grid, then one QUANTIZE onto PyTorch's."""
    out = op.outputs[0]
    s, zp = fixed_qparams(kind, out.dtype, ctx.options)
    mid = Tensor(name + "/fixed_grid", x.shape if shape is None else shape, out.dtype, QParams(np.float32(s), zp))
    ctx.emit(kind, [x], [mid], attrs or {}, name + "/fixed_grid")
    y = Tensor(name, mid.shape, out.dtype, out.qparams.copy())
    ctx.emit("QUANTIZE", [mid], [y], {}, name)
    return y


def fixed_qparams_unary(ctx, op, kind, attrs=None):
    """A quantized ``kind`` when PyTorch's output grid is circle's fixed one; on another grid,
    the fixed-grid op plus one requantization (luci profile, where that stays within 1 LSB) or a
    float island."""
    x = ctx.value(op.inputs[0])
    out = op.outputs[0]
    if x.qparams is not None and on_fixed_grid(out, kind, ctx.options):
        y = ctx.like(out)
        ctx.emit(kind, [x], [y], attrs or {}, op.name)
    elif x.qparams is not None and requantizable_from_fixed(out, kind, ctx.options):
        y = on_fixed_grid_then_requantize(ctx, op, kind, x, attrs, op.name, shape=ctx.like(out).shape)
    else:
        y = float_unary(ctx, op, kind, attrs)
    ctx.define(out, y)


@op("tanh", shape=same_shape, float_ok=True, reads={
        "torchscript": ("aten::tanh", "aten::tanh_"), "pt2": ("aten.tanh.default", "aten.tanh_.default")},
    args={"pt2": ("self",)},
    attrs="- (output on PyTorch's fixed grid)", circle="TANH", conditions="PyTorch's grid is the fixed one; else the float op onto PyTorch's grid")
def lower_tanh(ctx, op):
    fixed_qparams_unary(ctx, op, "TANH")


@op("hardsigmoid", shape=same_shape, float_ok=True, reads={
        "torchscript": ("aten::hardsigmoid", "aten::hardsigmoid_"),
        "pt2": ("aten.hardsigmoid.default", "aten.hardsigmoid_.default")},
    attrs="- (output on PyTorch's fixed grid)",
    circle="luci: integer ADD(+3, RELU6) onto (6·s, zp) → MUL(1/6) onto (s, zp); onert: the same in float")
def lower_hardsigmoid(ctx, op):
    """hardsigmoid(x) = relu6(x + 3) / 6; circle has no HARD_SIGMOID.

    luci profile, on integers with one rounding: ADD(x, 3) with a fused RELU6 writes
    relu6(x + 3) on the grid (6 * s, zp) of PyTorch's output grid (s, zp), whose codes are
    exactly round(relu6(x + 3) / 6 / s) + zp, PyTorch's output codes; MUL by 1/6 then moves them
    onto (s, zp) with a multiplier of 1, changing no code.
    onert profile: the same in float between DEQUANTIZE and QUANTIZE (luci-interpreter has no
    uint8 MUL); PyTorch also dequantizes, computes in float and requantizes.
    """
    x = ctx.value(op.inputs[0])
    out = op.outputs[0]
    if ctx.options.profile == "luci" and x.qparams is not None and out.qparams is not None \
            and out.qparams.per_tensor:
        s, zp = float(out.qparams.scale[0]), int(out.qparams.zero_point[0])
        three = ctx.const(op.name + "/three", np.array([1], x.dtype), QParams(3.0, 0))
        mid = ctx.like(out, name=op.name + "/relu6_x_plus_3", qparams=QParams(np.float32(6.0 * s), zp))
        ctx.emit("ADD", [x, three], [mid], {"fusedActivationFunction": ACT["relu6"]}, op.name + "/relu6_x_plus_3")
        sixth = ctx.const(op.name + "/one_sixth", np.array([1], x.dtype), QParams(np.float32(1.0 / 6.0), 0))
        y = ctx.like(out)
        ctx.emit("MUL", [mid, sixth], [y], {"fusedActivationFunction": 0}, op.name)
        ctx.define(out, y)
        return
    isl = FloatIsland(ctx, op)
    r6 = isl.op("ADD", [isl.x, isl.const("three", 3.0)], "add3_relu6", {"fusedActivationFunction": ACT["relu6"]})
    y = isl.op("MUL", [r6, isl.const("one_sixth", 1.0 / 6.0)], "div6", {"fusedActivationFunction": 0},
               out=isl.output())
    ctx.define(op.outputs[0], isl.done(y))


def quantized_unary(ctx, op, kind, attrs=None):
    """luci profile: ``kind`` as the quantized circle op between PyTorch's input and output grids
    (PyTorch computes these in float between its grids too: one rounding either way)."""
    x = ctx.value(op.inputs[0])
    out = op.outputs[0]
    if ctx.options.profile == "luci" and x.qparams is not None and out.qparams is not None:
        y = ctx.like(out)
        ctx.emit(kind, [x], [y], attrs or {}, op.name)
        return y
    return None


@op("leaky_relu", shape=same_shape, float_ok=True, reads={
        "torchscript": ("quantized::leaky_relu", "aten::leaky_relu", "aten::leaky_relu_")},
    attrs="negative_slope", circle="luci: quantized LEAKY_RELU; onert: float LEAKY_RELU",
    conditions="uint8 versions do not run on onert", onert="onert profile")
def lower_leaky_relu(ctx, op):
    """Quantized LEAKY_RELU (luci profile); in float for the onert profile: onert 0.1.0 has no
    uint8 LEAKY_RELU ("unsupported data type")."""
    attrs = {"alpha": float(op.attrs["negative_slope"])}
    y = quantized_unary(ctx, op, "LEAKY_RELU", attrs)
    ctx.define(op.outputs[0], y if y is not None else float_unary(ctx, op, "LEAKY_RELU", attrs))


@op("elu", shape=same_shape, float_ok=True, reads={"torchscript": ("quantized::elu",)},
    attrs="alpha, scale, input_scale",
    circle="the float MAXIMUM/MINIMUM/EXP/ADD/MUL composition in both profiles (fake quantization refuses an "
           "ELU node)", conditions="listed as float")
def lower_elu(ctx, op):
    """elu(x) = scale * (x if x > 0 else alpha * (exp(input_scale * x) - 1)), in float.

    Spelled out with MAXIMUM/MINIMUM/EXP/MUL/ADD, in float between DEQUANTIZE and QUANTIZE in
    both profiles: circle's ELU has no alpha, circle-quantizer's fake quantization refuses an ELU
    node even in float ("Unsupported op for fake quantization"), and onert 0.1.0 runs no uint8
    ELU. The luci profile lists it as float (luci's verifier would refuse it).
    """
    a = op.attrs
    alpha, scale, in_scale = a.get("alpha", 1.0), a.get("scale", 1.0), a.get("input_scale", 1.0)
    isl = FloatIsland(ctx, op)
    zero = isl.const("zero", 0.0)
    pos = isl.op("MAXIMUM", [isl.x, zero], "pos")
    neg = isl.op("MINIMUM", [isl.x, zero], "neg")
    if in_scale != 1.0:
        neg = isl.op("MUL", [neg, isl.const("input_scale", in_scale)], "neg_scaled", {"fusedActivationFunction": 0})
    e = isl.op("EXP", [neg], "exp")
    em1 = isl.op("ADD", [e, isl.const("minus_one", -1.0)], "exp_minus_1", {"fusedActivationFunction": 0})
    nega = isl.op("MUL", [em1, isl.const("alpha", alpha * scale)], "neg_part", {"fusedActivationFunction": 0})
    if scale != 1.0:
        pos = isl.op("MUL", [pos, isl.const("scale", scale)], "pos_part", {"fusedActivationFunction": 0})
    y = isl.op("ADD", [pos, nega], "sum", {"fusedActivationFunction": 0}, out=isl.output())
    ctx.define(op.outputs[0], isl.done(y))


@op("silu", shape=same_shape, float_ok=True, reads={
        "torchscript": ("aten::silu", "aten::silu_"), "pt2": ("aten.silu.default", "aten.silu_.default")},
    args={"torchscript": ("self",), "pt2": ("self",)},
    circle="float LOGISTIC → MUL(x) between DEQUANTIZE and QUANTIZE (circle has no SILU)",
    conditions="float in both profiles, as PyTorch computes it (no recipe quantizes silu)")
def lower_silu(ctx, op):
    """silu(x) = x * sigmoid(x), in float between DEQUANTIZE and QUANTIZE onto PyTorch's output
    grid, in both profiles: circle has no SILU, and PyTorch's quantizers leave silu float (FX
    between dequantize and quantize, PT2E likewise), so this is PyTorch's own arithmetic. A
    quantized LOGISTIC then MUL would round twice and needs a uint8 MUL luci-interpreter lacks."""
    isl = FloatIsland(ctx, op)
    sig = isl.op("LOGISTIC", [isl.x], "sigmoid")
    y = isl.op("MUL", [isl.x, sig], "mul", {"fusedActivationFunction": 0}, out=isl.output())
    ctx.define(op.outputs[0], isl.done(y))


@op("gelu", shape=same_shape, float_ok=True, reads={"torchscript": ("aten::gelu",), "pt2": ("aten.gelu.default",)},
    args={"torchscript": ("self", "approximate"), "pt2": ("self", "approximate")},
    attrs="approximate (\"none\" | \"tanh\")",
    circle="float GELU (approximate for 'tanh') between DEQUANTIZE and QUANTIZE",
    conditions="float in both profiles: no runtime has a uint8 GELU (onert, luci-interpreter)")
def lower_gelu(ctx, op):
    """GELU in float between DEQUANTIZE and QUANTIZE onto PyTorch's output grid: what PyTorch
    computes (PT2E and FX leave gelu float; eager quantized gelu dequantizes, computes and
    requantizes onto its input's grid). Neither onert nor luci-interpreter has a uint8 GELU."""
    approximate = op.attrs.get("approximate", "none") or "none"
    if approximate not in ("none", "tanh"):
        raise ConversionError("%s: gelu approximate=%r; PyTorch knows 'none' and 'tanh'" % (op.name, approximate))
    ctx.define(op.outputs[0], float_unary(ctx, op, "GELU", {"approximate": approximate == "tanh"}))


def _axis_last(ctx, op):
    """(circle input with ``op.attrs["dim"]`` moved last, the TRANSPOSE perm or None): circle's
    SOFTMAX and LOG_SOFTMAX work on the last axis (4-D tensors are NHWC: dim 1 is last already)."""
    src = op.inputs[0]
    rank = len(src.shape)
    axis = nhwc_axis(op.attrs["dim"], rank)
    x = ctx.value(src)
    if axis == rank - 1:
        return x, None
    perm = list(range(rank))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    return ctx.transpose(x, perm, op.name + "/axis_last"), perm


@op("softmax", shape=same_shape, float_ok=True, reads={
        "torchscript": ("quantized::softmax", "aten::softmax"), "pt2": ("aten.softmax.int", "aten._softmax.default")},
    args={"torchscript": ("self", "dim"), "pt2": ("self", "dim")},
    attrs="dim", circle="SOFTMAX (a TRANSPOSE pair when the axis is not last)", conditions="PyTorch's grid is the fixed one; else the float op onto PyTorch's grid")
def lower_softmax(ctx, op):
    """SOFTMAX works on the last circle axis: other axes are moved last by a TRANSPOSE pair
    (quantized TRANSPOSE keeps the grid). Quantized when PyTorch's output grid is the fixed one
    (``options.softmax_scale``), else computed in float onto PyTorch's grid (``aten::softmax``
    of FX and PT2E's ``aten.softmax.int`` are float in PyTorch; quantized::softmax has its reader)."""
    x, perm = _axis_last(ctx, op)
    out = op.outputs[0]
    attrs = {"beta": 1.0}
    if x.qparams is not None and on_fixed_grid(out, "SOFTMAX", ctx.options):
        y = Tensor(op.name if perm is None else op.name + "/last", x.shape, out.dtype, out.qparams.copy())
        ctx.emit("SOFTMAX", [x], [y], attrs, op.name)
    elif x.qparams is not None and requantizable_from_fixed(out, "SOFTMAX", ctx.options):
        y = on_fixed_grid_then_requantize(ctx, op, "SOFTMAX", x, attrs,
                                          op.name if perm is None else op.name + "/last")
    else:
        y = float_unary(ctx, op, "SOFTMAX", attrs, x=x)
    if perm is not None:
        y = ctx.transpose(y, perm, op.name)
    ctx.define(out, y)


@op("log_softmax", shape=same_shape, float_ok=True, reads={
        "torchscript": ("aten::log_softmax",), "pt2": ("aten.log_softmax.int", "aten._log_softmax.default")},
    args={"torchscript": ("self", "dim"), "pt2": ("self", "dim")},
    attrs="dim", circle="float LOG_SOFTMAX between DEQUANTIZE and QUANTIZE (a TRANSPOSE pair when the axis is not last)",
    conditions="float in both profiles: onert has no uint8 LOG_SOFTMAX, luci-interpreter only onto (16/256, 255)")
def lower_log_softmax(ctx, op):
    """LOG_SOFTMAX in float onto PyTorch's grid (PyTorch computes log_softmax in float: no
    recipe quantizes it). onert 0.1.0 has no uint8 LOG_SOFTMAX and luci-interpreter's writes only
    the fixed grid (16/256, 255), which PyTorch's observers do not choose. Other axes are moved
    last by quantized TRANSPOSEs around the island (float ones when the input is float)."""
    x, perm = _axis_last(ctx, op)
    isl = FloatIsland(ctx, op, x)
    y = isl.op("LOG_SOFTMAX", [isl.x], "op", out=isl.output(x.shape, name=None if perm is None else op.name + "/last"))
    y = isl.done(y)
    if perm is not None:
        y = ctx.transpose(y, perm, op.name)
    ctx.define(op.outputs[0], y)
