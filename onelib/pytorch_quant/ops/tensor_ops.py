"""expand, repeat, roll, masked_fill: ops that copy or select elements (no arithmetic), so a
quantized input keeps its grid and the result is exact. On constants they are folded (``fold=``)."""
import numpy as np

from ..errors import ConversionError
from ..ir import Tensor
from .ctx import nhwc_axis
from .declare import op
from .activation import FloatIsland


def _tile(ctx, op, x, in_shape, multiples):
    """``x`` (PyTorch shape ``in_shape``, NHWC inside when 4-D) repeated ``multiples[d]`` times
    along each PyTorch axis d: CONCATENATION of copies, axis by axis. Codes are copied, so the
    result keeps the input's grid. Not TILE: onert 0.1.0 has no uint8 TILE ("NYI") and TICO's
    runtime no TILE kernel (measured); CONCATENATION runs exactly on both."""
    rank = len(in_shape)
    steps = [(nhwc_axis(d, rank) if rank == 4 else d, int(m)) for d, m in enumerate(multiples) if int(m) != 1]
    out = ctx.like(op.outputs[0], qparams=x.qparams)
    if not steps:
        ctx.reshape(x, out.shape, op.name, out=out)
    for i, (axis, m) in enumerate(steps):
        if i == len(steps) - 1:
            y = out
        else:
            shape = list(x.shape)
            shape[axis] *= m
            y = Tensor("%s/%d" % (op.name, i), shape, x.dtype, x.qparams.copy() if x.qparams is not None else None)
        ctx.emit("CONCATENATION", [x] * m, [y], {"axis": axis, "fusedActivationFunction": 0},
                 op.name if y is out else y.name)
        x = y
    ctx.define(op.outputs[0], out)


def _lead_ones(ctx, op, rank):
    """The input with leading axes of 1 up to ``rank`` (expand/repeat add axes in front): RESHAPE in
    PyTorch's element order."""
    src = op.inputs[0]
    if len(src.shape) == rank:
        return ctx.value(src), tuple(src.shape)
    shape = (1,) * (rank - len(src.shape)) + tuple(src.shape)
    if rank == 4 or len(src.shape) == 4:
        raise ConversionError("%s: %s of a %d-D tensor to %d-D is not supported"
                              % (op.name, op.kind, len(src.shape), rank))
    x = ctx.value(src)
    return ctx.reshape(x, shape, op.name + "/unsqueeze"), shape


def expand_shape(op):
    size = [int(v) for v in op.attrs["size"]]
    src = (1,) * (len(size) - len(op.inputs[0].shape)) + tuple(op.inputs[0].shape)
    out = [s if v == -1 else v for s, v in zip(src, size)]
    if any(s != 1 and s != o for s, o in zip(src, out)):
        raise ConversionError("expand %s: %s cannot expand to %s" % (op.name, op.inputs[0].shape, size))
    return tuple(out)


def fold_expand(name, args, shape):
    x = np.asarray(args["self"])
    size = [int(v) for v in args["size"]]
    src = (1,) * (len(size) - x.ndim) + x.shape
    return np.broadcast_to(x.reshape(src), [s if v == -1 else v for s, v in zip(src, size)]).copy()


def repeat_shape(op):
    reps = [int(v) for v in op.attrs["repeats"]]
    src = (1,) * (len(reps) - len(op.inputs[0].shape)) + tuple(op.inputs[0].shape)
    return tuple(s * r for s, r in zip(src, reps))


def fold_repeat(name, args, shape):
    return np.tile(args["self"], args["repeats"])


@op("expand", shape=expand_shape, float_ok=True, same_grid=True, fold=fold_expand,
    reads={"torchscript": ("aten::expand",), "pt2": ("aten.expand.default",)},
    args={"torchscript": ("self", "size"), "pt2": ("self", "size")},
    attrs="size (-1 keeps an axis)",
    circle="CONCATENATION of copies per axis (RESHAPE first when axes are added); constant: folded",
    conditions="keeps the input's grid (exact); ViT's class token is folded")
