"""matmul (matmul, bmm, mm of two computed tensors) and scaled_dot_product_attention: BATCH_MATMUL
in float32 between DEQUANTIZE and QUANTIZE (PyTorch's output grid).

Why float: PT2E recipes do not annotate matmul or sdpa (they run float between a dequantize and
a quantize); FX's ``quantized::matmul`` equals quantize(dequantize(a) @ dequantize(b)) bit for
bit (measured). BATCH_MATMUL has no uint8 kernel in onert's CPU backend nor in
luci-interpreter, and luci's quantized-model verifier has no rule for it, so float is the form
that runs everywhere; one rounding onto PyTorch's grid at the end is PyTorch's arithmetic.

Layout: these ops work in PyTorch's element order. A 4-D operand (attention's (B, heads, L, E))
is NHWC inside the circle graph, so it is read through ``ctx.nchw`` (a TRANSPOSE) and the result
goes back through ``ctx.from_nchw``.
"""
import numpy as np

from ..errors import ConversionError
from ..ir import Tensor
from .declare import op

_NO_ACT = {"fusedActivationFunction": 0}
# the additive mask of a masked-out position: the lowest float32, not -inf, so that a row whose
# every position is masked stays finite in circle's SOFTMAX (-inf - -inf is NaN); such a row is
# then zeroed, as PyTorch returns it
MASKED = float(np.finfo(np.float32).min)


def _as_float(ctx, t, name):
    """Circle tensor ``t`` in float32 (a DEQUANTIZE when it is quantized)."""
    if t.qparams is None:
        return t
    f = Tensor(name + "/float", t.shape, "float32")
    ctx.emit("DEQUANTIZE", [t], [f], {}, name + "/dequantize")
    return f


def _operand(ctx, src, name):
    """A source activation in PyTorch order, float32."""
    return _as_float(ctx, ctx.nchw(src), name)


def _finish(ctx, out, y):
    """Define source tensor ``out`` from float ``y`` in PyTorch order: QUANTIZE onto PyTorch's grid
    when the output is quantized, then back to the circle layout."""
    if out.qparams is not None:
        q = Tensor(out.name if len(out.shape) != 4 else out.name + "/pt_order", y.shape, out.dtype,
                   out.qparams.copy())
        ctx.emit("QUANTIZE", [y], [q], {}, out.name + "/quantize")
        y = q
    ctx.from_nchw(out, y)


def _lift(ctx, t, rank, name):
    """Give ``t`` leading 1 dims up to ``rank`` (PyTorch's broadcasting aligns trailing dims)."""
    if len(t.shape) >= rank:
        return t
    return ctx.reshape(t, (1,) * (rank - len(t.shape)) + tuple(t.shape), name)


def matmul_shape(op):
    a, b = list(op.inputs[0].shape), list(op.inputs[1].shape)
    if not a or not b:
        raise ConversionError("matmul %s: 0-d operand" % op.name)
    a2 = [1] + a if len(a) == 1 else a
    b2 = b + [1] if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ConversionError("matmul %s: %s @ %s do not fit" % (op.name, a, b))
    batch = list(np.broadcast_shapes(tuple(a2[:-2]), tuple(b2[:-2])))
    out = batch + [a2[-2], b2[-1]]
    if len(a) == 1:
        out.pop(-2)
    if len(b) == 1:
        out.pop(-1)
    return tuple(out)


def batch_matmul(ctx, a, b, name, adj_b=False, out=None):
    """BATCH_MATMUL of float ``a`` and ``b`` (PyTorch order), batch dims broadcast."""
    rank = max(len(a.shape), len(b.shape))
    a, b = _lift(ctx, a, rank, name + "/a_rank"), _lift(ctx, b, rank, name + "/b_rank")
    batch = tuple(np.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2])))
    shape = batch + (a.shape[-2], b.shape[-2] if adj_b else b.shape[-1])
    out = out or Tensor(name, shape, "float32")
    ctx.emit("BATCH_MATMUL", [a, b], [out], {"adjointLhs": False, "adjointRhs": bool(adj_b),
                                            "asymmetricQuantizeInputs": False}, name)
    return out


@op("matmul", shape=matmul_shape, float_ok=True, reads={
        "torchscript": ("aten::matmul", "aten::bmm", "aten::mm", "quantized::matmul"),
        "pt2": ("aten.matmul.default", "aten.bmm.default", "aten.mm.default")},
    args={"pt2": ("self", "other", "mat2")},
    inputs="a, b (two computed tensors; batch dims broadcast)",
    attrs="quantized::matmul: scale, zero_point (the output grid)",
    circle="float BATCH_MATMUL (RESHAPE for 1-D or lower-rank operands), then QUANTIZE",
    conditions="float between DEQUANTIZE and QUANTIZE (no uint8 BATCH_MATMUL in onert or luci-interpreter; "
               "luci's verifier has no rule for it): listed as float; a constant operand is not converted",
    onert="yes (float)")
