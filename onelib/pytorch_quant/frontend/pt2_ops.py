""".pt2 readers: quantize/dequantize (per tensor and per channel), conv, linear, the clamps,
arithmetic, cat and pooling (one ``@reader`` per PyTorch op target)."""
import numpy as np

from ..errors import ConversionError
from ..ir import QUANT_INT_DTYPES, Op, QParams, Tensor
from .pt2_graph import _Dtype, _op_name
from .pt2_walk import INDEX_DTYPES, QUANTIZE_PER_TENSOR, _QInts, _QSpec, _Unsupported, _sizes, reader

QD = "quantized_decomposed."


@reader(*QUANTIZE_PER_TENSOR)
def _quantize_per_tensor(w, node):
    spec = w.qspec(node)
    v = w.value(node.args.get("input"))
    if isinstance(v, Tensor) and v.is_const:
        w.values[node.output] = _QInts(_quantize_array(v.data, spec, None), spec)
        return
    if not isinstance(v, Tensor):
        raise _Unsupported("input is not a tensor")
    # where PyTorch quantizes: passes/qdq.py folds it into the op before it when it can
    q = Tensor(v.name + "/quantize", None, spec.dtype, spec.qparams.copy())
    w.graph.ops.append(Op("quantize", [v], [q], {"quant_min": spec.qmin, "quant_max": spec.qmax}, q.name))
    w.values[node.output] = q
    w.node_of[id(q)] = node.output   # these integers are this node's output


@reader(QD + "quantize_per_channel.default")
def _quantize_per_channel(w, node):
    v = w.value(node.args.get("input"))
    spec = _channel_spec(w, node)
    if not (isinstance(v, Tensor) and v.is_const):
        raise _Unsupported("per-channel quantization of an activation")
    w.values[node.output] = _QInts(_quantize_array(v.data, spec, spec.qparams.axis), spec)


def _quantize_array(data, spec, axis):
    """quantized_decomposed.quantize_per_* evaluated the way torch does: x * (1 / scale) in
    float32, rounded half to even, plus the zero point, clamped to quant_min..quant_max."""
    q = spec.qparams
    x = np.asarray(data, dtype=np.float32)
    if axis is None:
        inv = np.float32(1.0 / float(q.scale[0]))
        zp = np.float32(q.zero_point[0])
    else:
        shape = [1] * x.ndim
        shape[axis % x.ndim] = -1
        inv = (np.float32(1.0) / q.scale.astype(np.float32)).reshape(shape)
        zp = q.zero_point.astype(np.float32).reshape(shape)
    ints = np.clip(np.round(x * inv) + zp, spec.qmin, spec.qmax)
    return ints.astype(spec.dtype)


def _channel_spec(w, node):
    dt = node.args.get("dtype")
    dtype = dt.name if isinstance(dt, _Dtype) else None
    if dtype not in ("uint8", "int8", "int16", "int32"):
        raise _Unsupported("per-channel integers of type %s" % (dtype or repr(dt)))
    scales = w.value(node.args.get("scales"))
    zps = w.value(node.args.get("zero_points"))
    if not (isinstance(scales, Tensor) and scales.is_const):
        raise _Unsupported("per-channel scales are computed at run time")
    zp = zps.data if isinstance(zps, Tensor) and zps.is_const else np.zeros(scales.data.size, np.int64)
    axis = int(w.arg(node, "axis", 0))
    q = QParams(scales.data.astype(np.float32).reshape(-1), zp.astype(np.int64).reshape(-1), axis)
    return _QSpec(dtype, q, w.arg(node, "quant_min", 0), w.arg(node, "quant_max", 0))


def _dequantized_const(w, node, v, spec):
    """dequantize of constant integers -> the quantized constant Tensor (weight or bias)."""
    if isinstance(v, _QInts):
        data = v.data
    elif isinstance(v, Tensor) and v.is_const and v.qparams is None:
        data = v.data
    else:
        raise _Unsupported("dequantizes a constant that is not an integer tensor")
    if str(data.dtype) != spec.dtype:
        raise _Unsupported("dequantize of %s integers declared as %s" % (data.dtype, spec.dtype))
    q = spec.qparams
    if not q.per_tensor:
        axis = q.axis % data.ndim
        if data.shape[axis] != q.scale.size:
            raise _Unsupported("%d scales for %d channels on axis %d" % (q.scale.size, data.shape[axis], axis))
        q = q.copy(axis=axis)
    return Tensor(node.output, data.shape, spec.dtype, q, np.ascontiguousarray(data))


@reader(QD + "dequantize_per_tensor.default", QD + "dequantize_per_tensor.tensor",
        QD + "dequantize_per_tensor.tensor2")
