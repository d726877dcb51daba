"""TorchScript readers: activations with fixed or literal qparams, layout (permute, squeeze,
split, slice), resize, pad, and the arithmetic on sizes and constants that traced and scripted
graphs compute (one ``@reader`` per PyTorch op name)."""
import numpy as np

from ..ir import Op, Tensor
from .ts_walk import _Unsupported, _inputs, _known_shape, _number, _qp, reader

def _fixed_qp(t, uint8_qp):
    """PyTorch's fixed output qparams of sigmoid/hardsigmoid/tanh: given for quint8; a qint8 input
    gets the same grid moved down by 128 (dtype_policy moves it back); a float input (an FX float
    island, float preprocessing) none: the op is float."""
    if t.qparams is None:
        return None
    s, z = uint8_qp
    return _qp(s, z - 128 if t.dtype == "int8" else z)


@reader("aten::hardsigmoid", "aten::hardsigmoid_")
def _hardsigmoid(w, node):
    x = w.tensor(_inputs(node)[0], node)
    w.emit("hardsigmoid", node, [x], qparams=_fixed_qp(x, (1.0 / 256.0, 0)))


@reader("aten::tanh", "aten::tanh_")
def _tanh(w, node):
    x = w.tensor(_inputs(node)[0], node)
    w.emit("tanh", node, [x], qparams=_fixed_qp(x, (2.0 / 256.0, 128)))


@reader("quantized::leaky_relu")
def _qleaky_relu(w, node):
    x, slope, _inplace, s, z = _inputs(node)
    w.emit("leaky_relu", node, [w.tensor(x, node)], {"negative_slope": float(w.const(slope))},
           qparams=_qp(w.const(s), w.const(z)))


@reader("aten::leaky_relu", "aten::leaky_relu_")
def _leaky_relu(w, node):
    ins = _inputs(node)
    slope = float(w.const(ins[1])) if len(ins) > 1 else 0.01
    w.emit("leaky_relu", node, [w.tensor(ins[0], node)], {"negative_slope": slope})


@reader("quantized::elu")
def _qelu(w, node):
    x, s, z, alpha, scale, in_scale = _inputs(node)
    w.emit("elu", node, [w.tensor(x, node)],
           {"alpha": float(w.const(alpha)), "scale": float(w.const(scale)), "input_scale": float(w.const(in_scale))},
           qparams=_qp(w.const(s), w.const(z)))


@reader("quantized::softmax")
def _qsoftmax(w, node):
    x, dim, s, z = _inputs(node)
    w.emit("softmax", node, [w.tensor(x, node)], {"dim": int(w.const(dim))}, qparams=_qp(w.const(s), w.const(z)))


@reader("aten::clamp", "aten::clamp_", "aten::clamp_min", "aten::clamp_min_", "aten::clamp_max", "aten::clamp_max_")
def _clamp(w, node):
    """Quantized clamp keeps the input's grid: a hardtanh with open ends where a bound is None."""
    ins = _inputs(node)
    kind = node.kind().split("::")[1].rstrip("_")
    lo = hi = None
    if kind == "clamp":
        lo, hi = w.const(ins[1]), w.const(ins[2])
    elif kind == "clamp_min":
        lo = w.const(ins[1])
    else:
        hi = w.const(ins[1])
    for v in (lo, hi):
        if v is not None and not isinstance(v, (int, float)):
            raise _Unsupported("clamp bounds that are tensors")
    w.emit("hardtanh", node, [w.tensor(ins[0], node)],
           {"min": float("-inf") if lo is None else float(lo), "max": float("inf") if hi is None else float(hi)})