def lower_matmul(ctx, op):
    a_src, b_src = op.inputs[0], op.inputs[1]
    a = _operand(ctx, a_src, op.name + "/a")
    b = _operand(ctx, b_src, op.name + "/b")
    out = op.outputs[0]
    if len(a.shape) == 1:
        a = ctx.reshape(a, (1,) + tuple(a.shape), op.name + "/a_row")
    if len(b.shape) == 1:
        b = ctx.reshape(b, tuple(b.shape) + (1,), op.name + "/b_column")
    y = batch_matmul(ctx, a, b, op.name + "/batch_matmul")
    if tuple(y.shape) != tuple(out.shape):
        y = ctx.reshape(y, out.shape, op.name + "/vector")
    _finish(ctx, out, y)


def sdpa_shape(op):
    q, v = op.inputs[0].shape, op.inputs[2].shape
    return tuple(q[:-1]) + (v[-1],)


def _additive_mask(data):
    """A boolean mask (True: attend) or a float one (added) as the float32 array added to the scores."""
    m = np.asarray(data)
    if m.dtype == np.bool_:
        return np.where(m, np.float32(0.0), np.float32(MASKED)).astype(np.float32)
    return m.astype(np.float32)


@op("scaled_dot_product_attention", shape=sdpa_shape, float_ok=True, reads={
        "torchscript": ("aten::scaled_dot_product_attention",),
        "pt2": ("aten.scaled_dot_product_attention.default",)},
    inputs="query, key, value, attn_mask (computed float, or a constant bool/float tensor; optional)",
    attrs="mask (\"none\" | \"input\" | \"const\"), dropout_p (0), is_causal, scale (None: 1/sqrt(E))",
    circle="float MUL(scale) → BATCH_MATMUL(q, k, adjointRhs) → ADD(mask) → SOFTMAX → BATCH_MATMUL(p, v), "
           "then QUANTIZE",
    conditions="float (no uint8 BATCH_MATMUL): listed as float; a masked-out position adds the lowest float32 "
               "(is_causal, bool masks, -inf), rows wholly masked by a constant mask give 0 as in PyTorch; "
               "dropout_p 0; enable_gqa False",
    onert="yes (float)")
def lower_sdpa(ctx, op):
    a = op.attrs
    if a.get("dropout_p", 0.0):
        raise ConversionError("%s: scaled_dot_product_attention with dropout_p=%r (inference has none)"
                              % (op.name, a["dropout_p"]))
    if a.get("enable_gqa"):
        raise ConversionError("%s: scaled_dot_product_attention with enable_gqa=True is not converted" % op.name)
    q_src, k_src, v_src = op.inputs[:3]
    name = op.name
    q = _operand(ctx, q_src, name + "/query")
    k = _operand(ctx, k_src, name + "/key")
    v = _operand(ctx, v_src, name + "/value")
    e = q.shape[-1]
    scale = a.get("scale")
    scale = 1.0 / np.sqrt(float(e)) if scale is None else float(scale)
    qs = Tensor(name + "/query_scaled", q.shape, "float32")
    ctx.emit("MUL", [q, ctx.const(name + "/scale", np.array([scale], np.float32))], [qs], _NO_ACT,
             name + "/query_scaled")
    scores = batch_matmul(ctx, qs, k, name + "/scores", adj_b=True)
    lq, lk = scores.shape[-2], scores.shape[-1]
    additive = None
    if a.get("is_causal"):
        additive = np.where(np.tril(np.ones((lq, lk), np.bool_)), np.float32(0.0),
                            np.float32(MASKED)).astype(np.float32)
    kind = a.get("mask", "none")
    if kind == "const":
        m = _additive_mask(op.inputs[3].data)
        additive = m if additive is None else additive + m
    rank = len(scores.shape)
    dead = None
    if additive is not None:
        additive = np.maximum(additive, np.float32(MASKED))   # -inf (and -inf + x) -> the lowest float32
        additive = additive.reshape((1,) * (rank - additive.ndim) + additive.shape)
        # rows with every position masked: PyTorch returns 0 there (its softmax is "safe")
        dead = np.all(additive <= np.float32(MASKED), axis=-1, keepdims=True)
        scores = _add(ctx, scores, ctx.const(name + "/mask", np.ascontiguousarray(additive)), name + "/masked")
    if kind == "input":
        m_src = op.inputs[3]
        if m_src.dtype == "bool":
            raise ConversionError("%s: a boolean attn_mask computed at run time is not converted" % name)
        m = _lift(ctx, _operand(ctx, m_src, name + "/attn_mask"), len(scores.shape), name + "/attn_mask_rank")
        scores = _add(ctx, scores, m, name + "/masked_input")
    p = Tensor(name + "/weights", scores.shape, "float32")
    ctx.emit("SOFTMAX", [scores], [p], {"beta": 1.0}, name + "/softmax")
    if dead is not None and dead.any():
        keep = ctx.const(name + "/live_rows", np.ascontiguousarray((~dead).astype(np.float32)))
        p2 = Tensor(name + "/weights_live", tuple(np.broadcast_shapes(p.shape, keep.shape)), "float32")
        ctx.emit("MUL", [p, keep], [p2], _NO_ACT, name + "/live_rows")
        p = p2
    y = batch_matmul(ctx, p, v, name + "/attention")
    _finish(ctx, op.outputs[0], y)


def _add(ctx, x, m, name):
    shape = tuple(np.broadcast_shapes(tuple(x.shape), tuple(m.shape)))
    y = Tensor(name, shape, "float32")
    ctx.emit("ADD", [x, m], [y], _NO_ACT, name)
    return y
