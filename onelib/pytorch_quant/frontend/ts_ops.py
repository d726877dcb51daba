"""TorchScript readers: quantize/dequantize, values and lists, conv, linear, add/mul, cat,
pooling, the clamps and reshapes (one ``@reader`` per PyTorch op name; see ``ops/`` for what each
source op means)."""
import numpy as np

from ..ir import Op, QParams, Tensor
from .ts_walk import _QDTYPE, _Unsupported, _inputs, _known_shape, _pair, _qp, reader, shape_unknown

@reader("prim::ListConstruct", "prim::TupleConstruct")
def _list(w, node):
    w.values[node.output().unique()] = [w.values.get(v.unique()) if v.node().kind() != "prim::Constant"
                                         else v.toIValue() for v in node.inputs()]


@reader("prim::ListUnpack", "prim::TupleUnpack")
def _unpack(w, node):
    items = w.values.get(node.input().unique())
    for o, it in zip(node.outputs(), items or []):
        w.values[o.unique()] = it


@reader("prim::GetAttr")
def _getattr(w, node):
    w.values[node.output().unique()] = w.objects.get(node.output().unique())


@reader("aten::size")
def _size(w, node):
    ins = _inputs(node)
    t = w.tensor(ins[0], node)
    if t.shape is None:
        w.services.infer_shapes(w.graph)
    if t.shape is None:
        raise _Unsupported(shape_unknown(w, "size of a tensor whose shape is unknown"))
    dim = w.const(ins[1]) if len(ins) > 1 else None
    w.values[node.output().unique()] = t.shape[dim] if dim is not None else list(t.shape)


@reader("prim::NumToTensor", "aten::Int", "aten::IntImplicit", "aten::FloatImplicit", "aten::ScalarImplicit")
def _num(w, node):
    w.values[node.output().unique()] = w.const(node.input())


@reader("aten::quantize_per_tensor")
def _quantize(w, node):
    x, s, z, dt = _inputs(node)
    dtype = _QDTYPE.get(w.const(dt))
    if dtype not in ("uint8", "int8"):
        raise _Unsupported("quantize to torch dtype code %r" % w.const(dt))
    c = w.const(x) if not isinstance(w.values.get(x.unique()), Tensor) else None
    if hasattr(c, "is_quantized") and not c.is_quantized:
        # a constant FX quantizes (ViT's class token before a quantized cat): PyTorch's integers
        import torch
        qc = torch.quantize_per_tensor(c.detach().float(), float(w.const(s)), int(w.const(z)),
                                        {"uint8": torch.quint8, "int8": torch.qint8}[dtype])
        ints = qc.int_repr().numpy()
        w.values[node.output().unique()] = Tensor(w.name_for(node), ints.shape, dtype,
                                                  QParams(np.float32(qc.q_scale()), qc.q_zero_point()), ints)
        return
    w.emit("quantize", node, [w.tensor(x, node)], qparams=_qp(w.const(s), w.const(z)), dtype=dtype)


@reader("aten::dequantize")
def _dequantize(w, node):
    w.emit("dequantize", node, [w.tensor(node.input(), node)], qparams=None, dtype="float32")
    w.graph.ops[-1].outputs[0].qparams = None


def _weight_tensor(qw, name):
    """A torch qint8 weight -> int8 Tensor with its qparams (channel axis as torch has it)."""
    import torch
    ints = qw.int_repr().numpy()   # a fresh tensor: its memory is ours (one copy, below, to the IR dtype)
    if qw.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        q = QParams(qw.q_per_channel_scales().numpy().astype(np.float32),
                    qw.q_per_channel_zero_points().numpy().astype(np.int64), qw.q_per_channel_axis())
    elif qw.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        q = QParams(np.float32(qw.q_scale()), qw.q_zero_point())
    else:
        raise _Unsupported("weight quantization scheme %s" % qw.qscheme())
    dtype = {torch.qint8: "int8", torch.quint8: "uint8"}.get(qw.dtype)
    if dtype is None:
        raise _Unsupported("weight dtype %s" % qw.dtype)
    return Tensor(name + ".weight", ints.shape, dtype, q, ints.astype(dtype, copy=False))


