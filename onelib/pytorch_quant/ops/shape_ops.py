"""flatten, reshape (view), cat: ops that move elements without changing them."""
import numpy as np

from ..errors import ConversionError
from ..ir import QParams, Tensor
from ..circle.vocab import ACT, INT_RANGE
from .ctx import nhwc_axis
from .declare import op


def flatten_shape(op):
    s = list(op.inputs[0].shape)
    r = len(s)
    a, b = op.attrs["start"] % r, op.attrs["end"] % r
    return tuple(s[:a] + [int(np.prod(s[a:b + 1]))] + s[b + 1:])


def reshape_shape(op):
    s = list(op.attrs["shape"])
    total = int(np.prod(op.inputs[0].shape))
    if s.count(-1) > 1:
        raise ConversionError("reshape %s: more than one -1 in %s" % (op.name, s))
    if -1 in s:
        known = int(np.prod([v for v in s if v != -1]))
        s[s.index(-1)] = total // known
    if int(np.prod(s)) != total:
        raise ConversionError("reshape %s: %s does not hold %d elements" % (op.name, s, total))
    return tuple(s)


def fold_reshape(name, args, shape):
    """view/reshape/squeeze/unsqueeze/unflatten: the recorded shape; select: one index of an axis
    (numpy views, as PyTorch's, so an in-place op on the result writes to the base)."""
    x = args["self"]
    if "index" in args:
        d = args.get("dim", 0) % x.ndim
        return x[(slice(None),) * d + (args["index"],)]
    return x.reshape(shape)


@op("flatten", shape=flatten_shape, float_ok=True, same_grid=True,
    reads={"torchscript": ("aten::flatten",), "pt2": ("aten.flatten.using_ints",)},
    attrs="start, end", circle="RESHAPE (TRANSPOSE to PyTorch order for H×W maps)")
@op("reshape", shape=reshape_shape, float_ok=True, same_grid=True, reads={
        "torchscript": ("aten::reshape", "aten::view", "aten::squeeze", "aten::squeeze_", "aten::unsqueeze",
                        "aten::unsqueeze_", "aten::select", "aten::stack", "aten::unflatten"),
        "pt2": ("aten.view.default", "aten.reshape.default", "aten._unsafe_view.default", "aten.unsqueeze.default",
                "aten.unsqueeze_.default", "aten.squeeze.default", "aten.squeeze.dim", "aten.squeeze.dims",
                "aten.squeeze_.dim", "aten.squeeze_.dims", "aten.select.int", "aten.unflatten.int")},
    attrs="shape (may hold one -1)", fold=fold_reshape,
    circle="RESHAPE (TRANSPOSE to PyTorch order for H×W maps); `select`: a piece of a split, then RESHAPE; "
           "`stack`: RESHAPE (unsqueeze) of each input, then CONCATENATION",
    conditions="`contiguous`, `dropout`, `detach`, `clone` are read as nothing (identities)")
def lower_reshape(ctx, op):
    """Reshape in PyTorch's element order: a 4-D (NHWC inside) input goes back to NCHW first,
    unless the layouts agree (H = W = 1), so ``flatten`` of an HxW map keeps PyTorch's order."""
    src_x, out = op.inputs[0], op.outputs[0]
    x_nchw_is_nhwc = len(src_x.shape) == 4 and src_x.shape[2] * src_x.shape[3] == 1
    if x_nchw_is_nhwc and len(out.shape) != 4:
        x = ctx.value(src_x)   # [N,1,1,C] holds the same order as [N,C,1,1]
    else:
        x = ctx.nchw(src_x)
    y = Tensor(op.name, out.shape, x.dtype, x.qparams.copy() if x.qparams is not None else None)
    ctx.reshape(x, out.shape, op.name, out=y)
    ctx.from_nchw(out, y)


def cat_shape(op):
    shapes = [list(t.shape) for t in op.inputs]
    d = op.attrs["dim"] % len(shapes[0])
    out = list(shapes[0])
    out[d] = sum(s[d] for s in shapes)
    for s in shapes:
        if len(s) != len(out) or any(s[i] != out[i] for i in range(len(s)) if i != d):
            raise ConversionError("cat %s: input shapes %s do not fit along dim %d" % (op.name, shapes, d))
    return tuple(out)


def fold_cat(name, args, shape):
    return np.concatenate([np.asarray(t) for t in args["tensors"]], axis=args.get("dim", 0))


