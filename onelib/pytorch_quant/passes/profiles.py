"""Circle-stage passes that move QUANTIZE / DEQUANTIZE through data movement, and the passes each
``--profile`` adds (``PROFILE_PASSES``).

Data movement (transpose, reshape, slice, split, concat, max pooling, zero padding) commutes with
an affine quantizer: moving an element, or taking the larger of two, does the same thing to the
codes as to the real values. So an op that PyTorch ran between DEQUANTIZE and QUANTIZE can run on
the integers instead, with no value changed:

* ``dequantize_later``: DEQUANTIZE -> mover becomes mover (on the codes, same grid) -> DEQUANTIZE;
* ``quantize_earlier``: mover -> QUANTIZE becomes QUANTIZE -> mover (on the quantizer's grid);
* ``fold_requantize``: DEQUANTIZE -> QUANTIZE onto the same grid is nothing at all; onto another
  grid it is one QUANTIZE from integers to integers (luci profile: onert runs only float->uint8).

This is what puts the layout TRANSPOSE of a float model input after its QUANTIZE (luci wants
QUANTIZE right after a float input) and the output TRANSPOSE before the DEQUANTIZE.
"""
import numpy as np

from .. import hazards
from ..ir import QUANT_INT_DTYPES, QParams, Op, Tensor
from .circle_passes import fc_as_conv

# circle ops that only move, select or compare elements: (indices of their activation inputs,
# or None for every non-constant input). Fused activations on them (CONCATENATION, MAX_POOL_2D)
# clamp at a real 0 or 6, which commutes with the quantizer too.
MOVERS = {
    "TRANSPOSE": (0,), "RESHAPE": (0,), "SQUEEZE": (0,), "EXPAND_DIMS": (0,), "SLICE": (0,),
    "STRIDED_SLICE": (0,), "SPLIT": (1,), "SPLIT_V": (0,), "GATHER": (0,), "MAX_POOL_2D": (0,),
    "PAD": (0,), "CONCATENATION": None, "PACK": None, "TILE": (0,),
}


def _act_inputs(op):
    idx = MOVERS[op.kind]
    if idx is None:
        return [i for i, t in enumerate(op.inputs) if t is not None and not t.is_const]
    return [i for i in idx if op.inputs[i] is not None and not op.inputs[i].is_const]


def _is_float_act(t):
    return t is not None and not t.is_const and t.qparams is None and t.dtype == "float32"


def dequantize_later(graph, options):
    """DEQUANTIZE(q) -> mover -> y becomes mover on q's codes -> DEQUANTIZE -> y.

    Every activation input of the mover must be a DEQUANTIZE output of one grid. The float ``y``
    keeps its name and readers; the quantized result is named ``y/quantized``.
    """
    changed = True
    while changed:
        changed = False
        prod = graph.producers()
        for pos, op in enumerate(graph.ops):
            if op.kind not in MOVERS:
                continue
            idx = _act_inputs(op)
            deqs = [prod.get(id(op.inputs[i])) for i in idx]
            if not idx or any(d is None or d.kind != "DEQUANTIZE" for d in deqs):
                continue
            srcs = [d.inputs[0] for d in deqs]
            q0 = srcs[0]
            if q0.qparams is None or not q0.qparams.per_tensor or \
                    any(s.dtype != q0.dtype or not s.qparams.same_as(q0.qparams) for s in srcs):
                continue
            for i, s in zip(idx, srcs):
                op.inputs[i] = s
            tail = []
            for y in op.outputs:
                yq = Tensor(y.name + "/quantized", y.shape, q0.dtype, q0.qparams.copy())
                op.outputs = [yq if t is y else t for t in op.outputs]
                tail.append(Op("DEQUANTIZE", [yq], [y], {}, y.name + "/dequantize"))
            graph.ops[pos + 1:pos + 1] = tail
            changed = True
            break
    fold_requantize(graph, options, collapse_only=True)


