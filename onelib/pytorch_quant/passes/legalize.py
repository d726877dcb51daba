"""Circle-stage legalisation for what onert cannot run, with no change to any value."""
import numpy as np

from ..circle.vocab import ACT_RANGE
from ..ir import QUANT_INT_DTYPES, Op, Tensor
from ..ops.quant import quantize_value


def relu_as_min_max(graph, options):
    """A quantized RELU / RELU6 / RELU_N1_TO_1 left standalone (fuse_activation found no producer
    to fold it into, e.g. right after a graph input or a TRANSPOSE) becomes MAXIMUM / MINIMUM
    with constants on its own grid.

    onert 0.1.0 has no quantized standalone RELU/RELU6 kernel ("ElementwiseActivationLayer(ReLU):
    unsupported data type") but runs uint8 MAXIMUM/MINIMUM. With equal input and output qparams
    (PyTorch's quantized relu keeps the grid) a clamp of the codes is exactly what RELU computes,
    so every output code is unchanged. Anything else (float, different grids) is left alone.
    """
    new_ops = []
    for op in graph.ops:
        rng = ACT_RANGE.get(op.kind)
        x, y = (op.inputs[0], op.outputs[0]) if op.inputs and op.outputs else (None, None)
        if rng is None or x.qparams is None or y.qparams is None or not x.qparams.same_as(y.qparams) \
                or x.dtype != y.dtype or x.dtype not in QUANT_INT_DTYPES:
            new_ops.append(op)
            continue
        lo, hi = rng

        def const(tag, v):
            data = np.array([quantize_value(v, x.qparams, x.dtype)], x.dtype)
            return Tensor("%s/%s" % (op.name or y.name, tag), (1,), x.dtype, x.qparams.copy(), data)

        if hi == float("inf"):
            new_ops.append(Op("MAXIMUM", [x, const("min_value", lo)], [y], {}, op.name))
            continue
        mid = Tensor(y.name + "/max", y.shape, y.dtype, y.qparams.copy())
        new_ops.append(Op("MAXIMUM", [x, const("min_value", lo)], [mid], {}, (op.name or y.name) + "/max"))
        new_ops.append(Op("MINIMUM", [mid, const("max_value", hi)], [y], {}, op.name))
    graph.ops = new_ops