def _bias_tensor(b, name):
    if b is None:
        return None
    arr = b.detach().float().numpy().astype(np.float32).copy()
    return Tensor(name + ".bias", arr.shape, "float32", None, arr)


def _packed(w, node, unpack):
    """(packed params, int8 weight, float bias) of a quantized conv/linear node.

    ``unpack`` names the torch.ops.quantized unpack op; freezing made the packed params a constant.
    """
    import torch
    pp = w.const(_inputs(node)[1])
    if pp is None:
        raise _Unsupported("packed weights are not a constant (freeze failed to fold them)")
    qw, b = getattr(torch.ops.quantized, unpack)(pp)
    return pp, qw, b


@reader("quantized::conv2d", "quantized::conv2d_relu")
def _conv2d(w, node):
    x, _, s, z = _inputs(node)[:4]
    pp, qw, b = _packed(w, node, "conv2d_unpack")
    if pp.transpose():
        raise _Unsupported("transposed convolution")
    name = w.name_for(node)
    attrs = {"stride": list(pp.stride()), "padding": list(pp.padding()), "dilation": list(pp.dilation()),
             "groups": int(pp.groups()), "act": "relu" if node.kind().endswith("_relu") else None}
    w.emit("conv2d", node, [w.tensor(x, node), _weight_tensor(qw, name), _bias_tensor(b, name)],
           attrs, qparams=_qp(w.const(s), w.const(z)))


@reader("quantized::linear", "quantized::linear_relu")
def _linear(w, node):
    x, _, s, z = _inputs(node)[:4]
    pp, qw, b = _packed(w, node, "linear_unpack")
    name = w.name_for(node)
    attrs = {"act": "relu" if node.kind().endswith("_relu") else None}
    w.emit("linear", node, [w.tensor(x, node), _weight_tensor(qw, name), _bias_tensor(b, name)],
           attrs, qparams=_qp(w.const(s), w.const(z)))


@reader("aten::linear")
def _float_linear(w, node):
    """A linear FX or eager left float (between dequantize and quantize): float weight and bias."""
    x, wv, bv = _inputs(node)[:3]
    wt, b = w.const(wv), w.const(bv)
    if wt is None or not hasattr(wt, "is_quantized") or wt.is_quantized or wt.dim() != 2:
        raise _Unsupported("the weight is not a constant 2-D float tensor")
    name = w.name_for(node)
    arr = wt.detach().float().numpy().astype(np.float32).copy()
    w.emit("linear", node, [w.tensor(x, node), Tensor(name + ".weight", arr.shape, "float32", None, arr),
                            _bias_tensor(b, name)], {"act": None})


@reader("quantized::add", "quantized::add_relu", "quantized::mul", "quantized::mul_relu")
def _binary(w, node):
    kind = node.kind().split("::")[1]
    if len(_inputs(node)) == 2:
        # quantized::add/mul(x, number) (FX's ``x * 0.35``): the add_scalar/mul_scalar kernel
        # (measured on x86 and qnnpack: the same integers and output qparams)
        _scalar_op(w, node, kind.replace("_relu", "_scalar_relu") if kind.endswith("_relu") else kind + "_scalar")
        return
    a, b, s, z = _inputs(node)
    w.emit(kind.replace("_relu", ""), node, [_operand(w, a, node), _operand(w, b, node)],
           {"act": "relu" if kind.endswith("_relu") else None}, qparams=_qp(w.const(s), w.const(z)))


def _operand(w, v, node):
    """An activation, or a quantized constant (FX quantizes a parameter added to the tokens, ViT's
    position embedding; ``torch.jit.freeze`` folds that quantize into a constant)."""
    c = None if isinstance(w.values.get(v.unique()), Tensor) else w.const(v)
    if getattr(c, "is_quantized", False):
        import torch
        if c.qscheme() not in (torch.per_tensor_affine, torch.per_tensor_symmetric) or c.dtype != torch.quint8:
            raise _Unsupported("a constant operand quantized per channel or not as quint8")
        ints = c.int_repr().numpy().copy()
        return Tensor(w.name_for(node, "/const"), ints.shape, "uint8", QParams(np.float32(c.q_scale()),
                                                                              c.q_zero_point()), ints)
    return w.tensor(v, node)