def quantize_earlier(graph, options):
    """Float mover -> QUANTIZE(z) (its only reader) becomes QUANTIZE to z's grid -> mover.

    Also a mover with several inputs (CONCATENATION): each input is quantized to z's grid, which
    is exactly what quantizing the concatenated floats does.
    """
    changed = True
    while changed:
        changed = False
        cons = graph.consumers()
        outputs = set(id(t) for t in graph.outputs)
        for pos, op in enumerate(graph.ops):
            if op.kind not in MOVERS or len(op.outputs) != 1:
                continue
            y = op.outputs[0]
            readers = cons.get(id(y), [])
            if len(readers) != 1 or readers[0].kind != "QUANTIZE" or id(y) in outputs:
                continue
            z = readers[0].outputs[0]
            idx = _act_inputs(op)
            if not idx or any(not _is_float_act(op.inputs[i]) for i in idx) or not z.qparams.per_tensor:
                continue
            head = []
            for i in idx:
                x = op.inputs[i]
                xq = Tensor(x.name + "/quantized", x.shape, z.dtype, z.qparams.copy())
                head.append(Op("QUANTIZE", [x], [xq], {}, x.name + "/quantize"))
                op.inputs[i] = xq
            op.outputs = [z]
            graph.remove_ops([readers[0]])
            pos = next(k for k, o in enumerate(graph.ops) if o is op)
            graph.ops[pos:pos] = head
            changed = True
            break
    fold_requantize(graph, options, collapse_only=True)


def fold_requantize(graph, options, collapse_only=False):
    """DEQUANTIZE(q) -> QUANTIZE(z): the same grid is the identity (z reads q); with
    ``collapse_only=False`` another grid becomes one integer-to-integer QUANTIZE."""
    prod = graph.producers()
    outputs = set(id(t) for t in graph.outputs)
    dead = []
    for op in graph.ops:
        if op.kind != "QUANTIZE":
            continue
        f, z = op.inputs[0], op.outputs[0]
        d = prod.get(id(f))
        if d is None or d.kind != "DEQUANTIZE":
            continue
        q = d.inputs[0]
        if q.dtype == z.dtype and q.qparams.same_as(z.qparams):
            if id(z) not in outputs:
                graph.replace_uses(z, q)
                dead.append(op)
            elif id(q) in prod and id(q) not in outputs:
                # a model output keeps its own tensor (and name): q's producer writes it directly
                p = prod[id(q)]
                p.outputs = [z if t is q else t for t in p.outputs]
                graph.replace_uses(q, z)
                prod[id(z)] = p
                dead.append(op)
        elif not collapse_only and q.dtype in QUANT_INT_DTYPES and z.dtype in QUANT_INT_DTYPES:
            op.inputs[0] = q
    graph.remove_ops(dead)
    graph.prune()


def unify_weight_granularity(graph, options):
    """luci's verifier wants one granularity for a whole model. When some weights are per-channel
    and others per-tensor, the per-tensor ones (and their biases) are written per-channel with
    the one scale and zero point repeated: the same real values, so nothing changes."""
    weighted = [op for op in graph.ops if op.kind in _WEIGHT_AXIS and len(op.inputs) > 1
                and op.inputs[1] is not None and op.inputs[1].qparams is not None]
    per_channel = [op for op in weighted if not op.inputs[1].qparams.per_tensor]
    if not per_channel or len(per_channel) == len(weighted):
        return
    for op in weighted:
        w = op.inputs[1]
        if not w.qparams.per_tensor:
            continue
        axis, bias_at = _WEIGHT_AXIS[op.kind]
        n = w.shape[axis]
        op.inputs[1] = Tensor(w.name, w.shape, w.dtype, _repeat(w.qparams, n, axis), w.data)
        b = op.inputs[bias_at] if len(op.inputs) > bias_at else None
        if b is not None and b.is_const and b.qparams is not None and b.qparams.per_tensor:
            op.inputs[bias_at] = Tensor(b.name, b.shape, b.dtype, _repeat(b.qparams, n, 0), b.data)
    graph.notes.append("%d per-tensor weight(s) written per-channel with repeated qparams (one "
                       "granularity for the whole model, as luci requires)"
                       % (len(weighted) - len(per_channel)))