def _dequantize_per_tensor(w, node):
    v = w.value(node.args.get("input"))
    if isinstance(v, _QInts) or (isinstance(v, Tensor) and v.is_const):
        # a per-tensor weight, or an int32 bias from a custom quantizer
        w.values[node.output] = _dequantized_const(w, node, v, w.qspec(node, QUANT_INT_DTYPES + ("int32",)))
        return
    if not isinstance(v, Tensor):
        raise _Unsupported("input is not a tensor")
    spec = w.qspec(node)
    if not spec.matches(v):
        # PT2E pairs each dequantize with the quantize before it; other integers have no meaning
        raise ConversionError("%s: %s reads '%s' as %s %r, but it holds %s %r"
                              % (w.source, node.name, v.name, spec.dtype, spec.qparams, v.dtype, v.qparams))
    w.values[node.output] = v   # the same integers; readers decide float or quantized
    w.dequantized.append((v, node.output))


@reader(QD + "dequantize_per_channel.default")
def _dequantize_per_channel(w, node):
    v = w.value(node.args.get("input"))
    if not isinstance(v, (Tensor, _QInts)) or (isinstance(v, Tensor) and not v.is_const):
        raise _Unsupported("per-channel dequantize of an activation")
    w.values[node.output] = _dequantized_const(w, node, v, _channel_spec(w, node))


def _pair(v, what="value"):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return [int(v), int(v)]
    v = list(v)
    if any(not isinstance(x, int) for x in v):
        raise _Unsupported("%s %r is not a constant" % (what, v))
    return v * 2 if len(v) == 1 else v


def _weight_and_bias(w, node, name, wkey="weight", bkey="bias"):
    wt = w.const(node, wkey, name + ".weight")
    if wt is None:
        raise _Unsupported("no weight")
    b = w.const(node, bkey, name + ".bias")
    if b is not None and b.qparams is None:
        b = Tensor(b.name, b.shape, "float32", None, b.data.astype(np.float32))
    return wt, b


@reader("aten.conv2d.default")
def _conv2d(w, node):
    _emit_conv(w, node, w.arg(node, "stride", 1), w.arg(node, "padding", 0),
               w.arg(node, "dilation", 1), w.arg(node, "groups", 1))


@reader("aten.convolution.default")
def _convolution(w, node):
    # what run_decompositions() makes of conv2d
    if w.arg(node, "transposed", False):
        raise _Unsupported("transposed convolution")
    _emit_conv(w, node, w.arg(node, "stride"), w.arg(node, "padding"), w.arg(node, "dilation"),
               w.arg(node, "groups", 1))


def _emit_conv(w, node, stride, padding, dilation, groups):
    x = w.act(node, "input")
    name = _op_name(node)
    wt, b = _weight_and_bias(w, node, name)
    if wt.rank != 4:
        raise _Unsupported("%d-D weight (only conv2d converts)" % wt.rank)
    if isinstance(padding, str):
        raise _Unsupported("padding='%s' (give the padding as numbers)" % padding)
    attrs = {"stride": _pair(stride, "stride"), "padding": _pair(padding, "padding"),
             "dilation": _pair(dilation, "dilation"), "groups": int(groups), "act": None}
    w.emit("conv2d", node, [x], [wt, b], attrs, quantizable=wt.qparams is not None)


@reader("aten.conv1d.default")
def _conv1d(w, node):
    """conv1d as PyTorch packs it: a conv2d over a map of height 1 (weight [O, I/g, 1, k])."""
    x = w.act(node, "input")
    name = _op_name(node)
    wt, b = _weight_and_bias(w, node, name)
    if wt.rank != 3:
        raise _Unsupported("%d-D weight for conv1d" % wt.rank)
    padding = w.arg(node, "padding", 0)
    if isinstance(padding, str):
        raise _Unsupported("padding='%s' (give the padding as numbers)" % padding)
    one = [int(_pair(v, k)[0]) for v, k in ((w.arg(node, "stride", 1), "stride"), (padding, "padding"),
                                              (w.arg(node, "dilation", 1), "dilation"))]
    wt4 = Tensor(wt.name, (wt.shape[0], wt.shape[1], 1, wt.shape[2]), wt.dtype, wt.qparams,
                 wt.data.reshape(wt.shape[0], wt.shape[1], 1, wt.shape[2]))
    attrs = {"stride": [1, one[0]], "padding": [0, one[1]], "dilation": [1, one[2]],
             "groups": int(w.arg(node, "groups", 1)), "act": None}
    w.emit("conv1d", node, [x], [wt4, b], attrs, quantizable=wt.qparams is not None)


