"""max_pool2d, avg_pool2d, adaptive_avg_pool2d, adaptive_max_pool2d, mean.

Quantized pooling in PyTorch keeps the input's qparams, and TFLite/circle pooling kernels assume
the same, so outputs share the input's qparams.
"""
import numpy as np

from ..circle.vocab import INT_RANGE, VALID
from ..errors import ConversionError
from .conv import window_padding
from .ctx import nhwc_axis
from .declare import op
from .pool_window import adaptive_pool, avg_pool_by_blocks, avg_pool_divisor, dilated_max_pool


def pool_out(n, k, s, p, d, ceil_mode):
    eff = d * (k - 1) + 1
    if not ceil_mode:
        return (n + 2 * p - eff) // s + 1
    out = -(-(n + 2 * p - eff) // s) + 1
    if (out - 1) * s >= n + p:  # PyTorch: the last window must start inside the input or left pad
        out -= 1
    return out


def pool_shape(op):
    x = op.inputs[0]
    a = op.attrs
    d = a.get("dilation", [1, 1])
    hw = [pool_out(x.shape[2 + i], a["kernel"][i], a["stride"][i], a["padding"][i], d[i], a["ceil_mode"])
          for i in range(2)]
    return (x.shape[0], x.shape[1], hw[0], hw[1])


def _extra_end(src_x, out, a, d):
    """Padding at the end that ceil_mode adds (windows that run past the input)."""
    extra = []
    for i in range(2):
        n = src_x.shape[2 + i]
        eff = d[i] * (a["kernel"][i] - 1) + 1
        need = (out.shape[2 + i] - 1) * a["stride"][i] + eff - (n + 2 * a["padding"][i])
        extra.append(max(need, 0))
    return tuple(extra)


def _pool_attrs(a, pad):
    return {"padding": pad, "strideW": a["stride"][1], "strideH": a["stride"][0],
            "filterWidth": a["kernel"][1], "filterHeight": a["kernel"][0], "fusedActivationFunction": 0}


@op("max_pool2d", shape=pool_shape, float_ok=True, same_grid=True,
    reads={"torchscript": ("aten::max_pool2d",), "pt2": ("aten.max_pool2d.default",)},
    attrs="kernel[2], stride[2], padding[2], dilation[2], ceil_mode",
    circle="MAX_POOL_2D (+ PADV2 lowest code for padding / ceil_mode); dilation > 1: per axis MAXIMUM of "
           "GATHERed taps")
def lower_max_pool2d(ctx, op):
    a = op.attrs
    d = list(a.get("dilation", [1, 1]))
    src_x = op.inputs[0]
    x = ctx.value(src_x)
    extra = _extra_end(src_x, op.outputs[0], a, d)
    # padding with the lowest code acts as PyTorch's -inf padding: every window holds a real element
    lowest = INT_RANGE[x.dtype][0] if x.dtype in INT_RANGE else np.finfo(np.float32).min
    x, pad = window_padding(ctx, x, op.name, a["kernel"], a["stride"], a["padding"], d, fill=lowest,
                            extra_end=extra, allow_same=d == [1, 1])
    y = ctx.like(op.outputs[0])
    if d != [1, 1]:
        ctx.define(op.outputs[0], dilated_max_pool(ctx, op, x, y, a["kernel"], a["stride"], d))
        return
    ctx.emit("MAX_POOL_2D", [x], [y], _pool_attrs(a, pad), op.name)
    ctx.define(op.outputs[0], y)


@op("avg_pool2d", shape=pool_shape, float_ok=True, same_grid=True,
    reads={"torchscript": ("aten::avg_pool2d",), "pt2": ("aten.avg_pool2d.default",)},
    attrs="kernel, stride, padding, ceil_mode, count_include_pad, divisor_override",
    circle="AVERAGE_POOL_2D (+ PAD zero point for count_include_pad); otherwise SLICE blocks dividing by "
           "PyTorch's count; divisor_override d: DEPTHWISE_CONV_2D with weights 1/d")
def lower_avg_pool2d(ctx, op):
    a = op.attrs
    src_x = op.inputs[0]
    x = ctx.value(src_x)
    extra = _extra_end(src_x, op.outputs[0], a, [1, 1])
    if a.get("divisor_override"):
        # a fixed divisor: a depthwise sum scaled by 1/d over the zero-point padded input
        x, _ = window_padding(ctx, x, op.name, a["kernel"], a["stride"], a["padding"], [1, 1],
                              fill="zero_point", extra_end=extra, allow_same=False)
        ctx.define(op.outputs[0], avg_pool_divisor(ctx, op, x, ctx.like(op.outputs[0]), a["kernel"], a["stride"]))
        return
    if extra != (0, 0):
        # ceil_mode windows past the input divide by a smaller count: block by block (pool_window.py)
        ctx.define(op.outputs[0], avg_pool_by_blocks(ctx, op, x))
        return
    if a["padding"] != [0, 0] and a["count_include_pad"]:
        # padded zeros count in PyTorch's average: pad explicitly with the zero point (real 0)
        x, pad = window_padding(ctx, x, op.name, a["kernel"], a["stride"], a["padding"], [1, 1],
                                fill="zero_point", allow_same=False)
    else:
        x, pad = window_padding(ctx, x, op.name, a["kernel"], a["stride"], a["padding"], [1, 1],
                                fill="zero_point")
        if a["padding"] != [0, 0] and pad == VALID:
            # not TFLite SAME: the count changes near the border, so pool block by block on the
            # unpadded input (the PAD window_padding just emitted is left unused and pruned)
            ctx.define(op.outputs[0], avg_pool_by_blocks(ctx, op, ctx.value(src_x)))
            return
    y = ctx.like(op.outputs[0])
    ctx.emit("AVERAGE_POOL_2D", [x], [y], _pool_attrs(a, pad), op.name)
    ctx.define(op.outputs[0], y)


def adaptive_shape(op):
    x = op.inputs[0]
    oh, ow = [x.shape[2 + i] if v is None else v for i, v in enumerate(op.attrs["output_size"])]
    return (x.shape[0], x.shape[1], oh, ow)


@op("adaptive_avg_pool2d", shape=adaptive_shape, float_ok=True, same_grid=True, reads={
        "torchscript": ("aten::adaptive_avg_pool2d", "quantized::adaptive_avg_pool2d"),
        "pt2": ("aten.adaptive_avg_pool2d.default",)},
    attrs="output_size[2] (None entries keep the size)",
    circle="AVERAGE_POOL_2D with PyTorch's windows (start ⌊i·in/out⌋, end ⌈(i+1)·in/out⌉: 10 → 3 is kernel 4 "
           "stride 3); uneven windows: one pooling per window length + GATHER + CONCATENATION",
    conditions="any sizes")
@op("adaptive_max_pool2d", shape=adaptive_shape, float_ok=True, same_grid=True,
    reads={"pt2": ("aten.adaptive_max_pool2d.default",)},
    attrs="output_size[2] (float in PyTorch: no quantized kernel)",
    circle="MAX_POOL_2D on the input's grid, the same window rule as adaptive_avg_pool2d",
    conditions="`.pt2`: PyTorch has no quantized kernel, the program runs it on dequantized values; indices "
               "unused")
def lower_adaptive_pool2d(ctx, op):
    """PyTorch's windows (start floor(i*in/out), end ceil((i+1)*in/out)) as one pooling op when
    they are one size one stride apart (10 -> 3: kernel 4, stride 3), else exactly per window
    length (pool_window.adaptive_pool)."""
    kind = "AVERAGE_POOL_2D" if op.kind == "adaptive_avg_pool2d" else "MAX_POOL_2D"
    x = ctx.value(op.inputs[0])
    ctx.define(op.outputs[0], adaptive_pool(ctx, op, x, ctx.like(op.outputs[0]), kind))


def mean_shape(op):
    x = op.inputs[0]
    dims = [d % len(x.shape) for d in op.attrs["dims"]]
    if op.attrs["keepdim"]:
        return tuple(1 if i in dims else s for i, s in enumerate(x.shape))
    return tuple(s for i, s in enumerate(x.shape) if i not in dims)


def _onert_takes_mean(kept, out_rank):
    """onert 0.1.0's ShapeValidator refuses a 4-D MEAN to rank 2 unless it keeps axes 0 and 3, and
    to rank 3 unless it keeps axes 0, 1, 2 (it assumes NHWC: "reducing H, W" / "reducing C")."""
    return {2: [0, 3], 3: [0, 1, 2]}.get(out_rank, kept) == kept


def _mean_on_nhwc(dims, out_rank):
    """Whether a 4-D mean to a lower rank can reduce the NHWC tensor itself: only where the kept
    dims come out in PyTorch's order (not N, C, H), and preferring the layout onert accepts
    (mean over H, W -> N, C, ShuffleNetV2's ``x.mean([2, 3])``, works on NHWC only; over C, H
    -> N, W on NCHW only)."""
    kept = [d for d in range(4) if d not in dims]
    kept_nhwc = [nhwc_axis(d, 4) for d in kept]
    if kept_nhwc != sorted(kept_nhwc):
        return False
    return _onert_takes_mean(kept_nhwc, out_rank) or not _onert_takes_mean(kept, out_rank)


@op("mean", shape=mean_shape, float_ok=True, reads={"torchscript": ("aten::mean",), "pt2": ("aten.mean.dim",)},
    attrs="dims (list), keepdim",
    circle="MEAN (keepDims + RESHAPE where onert refuses the rank change)",
    conditions="any sizes")
def lower_mean(ctx, op):
    src_x = op.inputs[0]
    rank = len(src_x.shape)
    dims = sorted(d % rank for d in op.attrs["dims"])
    out = op.outputs[0]
    keep = op.attrs["keepdim"]
    if rank == 4 and len(out.shape) != 4 and not _mean_on_nhwc(dims, len(out.shape)):
        # a 4-D input reduced to another rank: reduce in PyTorch's order so the result needs no layout
        x = ctx.nchw(src_x)
        axes = dims
    else:
        x = ctx.value(src_x)
        axes = sorted(nhwc_axis(d, rank) for d in dims)
    y = ctx.like(out) if len(out.shape) == 4 else ctx.like(out, shape=tuple(out.shape))
    kept = [i for i in range(rank) if i not in axes]
    if rank == 4 and len(out.shape) != 4 and not _onert_takes_mean(kept, len(out.shape)):
        # onert refuses this rank change: MEAN keeping the dims, then RESHAPE (same grid, exact)
        full = tuple(1 if i in axes else s for i, s in enumerate(x.shape))
        kept_t = ctx.like(out, name=op.name + "/keepdims", shape=full)
        ctx.emit("MEAN", [x, ctx.const(op.name + "/axes", np.array(axes, np.int32))], [kept_t], {"keepDims": True},
                 op.name + "/keepdims")
        ctx.reshape(kept_t, out.shape, op.name, out=y)
    else:
        ctx.emit("MEAN", [x, ctx.const(op.name + "/axes", np.array(axes, np.int32))], [y], {"keepDims": keep}, op.name)
    ctx.define(out, y)