# (the channel axis luci's channel granularity expects, the bias operand) of each weighted op;
# the weights are operand 1 of all four (TRANSPOSE_CONV: output_shape, filter, input, bias)
_WEIGHT_AXIS = {"CONV_2D": (0, 2), "DEPTHWISE_CONV_2D": (3, 2), "TRANSPOSE_CONV": (0, 3),
                "FULLY_CONNECTED": (0, 2)}


def _repeat(q, n, axis):
    return QParams(np.repeat(q.scale, n), np.repeat(q.zero_point, n), axis)


# ops luci-interpreter has no uint8 kernel for ("luci-intp Mul Unsupported type", "luci-intp
# Gather(1) Unsupported type"), and which of their inputs are quantized activations or data (the
# others, such as GATHER's indices, stay as they are)
FLOAT_ONLY_IN_LUCI_INTERPRETER = {"MUL": None, "GATHER": (0,)}


def in_float_for_luci_interpreter(graph, options):
    """onert profile: a uint8 MUL or GATHER runs in float between DEQUANTIZE and QUANTIZE onto its
    own output grid.

    luci-interpreter runs neither on uint8. A GATHER only moves values, so dequantizing, moving and
    quantizing back onto the same grid gives the same codes; PyTorch's quantized mul is itself
    dequantize, multiply, requantize (within 1 LSB of the integer kernel)."""
    new_ops = []
    for op in graph.ops:
        y = op.outputs[0] if op.outputs else None
        if op.kind not in FLOAT_ONLY_IN_LUCI_INTERPRETER or y is None or y.qparams is None \
                or y.dtype != "uint8":
            new_ops.append(op)
            continue
        which = FLOAT_ONLY_IN_LUCI_INTERPRETER[op.kind]
        ins = []
        for i, t in enumerate(op.inputs):
            if t is None or t.qparams is None or (which is not None and i not in which):
                ins.append(t)
                continue
            f = Tensor("%s/float%d" % (op.name or y.name, i), t.shape, "float32")
            if t.is_const:
                real = (t.data.astype(np.float64) - t.qparams.zero_point.astype(np.float64)) * \
                    t.qparams.scale.astype(np.float64)
                f = Tensor(f.name, t.shape, "float32", None, real.astype(np.float32))
            else:
                new_ops.append(Op("DEQUANTIZE", [t], [f], {}, f.name))
            ins.append(f)
        yf = Tensor((op.name or y.name) + "/float", y.shape, "float32")
        new_ops.append(Op(op.kind, ins, [yf], dict(op.attrs), op.name))
        new_ops.append(Op("QUANTIZE", [yf], [y], {}, (op.name or y.name) + "/quantize"))
    graph.ops = new_ops