@reader("aten::upsample_nearest2d", "aten::upsample_bilinear2d", "aten::_upsample_nearest_exact2d")
def _upsample(w, node):
    """F.interpolate on a quantized tensor (the output keeps the input's grid).

    ``size`` is what PyTorch computes (floor(in * scale) when only scale factors are given);
    ``scales`` keeps the scale factors because PyTorch then maps output to input pixels with
    1/scale rather than in/out (ops/resize.py checks that both agree)."""
    ins = _inputs(node)
    x = w.tensor(ins[0], node)
    kind = node.kind()
    mode = "bilinear" if "bilinear" in kind else ("nearest_exact" if "exact" in kind else "nearest")
    schema = str(node.schema())
    align = False
    rest = ins[1:]
    if mode == "bilinear":
        align = bool(w.const(ins[2]))
        rest = [ins[1]] + ins[3:]
    size = w.const(rest[0])
    if ".vec" in schema or "float[]? scale_factors" in schema:
        scales = w.const(rest[1]) if len(rest) > 1 else None
    else:   # (output_size, scales_h, scales_w)
        sh = w.const(rest[1]) if len(rest) > 1 else None
        sw = w.const(rest[2]) if len(rest) > 2 else None
        scales = None if sh is None and sw is None else [sh, sw]
    if size is None and scales is None:
        raise _Unsupported("interpolate without a constant size or scale factor")
    if size is not None:
        size = [int(v) for v in size]
    if scales is not None:
        scales = [None if v is None else float(v) for v in scales]
    w.emit("upsample", node, [x], {"mode": mode, "size": size, "scales": scales, "align_corners": align})


@reader("aten::pad", "aten::constant_pad_nd")
def _pad(w, node):
    ins = _inputs(node)
    pads = [int(v) for v in w.const(ins[1])]
    if node.kind() == "aten::pad":
        mode = w.const(ins[2])
        if mode != "constant":
            raise _Unsupported("%s padding (only constant padding has a quantized circle form here)" % mode)
        value = w.const(ins[3]) if len(ins) > 3 else None
    else:
        value = w.const(ins[2])
    w.emit("constant_pad", node, [w.tensor(ins[0], node)],
           {"pad": pads, "value": 0.0 if value is None else float(value)})


@reader("aten::permute")
def _permute(w, node):
    x, dims = _inputs(node)
    w.emit("permute", node, [w.tensor(x, node)], {"dims": [int(d) for d in w.const(dims)]})


@reader("aten::transpose", "aten::transpose_", "aten::swapaxes", "aten::swapdims")
def _transpose(w, node):
    x, d0, d1 = _inputs(node)
    xt = w.tensor(x, node)
    rank = len(_known_shape(w, xt))
    dims = list(range(rank))
    a, b = int(w.const(d0)) % rank, int(w.const(d1)) % rank
    dims[a], dims[b] = dims[b], dims[a]
    w.emit("permute", node, [xt], {"dims": dims})


@reader("aten::squeeze", "aten::squeeze_", "aten::unsqueeze", "aten::unsqueeze_")
def _squeeze(w, node):
    """squeeze/unsqueeze move no element: a reshape to the shape PyTorch computes."""
    ins = _inputs(node)
    xt = w.tensor(ins[0], node)
    shape = _known_shape(w, xt)
    if "unsqueeze" in node.kind():
        d = int(w.const(ins[1]))
        d = d % (len(shape) + 1)
        new = shape[:d] + [1] + shape[d:]
    else:
        dims = w.const(ins[1]) if len(ins) > 1 else None
        if dims is None:
            dims = [i for i, s in enumerate(shape) if s == 1]
        elif isinstance(dims, int):
            dims = [dims]
        dims = set(int(d) % len(shape) for d in dims)
        new = [s for i, s in enumerate(shape) if not (i in dims and s == 1)]
    w.emit("reshape", node, [xt], {"shape": new})


@reader("aten::chunk", "aten::unsafe_chunk", "aten::split", "aten::unsafe_split", "aten::split_with_sizes",
        "aten::unsafe_split_with_sizes")
def _split(w, node):
    """chunk/split: one ``split`` op with one output per piece; the pieces are views, so they keep
    the input's qparams."""
    x, arg, dim = _inputs(node)[:3]
    xt = w.tensor(x, node)
    shape = _known_shape(w, xt)
    d = int(w.const(dim)) % len(shape)
    n = shape[d]
    a = w.const(arg)
    if "chunk" in node.kind():
        step = -(-n // int(a))
        sizes = [min(step, n - i) for i in range(0, n, step)]
    elif isinstance(a, int):
        sizes = [min(a, n - i) for i in range(0, n, a)]
    else:
        sizes = [int(v) for v in a]
    if sum(sizes) != n or any(s <= 0 for s in sizes):
        raise _Unsupported("split sizes %s do not cover %d elements" % (sizes, n))
    name = w.name_for(node)
    outs = [Tensor("%s:%d" % (name, i), None, xt.dtype, xt.qparams.copy() if xt.qparams is not None else None)
            for i in range(len(sizes))]
    w.graph.ops.append(Op("split", [xt], outs, {"dim": d, "sizes": sizes}, name=name))
    w.values[node.output().unique()] = outs


_COMPARE = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
            "gt": lambda a, b: a > b, "le": lambda a, b: a <= b, "ge": lambda a, b: a >= b}