@reader("quantized::add_scalar", "quantized::add_scalar_relu", "quantized::mul_scalar", "quantized::mul_scalar_relu")
def _binary_scalar(w, node):
    _scalar_op(w, node, node.kind().split("::")[1])


def _scalar_op(w, node, kind):
    a, c = _inputs(node)[:2]
    x = w.tensor(a, node)
    if x.qparams is None:   # a placeholder after an op that is not converted (listed already)
        raise _Unsupported("the input is not a quantized tensor (an op before it is not converted)")
    w.emit(kind.replace("_relu", ""), node, [x],
           {"scalar": float(w.const(c)), "act": "relu" if kind.endswith("_relu") else None}, qparams=None)
    # the output qparams are derived by the op itself (see ops/elementwise.py)
    w.services.derive_qparams(w.graph.ops[-1])


@reader("quantized::cat", "aten::cat")
def _cat(w, node):
    ins = _inputs(node)
    items = w.values.get(ins[0].unique())
    if not items or not all(isinstance(t, Tensor) for t in items) or all(t.is_const for t in items):
        raise _Unsupported("cat of values that are not activations")
    dim = w.const(ins[1])
    attrs = {"dim": int(dim)}
    if any(t.is_const for t in items):
        # a quantized constant (FX's class token): activations first, ``order`` restores PyTorch's
        ins_order = [i for i, t in enumerate(items) if not t.is_const] + [i for i, t in enumerate(items) if t.is_const]
        attrs["order"] = [ins_order.index(i) for i in range(len(items))]
        items = [items[i] for i in ins_order]
    if node.kind() == "quantized::cat":
        q = _qp(w.const(ins[2]), w.const(ins[3]))
    else:  # aten::cat on quantized tensors keeps the (shared) qparams of its inputs
        q = items[0].qparams.copy() if items[0].qparams is not None else None
    w.emit("cat", node, items, attrs, qparams=q, dtype=items[0].dtype)


@reader("aten::stack")
def _stack(w, node):
    """torch.stack of quantized tensors (PyTorch stacks one grid): an unsqueeze (reshape) of each
    input, then a cat along the new axis."""
    ins = _inputs(node)
    items = w.values.get(ins[0].unique())
    if not items or not all(isinstance(t, Tensor) for t in items):
        raise _Unsupported("stack of values that are not activations")
    shape = _known_shape(w, items[0])
    d = int(w.const(ins[1])) % (len(shape) + 1)
    new = list(shape[:d]) + [1] + list(shape[d:])
    name = w.name_for(node, "")
    parts = []
    for k, t in enumerate(items):
        part = Tensor("%s/unsqueeze%d" % (name, k), None, t.dtype, t.qparams.copy() if t.qparams is not None else None)
        w.graph.ops.append(Op("reshape", [t], [part], {"shape": new}, name=part.name))
        parts.append(part)
    q = items[0].qparams.copy() if items[0].qparams is not None else None
    w.emit("cat", node, parts, {"dim": d}, qparams=q, dtype=items[0].dtype)


@reader("quantized::hardswish")
def _hardswish(w, node):
    x, s, z = _inputs(node)
    w.emit("hardswish", node, [w.tensor(x, node)], qparams=_qp(w.const(s), w.const(z)))


@reader("quantized::sigmoid")
def _qsigmoid(w, node):
    x, s, z = _inputs(node)
    w.emit("sigmoid", node, [w.tensor(x, node)], qparams=_qp(w.const(s), w.const(z)))


@reader("aten::sigmoid", "aten::sigmoid_")
def _sigmoid(w, node):
    # quantized sigmoid in PyTorch has fixed output qparams: 1/256, zero point 0 (quint8); on a
    # float input (an FX float island, float preprocessing) it is float
    x = w.tensor(node.input(), node)
    w.emit("sigmoid", node, [x], qparams=_qp(1.0 / 256.0, 0) if x.qparams is not None else None)


