"""constant_pad (F.pad with mode="constant", aten::constant_pad_nd).

PyTorch pads a quantized tensor with ``quantize(value)`` on the input's grid (round half to
even, clamped) and keeps the input's qparams. Circle: PAD fills with the zero point, i.e. a real
0, exactly PyTorch's default; any other value is that one code (``conv.pad_with``).
"""
import numpy as np

from ..errors import ConversionError
from .conv import pad_with
from .ctx import nhwc_axis
from .declare import op
from .quant import quantize_value


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


def pad_shape(op):
    return tuple(s + a + b for s, (a, b) in zip(op.inputs[0].shape, _pairs(op)))


@op("constant_pad", shape=pad_shape, float_ok=True,
    reads={"torchscript": ("aten::pad", "aten::constant_pad_nd"),
           "pt2": ("aten.pad.default", "aten.constant_pad_nd.default")},
    args={"pt2": ("self", "pad", "mode", "value")},
    attrs="pad (PyTorch's flat list, last dim first), value (float)",
    circle="PAD (value = zero point) / PADV2", conditions="constant mode; reflect/replicate refused")
def lower_constant_pad(ctx, op):
    src, out = op.inputs[0], op.outputs[0]
    pairs = _pairs(op)
    if any(a < 0 or b < 0 for a, b in pairs):
        raise ConversionError("%s: negative padding (cropping) is not supported" % op.name)
    rank = len(src.shape)
    circle_pairs = [None] * rank
    for d, p in enumerate(pairs):
        circle_pairs[nhwc_axis(d, rank)] = list(p)
    if op.attrs.get("mode", "constant") != "constant":
        raise ConversionError("%s: %s padding (only constant padding has a quantized circle form here)"
                              % (op.name, op.attrs["mode"]))
    x = ctx.value(src)
    value = float(op.attrs.get("value") or 0.0)
    if x.qparams is None:
        fill = "zero_point" if value == 0.0 else value
    else:
        fill = quantize_value(value, x.qparams, x.dtype)
    ctx.define(out, pad_with(ctx, x, circle_pairs, fill, op.name))