@reader("aten::eq", "aten::ne", "aten::lt", "aten::gt", "aten::le", "aten::ge")
def _compare(w, node):
    """Comparisons of sizes and constants (scripted modules check the input rank)."""
    ins = _inputs(node)
    a, b = w.const(ins[0]), w.const(ins[1])
    if isinstance(a, Tensor) or isinstance(b, Tensor) or a is None or b is None:
        raise _Unsupported("comparison of tensors (only of sizes and constants)")
    w.values[node.output().unique()] = bool(_COMPARE[node.kind().split("::")[1]](a, b))


@reader("aten::len", "aten::dim")
def _len(w, node):
    v = w.const(node.input()) if node.kind() == "aten::len" else None
    if node.kind() == "aten::dim":
        t = w.tensor(node.input(), node)
        if t.shape is None:
            w.services.infer_shapes(w.graph)
        v = list(t.shape) if t.shape is not None else None
    if not isinstance(v, (list, tuple, str)):
        raise _Unsupported("length of a value that is not known before running")
    w.values[node.output().unique()] = len(v)


@reader("aten::__not__")
def _not(w, node):
    v = w.const(node.input())
    if not isinstance(v, bool):
        raise _Unsupported("'not' of a value that is not known before running")
    w.values[node.output().unique()] = not v


