"""cast: integers to float32 (``x.to(torch.float32)`` / ``x.float()`` of an integer tensor).

BERT's additive attention mask starts as an int64 model input (0/1), goes through unsqueezes
(which keep its integers) and is cast to float32 before ``(1 - m) * -10000``. An integer is exactly
a float32 up to 2**24 (0/1 masks, ids), so CAST is exact. Where PyTorch quantizes the cast's
output directly, the float result is quantized onto that grid (CAST then QUANTIZE).
"""
from ..circle.vocab import TENSOR_TYPE
from ..errors import ConversionError
from ..ir import Tensor
from .declare import op, same_shape

# what CAST converts here: an integer tensor to float32
CAST_FROM = ("int64", "int32")


@op("cast", shape=same_shape, float_ok=True, reads={"pt2": ("aten.to.dtype", "aten._to_copy.default")},
    inputs="x (int64/int32, from an integer model input)", attrs="dtype (float32)",
    circle="CAST to FLOAT32 (then QUANTIZE where PyTorch quantizes the result)",
    conditions="integer to float32 only (a float-to-float `to` is not converted); onert and "
               "luci-interpreter run CAST INT64->FLOAT32")
def lower_cast(ctx, op):
    src, out = op.inputs[0], op.outputs[0]
    if src.dtype not in CAST_FROM or op.attrs.get("dtype") != "float32":
        raise ConversionError("cast %s: %s to %s is not supported (integer to float32 only)"
                              % (op.name, src.dtype, op.attrs.get("dtype")))
    # in PyTorch's element order: a 4-D integer tensor (an unsqueezed mask) is cast before any
    # TRANSPOSE to NHWC, which onert has no int64 kernel for (the reshape's layout TRANSPOSE and
    # this one cancel, circle_passes.cancel_transposes); the float result is transposed
    x = ctx.nchw(src)
    attrs = {"inDataType": TENSOR_TYPE[src.dtype], "outDataType": TENSOR_TYPE["float32"]}
    y = Tensor(op.name + ("/float" if out.qparams is not None else ""), x.shape, "float32", None)
    ctx.emit("CAST", [x], [y], attrs, op.name)
    if out.qparams is not None:
        q = Tensor(op.name, x.shape, out.dtype, out.qparams.copy())
        ctx.emit("QUANTIZE", [y], [q], None, op.name + "/quantize")
        y = q
    ctx.from_nchw(out, y)
