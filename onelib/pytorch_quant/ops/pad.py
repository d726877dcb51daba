"""constant_pad (F.pad with mode="constant", aten::constant_pad_nd).

PyTorch pads a quantized tensor with ``quantize(value)`` on the input's grid (round half to
even, clamped) and keeps the input's qparams. Circle: PAD fills with the zero point, i.e. a real
0, exactly PyTorch's default; any other value is PADV2 with that one code as its constant.
"""
import numpy as np

from ..errors import ConversionError
from ..ir import Tensor
from .lower import nhwc_axis
from .quant import quantize_value
from .registry import lowering, shape


def _pairs(op):
    """PyTorch's flat pad list (last dim first) -> [(before, after)] per PyTorch axis."""
    rank = len(op.inputs[0].shape)
    pad = list(op.attrs["pad"])
    if len(pad) % 2 or len(pad) // 2 > rank:
        raise ConversionError("%s: pad %s does not fit a %d-D tensor" % (op.name, pad, rank))
    pairs = [(0, 0)] * rank
    for i in range(len(pad) // 2):
        pairs[rank - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return pairs


@shape("constant_pad")
def pad_shape(op):
    return tuple(s + a + b for s, (a, b) in zip(op.inputs[0].shape, _pairs(op)))


@lowering("constant_pad")
def lower_constant_pad(ctx, op):
    src, out = op.inputs[0], op.outputs[0]
    pairs = _pairs(op)
    if any(a < 0 or b < 0 for a, b in pairs):
        raise ConversionError("%s: negative padding (cropping) is not supported" % op.name)
    rank = len(src.shape)
    circle_pairs = [None] * rank
    for d, p in enumerate(pairs):
        circle_pairs[nhwc_axis(d, rank)] = list(p)
    x = ctx.value(src)
    y = ctx.like(out, qparams=x.qparams)
    pads = ctx.const(op.name + "/paddings", np.array(circle_pairs, np.int32))
    value = float(op.attrs["value"])
    if x.qparams is None:
        if value == 0.0:
            ctx.emit("PAD", [x, pads], [y], {}, op.name)
        else:
            ctx.emit("PADV2", [x, pads, ctx.const(op.name + "/value", np.array([value], np.float32))], [y], {}, op.name)
    else:
        code = quantize_value(value, x.qparams, x.dtype)
        if code == int(x.qparams.zero_point[0]):
            ctx.emit("PAD", [x, pads], [y], {}, op.name)   # PAD fills with the zero point
        else:
            fill = Tensor(op.name + "/value", (1,), x.dtype, x.qparams.copy(), np.array([code], x.dtype))
            ctx.emit("PADV2", [x, pads, fill], [y], {}, op.name)
    ctx.define(out, y)