def lower_expand(ctx, op):
    out = op.outputs[0].shape
    x, shape = _lead_ones(ctx, op, len(out))
    _tile(ctx, op, x, shape, [o // s for s, o in zip(shape, out)])


@op("repeat", shape=repeat_shape, float_ok=True, same_grid=True, fold=fold_repeat,
    reads={"torchscript": ("aten::repeat",), "pt2": ("aten.repeat.default",)},
    args={"torchscript": ("self", "repeats"), "pt2": ("self", "repeats")},
    attrs="repeats", circle="CONCATENATION of copies per axis (RESHAPE first when axes are added); constant: folded",
    conditions="keeps the input's grid (exact)")
def lower_repeat(ctx, op):
    x, shape = _lead_ones(ctx, op, len(op.attrs["repeats"]))
    _tile(ctx, op, x, shape, op.attrs["repeats"])


def _roll_pairs(op_or_args, rank):
    a = op_or_args
    shifts, dims = a["shifts"], a.get("dims", [])
    shifts = [shifts] if isinstance(shifts, int) else list(shifts)
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    if len(shifts) != len(dims):
        raise ConversionError("roll: %d shifts for %d dims (a roll of the flattened tensor is not supported)"
                              % (len(shifts), len(dims)))
    return [(int(s), int(d) % rank) for s, d in zip(shifts, dims)]


def fold_roll(name, args, shape):
    x = args["self"]
    for s, d in _roll_pairs(args, x.ndim):
        x = np.roll(x, s, axis=d)
    return x


@op("roll", shape=lambda op: op.inputs[0].shape, float_ok=True, same_grid=True, fold=fold_roll,
    reads={"torchscript": ("aten::roll",), "pt2": ("aten.roll.default",)},
    args={"torchscript": ("self", "shifts", "dims"), "pt2": ("self", "shifts", "dims")},
    attrs="shifts, dims", circle="SLICE, SLICE, CONCATENATION per rolled axis",
    conditions="keeps the input's grid (exact); `dims` given (Swin's shifted windows)")
def lower_roll(ctx, op):
    """torch.roll(x, s, d) = cat(x[n-s:], x[:n-s]) along d, per rolled axis: element moves only."""
    src = op.inputs[0]
    rank = len(src.shape)
    x = ctx.value(src)
    pairs = [(s % src.shape[d], d) for s, d in _roll_pairs(op.attrs, rank)]
    pairs = [(s, d) for s, d in pairs if s]
    for i, (s, d) in enumerate(pairs):
        axis = nhwc_axis(d, rank) if rank == 4 else d
        n = x.shape[axis]
        name = op.name if i == len(pairs) - 1 else "%s/%d" % (op.name, i)
        pieces = []
        for k, (a, m) in enumerate(((n - s, s), (0, n - s))):
            begin = [0] * rank
            begin[axis] = a
            size = list(x.shape)
            size[axis] = m
            p = Tensor("%s/slice%d" % (name, k), size, x.dtype, x.qparams.copy() if x.qparams is not None else None)
            ctx.emit("SLICE", [x, ctx.const("%s/slice%d/begin" % (name, k), np.array(begin, np.int32)),
                               ctx.const("%s/slice%d/size" % (name, k), np.array(size, np.int32))],
                     [p], {}, "%s/slice%d" % (name, k))
            pieces.append(p)
        y = Tensor(name, x.shape, x.dtype, x.qparams.copy() if x.qparams is not None else None)
        ctx.emit("CONCATENATION", pieces, [y], {"axis": axis, "fusedActivationFunction": 0}, name)
        x = y
    if not pairs:
        y = ctx.like(src)
        ctx.reshape(x, y.shape, op.name, out=y)
        x = y
    ctx.define(op.outputs[0], x)


def fold_masked_fill(name, args, shape):
    return np.where(np.asarray(args["mask"]).astype(bool), np.asarray(args["value"]), args["self"])


@op("masked_fill", shape=lambda op: op.inputs[0].shape, float_ok=True, fold=fold_masked_fill,
    reads={"pt2": ("aten.masked_fill.Scalar",)},
    inputs="x, mask (constant)", attrs="value",
    circle="float MUL by the kept positions, ADD of the filled value (exact), DEQUANTIZE/QUANTIZE around it; "
           "constant: folded",
    conditions="the mask is a constant (Swin's attention mask is folded whole)")
def lower_masked_fill(ctx, op):
    """x * keep + fill in float32 (keep = 1 - mask, fill = value * mask): exact (x * 1 + 0 = x,
    x * 0 + v = v). Not SELECT_V2: luci's circle-quantizer --fake_quantize refuses a float
    SELECT_V2 ("Unsupported op for fake quantization", measured), MUL and ADD it takes."""
    src, mask = op.inputs[0], op.inputs[1]
    if not mask.is_const:
        raise ConversionError("%s: masked_fill with a computed mask is not supported" % op.name)
    rank = len(op.outputs[0].shape)
    m = np.asarray(mask.data).astype(bool)
    m = m.reshape((1,) * (rank - m.ndim) + m.shape)
    if rank == 4:
        m = np.transpose(m, (0, 2, 3, 1))
    isl = FloatIsland(ctx, op)
    keep = ctx.const(op.name + "/keep", np.ascontiguousarray(np.where(m, 0.0, 1.0).astype(np.float32)))
    fill = ctx.const(op.name + "/fill", np.ascontiguousarray(np.where(m, float(op.attrs["value"]), 0.0)
                                                                .astype(np.float32)))
    kept = isl.op("MUL", [isl.x, keep], "keep", {"fusedActivationFunction": 0}, out=isl.tmp("keep"))
    y = isl.op("ADD", [kept, fill], "fill", {"fusedActivationFunction": 0}, out=isl.output())
    ctx.define(op.outputs[0], isl.done(y))