def mean_as_hw_of_4d(graph, options):
    """onert profile: every quantized MEAN as a 4-D MEAN over axes 1 and 2 with keepDims,
    between RESHAPEs (and a TRANSPOSE when the reduced axes are not next to each other).

    luci-interpreter's uint8 MEAN crashes (SIGSEGV, "free(): invalid size") in every other form:
    its loader gives the int32 running sum a buffer of the input's element type (one byte per
    element). Only the 4-D, keepDims, axes (1, 2) form skips that buffer. Viewing the input as
    [outer, 1, reduced, inner] averages the same elements, so the result is the same mean.
    """
    new_ops = []
    for op in graph.ops:
        x = op.inputs[0] if op.inputs else None
        if op.kind != "MEAN" or x is None or x.qparams is None or not op.inputs[1].is_const:
            new_ops.append(op)
            continue
        rank = len(x.shape)
        axes = sorted(set(int(a) % rank for a in np.asarray(op.inputs[1].data).reshape(-1)))
        y = op.outputs[0]
        if rank == 4 and axes == [1, 2] and op.attrs.get("keepDims"):
            new_ops.append(op)
            continue
        name = op.name or y.name
        if axes != list(range(axes[0], axes[-1] + 1)):
            kept = [d for d in range(rank) if d not in axes]
            perm = kept + axes
            xt = Tensor(name + "/reduced_last", tuple(x.shape[d] for d in perm), x.dtype, x.qparams.copy())
            new_ops.append(Op("TRANSPOSE", [x, Tensor(name + "/reduced_last/perm", (rank,), "int32", None,
                                                     np.array(perm, np.int32))], [xt], {}, xt.name))
            x, axes = xt, list(range(len(kept), rank))
        outer = int(np.prod(x.shape[:axes[0]]))
        red = int(np.prod([x.shape[a] for a in axes]))
        inner = int(np.prod(x.shape[axes[-1] + 1:]))
        x4 = Tensor(name + "/as_4d", (outer, 1, red, inner), x.dtype, x.qparams.copy())
        new_ops.append(_reshape_op(x, x4))
        m4 = Tensor(name + "/mean_4d", (outer, 1, 1, inner), y.dtype, y.qparams.copy())
        new_ops.append(Op("MEAN", [x4, Tensor(name + "/axes_hw", (2,), "int32", None, np.array([1, 2], np.int32))],
                          [m4], {"keepDims": True}, op.name))
        new_ops.append(_reshape_op(m4, y))
    graph.ops = new_ops


def slice_within_4d(graph, options):
    """onert profile: a SLICE of a tensor of rank 5 or more as a SLICE of a view of rank 4 or less
    (RESHAPE, SLICE, RESHAPE), exact: data movement only.

    onert computes a 5-D SLICE wrongly and luci-interpreter crashes on it (``hazards.SLICE_5D``;
    ViT's ``qkv[0]`` on the [3, B, heads, N, d] tensor is one). Neighbouring axes the SLICE keeps
    whole are merged into one, so a SLICE that cuts one or two axes needs at most rank 4.
    """
    new_ops = []
    for op in graph.ops:
        x = op.inputs[0] if op.inputs else None
        if op.kind != "SLICE" or x is None or len(x.shape) < 5 or not (op.inputs[1].is_const
                                                                         and op.inputs[2].is_const):
            new_ops.append(op)
            continue
        shape = list(x.shape)
        begin = [int(v) for v in np.asarray(op.inputs[1].data).reshape(-1)]
        size = [shape[d] - begin[d] if int(v) == -1 else int(v)
                for d, v in enumerate(np.asarray(op.inputs[2].data).reshape(-1))]
        # groups of axes: each cut axis alone, each run of whole axes merged into one
        groups = []
        for d in range(len(shape)):
            whole = begin[d] == 0 and size[d] == shape[d]
            if whole and groups and groups[-1][0]:
                groups[-1][1].append(d)
            else:
                groups.append((whole, [d]))
        if len(groups) > 4:
            new_ops.append(op)
            continue
        y = op.outputs[0]
        name = op.name or y.name
        view = tuple(int(np.prod([shape[d] for d in g])) for _, g in groups)
        vbegin = [0 if whole else begin[g[0]] for whole, g in groups]
        vsize = [n if whole else size[g[0]] for (whole, g), n in zip(groups, view)]
        xv = Tensor(name + "/view", view, x.dtype, x.qparams.copy() if x.qparams is not None else None)
        yv = Tensor(name + "/view_out", tuple(vsize), y.dtype, y.qparams.copy() if y.qparams is not None else None)
        new_ops.append(_reshape_op(x, xv))
        new_ops.append(Op("SLICE", [xv, Tensor(name + "/view_begin", (len(view),), "int32", None,
                                               np.array(vbegin, np.int32)),
                                    Tensor(name + "/view_size", (len(view),), "int32", None,
                                           np.array(vsize, np.int32))], [yv], {}, op.name))
        new_ops.append(_reshape_op(yv, y))
    graph.ops = new_ops


