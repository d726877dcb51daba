"""avg_pool2d whose divisor changes across the map: count_include_pad=False with padding that is
not TFLite SAME, and ceil_mode windows that run past the input.

PyTorch divides each window's sum by a count that is separable: rows(o_h) * cols(o_w), where
along one axis, for output index o with a = o * stride - pad and b = a + kernel:
  count_include_pad=True:  min(b, n + pad) - a   (padding counts; nothing past n + pad does)
  count_include_pad=False: min(b, n) - max(a, 0)
AVERAGE_POOL_2D divides by its filter size, so the map is cut into blocks of output positions
whose windows have the same size (runs with the same length, one stride apart). Each block is a
SLICE of the (zero-point padded, when padding counts) input followed by a VALID AVERAGE_POOL_2D
with that window size; CONCATENATION puts the blocks back together. Every block divides by
exactly PyTorch's count, and every op keeps the input's grid, so each output is the same rounded
average as PyTorch's (within 1 LSB: rounding of ties).
"""
import numpy as np

from ..ir import Tensor


def axis_runs(n, k, s, p, n_out, include_pad):
    """[(first output, count, start, length)]: runs of outputs whose windows have the same length
    and start one stride apart. Starts are in padded coordinates when padding counts (pad p in
    front), else in input coordinates. Also returns the padding needed at the end."""
    runs = []
    end_pad = 0
    for o in range(n_out):
        a = o * s - p
        b = a + k
        if include_pad:
            lo, hi = a + p, min(b, n + p) + p
            end_pad = max(end_pad, min(b, n + p) - n)
        else:
            lo, hi = max(a, 0), min(b, n)
        if runs and runs[-1][3] == hi - lo and lo == runs[-1][2] + runs[-1][1] * s:
            f, c, st, ln = runs[-1]
            runs[-1] = (f, c + 1, st, ln)
        else:
            runs.append((o, 1, lo, hi - lo))
    return runs, end_pad


def avg_pool_by_blocks(ctx, op, x):
    """Lower ``op`` (avg_pool2d) onto circle tensor ``x`` (NHWC) block by block; returns the output."""
    a = op.attrs
    out = op.outputs[0]
    include = bool(a["count_include_pad"])
    n, h, w, c = x.shape
    oh, ow = out.shape[2], out.shape[3]
    rows, end_h = axis_runs(h, a["kernel"][0], a["stride"][0], a["padding"][0], oh, include)
    cols, end_w = axis_runs(w, a["kernel"][1], a["stride"][1], a["padding"][1], ow, include)
    q = x.qparams

    def t(name, shape):
        return Tensor(name, shape, x.dtype, q.copy() if q is not None else None)

    if include and (a["padding"] != [0, 0] or end_h or end_w):
        pads = np.array([[0, 0], [a["padding"][0], end_h], [a["padding"][1], end_w], [0, 0]], np.int32)
        padded = t(op.name + "/pad", (n, h + pads[1].sum(), w + pads[2].sum(), c))
        ctx.emit("PAD", [x, ctx.const(op.name + "/paddings", pads)], [padded], {}, op.name + "/pad")
        x = padded
    y = ctx.like(out, qparams=q)
    row_parts = []
    for i, (_, ch, sh, lh) in enumerate(rows):
        parts = []
        for j, (_, cw, sw, lw) in enumerate(cols):
            tag = "%s/block%d_%d" % (op.name, i, j)
            span = ((ch - 1) * a["stride"][0] + lh, (cw - 1) * a["stride"][1] + lw)
            piece = x
            if (sh, sw) != (0, 0) or span != (x.shape[1], x.shape[2]):
                piece = t(tag + "/in", (n, span[0], span[1], c))
                ctx.emit("SLICE", [x, ctx.const(tag + "/begin", np.array([0, sh, sw, 0], np.int32)),
                                   ctx.const(tag + "/size", np.array([n, span[0], span[1], c], np.int32))],
                         [piece], {}, tag + "/slice")
            single = len(rows) == 1 and len(cols) == 1
            pooled = y if single else t(tag, (n, ch, cw, c))
            ctx.emit("AVERAGE_POOL_2D", [piece], [pooled],
                     {"padding": 1, "strideH": a["stride"][0], "strideW": a["stride"][1],
                      "filterHeight": lh, "filterWidth": lw, "fusedActivationFunction": 0}, tag)
            parts.append(pooled)
        if len(parts) == 1:
            row_parts.append(parts[0])
        else:
            r = y if len(rows) == 1 else t("%s/row%d" % (op.name, i), (n, ch, ow, c))
            ctx.emit("CONCATENATION", parts, [r], {"axis": 2, "fusedActivationFunction": 0}, "%s/row%d" % (op.name, i))
            row_parts.append(r)
    if len(row_parts) > 1:
        ctx.emit("CONCATENATION", row_parts, [y], {"axis": 1, "fusedActivationFunction": 0}, op.name)
    return y