@reader("aten.linear.default")
def _linear(w, node):
    x = w.act(node, "input")
    name = _op_name(node)
    wt, b = _weight_and_bias(w, node, name)
    if wt.rank != 2:
        raise _Unsupported("%d-D weight" % wt.rank)
    w.emit("linear", node, [x], [wt, b], {"act": None}, quantizable=wt.qparams is not None)


@reader("aten.relu.default", "aten.relu_.default")
def _relu(w, node):
    w.emit("hardtanh", node, [w.act(node)], attrs={"min": 0.0, "max": float("inf")})


@reader("aten.relu6.default")
def _relu6(w, node):
    w.emit("hardtanh", node, [w.act(node)], attrs={"min": 0.0, "max": 6.0})


@reader("aten.hardtanh.default", "aten.hardtanh_.default")
def _hardtanh(w, node):
    w.emit("hardtanh", node, [w.act(node)],
           attrs={"min": _number(w.arg(node, "min_val", -1.0)), "max": _number(w.arg(node, "max_val", 1.0))})


@reader("aten.clamp.default", "aten.clamp_.default")
def _clamp(w, node):
    lo, hi = w.arg(node, "min"), w.arg(node, "max")
    w.emit("hardtanh", node, [w.act(node)],
           attrs={"min": float("-inf") if lo is None else _number(lo),
                  "max": float("inf") if hi is None else _number(hi)})