# binary ops luci-interpreter aborts on (SIGABRT) when they broadcast at rank 5 or more
BROADCAST_WITHIN_4D = ("ADD", "MUL")


def broadcast_within_4d(graph, options):
    """onert profile: an ADD or MUL that broadcasts at rank 5 or more as the same op on views of
    rank 4 or less (RESHAPE each operand, the op, RESHAPE back), exact: data movement only.

    luci-interpreter aborts (SIGABRT) on a broadcasting ADD or MUL of rank 5
    (``hazards.BROADCAST_5D``; Swin's relative position bias, [1, W, heads, N, N] + [1, W, 1, N, N],
    is one). Neighbouring axes on which each operand is either whole or 1 alike are merged into one.
    """
    new_ops = []
    for op in graph.ops:
        y = op.outputs[0] if op.outputs else None
        if op.kind not in BROADCAST_WITHIN_4D or y is None or len(y.shape) < 5 or len(op.inputs) != 2 \
                or all(tuple(t.shape) == tuple(y.shape) for t in op.inputs):
            new_ops.append(op)
            continue
        rank = len(y.shape)
        shapes = [(1,) * (rank - len(t.shape)) + tuple(t.shape) for t in op.inputs]
        groups = []   # (each operand whole on these axes, [axes]); an axis of output 1 joins any
        for d in range(rank):
            if y.shape[d] == 1 and groups:
                groups[-1][1].append(d)
                continue
            key = tuple(s[d] == y.shape[d] for s in shapes)
            if groups and groups[-1][0] == key:
                groups[-1][1].append(d)
            else:
                groups.append((key, [d]))
        if len(groups) > 4:
            new_ops.append(op)
            continue
        name = op.name or y.name

        def view(shape, suffix, t):
            v = tuple(int(np.prod([shape[d] for d in g])) for _, g in groups)
            return Tensor(name + suffix, v, t.dtype, t.qparams.copy() if t.qparams is not None else None,
                          None if t.data is None else t.data.reshape(v))
        ins = []
        for k, (t, s) in enumerate(zip(op.inputs, shapes)):
            tv = view(s, "/view%d" % k, t)
            if not t.is_const:
                new_ops.append(_reshape_op(t, tv))
            ins.append(tv)
        yv = view(y.shape, "/view_out", y)
        new_ops.append(Op(op.kind, ins, [yv], dict(op.attrs), op.name))
        new_ops.append(_reshape_op(yv, y))
    graph.ops = new_ops


def _reshape_op(src, dst):
    shape = np.array(dst.shape, np.int32)
    return Op("RESHAPE", [src, Tensor(dst.name + "/shape", (len(dst.shape),), "int32", None, shape)], [dst],
              {"newShape": [int(v) for v in shape]}, dst.name)


def requantize_in_one_op(graph, options):
    """luci profile: DEQUANTIZE -> QUANTIZE onto another grid is one integer QUANTIZE."""
    fold_requantize(graph, options, collapse_only=False)


def onert_hazards(graph):
    """What onert 0.1.0 or luci-interpreter computes wrongly or cannot run in a circle-stage graph
    written with the luci profile: one line per hazard, with the first op's name (``hazards``)."""
    return hazards.luci_profile_hazards(graph)


# the passes each profile runs after the common ones, in order
PROFILE_PASSES = {
    "luci": (requantize_in_one_op, unify_weight_granularity),
    "onert": (unify_weight_granularity, fc_as_conv, in_float_for_luci_interpreter, mean_as_hw_of_4d,
              slice_within_4d, broadcast_within_4d),
}