@reader("aten::relu", "aten::relu_", "quantized::relu")
def _relu(w, node):
    w.emit("hardtanh", node, [w.tensor(_inputs(node)[0], node)], {"min": 0.0, "max": float("inf")})


@reader("quantized::relu6", "aten::relu6", "aten::relu6_")
def _relu6(w, node):
    w.emit("hardtanh", node, [w.tensor(_inputs(node)[0], node)], {"min": 0.0, "max": 6.0})


@reader("aten::hardtanh", "aten::hardtanh_", "quantized::hardtanh")
def _hardtanh(w, node):
    ins = _inputs(node)
    w.emit("hardtanh", node, [w.tensor(ins[0], node)],
           {"min": float(w.const(ins[1])), "max": float(w.const(ins[2]))})


@reader("aten::max_pool2d")
def _max_pool2d(w, node):
    x, k, s, p, d, ceil = _inputs(node)
    k = list(w.const(k))
    s = list(w.const(s)) or k
    w.emit("max_pool2d", node, [w.tensor(x, node)],
           {"kernel": _pair(k), "stride": _pair(s), "padding": _pair(w.const(p)),
            "dilation": _pair(w.const(d)), "ceil_mode": bool(w.const(ceil))})


@reader("aten::avg_pool2d")
def _avg_pool2d(w, node):
    x, k, s, p, ceil, cip, div = _inputs(node)
    k = list(w.const(k))
    s = list(w.const(s)) or k
    w.emit("avg_pool2d", node, [w.tensor(x, node)],
           {"kernel": _pair(k), "stride": _pair(s), "padding": _pair(w.const(p)),
            "ceil_mode": bool(w.const(ceil)), "count_include_pad": bool(w.const(cip)),
            "divisor_override": w.const(div)})


@reader("aten::adaptive_avg_pool2d", "quantized::adaptive_avg_pool2d")
def _adaptive_avg_pool2d(w, node):
    x, size = _inputs(node)[:2]
    w.emit("adaptive_avg_pool2d", node, [w.tensor(x, node)], {"output_size": _pair(w.const(size))})


@reader("aten::mean")
def _mean(w, node):
    ins = _inputs(node)
    x = w.tensor(ins[0], node)
    dims = w.const(ins[1]) if len(ins) > 1 else None
    if not isinstance(dims, (list, tuple)):   # mean over every dim
        if x.shape is None:
            w.services.infer_shapes(w.graph)
        if x.shape is None:
            raise _Unsupported("mean over all dims of a tensor whose rank is unknown")
        dims = list(range(len(x.shape)))
    keep = bool(w.const(ins[2])) if len(ins) > 2 and isinstance(w.const(ins[2]), bool) else False
    w.emit("mean", node, [x], {"dims": list(dims), "keepdim": keep})


@reader("aten::flatten")
def _flatten(w, node):
    x, start, end = _inputs(node)
    w.emit("flatten", node, [w.tensor(x, node)], {"start": int(w.const(start)), "end": int(w.const(end))})


@reader("aten::reshape", "aten::view")
def _reshape(w, node):
    x, shape = _inputs(node)
    sh = w.const(shape)
    if sh is None or any(not isinstance(v, int) for v in sh):
        raise _Unsupported("target shape is not constant")
    w.emit("reshape", node, [w.tensor(x, node)], {"shape": [int(v) for v in sh]})


@reader("aten::unflatten")
def _unflatten(w, node):
    """x.unflatten(dim, sizes): a reshape of the (known) input shape."""
    x, dim, sizes = _inputs(node)
    xt = w.tensor(x, node)
    shape = _known_shape(w, xt)
    d, sz = w.const(dim), w.const(sizes)
    if not isinstance(d, int) or sz is None or any(not isinstance(v, int) for v in sz):
        raise _Unsupported("dim or sizes not constant")
    d %= len(shape)
    w.emit("reshape", node, [xt], {"shape": list(shape[:d]) + [int(v) for v in sz] + list(shape[d + 1:])})


@reader("aten::contiguous", "aten::dropout", "aten::dropout_", "aten::feature_dropout", "aten::alpha_dropout",
        "aten::detach", "aten::clone")
