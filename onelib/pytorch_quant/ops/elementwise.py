"""quantize, dequantize, add, mul, add_scalar, mul_scalar, hardtanh (relu, relu6), sigmoid, hardswish;
binary_const (float arithmetic with a constant before the QuantStub)."""
import numpy as np

from ..errors import ConversionError
from ..ir import QParams
from ..circle.vocab import ACT, ACT_RANGE, INT_RANGE
from .activation import FloatIsland, fixed_qparams_unary, float_unary
from .ctx import nhwc_shape
from .declare import op, same_shape
from .quant import quantize_value

_QD = "quantized_decomposed."


@op("quantize", shape=same_shape, reads={
        "torchscript": ("aten::quantize_per_tensor",),
        "pt2": tuple(_QD + "quantize_per_tensor." + v for v in ("default", "tensor", "tensor2"))},
    inputs="x (float32)", attrs="output dtype/qparams = the quantizer's",
    circle="QUANTIZE", conditions="QuantStub; float I/O; dropped with `--input_type/--output_type uint8`")
def lower_quantize(ctx, op):
    y = ctx.like(op.outputs[0])
    ctx.emit("QUANTIZE", [ctx.value(op.inputs[0])], [y], {}, op.name)
    ctx.define(op.outputs[0], y)


@op("dequantize", shape=same_shape, reads={
        "torchscript": ("aten::dequantize",),
        "pt2": tuple(_QD + "dequantize_per_tensor." + v for v in ("default", "tensor", "tensor2"))},
    inputs="x (quantized)", attrs="output float32, qparams None",
    circle="DEQUANTIZE", conditions="DeQuantStub; float I/O; dropped with `--input_type/--output_type uint8`")
def lower_dequantize(ctx, op):
    y = ctx.like(op.outputs[0], qparams=None, dtype="float32")
    ctx.emit("DEQUANTIZE", [ctx.value(op.inputs[0])], [y], {}, op.name)
    ctx.define(op.outputs[0], y)


def broadcast_shape(op):
    a, b = op.inputs[0].shape, op.inputs[1].shape
    return tuple(np.broadcast_shapes(tuple(a), tuple(b)))


def _aligned(ctx, src, out_rank, name):
    """An operand of a broadcasting op, as a circle tensor whose axes line up with the output's."""
    t = ctx.value(src)
    rank = len(src.shape)
    if rank == out_rank:
        return t
    # PyTorch aligns trailing dims: give the operand the output's rank (leading 1s) in its layout
    full = (1,) * (out_rank - rank) + tuple(src.shape)
    return ctx.reshape(ctx.nchw(src), nhwc_shape(full) if out_rank == 4 else full, name + "/broadcast")


@op("add", shape=broadcast_shape, float_ok=True, reads={
        "torchscript": ("quantized::add", "quantized::add_relu"), "pt2": ("aten.add.Tensor", "aten.add_.Tensor")},
    inputs="a, b (broadcasting)", attrs="act (None | \"relu\")",
    circle="ADD (fused RELU); RESHAPE when ranks differ",
    conditions="broadcasting; `.pt2`: two computed tensors (with a constant: `binary_const`)")
@op("mul", shape=broadcast_shape, float_ok=True, reads={
        "torchscript": ("quantized::mul", "quantized::mul_relu"), "pt2": ("aten.mul.Tensor", "aten.mul_.Tensor")},
    inputs="a, b (broadcasting)", attrs="act",
    circle="MUL (fused RELU); RESHAPE when ranks differ",
    conditions="broadcasting; `.pt2`: two computed tensors (with a constant: `binary_const`)")
def lower_add_mul(ctx, op):
    out = op.outputs[0]
    r = len(out.shape)
    a = _aligned(ctx, op.inputs[0], r, op.name + "/a")
    b = _aligned(ctx, op.inputs[1], r, op.name + "/b")
    y = ctx.like(out)
    ctx.emit(op.kind.upper(), [a, b], [y], {"fusedActivationFunction": ACT[op.attrs.get("act")]}, op.name)
    ctx.define(out, y)


def add_scalar_qparams(op):
    # PyTorch keeps the integers and moves the zero point: zp' = zp - round(c / scale)
    q = op.inputs[0].qparams
    zp = int(q.zero_point[0]) - int(np.round(op.attrs["scalar"] / float(q.scale[0])))
    lo, hi = INT_RANGE[op.inputs[0].dtype]
    if not lo <= zp <= hi:
        raise ConversionError("%s: add_scalar moves the zero point out of range" % op.name)
    return QParams(q.scale, zp)


