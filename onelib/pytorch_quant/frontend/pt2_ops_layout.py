""".pt2 readers: mean, reshapes and views (flatten, permute, squeeze, split, slice, select),
activations with a fixed grid and resize (one ``@reader`` per PyTorch op target)."""
from ..ir import Op, Tensor
from .pt2_graph import _Ref, _op_name
from .pt2_walk import _Unsupported, _sizes, _slice_bounds, reader

@reader("aten.mean.dim")
def _mean(w, node):
    x = w.act(node)
    dims = w.arg(node, "dim")
    dims = list(range(len(x.shape))) if dims is None or dims == [] else \
        ([dims] if isinstance(dims, int) else list(dims))
    if w.arg(node, "dtype") is not None:
        raise _Unsupported("mean with a dtype")
    w.emit("mean", node, [x], attrs={"dims": dims, "keepdim": bool(w.arg(node, "keepdim", False))})


@reader("aten.flatten.using_ints")
def _flatten(w, node):
    w.emit("flatten", node, [w.act(node)],
           attrs={"start": int(w.arg(node, "start_dim", 0)), "end": int(w.arg(node, "end_dim", -1))})


@reader("aten.view.default", "aten.reshape.default", "aten._unsafe_view.default")
def _reshape(w, node):
    shape = node.args.get("size", node.args.get("shape"))
    if not isinstance(shape, list) or any(not isinstance(v, int) for v in shape):
        raise _Unsupported("target shape %r is not constant" % (shape,))
    w.emit("reshape", node, [w.act(node)], attrs={"shape": [int(v) for v in shape]})


@reader("aten.sigmoid.default", "aten.sigmoid_.default")
def _sigmoid(w, node):
    w.emit("sigmoid", node, [w.act(node)])


@reader("aten.hardswish.default", "aten.hardswish_.default")
def _hardswish(w, node):
    w.emit("hardswish", node, [w.act(node)])


@reader("aten.hardsigmoid.default", "aten.hardsigmoid_.default")
def _hardsigmoid(w, node):
    w.emit("hardsigmoid", node, [w.act(node)])


@reader("aten.permute.default")
def _permute(w, node):
    dims = w.arg(node, "dims")
    if not isinstance(dims, list) or any(not isinstance(d, int) for d in dims):
        raise _Unsupported("dims %r are not constant" % (dims,))
    w.emit("permute", node, [w.act(node)], attrs={"dims": [int(d) for d in dims]})


@reader("aten.transpose.int")
def _transpose(w, node):
    x = w.act(node)
    rank = len(_sizes(w, node.args.get("self"), "the input"))
    dims = list(range(rank))
    a, b = int(w.arg(node, "dim0")) % rank, int(w.arg(node, "dim1")) % rank
    dims[a], dims[b] = dims[b], dims[a]
    w.emit("permute", node, [x], attrs={"dims": dims})


@reader("aten.chunk.default", "aten.split.Tensor", "aten.split_with_sizes.default",
        "aten.unsafe_split.Tensor", "aten.unsafe_split_with_sizes.default")