@reader("aten::floor_divide", "aten::floordiv", "aten::div", "aten::mul", "aten::add", "aten::sub")
def _int_arith(w, node):
    """Arithmetic on sizes (``c // groups`` in a channel shuffle): traced graphs compute shapes
    from ``aten::size``; with known input shapes these fold to numbers."""
    ins = _inputs(node)
    if any(isinstance(w.values.get(v.unique()), Tensor) for v in ins[:2]):
        return _float_arith(w, node)
    a, b = _number(w.const(ins[0])), _number(w.const(ins[1]))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
        raise _Unsupported("arithmetic on tensors (only on sizes)")
    kind = node.kind().split("::")[1]
    if kind in ("floor_divide", "floordiv"):
        r = a // b
    elif kind == "div":
        mode = w.const(ins[2]) if len(ins) > 2 else None
        r = a / b if mode is None else (a // b if mode == "floor" else int(a / b))
    elif kind == "mul":
        r = a * b
    else:
        alpha = w.const(ins[2]) if len(ins) > 2 else 1
        r = a + alpha * b if kind == "add" else a - alpha * b
    w.values[node.output().unique()] = r


@reader("quantized::linear_dynamic", "quantized::linear_relu_dynamic", "quantized::linear_dynamic_fp16",
        "aten::quantized_lstm", "aten::quantized_gru")
def _dynamic(w, node):
    raise _Unsupported("dynamic quantization: activations are quantized at run time and carry no "
                       "qparams, so there is no integer model to write; quantize statically "
                       "(eager/FX PTQ or QAT, or PT2E)")


def _const_array(v):
    """A Python number or a constant (frozen) float tensor as a float32 array, else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return np.array(v, np.float32)
    if hasattr(v, "is_quantized") and not v.is_quantized and hasattr(v, "detach"):
        return v.detach().cpu().numpy().astype(np.float32)
    return None


def _float_arith(w, node):
    """``x * c``, ``x + c``, ``(x - m) / s`` ... on a FLOAT activation and a constant (a number or
    a frozen tensor): the float preprocessing before the QuantStub (torchvision's transform_input
    of GoogLeNet / Inception-v3, user normalisation). Runs in float in circle as in PyTorch."""
    ins = _inputs(node)
    kind = node.kind().split("::")[1]
    if kind not in ("add", "sub", "mul", "div"):
        raise _Unsupported("%s on tensors" % kind)
    a, b = w.values.get(ins[0].unique()), w.values.get(ins[1].unique())
    reverse = not isinstance(a, Tensor)
    x, other = (b, ins[0]) if reverse else (a, ins[1])
    if isinstance(w.values.get(other.unique()), Tensor):
        y = w.values[other.unique()]
        alpha = w.const(ins[2]) if len(ins) > 2 else None
        if kind not in ("add", "mul") or x.qparams is not None or y.qparams is not None or alpha not in (None, 1):
            raise _Unsupported("%s of two float tensors" % kind)
        # a float residual or product (an FX model left float there): float ADD / MUL
        w.emit(kind, node, [a, b], {"act": None}, dtype="float32")
        return
    if x.qparams is not None:
        raise _Unsupported("%s on a quantized tensor (use FloatFunctional / quantized ops)" % kind)
    c = _const_array(w.const(other))
    if c is None:
        raise _Unsupported("%s with an operand that is not a constant" % kind)
    if kind in ("add", "sub") and len(ins) > 2:
        alpha = w.const(ins[2])
        if alpha not in (None, 1):
            c = c * np.float32(alpha)   # x + alpha * c (PyTorch scales the other operand)
            if reverse:
                raise _Unsupported("%s with alpha on a reversed operand" % kind)
    if kind == "div" and len(ins) > 2 and w.const(ins[2]) is not None:
        raise _Unsupported("div with rounding_mode")
    ct = Tensor(w.name_for(node, "/const"), c.shape, "float32", None, c)
    w.emit("binary_const", node, [x, ct], {"op": kind, "reverse": reverse}, dtype="float32")


@reader("aten::select")
def _select(w, node):
    """``x[:, i]`` on a float tensor (transform_input): the piece i of a split, without that axis."""
    x, dim, index = _inputs(node)
    xt = w.tensor(x, node)
    shape = _known_shape(w, xt)
    d = int(w.const(dim)) % len(shape)
    n = shape[d]
    i = int(w.const(index)) % n
    piece = _slice_piece(w, node, xt, d, i, i + 1, "/slice")
    new = shape[:d] + shape[d + 1:]
    w.emit("reshape", node, [piece], {"shape": new})


@reader("aten::slice")
def _slice(w, node):
    """``x[a:b]`` with step 1: nothing for the whole axis (``x[:, 0]`` traces a full slice of dim
    0 first), else the piece of a split."""
    ins = _inputs(node)
    x, dim, start, end = ins[:4]
    step = w.const(ins[4]) if len(ins) > 4 else 1
    lst = w.const(x)
    if isinstance(lst, (list, tuple)):   # a list of sizes (``x.shape[-2:]`` in a scripted model)
        w.values[node.output().unique()] = list(lst)[slice(w.const(start), w.const(end), step)]
        return
    xt = w.tensor(x, node)
    shape = _known_shape(w, xt)
    d = int(w.const(dim)) % len(shape)
    n = shape[d]
    a, b = w.const(start), w.const(end)
    a = 0 if a is None else int(a)
    b = n if b is None else int(b)
    a, b = (a + n if a < 0 else a), (b + n if b < 0 else b)
    a, b = max(0, min(a, n)), max(0, min(b, n))
    if b <= a:
        raise _Unsupported("slice with an empty range")
    if step not in (None, 1):
        # every step-th element: a gather of those indices (the output keeps the grid)
        w.emit("gather", node, [xt], {"dim": d, "index": list(range(a, b, int(step)))})
        return
    if a == 0 and b == n:
        w.values[node.output().unique()] = xt
        return
    out = _slice_piece(w, node, xt, d, a, b, "")
    w.values[node.output().unique()] = out
    w.origin[id(out)] = node.output()


def _slice_piece(w, node, xt, d, a, b, suffix):
    n = _known_shape(w, xt)[d]
    sizes = [v for v in (a, b - a, n - b) if v > 0]
    which = 1 if a > 0 else 0
    name = w.name_for(node, suffix)
    outs = [Tensor("%s:%d" % (name, k), None, xt.dtype, xt.qparams.copy() if xt.qparams is not None else None)
            for k in range(len(sizes))]
    w.graph.ops.append(Op("split", [xt], outs, {"dim": d, "sizes": sizes}, name=name))
    return outs[which]
