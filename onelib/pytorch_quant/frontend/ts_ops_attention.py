"""TorchScript readers of layer_norm, matmul (bmm, mm, quantized::matmul) and
scaled_dot_product_attention (one ``@reader`` per PyTorch op name; ops/norm.py and
ops/attention.py lower them). FX's ``quantized::layer_norm`` and ``quantized::matmul`` carry
their output qparams as the last two arguments; the aten forms are float."""
import numpy as np

from ..ir import Tensor
from .ts_walk import _Unsupported, _inputs, _qp, reader


def _float_const(w, v, name):
    """A constant tensor argument (weight, bias, mask) as a float32 (or bool) Tensor; None for None."""
    c = w.const(v)
    if c is None:
        return None
    if not hasattr(c, "numpy") or getattr(c, "is_quantized", False):
        raise _Unsupported("argument '%s' is not a float constant tensor" % v.debugName())
    arr = c.detach().numpy()
    arr = arr.copy() if arr.dtype == np.bool_ else arr.astype(np.float32).copy()
    return Tensor(name, arr.shape, str(arr.dtype), None, arr)


def _output_grid(w, node, ins, x):
    """(qparams, dtype) of a quantized:: op's output (its last two arguments), or float."""
    if node.kind().startswith("quantized::"):
        return _qp(w.const(ins[-2]), w.const(ins[-1])), x.dtype
    return None, "float32"


@reader("aten::layer_norm", "quantized::layer_norm")
def _layer_norm(w, node):
    ins = _inputs(node)
    x = w.tensor(ins[0], node)
    name = w.name_for(node)
    shape = w.const(ins[1])
    if not isinstance(shape, (list, tuple)) or not all(isinstance(s, int) for s in shape):
        raise _Unsupported("normalized_shape %r is not constant" % (shape,))
    attrs, consts = {"normalized_shape": list(shape), "eps": float(w.const(ins[4]))}, []
    for key, v in (("weight", ins[2]), ("bias", ins[3])):
        c = _float_const(w, v, name + "." + key)
        attrs[key] = c is not None
        if c is not None:
            consts.append(c)
    q, dtype = _output_grid(w, node, ins, x)
    w.emit("layer_norm", node, [x] + consts, attrs, qparams=q, dtype=dtype)
    if q is None:
        w.graph.ops[-1].outputs[0].qparams = None


@reader("aten::matmul", "aten::bmm", "aten::mm", "quantized::matmul")
def _matmul(w, node):
    ins = _inputs(node)
    a, b = w.tensor(ins[0], node), w.tensor(ins[1], node)
    q, dtype = _output_grid(w, node, ins, a)
    w.emit("matmul", node, [a, b], {}, qparams=q, dtype=dtype)
    if q is None:
        w.graph.ops[-1].outputs[0].qparams = None


@reader("aten::scaled_dot_product_attention")
def _sdpa(w, node):
    ins = _inputs(node)
    acts = [w.tensor(v, node) for v in ins[:3]]
    name = w.name_for(node)
    attrs = {"dropout_p": float(w.const(ins[4])), "is_causal": bool(w.const(ins[5])),
             "scale": w.const(ins[6]) if len(ins) > 6 else None,
             "enable_gqa": bool(w.const(ins[7])) if len(ins) > 7 else False, "mask": "none"}
    m = w.values.get(ins[3].unique())
    consts = []
    if isinstance(m, Tensor):
        acts.append(m)
        attrs["mask"] = "input"
    else:
        c = _float_const(w, ins[3], name + "/attn_mask")
        if c is not None:
            consts.append(c)
            attrs["mask"] = "const"
    w.emit("scaled_dot_product_attention", node, acts + consts, attrs, qparams=None, dtype="float32")
    w.graph.ops[-1].outputs[0].qparams = None


@reader("aten::_transformer_encoder_layer_fwd")
def _fused_encoder_layer(w, node):
    """nn.TransformerEncoderLayer's fused fast path, which torch.jit.trace records in eval mode
    (one node per layer, weights as arguments): no circle form; tracing without it gives the
    attention, layer_norm and linear ops, which convert."""
    raise _Unsupported("nn.TransformerEncoderLayer's fused fast path; trace with "
                       "torch.backends.mha.set_fastpath_enabled(False) to record its ops, which convert")