def _split(w, node):
    """chunk/split: one ``split`` op, the pieces on the input's grid (they are views of it); a
    piece that PyTorch then quantizes onto another grid is requantized by its quantize node."""
    x = w.act(node)
    shape = _sizes(w, node.args.get("self"), "the input")
    d = int(w.arg(node, "dim", 0)) % len(shape)
    n = shape[d]
    if node.target == "aten.chunk.default":
        step = -(-n // int(w.arg(node, "chunks")))
        sizes = [min(step, n - i) for i in range(0, n, step)]
    elif "with_sizes" in node.target:
        sizes = [int(v) for v in w.arg(node, "split_sizes")]
    else:
        a = int(w.arg(node, "split_size"))
        sizes = [min(a, n - i) for i in range(0, n, a)]
    if sum(sizes) != n or any(v <= 0 for v in sizes) or len(sizes) != len(node.outputs):
        raise _Unsupported("split sizes %s do not cover %d elements in %d outputs"
                           % (sizes, n, len(node.outputs)))
    name = _op_name(node)
    outs = [Tensor("%s:%d" % (name, i), None, x.dtype, x.qparams.copy() if x.qparams is not None else None)
            for i in range(len(sizes))]
    w.graph.ops.append(Op("split", [x], outs, {"dim": d, "sizes": sizes}, name))
    for o, t in zip(node.outputs, outs):
        w.values[o] = t
        w.node_of[id(t)] = o


def _keep(w, node, x, kind, attrs, name):
    """A view op (slice, select, squeeze): it moves no value, so the output keeps the input's
    dtype and grid, quantized or float (slicing commutes with dequantize); a reader that
    quantizes it onto another grid requantizes it (``quantize``)."""
    out = Tensor(name, None, x.dtype, x.qparams.copy() if x.qparams is not None else None)
    w.graph.ops.append(Op(kind, [x], [out], attrs, name))
    w.values[node.output] = out
    w.node_of[id(out)] = node.output
    return out


def _piece(w, node, x, d, a, b, n, name):
    """Elements a..b-1 of axis d: one piece of a ``split`` (what the TorchScript frontend
    emits for a slice), on the input's grid."""
    sizes = [v for v in (a, b - a, n - b) if v > 0]
    outs = [Tensor("%s:%d" % (name, k), None, x.dtype, x.qparams.copy() if x.qparams is not None else None)
            for k in range(len(sizes))]
    w.graph.ops.append(Op("split", [x], outs, {"dim": d, "sizes": sizes}, name))
    return outs[1 if a > 0 else 0]


@reader("aten.slice.Tensor")
def _slice(w, node):
    """``x[:, a:b]`` with step 1 (the whole axis is an alias, see ``_Walker._full_slice``)."""
    x = w.act(node)
    d, a, b, n, step = _slice_bounds(w, node)
    if step > 1:   # every step-th element: a gather of those indices, on the input's grid
        w.emit("gather", node, [x], attrs={"dim": d, "index": list(range(a, b, step))})
        return
    out = _piece(w, node, x, d, a, b, n, _op_name(node))
    w.values[node.output] = out
    w.node_of[id(out)] = node.output


@reader("aten.select.int")
def _select(w, node):
    """``x[:, i]``: the piece i of a split, then a reshape without that axis."""
    x = w.act(node)
    shape = _sizes(w, node.args.get("self"), "the input")
    d = int(w.arg(node, "dim", 0)) % len(shape)
    n = shape[d]
    i = w.arg(node, "index", 0)
    if isinstance(i, bool) or not isinstance(i, int) or not -n <= i < n:
        raise _Unsupported("index %r is not a constant in -%d..%d" % (i, n, n - 1))
    i %= n
    name = _op_name(node)
    piece = _piece(w, node, x, d, i, i + 1, n, name + "/slice")
    _keep(w, node, piece, "reshape", {"shape": shape[:d] + shape[d + 1:]}, name)


@reader("aten.unsqueeze.default", "aten.unsqueeze_.default", "aten.squeeze.default", "aten.squeeze.dim",
        "aten.squeeze.dims", "aten.squeeze_.dim", "aten.squeeze_.dims", "aten.unflatten.int")
def _squeeze(w, node):
    """squeeze/unsqueeze/unflatten move no element: a reshape to the shape the program records."""
    x = w.act(node)
    shape = _sizes(w, _Ref(node.output), "the output")
    _keep(w, node, x, "reshape", {"shape": shape}, _op_name(node))


@reader("aten.upsample_bilinear2d.vec", "aten.upsample_nearest2d.vec", "aten._upsample_nearest_exact2d.vec",
        "aten.upsample_bilinear2d.default", "aten.upsample_nearest2d.default")
def _upsample(w, node):
    """F.interpolate: the output on the input's grid (requantized when PyTorch chose another)."""
    t = node.target
    mode = "bilinear" if "bilinear" in t else ("nearest_exact" if "exact" in t else "nearest")
    size = w.arg(node, "output_size")
    scales = w.arg(node, "scale_factors")
    if scales is None and (w.arg(node, "scales_h") is not None or w.arg(node, "scales_w") is not None):
        scales = [w.arg(node, "scales_h"), w.arg(node, "scales_w")]
    if size is None and scales is None:
        raise _Unsupported("interpolate without a constant size or scale factor")
    if size is not None:
        if any(not isinstance(v, int) for v in size):
            raise _Unsupported("output size %r is not constant" % (size,))
        size = [int(v) for v in size]
    if scales is not None:
        scales = [None if v is None else float(v) for v in scales]
    w.emit("upsample", node, [w.act(node, "input" if "input" in node.args else "self")],
           attrs={"mode": mode, "size": size, "scales": scales,
                  "align_corners": bool(w.arg(node, "align_corners", False))})


@reader("aten.masked_fill.Scalar")
def _masked_fill(w, node):
    """x.masked_fill(mask, value) with a constant mask (a computed one is refused): PyTorch
    computes it on the dequantized input, so it is read in float."""
    mask = w.value(node.args.get("mask"))
    if not (isinstance(mask, Tensor) and mask.is_const and mask.qparams is None):
        raise _Unsupported("the mask is computed at run time (only a constant mask converts)")
    value = w.arg(node, "value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Unsupported("value %r is not a constant number" % (value,))
    w.emit("masked_fill", node, [w.act(node)], [mask], {"value": float(value)}, quantizable=False)