def mul_scalar_qparams(op):
    # PyTorch keeps the integers and scales the scale (a negative factor mirrors the codes)
    q = op.inputs[0].qparams
    c = op.attrs["scalar"]
    if c == 0:
        raise ConversionError("%s: mul_scalar by 0 is not supported" % op.name)
    lo, hi = INT_RANGE[op.inputs[0].dtype]
    zp = int(q.zero_point[0]) if c > 0 else lo + hi - int(q.zero_point[0])
    return QParams(np.float32(float(q.scale[0]) * abs(c)), zp)


def scalar_const(ctx, name, c, dtype):
    """A one-element quantized constant that holds the real number ``c`` exactly:
    code 1 on scale c (uint8: code 0 with zero point 1 for a negative c; int16 stays symmetric)."""
    if dtype == "uint8":
        code, zp = (1, 0) if c > 0 else (0, 1)
    else:
        code, zp = (1, 0) if c > 0 else (-1, 0)
    return ctx.const(name, np.array([code], dtype), QParams(np.float32(abs(c)), zp))


@op("add_scalar", shape=same_shape, qparams=add_scalar_qparams,
    reads={"torchscript": ("quantized::add_scalar", "quantized::add_scalar_relu")},
    inputs="x", attrs="scalar (float), act; output qparams derived (``qparams``)",
    circle="ADD with an exact one-element constant")
@op("mul_scalar", shape=same_shape, qparams=mul_scalar_qparams,
    reads={"torchscript": ("quantized::mul_scalar", "quantized::mul_scalar_relu")},
    inputs="x", attrs="scalar (float), act; output qparams derived (``qparams``)",
    circle="MUL with an exact one-element constant")
def lower_scalar(ctx, op):
    kind = "ADD" if op.kind == "add_scalar" else "MUL"
    x = ctx.value(op.inputs[0])
    c = op.attrs["scalar"]
    if c == 0:  # adding 0 changes nothing; multiplying by 0 is refused by its qparams rule
        cst = ctx.const(op.name + "/scalar", np.array([x.qparams.zero_point[0]], x.dtype), x.qparams.copy())
    else:
        cst = scalar_const(ctx, op.name + "/scalar", c, x.dtype)
    y = ctx.like(op.outputs[0])
    ctx.emit(kind, [x, cst], [y], {"fusedActivationFunction": ACT[op.attrs.get("act")]}, op.name)
    ctx.define(op.outputs[0], y)


@op("hardtanh", shape=same_shape, float_ok=True, same_grid=True, reads={
        "torchscript": ("aten::relu", "aten::relu_", "quantized::relu", "quantized::relu6", "aten::relu6",
                        "aten::relu6_", "aten::hardtanh", "aten::hardtanh_", "quantized::hardtanh", "aten::clamp",
                        "aten::clamp_", "aten::clamp_min", "aten::clamp_min_", "aten::clamp_max",
                        "aten::clamp_max_"),
        "pt2": ("aten.relu.default", "aten.relu_.default", "aten.relu6.default", "aten.hardtanh.default",
                "aten.hardtanh_.default", "aten.clamp.default", "aten.clamp_.default")},
    inputs="x", attrs="min, max (relu = 0, inf; relu6 = 0, 6)",
    circle="fused activation; else MAXIMUM/MINIMUM on the same grid")
def lower_hardtanh(ctx, op):
    """relu / relu6 / hardtanh on a quantized tensor: a clamp on the input's own grid.

    RELU, RELU6 and RELU_N1_TO_1 are emitted where they fit (a later pass fuses them into the
    producer, which onert needs); any other range becomes MAXIMUM/MINIMUM with grid constants.
    """
    x = ctx.value(op.inputs[0])
    lo, hi = op.attrs["min"], op.attrs["max"]
    y = ctx.like(op.outputs[0])
    kind = dict((r, k) for k, r in ACT_RANGE.items()).get((lo, hi))
    if kind is not None:
        ctx.emit(kind, [x], [y], {}, op.name)
    else:
        def bound(v, tag):
            if x.qparams is None:
                return ctx.const(op.name + tag, np.array([v], np.float32))
            return ctx.const(op.name + tag, np.array([quantize_value(v, x.qparams, x.dtype)], x.dtype),
                             x.qparams.copy())
        t = x
        if lo != float("-inf"):
            m = ctx.like(op.outputs[0], name=op.name + "/max")
            ctx.emit("MAXIMUM", [t, bound(lo, "/min_value")], [m], {}, op.name + "/max")
            t = m
        if hi != float("inf"):
            ctx.emit("MINIMUM", [t, bound(hi, "/max_value")], [y], {}, op.name)
        else:
            y = t
    ctx.define(op.outputs[0], y)


