"""hardsigmoid, tanh, leaky_relu, elu, softmax; the fixed-qparams rule shared with sigmoid.

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

from ..errors import ConversionError
from ..ir import Tensor
from .lower import nhwc_axis
from .registry import lowering, same_shape, shape

# luci's fixed output qparams (one-conventions.md §5.3) per model dtype
FIXED_QPARAMS = {
    "LOGISTIC": {"uint8": (1.0 / 256.0, 0), "int16": (1.0 / 32768.0, 0)},
    "TANH": {"uint8": (2.0 / 256.0, 128), "int16": (1.0 / 32768.0, 0)},
}
SOFTMAX_SCALES = {"1/256": 1.0 / 256.0, "1/255": 1.0 / 255.0}


shape("hardsigmoid", "tanh", "leaky_relu", "elu", "softmax")(same_shape)


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

    def output(self, shape=None, tag="float_out"):
        """The float tensor the body's last op must write (the result itself when the source op
        runs in float; otherwise what QUANTIZE reads, named ``tag``)."""
        out = self.src_op.outputs[0]
        self.y = self.ctx.like(out) if shape is None else self.ctx.like(out, shape=shape)
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


def fixed_qparams_unary(ctx, op, kind, attrs=None):
    """A quantized ``kind`` when PyTorch's output grid is circle's fixed one, else a float island."""
    x = ctx.value(op.inputs[0])
    out = op.outputs[0]
    if x.qparams is not None and on_fixed_grid(out, kind, ctx.options):
        y = ctx.like(out)
        ctx.emit(kind, [x], [y], attrs or {}, op.name)
    else:
        y = float_unary(ctx, op, kind, attrs)
    ctx.define(out, y)


@lowering("tanh")
def lower_tanh(ctx, op):
    fixed_qparams_unary(ctx, op, "TANH")


@lowering("hardsigmoid")
def lower_hardsigmoid(ctx, op):
    """hardsigmoid(x) = relu6(x + 3) / 6 in float (circle has no HARD_SIGMOID; PyTorch also
    dequantizes, computes in float and requantizes onto its fixed 1/256 grid)."""
    isl = FloatIsland(ctx, op)
    r6 = isl.op("ADD", [isl.x, isl.const("three", 3.0)], "add3_relu6", {"fusedActivationFunction": 3})
    y = isl.op("MUL", [r6, isl.const("one_sixth", 1.0 / 6.0)], "div6", {"fusedActivationFunction": 0},
               out=isl.output())
    ctx.define(op.outputs[0], isl.done(y))


@lowering("leaky_relu")
def lower_leaky_relu(ctx, op):
    """LEAKY_RELU in float: onert 0.1.0 has no uint8 LEAKY_RELU ("unsupported data type")."""
    ctx.define(op.outputs[0], float_unary(ctx, op, "LEAKY_RELU", {"alpha": float(op.attrs["negative_slope"])}))


@lowering("elu")
def lower_elu(ctx, op):
    """elu(x) = scale * (x if x > 0 else alpha * (exp(input_scale * x) - 1)), in float.

    The plain case (alpha = scale = input_scale = 1) is circle's ELU; otherwise the formula is
    spelled out with MAXIMUM/MINIMUM/EXP/MUL/ADD. onert 0.1.0 runs neither ELU nor the
    composition on uint8, so both run in float between DEQUANTIZE and QUANTIZE.
    """
    a = op.attrs
    alpha, scale, in_scale = a.get("alpha", 1.0), a.get("scale", 1.0), a.get("input_scale", 1.0)
    if alpha == 1.0 and scale == 1.0 and in_scale == 1.0:
        ctx.define(op.outputs[0], float_unary(ctx, op, "ELU"))
        return
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


@lowering("softmax")
def lower_softmax(ctx, op):
    """SOFTMAX works on the last circle axis: other axes are moved last by a TRANSPOSE pair
    (quantized TRANSPOSE keeps the grid). Quantized when PyTorch's output grid is the fixed one
    (``options.softmax_scale``), else computed in float onto PyTorch's grid."""
    src = op.inputs[0]
    rank = len(src.shape)
    axis = nhwc_axis(op.attrs["dim"], rank)
    x = ctx.value(src)
    out = op.outputs[0]
    perm = None
    if axis != rank - 1:
        perm = list(range(rank))
        perm[axis], perm[-1] = perm[-1], perm[axis]
        x = ctx.transpose(x, perm, op.name + "/axis_last")
    attrs = {"beta": 1.0}
    if x.qparams is not None and on_fixed_grid(out, "SOFTMAX", ctx.options):
        y = Tensor(op.name if perm is None else op.name + "/last", x.shape, out.dtype, out.qparams.copy())
        ctx.emit("SOFTMAX", [x], [y], attrs, op.name)
    else:
        y = float_unary(ctx, op, "SOFTMAX", attrs, x=x)
    if perm is not None:
        y = ctx.transpose(y, perm, op.name)
    ctx.define(out, y)
