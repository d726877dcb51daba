""".pt2 readers of layer_norm and scaled_dot_product_attention: ops whose constant tensor
arguments (layer_norm's weight and bias, a constant attention mask) the generic reading does not
take. matmul/bmm/mm are read generically (ops/attention.py declares their ``args``)."""
import numpy as np

from ..ir import Tensor
from .pt2_graph import _op_name
from .pt2_walk import _Unsupported, reader


@reader("aten.layer_norm.default", "aten.native_layer_norm.default")
def _layer_norm(w, node):
    x = w.act(node, "input")
    name = _op_name(node)
    if len(node.outputs) > 1 and any(w.users.get(o) for o in node.outputs[1:]):
        raise _Unsupported("native_layer_norm whose mean or rstd is used")
    shape = w.arg(node, "normalized_shape")
    if not isinstance(shape, list) or not all(isinstance(s, int) for s in shape):
        raise _Unsupported("normalized_shape %r is not constant" % (shape,))
    consts, attrs = [], {"normalized_shape": list(shape), "eps": float(w.arg(node, "eps", 1e-5))}
    for key in ("weight", "bias"):
        c = w.const(node, key, name + "." + key)
        attrs[key] = c is not None
        if c is not None:
            consts.append(c)
    w.emit("layer_norm", node, [x], consts, attrs)


@reader("aten.scaled_dot_product_attention.default")
def _sdpa(w, node):
    acts = [w.act(node, k) for k in ("query", "key", "value")]
    consts = []
    attrs = {"dropout_p": float(w.arg(node, "dropout_p", 0.0)), "is_causal": bool(w.arg(node, "is_causal", False)),
             "scale": w.arg(node, "scale"), "enable_gqa": bool(w.arg(node, "enable_gqa", False)), "mask": "none"}
    m = w.value(node.args.get("attn_mask"))
    if isinstance(m, Tensor) and not m.is_const:
        acts.append(m)
        attrs["mask"] = "input"
    elif isinstance(m, Tensor) and m.qparams is None:
        data = m.data if m.data.dtype == np.bool_ else m.data.astype(np.float32)
        consts.append(Tensor(_op_name(node) + "/attn_mask", data.shape, str(data.dtype), None, data))
        attrs["mask"] = "const"
    elif m is not None:
        raise _Unsupported("attn_mask is neither a computed tensor nor a float or bool constant")
    w.emit("scaled_dot_product_attention", node, acts, consts, attrs)