@op("sigmoid", shape=same_shape, float_ok=True, reads={
        "torchscript": ("quantized::sigmoid", "aten::sigmoid", "aten::sigmoid_"),
        "pt2": ("aten.sigmoid.default", "aten.sigmoid_.default")},
    circle="LOGISTIC", conditions="PyTorch's grid is the fixed one; else the float op onto PyTorch's grid")
def lower_sigmoid(ctx, op):
    """LOGISTIC on luci's fixed grid (1/256, 0), which is PyTorch's too; a sigmoid observed onto
    another grid (quantized::sigmoid with its own qparams) runs in float (ops/activation.py)."""
    fixed_qparams_unary(ctx, op, "LOGISTIC")


def _hardswish_composition_error(in_q, out_q):
    """Largest distance, in steps of the output grid, between x * hardsigmoid(x) computed with
    hardsigmoid on the (1/255, 0) grid (the luci composition below) and hardswish(x), over all
    256 input codes. Under 1, the composition's output code is PyTorch's or its neighbour; an
    input grid that lies mostly below -3 next to a fine output grid can exceed it."""
    x = (np.arange(256, dtype=np.float64) - float(in_q.zero_point[0])) * float(in_q.scale[0])
    hs = np.clip(np.round(np.clip(x + 3.0, 0.0, 6.0) / (6.0 / 255.0)), 0, 255) / 255.0
    exact = x * np.clip(x + 3.0, 0.0, 6.0) / 6.0
    return float(np.max(np.abs(x * hs - exact)) / float(out_q.scale[0]))


@op("hardswish", shape=same_shape, float_ok=True, reads={
        "torchscript": ("quantized::hardswish",), "pt2": ("aten.hardswish.default", "aten.hardswish_.default")},
    circle="luci: integer ADD(+3, RELU6) → MUL(1/6) → MUL(x); onert: float DEQUANTIZE → ADD(+3, RELU6) → MUL → "
           "MUL(1/6) → QUANTIZE",
    conditions="≤ 1 LSB on all 256 codes", onert="onert profile")
def lower_hardswish(ctx, op):
    """hardswish(x) = x * relu6(x + 3) / 6.

    luci profile: quantized ADD and MULs (below). Not HARD_SWISH: luci's verifier takes a uint8
    HARD_SWISH, but circle-quantizer's fake quantization refuses it ("Unsupported op for fake
    quantization"), so the driver's ONE check and one-cmds' tools would stop on it.
    onert profile: in float between DEQUANTIZE and QUANTIZE, because neither onert 0.1.0 nor
    luci-interpreter has a quantized HARD_SWISH (nor luci-interpreter a uint8 MUL). PyTorch itself dequantizes, computes
    in float and requantizes, so both are within 1 LSB on all 256 input codes
    (tests/test_unary_exhaustive.py).
    """
    x = ctx.value(op.inputs[0])
    out = op.outputs[0]
    if ctx.options.profile == "luci" and x.qparams is not None and out.qparams is not None \
            and x.dtype == "uint8" and _hardswish_composition_error(x.qparams, out.qparams) < 0.9:
        # relu6(x + 3) onto (6/255, 0), then / 6 onto (1/255, 0) with a multiplier of 1 (the same
        # codes): hardsigmoid within half a step of 1/255; then x times it onto PyTorch's grid.
        # The first rounding moves y by at most |x| / 510, under half a step of PyTorch's output
        # grid (which spans x's largest value), so y is PyTorch's code or its neighbour.
        three = ctx.const(op.name + "/three", np.array([1], np.uint8), QParams(3.0, 0))
        r6 = ctx.like(out, name=op.name + "/relu6_x_plus_3", qparams=QParams(np.float32(6.0 / 255.0), 0))
        ctx.emit("ADD", [x, three], [r6], {"fusedActivationFunction": ACT["relu6"]}, r6.name)
        sixth = ctx.const(op.name + "/one_sixth", np.array([1], np.uint8), QParams(np.float32(1.0 / 6.0), 0))
        hs = ctx.like(out, name=op.name + "/hardsigmoid", qparams=QParams(np.float32(1.0 / 255.0), 0))
        ctx.emit("MUL", [r6, sixth], [hs], {"fusedActivationFunction": 0}, hs.name)
        y = ctx.like(out)
        ctx.emit("MUL", [x, hs], [y], {"fusedActivationFunction": 0}, op.name)
        ctx.define(out, y)
        return
    isl = FloatIsland(ctx, op)
    r6 = isl.op("ADD", [isl.x, isl.const("three", 3.0)], "add3_relu6",
                {"fusedActivationFunction": ACT["relu6"]}, out=isl.tmp("relu6"))
    prod = isl.op("MUL", [isl.x, r6], "mul", {"fusedActivationFunction": 0}, out=isl.tmp("x_relu6"))
    y = isl.op("MUL", [prod, isl.const("one_sixth", 1.0 / 6.0)], "div6", {"fusedActivationFunction": 0},
               out=isl.output(tag="div6"))
    ctx.define(op.outputs[0], isl.done(y))