def _identity(w, node):
    w.values[node.output().unique()] = w.tensor(_inputs(node)[0], node)


@reader("quantized::batch_norm2d", "quantized::batch_norm2d_relu")
def _batch_norm2d(w, node):
    x, weight, bias, mean, var, eps, s, z = _inputs(node)
    name = w.name_for(node)
    xt = w.tensor(x, node)

    def vec(v, what, default):
        t = w.const(v)
        if t is None:
            if default is None:
                raise _Unsupported("batch_norm2d %s is not a constant" % what)
            return None
        arr = t.detach().float().numpy().astype(np.float32).copy()
        return Tensor("%s.%s" % (name, what), arr.shape, "float32", None, arr)

    consts = [vec(weight, "weight", 1), vec(bias, "bias", 1), vec(mean, "running_mean", None),
              vec(var, "running_var", None)]
    c = consts[2].shape[0]
    if consts[0] is None:
        consts[0] = Tensor(name + ".weight", (c,), "float32", None, np.ones(c, np.float32))
    if consts[1] is None:
        consts[1] = Tensor(name + ".bias", (c,), "float32", None, np.zeros(c, np.float32))
    w.emit("batch_norm2d", node, [xt] + consts,
           {"eps": float(w.const(eps)), "act": "relu" if node.kind().endswith("_relu") else None},
           qparams=_qp(w.const(s), w.const(z)))


@reader("quantized::conv_transpose2d")
def _conv_transpose2d(w, node):
    x, _, s, z = _inputs(node)[:4]
    pp, qw, b = _packed(w, node, "conv_transpose2d_unpack")
    name = w.name_for(node)
    attrs = {"stride": list(pp.stride()), "padding": list(pp.padding()), "dilation": list(pp.dilation()),
             "output_padding": list(pp.output_padding()), "groups": int(pp.groups()), "act": None}
    w.emit("conv_transpose2d", node,
           [w.tensor(x, node), _weight_tensor(qw, name), _bias_tensor(b, name)],
           attrs, qparams=_qp(w.const(s), w.const(z)))


@reader("quantized::conv1d", "quantized::conv1d_relu")
def _conv1d(w, node):
    """PyTorch packs a conv1d as a conv2d over a map of height 1: the weight unpacks as
    [O, I/g, 1, k] and stride/padding/dilation come as [1, s], [0, p], [1, d]."""
    x, _, s, z = _inputs(node)[:4]
    pp, qw, b = _packed(w, node, "conv2d_unpack")
    if qw.dim() != 4 or qw.shape[2] != 1:
        raise _Unsupported("conv1d weight of shape %s" % list(qw.shape))
    name = w.name_for(node)
    attrs = {"stride": list(pp.stride()), "padding": list(pp.padding()), "dilation": list(pp.dilation()),
             "groups": int(pp.groups()), "act": "relu" if node.kind().endswith("_relu") else None}
    w.emit("conv1d", node, [w.tensor(x, node), _weight_tensor(qw, name), _bias_tensor(b, name)],
           attrs, qparams=_qp(w.const(s), w.const(z)))


@reader("aten::embedding")
def _embedding(w, node):
    """Rows of a constant float table picked by integer ids. TorchScript keeps no input dtypes:
    a model input read as ids is an int64 input (what PyTorch's ids are)."""
    ins = _inputs(node)
    table = w.const(ins[0])
    if not (hasattr(table, "dim") and table.dim() == 2 and table.is_floating_point()):
        raise _Unsupported("the table is not a float 2-D parameter")
    ids = w.tensor(ins[1], node)
    if not any(ids is t for t in w.graph.inputs) or ids.dtype not in ("float32", "int64"):
        raise _Unsupported("the ids are not a model input")
    if any(ids in op.inputs for op in w.graph.ops if op.kind != "embedding"):
        raise _Unsupported("the ids input '%s' is also read as a float tensor" % ids.name)
    ids.dtype = "int64"
    arr = table.detach().float().numpy().astype(np.float32).copy()
    name = w.name_for(node)
    w.emit("embedding", node, [ids, Tensor(name + ".weight", arr.shape, "float32", None, arr)],
           qparams=None, dtype="float32")
