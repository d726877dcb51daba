"""permute (transpose) and split (chunk): ops that move elements, so outputs keep the input's grid.

Both have to respect the layout rule (4-D activations are NHWC inside circle): a PyTorch axis
becomes a circle axis through ``nhwc_axis``, and a PyTorch permutation of a 4-D tensor is composed
with the layout permutations into the single TRANSPOSE that maps circle layout to circle layout.
"""
import numpy as np

from ..errors import ConversionError
from .ctx import NCHW_TO_NHWC, nhwc_axis
from .declare import op


def permute_shape(op):
    s = op.inputs[0].shape
    dims = [d % len(s) for d in op.attrs["dims"]]
    if sorted(dims) != list(range(len(s))):
        raise ConversionError("permute %s: %s is not a permutation of %d axes" % (op.name, op.attrs["dims"], len(s)))
    return tuple(s[d] for d in dims)


def circle_perm(dims, rank):
    """The TRANSPOSE perm, on circle tensors, of PyTorch's ``permute(dims)``.

    PyTorch axis j of a tensor sits at circle axis ``nhwc_axis(j)``; circle axis i of the output
    holds PyTorch output axis r[i] (r = NCHW_TO_NHWC when 4-D), which is PyTorch input axis
    dims[r[i]]. TRANSPOSE takes output axis i from input axis perm[i], hence the composition.
    """
    r = NCHW_TO_NHWC if rank == 4 else tuple(range(rank))
    return [nhwc_axis(dims[r[i]], rank) for i in range(rank)]


def fold_permute(name, args, shape):
    x = args["self"]
    if "dims" in args:
        return np.transpose(x, args["dims"])
    return np.swapaxes(x, args["dim0"], args["dim1"])


@op("permute", shape=permute_shape, fold=fold_permute, float_ok=True, same_grid=True, reads={
        "torchscript": ("aten::permute", "aten::transpose", "aten::transpose_", "aten::swapaxes", "aten::swapdims"),
        "pt2": ("aten.permute.default", "aten.transpose.int")},
    attrs="dims (transpose/swapaxes become permute)",
    circle="TRANSPOSE (composed with the NHWC rule); also channel shuffle")
def lower_permute(ctx, op):
    src, out = op.inputs[0], op.outputs[0]
    rank = len(src.shape)
    dims = [d % rank for d in op.attrs["dims"]]
    perm = circle_perm(dims, rank)
    x = ctx.value(src)
    if perm == list(range(rank)):
        ctx.define(out, x)   # the same elements in the same circle order
        return
    y = ctx.transpose(x, perm, op.name)
    ctx.define(out, y)


def split_shape(op):
    s = list(op.inputs[0].shape)
    d = op.attrs["dim"] % len(s)
    if sum(op.attrs["sizes"]) != s[d]:
        raise ConversionError("split %s: sizes %s do not add up to %d" % (op.name, op.attrs["sizes"], s[d]))
    return [tuple(s[:d] + [n] + s[d + 1:]) for n in op.attrs["sizes"]]


@op("split", shape=split_shape, float_ok=True, reads={
        "torchscript": ("aten::chunk", "aten::unsafe_chunk", "aten::split", "aten::unsafe_split",
                        "aten::split_with_sizes", "aten::unsafe_split_with_sizes", "aten::slice", "aten::select"),
        "pt2": ("aten.chunk.default", "aten.split.Tensor", "aten.split_with_sizes.default", "aten.unsafe_split.Tensor",
                "aten.unsafe_split_with_sizes.default", "aten.slice.Tensor", "aten.select.int")},
    inputs="x -> one output per piece", attrs="dim, sizes (chunk/split/split_with_sizes)",
    circle="SPLIT (equal), SLICE per piece (unequal); `x[:, a:b]` and `x[:, i]` are pieces of a split",
    conditions="keeps the input's grid", onert="yes (5-D SLICE: **wrong**, TICO)")
def lower_split(ctx, op):
    """SPLIT when the pieces are equal; one SLICE per piece otherwise. The pieces are PyTorch
    views of the input, so they keep its qparams (what luci requires of Split outputs too).

    Not SPLIT_V: onert 0.1.0 runs it without error and returns wrong data (uint8 and float32
    alike, measured), while SLICE is exact on onert and TICO.
    """
    src = op.inputs[0]
    rank = len(src.shape)
    axis = nhwc_axis(op.attrs["dim"], rank)
    x = ctx.value(src)
    sizes = [int(n) for n in op.attrs["sizes"]]
    outs = [ctx.like(t, qparams=x.qparams) for t in op.outputs]
    if len(set(sizes)) == 1:
        axis_t = ctx.const(op.name + "/axis", np.array([axis], np.int32))
        ctx.emit("SPLIT", [axis_t, x], outs, {"numSplits": len(sizes)}, op.name)
    else:
        start = 0
        for i, (o, n) in enumerate(zip(outs, sizes)):
            begin = [0] * rank
            begin[axis] = start
            size = list(x.shape)
            size[axis] = n
            ctx.emit("SLICE", [x, ctx.const("%s:%d/begin" % (op.name, i), np.array(begin, np.int32)),
                               ctx.const("%s:%d/size" % (op.name, i), np.array(size, np.int32))],
                     [o], {}, "%s:%d" % (op.name, i))
            start += n
    for t, o in zip(op.outputs, outs):
        ctx.define(t, o)
