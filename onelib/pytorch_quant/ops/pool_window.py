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

from ..circle.vocab import VALID
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
                     {"padding": VALID, "strideH": a["stride"][0], "strideW": a["stride"][1],
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


# ------------------------------------------------------------------------------ adaptive pooling
def adaptive_windows(n, n_out):
    """PyTorch's adaptive pooling windows along one axis: [(start, length)] with
    start = floor(i * n / n_out), end = ceil((i + 1) * n / n_out)."""
    return [((i * n) // n_out, -(-((i + 1) * n) // n_out) - (i * n) // n_out) for i in range(n_out)]


def _even(windows, n):
    """(kernel, stride) when the windows are one kernel size one stride apart and end at n, else None
    (10 -> 3 is kernel 4 stride 3: a plain pooling op)."""
    k = windows[0][1]
    s = windows[1][0] - windows[0][0] if len(windows) > 1 else 1
    if s < 1 or any(ln != k or st != i * s for i, (st, ln) in enumerate(windows)):
        return None
    if windows[-1][0] + k != n:
        return None
    return k, s


def adaptive_pool(ctx, op, x, y, kind):
    """Lower adaptive pooling (``kind``: AVERAGE_POOL_2D or MAX_POOL_2D) of NHWC ``x`` into ``y``.

    Even windows on both axes: one pooling op. Otherwise, per axis, the windows take at most a few
    lengths. For each pair of lengths (lh, lw) one pooling op with that filter runs over the
    input (stride 1 on an uneven axis, so every start is computed, each dividing by exactly
    PyTorch's count lh * lw and rounding once); GATHER picks the starts of the outputs whose
    windows have that length, CONCATENATION puts the length groups side by side and a last
    GATHER restores the output order. Every op keeps the input's grid (GATHER and
    CONCATENATION move codes unchanged), so each output is the same rounded average or the same
    maximum as PyTorch's, whatever the sizes. The op count does not grow with the map.
    """
    n, h, w, c = x.shape
    oh, ow = y.shape[1], y.shape[2]
    axes = [adaptive_windows(h, oh), adaptive_windows(w, ow)]
    even = [_even(axes[0], h), _even(axes[1], w)]
    q = x.qparams

    def t(name, shape):
        return Tensor(name, tuple(int(v) for v in shape), x.dtype, q.copy() if q is not None else None)

    def pool(src, kernel, stride, out, tag):
        ctx.emit(kind, [src], [out], {"padding": VALID, "strideH": stride[0], "strideW": stride[1],
                                      "filterHeight": kernel[0], "filterWidth": kernel[1],
                                      "fusedActivationFunction": 0}, tag)
        return out

    def gather(src, index, axis, tag, out=None):
        shape = list(src.shape)
        shape[axis] = len(index)
        out = out if out is not None else t(tag, shape)
        ctx.emit("GATHER", [src, ctx.const(tag + "/index", np.array(index, np.int32))], [out],
                 {"axis": axis, "batchDims": 0}, tag)
        return out

    if even[0] and even[1]:
        pool(x, (even[0][0], even[1][0]), (even[0][1], even[1][1]), y, op.name)
        return y

    def groups(axis):
        """[(length, [output indices])] of one axis; [(kernel, None)] when it is even (the pool's
        own stride picks the starts)."""
        if even[axis]:
            return [(even[axis][0], None)]
        lengths = sorted(set(ln for _, ln in axes[axis]))
        return [(ln, [i for i, (_, l2) in enumerate(axes[axis]) if l2 == ln]) for ln in lengths]

    def assemble(parts, order, axis, tag, out):
        """CONCATENATION of the length groups along ``axis``, then the output order restored
        (a GATHER, written into ``out`` when given)."""
        if len(parts) == 1:
            return parts[0]
        shape = list(parts[0].shape)
        shape[axis] = sum(p.shape[axis] for p in parts)
        cat = t(tag + "/groups", shape)
        ctx.emit("CONCATENATION", parts, [cat], {"axis": axis, "fusedActivationFunction": 0}, tag + "/groups")
        return gather(cat, np.argsort(np.array(order)).tolist(), axis, tag, out)

    rows, cols = groups(0), groups(1)
    stride = (even[0][1] if even[0] else 1, even[1][1] if even[1] else 1)
    col_parts, col_order = [], []
    for lw, col_idx in cols:
        row_parts, row_order = [], []
        for lh, row_idx in rows:
            tag = "%s/pool%dx%d" % (op.name, lh, lw)
            p = pool(x, (lh, lw), stride, t(tag, (n, (h - lh) // stride[0] + 1, (w - lw) // stride[1] + 1, c)), tag)
            if row_idx is not None:
                p = gather(p, [axes[0][i][0] for i in row_idx], 1, tag + "/rows")
                row_order += row_idx
            row_parts.append(p)
        b = assemble(row_parts, row_order, 1, "%s/w%d" % (op.name, lw), None)
        if col_idx is not None:
            b = gather(b, [axes[1][j][0] for j in col_idx], 2, "%s/w%d/cols" % (op.name, lw))
            col_order += col_idx
        col_parts.append(b)
    out = assemble(col_parts, col_order, 2, op.name, y)
    if out is not y:   # one group left: name the result as PyTorch's output
        ctx.emit("RESHAPE", [out, ctx.const(op.name + "/shape", np.array(y.shape, np.int32))], [y],
                 {"newShape": list(y.shape)}, op.name)
    return y


# ------------------------------------------------------------------------------ dilated max pooling
def dilated_max_pool(ctx, op, x, y, kernel, stride, dilation):
    """Max pooling with dilation (circle's MAX_POOL_2D has none) on ``x``, already padded for
    PyTorch's windows. A maximum is separable and exact on one grid: along H, the MAXIMUM of
    the kernel's taps, each a GATHER of rows i*d, i*d + stride, ... (onert 0.1.0 has no uint8
    STRIDED_SLICE), then the same along W."""
    n, h, w, c = x.shape
    oh, ow = y.shape[1], y.shape[2]
    q = x.qparams
    cur = x
    for axis, k, s, d, o in ((1, kernel[0], stride[0], dilation[0], oh), (2, kernel[1], stride[1], dilation[1], ow)):
        shape = list(cur.shape)
        shape[axis] = o
        last = axis == 2
        taps = []
        for i in range(k):
            tag = "%s/%s%d" % (op.name, "hw"[axis - 1], i)
            tap = y if last and k == 1 else Tensor(tag, tuple(shape), x.dtype, q.copy() if q is not None else None)
            index = np.arange(o, dtype=np.int32) * s + i * d
            ctx.emit("GATHER", [cur, ctx.const(tag + "/index", index)], [tap], {"axis": axis, "batchDims": 0}, tag)
            taps.append(tap)
        acc = taps[0]
        for i, tap in enumerate(taps[1:], 1):
            tag = "%s/%smax%d" % (op.name, "hw"[axis - 1], i)
            out = y if last and i == k - 1 else Tensor(tag, tuple(shape), x.dtype, q.copy() if q is not None else None)
            ctx.emit("MAXIMUM", [acc, tap], [out], {}, tag)
            acc = out
        cur = acc
    return y


# ------------------------------------------------------------------------------ divisor_override
def avg_pool_divisor(ctx, op, x, y, kernel, stride):
    """avg_pool2d with ``divisor_override`` d on ``x`` (NHWC, already padded with the zero point
    for PyTorch's padding and ceil_mode windows): every window's sum of real values divided by d,
    whatever its size. AVERAGE_POOL_2D divides by the window, so this is a DEPTHWISE_CONV_2D
    with every weight 1/d (the code 1 on the scale 1/d, zero point 0) and a zero bias: the
    int32 accumulator is PyTorch's sum of (x - zero point), the requantization multiplies by
    in_scale / d / out_scale and rounds once, as PyTorch's kernel does. Padding holds the zero
    point, a real 0, which PyTorch leaves out of the sum."""
    from ..ir import QParams
    c = x.shape[3]
    d = float(op.attrs["divisor_override"])
    kh, kw = kernel
    if x.qparams is None:
        w = ctx.const(op.name + ".weight", np.full((1, kh, kw, c), np.float32(1.0 / d), np.float32))
        b = ctx.const(op.name + ".bias", np.zeros(c, np.float32))
    else:
        w_scale = np.full(c, np.float32(1.0 / d), np.float32)
        w = ctx.const(op.name + ".weight", np.ones((1, kh, kw, c), np.uint8), QParams(w_scale, np.zeros(c, np.int64), 3))
        b_scale = (np.float32(x.qparams.scale[0]) * w_scale).astype(np.float32)
        b = ctx.const(op.name + ".bias", np.zeros(c, np.int32), QParams(b_scale, np.zeros(c, np.int64), 0))
    ctx.emit("DEPTHWISE_CONV_2D", [x, w, b], [y],
             {"padding": VALID, "strideW": stride[1], "strideH": stride[0], "dilationWFactor": 1,
              "dilationHFactor": 1, "depthMultiplier": 1, "fusedActivationFunction": 0}, op.name)
    return y