# -------------------------------------------------------------- float arithmetic with a constant
# ``x * c + d`` on the float input before the QuantStub: torchvision's GoogLeNet and Inception-v3
# (transform_input, on in their pretrained quantized forms) and user-side normalisation
# ``(x - mean) / std`` run in float in PyTorch, and so they do in circle.
_FLOAT_BINARY = {"add": "ADD", "sub": "SUB", "mul": "MUL", "div": "DIV"}


def binary_const_shape(op):
    return tuple(np.broadcast_shapes(tuple(op.inputs[0].shape), tuple(op.inputs[1].shape)))


@op("binary_const", shape=binary_const_shape, float_ok=True, reads={
        "torchscript": ("aten::add", "aten::sub", "aten::mul", "aten::div"),
        "pt2": tuple("aten.%s.%s" % (k, v) for k in ("add", "sub", "mul", "div", "add_", "sub_", "mul_", "div_")
                     for v in ("Tensor", "Scalar")) + ("aten.rsub.Tensor", "aten.rsub.Scalar")},
    inputs="x (float32), c (float32 const)",
    attrs="op (\"add\" | \"sub\" | \"mul\" | \"div\"), reverse (c <op> x); float preprocessing only",
    circle="float ADD/SUB/MUL/DIV, then QUANTIZE",
    conditions="float arithmetic with a number or constant before the QuantStub (`(x - mean) / std`, "
               "torchvision's `transform_input`); in a `.pt2` also with a constant between dequantize and "
               "quantize (XNNPACK's quantized `* c + d`: PyTorch computes it on dequantized values); listed "
               "in the notes as float; `--strict` refuses")
def lower_binary_const(ctx, op):
    """x <op> c (or c <op> x when ``reverse``), float32, c a constant broadcast as PyTorch does."""
    x_src, c_src = op.inputs[0], op.inputs[1]
    out = op.outputs[0]
    if x_src.qparams is not None or out.qparams is not None:
        raise ConversionError("%s: arithmetic on a quantized tensor outside a quantized op" % op.name)
    r = len(out.shape)
    x = _aligned(ctx, x_src, r, op.name + "/x")
    c = np.asarray(c_src.data, np.float32)
    c = c.reshape((1,) * (r - c.ndim) + c.shape)
    if r == 4:
        c = np.transpose(c, (0, 2, 3, 1))
    ct = ctx.const(op.name + "/const", np.ascontiguousarray(c))
    y = ctx.like(out)
    ins = [ct, x] if op.attrs.get("reverse") else [x, ct]
    kind = _FLOAT_BINARY[op.attrs["op"]]
    ctx.emit(kind, ins, [y], {"fusedActivationFunction": 0}, op.name)
    ctx.define(out, y)


@op("abs", shape=same_shape, float_ok=True,
    reads={"torchscript": ("aten::abs",), "pt2": ("aten.abs.default",)},
    args={"torchscript": ("self",), "pt2": ("self",)},
    circle="float ABS (between DEQUANTIZE/QUANTIZE onto PyTorch's grids)",
    conditions="PyTorch has no quantized kernel: it computes on dequantized values")
def lower_abs(ctx, op):
    ctx.define(op.outputs[0], float_unary(ctx, op, "ABS"))


@op("neg", shape=same_shape, float_ok=True,
    reads={"torchscript": ("aten::neg",), "pt2": ("aten.neg.default",)},
    args={"torchscript": ("self",), "pt2": ("self",)},
    circle="float NEG (between DEQUANTIZE/QUANTIZE onto PyTorch's grids)",
    conditions="PyTorch has no quantized kernel: it computes on dequantized values")
def lower_neg(ctx, op):
    ctx.define(op.outputs[0], float_unary(ctx, op, "NEG"))