@op("cat", shape=cat_shape, fold=fold_cat, float_ok=True, reads={
        "torchscript": ("quantized::cat", "aten::cat", "aten::stack"), "pt2": ("aten.cat.default",)},
    inputs="x0, x1, ... (activations, then constants)",
    attrs="dim, order (PyTorch's order of the inputs, when constants are among them)",
    circle="CONCATENATION", conditions="any dim, inputs on different grids")
def lower_cat(ctx, op):
    rank = len(op.outputs[0].shape)
    xs = [_cat_const(ctx, op, t, i) if t.is_const else ctx.value(t) for i, t in enumerate(op.inputs)]
    if "order" in op.attrs:   # constant inputs follow the activations in the IR (see the .pt2 reader)
        xs = [xs[i] for i in op.attrs["order"]]
    y = ctx.like(op.outputs[0])
    ctx.emit("CONCATENATION", xs, [y],
             {"axis": nhwc_axis(op.attrs["dim"], rank), "fusedActivationFunction": ACT[None]}, op.name)
    ctx.define(op.outputs[0], y)


def _cat_const(ctx, op, t, i):
    """A constant input of cat (ViT's class token): on the output's grid when the cat is quantized
    (XNNPACK quantizes it with the cat's qparams: its integers are kept, int8 moved to uint8 by the
    exact +128; a float constant is quantized onto that grid, which is what the quantizer after
    PyTorch's float cat does to it), else its float values."""
    out = op.outputs[0]
    data = np.asarray(t.data)
    q = t.qparams
    if q is not None and (out.qparams is None or not q.per_tensor):
        data = ((data.astype(np.float32) - np.float32(q.zero_point[0])) * q.scale.astype(np.float32)[0]
                if q.per_tensor else None)
        if data is None:
            raise ConversionError("%s: a per-channel quantized constant in cat" % op.name)
        q = None
    if out.qparams is not None:
        if q is None:
            lo, hi = INT_RANGE[out.dtype]
            qo = out.qparams
            data = np.clip(np.round(data.astype(np.float32) / np.float32(qo.scale[0])) + int(qo.zero_point[0]), lo, hi)
            data, q = data.astype(out.dtype), qo.copy()
        elif str(data.dtype) != out.dtype:
            if (str(data.dtype), out.dtype) != ("int8", "uint8"):
                raise ConversionError("%s: a %s constant in a %s cat" % (op.name, data.dtype, out.dtype))
            data = (data.astype(np.int16) + 128).astype(np.uint8)
            q = QParams(q.scale, q.zero_point + 128)
    else:
        data = data.astype(np.float32)
    if data.ndim == 4:
        data = np.transpose(data, (0, 2, 3, 1))
    return ctx.const("%s/const%d" % (op.name, i), np.ascontiguousarray(data), q)


def gather_shape(op):
    s = list(op.inputs[0].shape)
    s[op.attrs["dim"] % len(s)] = len(op.attrs["index"])
    return tuple(s)


def fold_slice(name, args, shape):
    """x[a:b:step] along ``dim``: a numpy view (an in-place op on it writes to the base)."""
    x = args["self"]
    d = args.get("dim", 0) % x.ndim
    return x[(slice(None),) * d + (slice(args.get("start"), args.get("end"), args.get("step", 1)),)]


@op("gather", shape=gather_shape, fold=fold_slice, float_ok=True, same_grid=True,
    reads={"torchscript": ("aten::slice",), "pt2": ("aten.slice.Tensor",)},
    attrs="dim, index (list): x[:, a:b:step], step > 1",
    circle="GATHER (`x[:, a:b:step]`, step > 1)", conditions="keeps the input's grid")
def lower_gather(ctx, op):
    """Elements ``index`` of one axis (``x[:, a:b:step]``, step > 1): GATHER with constant
    indices, which moves codes unchanged (the output keeps the input's grid). onert 0.1.0 has no
    uint8 STRIDED_SLICE, and GATHER is exact everywhere."""
    src = op.inputs[0]
    x = ctx.value(src)
    rank = len(src.shape)
    d = op.attrs["dim"] % rank
    axis = nhwc_axis(d, rank) if rank == 4 else d
    y = ctx.like(op.outputs[0], qparams=x.qparams)
    ctx.emit("GATHER", [x, ctx.const(op.name + "/index", np.array(op.attrs["index"], np.int32))], [y],
             {"axis": axis, "batchDims": 0}, op.name)
    ctx.define(op.outputs[0], y)
