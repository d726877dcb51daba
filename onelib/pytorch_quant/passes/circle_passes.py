"""Passes over the circle-stage graph (circle op names, NHWC)."""
import numpy as np

from ..circle.vocab import ACT_OF_OP, VALID
from ..ir import Op, Tensor

# ops whose fusedActivationFunction can take a following RELU / RELU6 / RELU_N1_TO_1
FUSABLE = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "SUB",
           "AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION"}


def fuse_activation(graph, options):
    """Fold a standalone RELU/RELU6/RELU_N1_TO_1 into its producer's fused activation.

    Exact when the clamp runs on the same grid: the activation's qparams equal the producer's
    output qparams (PyTorch's quantized relu keeps them), the producer has no other reader and
    no activation yet. onert has no quantized standalone RELU, so this is also what makes such
    models run there.
    """
    prod = graph.producers()
    cons = graph.consumers()
    outputs = set(id(t) for t in graph.outputs)
    dead = []
    for op in graph.ops:
        if op.kind not in ACT_OF_OP:
            continue
        x, y = op.inputs[0], op.outputs[0]
        p = prod.get(id(x))
        if p is None or p.kind not in FUSABLE or p.attrs.get("fusedActivationFunction", 0) != 0:
            continue
        if len(cons.get(id(x), [])) != 1 or id(x) in outputs:
            continue
        same_grid = (x.qparams is None and y.qparams is None) or \
            (x.qparams is not None and x.qparams.same_as(y.qparams))
        if not same_grid or x.dtype != y.dtype:
            continue
        p.attrs["fusedActivationFunction"] = ACT_OF_OP[op.kind]
        p.outputs = [y if t is x else t for t in p.outputs]
        dead.append(op)
    graph.remove_ops(dead)


def _perm(op):
    return [int(v) for v in op.inputs[1].data] if op.inputs[1] is not None and op.inputs[1].is_const else None


def cancel_transposes(graph, options):
    """TRANSPOSE(p) followed by TRANSPOSE(q) with q after p = identity reads the original tensor.

    Layout changes around reshapes come in such pairs; dropping them changes no element.
    """
    changed = True
    while changed:
        changed = False
        prod = graph.producers()
        for op in graph.ops:
            if op.kind != "TRANSPOSE":
                continue
            first = prod.get(id(op.inputs[0]))
            if first is None or first.kind != "TRANSPOSE":
                continue
            p, q = _perm(first), _perm(op)
            if p is None or q is None or [p[i] for i in q] != list(range(len(q))):
                continue
            src, out = first.inputs[0], op.outputs[0]
            if any(out is t for t in graph.outputs):
                continue
            graph.replace_uses(out, src)
            graph.remove_ops([op])
            graph.prune()
            changed = True
            break


def fc_as_conv(graph, options):
    """onert profile: a FULLY_CONNECTED with per-channel weights becomes RESHAPE -> 1x1 CONV_2D ->
    RESHAPE, which onert computes exactly (its uint8 FULLY_CONNECTED uses channel 0's scale for
    every channel). Same integers, same qparams; only the op changes."""
    new_ops = []
    for op in graph.ops:
        q = op.inputs[1].qparams if op.kind == "FULLY_CONNECTED" else None
        if q is None or q.uniform:
            # per-tensor, or one scale repeated per channel: onert's FC computes it right
            new_ops.append(op)
            continue
        x, w, b = op.inputs[0], op.inputs[1], op.inputs[2]
        y = op.outputs[0]
        k = x.shape[-1]
        rows = int(np.prod(x.shape[:-1]))
        n = w.shape[0]
        name = op.name
        x4, r1 = _reshape(x, (rows, 1, 1, k), name + "/as_nhwc")
        w4 = Tensor(w.name, (n, 1, 1, k), w.dtype, w.qparams.copy(axis=0), w.data.reshape(n, 1, 1, k))
        y4 = Tensor(name + "/conv", (rows, 1, 1, n), y.dtype, y.qparams.copy() if y.qparams is not None else None)
        conv = Op("CONV_2D", [x4, w4, b], [y4],
                  {"padding": VALID, "strideW": 1, "strideH": 1, "dilationWFactor": 1, "dilationHFactor": 1,
                   "fusedActivationFunction": op.attrs.get("fusedActivationFunction", 0)}, name)
        sh = Tensor(name + "/out_shape", (len(y.shape),), "int32", None, np.array(y.shape, np.int32))
        r2 = Op("RESHAPE", [y4, sh], [y], {"newShape": list(y.shape)}, name + "/from_nhwc")
        new_ops.extend([r1, conv, r2])
    graph.ops = new_ops


def _reshape(t, shape, name):
    """(output, RESHAPE op) of ``t`` to ``shape``, on its grid."""
    out = Tensor(name, shape, t.dtype, t.qparams.copy() if t.qparams is not None else None)
    sh = Tensor(name + "/shape", (len(shape),), "int32", None, np.array(shape, np.int32))
    return out, Op("RESHAPE", [t, sh], [out], {"newShape": list(shape)}, name)
