"""embedding: rows of a constant table picked by integer ids (``nn.Embedding``, token ids).

The ids are a model input of integers (PyTorch's int64); the table is a float parameter. PT2E
XNNPACK quantizes the output (the table stays float: ``embedding`` then ``quantize``); X86 and FX
leave it float. A selection commutes with quantization, so where PyTorch quantizes the output the
circle table is quantized onto the output's grid and GATHER moves codes: exact. luci-interpreter
has no uint8 GATHER: the onert profile runs it in float (``passes.profiles.in_float_for_luci_interpreter``).
"""
import numpy as np

from ..errors import ConversionError
from ..circle.vocab import INT_RANGE
from .declare import op

# integer dtypes a model input may have: ids read by embedding only
INDEX_DTYPES = ("int64", "int32")


def embedding_shape(op):
    ids, table = op.inputs
    shape = tuple(ids.shape) + (table.shape[1],)
    if len(shape) == 4:   # a 4-D output would be laid out NHWC by every reader
        raise ConversionError("embedding %s: ids of rank 3 (output %s) are not supported; give ids of "
                              "rank 1 or 2" % (op.name, shape))
    return shape


def quantize_table(table, qparams, dtype):
    """PyTorch's quantize_per_tensor of the float table: x * (1 / scale) in float32, rounded half
    to even, plus the zero point, clamped to the dtype's range."""
    lo, hi = INT_RANGE[dtype]
    inv = np.float32(1.0 / float(qparams.scale[0]))
    q = np.round(table.astype(np.float32) * inv) + int(qparams.zero_point[0])
    return np.clip(q, lo, hi).astype(dtype)


@op("embedding", shape=embedding_shape, float_ok=True, reads={
        "torchscript": ("aten::embedding",), "pt2": ("aten.embedding.default",)},
    inputs="ids (int64/int32 model input), table (float constant)", attrs="-",
    circle="GATHER axis 0 (uint8 table on the output's grid where PyTorch quantizes the output, else "
           "float); int64 ids as given",
    conditions="ids: an integer model input, rank 1 or 2; onert profile: float GATHER (luci-interpreter "
               "has no uint8 GATHER)")
def lower_embedding(ctx, op):
    ids_src, table_src = op.inputs
    ids = ctx.value(ids_src)
    out = op.outputs[0]
    if out.qparams is not None:
        table = ctx.const(op.name + "/table", quantize_table(table_src.data, out.qparams, out.dtype),
                          out.qparams.copy())
    else:
        table = ctx.const(table_src.name, table_src.data.astype(np.float32))
    y = ctx.like(out)
    ctx.emit("GATHER", [table, ids], [y], {"axis": 0, "batchDims": 0}, op.name)
    ctx.define(out, y)
