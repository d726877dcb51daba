"""layer_norm: circle has no LAYER_NORM, so it is spelled out in float32 between DEQUANTIZE and
QUANTIZE (PyTorch's output grid).

Why float: no recipe quantizes layer_norm's arithmetic. PT2E (XNNPACK, X86) leaves
``aten.layer_norm`` float between a dequantize and a quantize; FX's ``quantized::layer_norm``
equals quantize(layer_norm(dequantize(x))) bit for bit (measured, x86 and qnnpack). So one
rounding onto PyTorch's output grid after the float composition is PyTorch's arithmetic.
The composition is what runs on every runtime here: luci's FuseInstanceNormPass could turn some
forms into INSTANCE_NORM, but onert's CPU backend has no INSTANCE_NORM kernel and
luci-interpreter's runs float only; RSQRT has no uint8 kernel in luci-interpreter either.
"""
import numpy as np

from ..errors import ConversionError
from .activation import FloatIsland
from .ctx import nhwc_axis
from .declare import op, same_shape


def _affine_const(ctx, name, data, rank):
    """weight/bias of shape ``normalized_shape`` as a float32 constant lined up with the circle
    layout of a rank-``rank`` activation (leading 1s, NHWC when 4-D)."""
    c = np.asarray(data, np.float32)
    c = c.reshape((1,) * (rank - c.ndim) + c.shape)
    if rank == 4:
        c = np.transpose(c, (0, 2, 3, 1))
    return ctx.const(name, np.ascontiguousarray(c))


@op("layer_norm", shape=same_shape, float_ok=True, reads={
        "torchscript": ("aten::layer_norm", "quantized::layer_norm"),
        "pt2": ("aten.layer_norm.default", "aten.native_layer_norm.default")},
    inputs="x, weight (float const, optional), bias (float const, optional)",
    attrs="normalized_shape, eps, weight/bias (bool: present); quantized::layer_norm: output qparams",
    circle="float MEAN → SUB → MUL → MEAN → ADD(eps) → RSQRT → MUL → MUL(weight) → ADD(bias), then QUANTIZE",
    conditions="over the last dims (any rank; 4-D follows the NHWC rule); float between DEQUANTIZE and QUANTIZE "
               "(no LAYER_NORM in circle; onert has no INSTANCE_NORM kernel): listed as float",
    onert="yes (float)")
def lower_layer_norm(ctx, op):
    """(x - mean) * rsqrt(var + eps) * weight + bias over the normalized (last) PyTorch dims,
    which the NHWC rule moves for 4-D tensors (ConvNeXt's channels-last norm normalizes PyTorch
    axis 3, circle axis 2)."""
    src = op.inputs[0]
    rank = len(src.shape)
    n = len(op.attrs["normalized_shape"])
    if not 0 < n <= rank or tuple(src.shape[rank - n:]) != tuple(op.attrs["normalized_shape"]):
        raise ConversionError("%s: layer_norm over %s of a tensor of shape %s"
                              % (op.name, list(op.attrs["normalized_shape"]), list(src.shape)))
    consts = op.inputs[1:]
    weight = consts.pop(0) if op.attrs.get("weight") else None
    bias = consts.pop(0) if op.attrs.get("bias") else None
    for c in (weight, bias):
        if c is not None and (c.qparams is not None or not c.is_const):
            raise ConversionError("%s: layer_norm with a %s weight or bias (only float constants convert)"
                                  % (op.name, "quantized" if c.qparams is not None else "computed"))
    axes = sorted(nhwc_axis(a, rank) for a in range(rank - n, rank))
    isl = FloatIsland(ctx, op)
    kept = tuple(1 if i in axes else s for i, s in enumerate(isl.x.shape))
    axes_t = ctx.const(op.name + "/axes", np.array(axes, np.int32))
    no_act = {"fusedActivationFunction": 0}
    mean = isl.op("MEAN", [isl.x, axes_t], "mean", {"keepDims": True}, out=isl.tmp("mean", kept))
    d = isl.op("SUB", [isl.x, mean], "centered", no_act)
    sq = isl.op("MUL", [d, d], "squared", no_act)
    var = isl.op("MEAN", [sq, axes_t], "variance", {"keepDims": True}, out=isl.tmp("variance", kept))
    ve = isl.op("ADD", [var, isl.const("eps", float(op.attrs["eps"]))], "variance_eps", no_act,
                out=isl.tmp("variance_eps", kept))
    rstd = isl.op("RSQRT", [ve], "rstd", out=isl.tmp("rstd", kept))
    steps = [("MUL", rstd, "normalized")]
    if weight is not None:
        steps.append(("MUL", _affine_const(ctx, op.name + "/weight", weight.data, rank), "scaled"))
    if bias is not None:
        steps.append(("ADD", _affine_const(ctx, op.name + "/bias", bias.data, rank), "shifted"))
    y = d
    for i, (kind, other, tag) in enumerate(steps):
        last = i == len(steps) - 1
        y = isl.op(kind, [y, other], tag, no_act, out=isl.output(tag=tag) if last else None)
    ctx.define(op.outputs[0], isl.done(y))