def _number(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Unsupported("bound %r is not a constant number" % (v,))
    return float(v)


ARITH = ("add", "sub", "mul", "div")


@reader(*["aten.%s.%s" % (k, v) for k in ARITH + tuple(a + "_" for a in ARITH) for v in ("Tensor", "Scalar")]
        + ["aten.rsub.Tensor", "aten.rsub.Scalar"])
def _binary(w, node):
    """add/mul of two computed tensors: the ``add``/``mul`` source op (quantized when PT2E
    quantized it). Any of add/sub/mul/div of a computed tensor and a constant (a number, a
    buffer, a lifted tensor constant, or a constant PT2E quantized and dequantizes, as XNNPACK
    does with the ``* c + d`` of torchvision's transform_input): ``binary_const`` in float, as
    PyTorch computes it (dequantized input, float arithmetic, then the next quantizer)."""
    kind = node.target.split(".")[1].rstrip("_")
    reverse = kind == "rsub"
    kind = "sub" if reverse else kind
    a, b = w.value(node.args.get("self")), w.value(node.args.get("other"))
    alpha = w.arg(node, "alpha", 1)
    if _is_act(a) and _is_act(b):
        if kind not in ("add", "mul"):
            raise _Unsupported("%s of two computed tensors (only add and mul convert)" % kind)
        if alpha != 1:
            raise _Unsupported("alpha=%r" % (alpha,))
        w.emit(kind, node, [w.act(node, "self"), w.act(node, "other")], attrs={"act": None})
        return
    if _is_act(a) == _is_act(b):
        raise _Unsupported("%s of two constants (nothing computed from the inputs)" % kind)
    # torch: add/sub(self, other, alpha) = self +- alpha * other; rsub = other - alpha * self
    const_key = "other" if _is_act(a) else "self"
    x_key = "self" if const_key == "other" else "other"
    reverse = reverse != (const_key == "self")   # True: c <op> x
    c = _const_float(w.value(node.args.get(const_key)))
    if c is None:
        raise _Unsupported("%s with an operand that is not a constant" % kind)
    if alpha != 1:
        scaled = "self" if node.target.startswith("aten.rsub") else "other"
        if scaled != const_key or isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise _Unsupported("alpha=%r on the computed operand" % (alpha,))
        c = (c * np.float32(alpha)).astype(np.float32)
    if c.ndim > len(_sizes(w, node.args.get(x_key), "the input")):
        raise _Unsupported("the constant has more dimensions than the tensor")
    ct = Tensor(_op_name(node) + "/const", c.shape, "float32", None, c)
    w.emit("binary_const", node, [w.act(node, x_key)], [ct], {"op": kind, "reverse": reverse},
           quantizable=False)


def _is_act(v):
    return isinstance(v, Tensor) and not v.is_const


def _const_float(v):
    """A number, or a constant tensor (float, integer, or quantized integers a dequantize reads),
    as the float32 array PyTorch computes with; None for anything else."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return np.array(v, np.float32)
    if isinstance(v, _QInts):
        return None
    if not (isinstance(v, Tensor) and v.is_const):
        return None
    data = np.asarray(v.data)
    if v.qparams is None:
        return data.astype(np.float32)
    q = v.qparams   # dequantize_per_*: (q - zp) * scale in float32
    shape = [1] * data.ndim
    if not q.per_tensor:
        shape[q.axis % data.ndim] = -1
    scale = q.scale.astype(np.float32).reshape(shape if not q.per_tensor else [])
    zp = q.zero_point.astype(np.float32).reshape(shape if not q.per_tensor else [])
    return ((data.astype(np.float32) - zp) * scale).astype(np.float32)


@reader("aten.cat.default")
def _cat(w, node):
    items = w.value(node.args.get("tensors"))
    if not items or not all(isinstance(t, Tensor) for t in items) or all(t.is_const for t in items):
        raise _Unsupported("cat of values that are not tensors, or of constants only")
    attrs = {"dim": int(w.arg(node, "dim", 0))}
    if any(t.is_const for t in items):
        # IR inputs: activations, then constants; ``order`` puts them back in PyTorch's order
        ins = [i for i, t in enumerate(items) if not t.is_const] + [i for i, t in enumerate(items) if t.is_const]
        attrs["order"] = [ins.index(i) for i in range(len(items))]
        w.emit("cat", node, [items[i] for i in ins if not items[i].is_const],
               [items[i] for i in ins if items[i].is_const], attrs)
        return
    w.emit("cat", node, items, attrs=attrs)


def _pool_window(w, node):
    """kernel, stride (defaults to the kernel) and padding, as both pooling ops spell them."""
    k = _pair(w.arg(node, "kernel_size"), "kernel_size")
    s = w.arg(node, "stride", [])
    return {"kernel": k, "stride": _pair(s, "stride") if s else list(k),
            "padding": _pair(w.arg(node, "padding", 0), "padding"),
            "ceil_mode": bool(w.arg(node, "ceil_mode", False))}


@reader("aten.max_pool2d.default")
def _max_pool2d(w, node):
    attrs = dict(_pool_window(w, node), dilation=_pair(w.arg(node, "dilation", 1), "dilation"))
    w.emit("max_pool2d", node, [w.act(node)], attrs=attrs)


@reader("aten.avg_pool2d.default")
def _avg_pool2d(w, node):
    attrs = dict(_pool_window(w, node), count_include_pad=bool(w.arg(node, "count_include_pad", True)),
                 divisor_override=w.arg(node, "divisor_override"))
    w.emit("avg_pool2d", node, [w.act(node)], attrs=attrs)


@reader("aten.adaptive_avg_pool2d.default")
def _adaptive_avg_pool2d(w, node):
    size = w.arg(node, "output_size")
    size = [size, size] if isinstance(size, int) else list(size)
    if len(size) == 1:
        size = size * 2
    w.emit("adaptive_avg_pool2d", node, [w.act(node)], attrs={"output_size": size})


@reader("aten.adaptive_max_pool2d.default")
def _adaptive_max_pool2d(w, node):
    """PyTorch has no quantized adaptive max pooling: the program computes it on dequantized
    values. A maximum is exact on any grid, so it is converted on the input's grid."""
    if len(node.outputs) > 1 and w.users.get(node.outputs[1]):
        raise _Unsupported("adaptive_max_pool2d whose indices are used")
    size = w.arg(node, "output_size")
    size = [size, size] if isinstance(size, int) else list(size)
    if len(size) == 1:
        size = size * 2
    w.emit("adaptive_max_pool2d", node, [w.act(node)], attrs={"output_size": size})


@reader("aten.embedding.default")
def _embedding(w, node):
    """Rows of a constant table picked by integer ids (a model input); constant ids (position ids
    from a buffer) pick the rows here."""
    table = w.value(node.args.get("weight"))
    ids = w.value(node.args.get("indices"))
    if not (isinstance(table, Tensor) and table.is_const and table.dtype == "float32" and table.data.ndim == 2):
        raise _Unsupported("the table is not a float 2-D parameter")
    if isinstance(ids, Tensor) and ids.is_const:
        data = table.data[ids.data.astype(np.int64)]
        w.values[node.output] = Tensor(_op_name(node), data.shape, "float32", None, data)
        return
    if not (isinstance(ids, Tensor) and ids.dtype in INDEX_DTYPES):
        raise _Unsupported("the ids are not an integer model input")
    w.emit("embedding", node, [ids], [table])


@reader("aten.to.dtype", "aten._to_copy.default")
def _to(w, node):
    """``x.to(torch.float32)`` of an integer tensor (a 0/1 mask from an integer model input): a
    cast, exact (integers up to 2**24 are float32 values)."""
    x = w.act(node)
    dt = node.args.get("dtype")
    dtype = dt.name if isinstance(dt, _Dtype) else None
    if x.dtype not in INDEX_DTYPES or dtype != "float32":
        raise _Unsupported("%s to %s (only an integer tensor to float32 converts)" % (x.dtype, dtype or repr(dt)))
    w.emit("cast", node, [x], attrs={"dtype": dtype})
