"""upsample (F.interpolate: nearest, nearest-exact, bilinear with or without align_corners).

Quantized interpolation keeps the input's qparams in PyTorch, and circle's RESIZE_* ops require
the same, so the output shares the input's grid.

Which source pixel an output pixel reads is decided by a scale. PyTorch uses 1/scale_factor when
the model gave a scale factor (and no ``recompute_scale_factor``), else in/out; TFLite's (and
circle's) kernels always use in/out. They agree for integer scale factors and for explicit sizes.

* nearest / nearest-exact: PyTorch's index table is computed here exactly as PyTorch does
  (float32 arithmetic, including its 2x shortcut) and compared with the table
  RESIZE_NEAREST_NEIGHBOR produces (alignCorners False; halfPixelCenters True for nearest-exact).
  When they agree the circle op is emitted (luci profile), otherwise, and always with the onert
  profile, two GATHERs with PyTorch's table (exact for every scale).
* bilinear: RESIZE_BILINEAR with alignCorners = align_corners and halfPixelCenters = not
  align_corners (PyTorch's (dst + 0.5) * scale - 0.5, clamped at 0, is TFLite's half-pixel rule).
  A scale factor whose 1/scale differs from in/out has no circle equivalent and is refused.
"""
import math

import numpy as np

from ..errors import ConversionError
from .declare import op


def _out_sizes(op):
    x = op.inputs[0]
    a = op.attrs
    if a.get("size"):
        return [int(v) for v in a["size"]]
    return [int(math.floor(x.shape[2 + i] * float(a["scales"][i]))) for i in range(2)]


def upsample_shape(op):
    x = op.inputs[0]
    if len(x.shape) != 4:
        raise ConversionError("%s: interpolate of a %d-D tensor (only 4-D is supported)" % (op.name, len(x.shape)))
    oh, ow = _out_sizes(op)
    return (x.shape[0], x.shape[1], oh, ow)


def _torch_scale(n_in, n_out, scale_factor):
    """PyTorch's compute_scales_value: 1/scale_factor when given (> 0), else in/out, as float32."""
    if scale_factor is not None and scale_factor > 0:
        return np.float32(1.0 / float(scale_factor))
    return np.float32(n_in) / np.float32(n_out)


def torch_nearest_index(n_in, n_out, scale_factor, exact):
    if not exact and n_out == n_in:
        return np.arange(n_out)
    if not exact and n_out == 2 * n_in:
        return np.arange(n_out) >> 1
    s = _torch_scale(n_in, n_out, scale_factor)
    dst = np.arange(n_out, dtype=np.float32)
    src = np.floor((dst + np.float32(0.5)) * s) if exact else np.floor(dst * s)
    return np.minimum(src.astype(np.int64), n_in - 1)


def circle_nearest_index(n_in, n_out, half_pixel):
    s = np.float32(n_in) / np.float32(n_out)
    dst = np.arange(n_out, dtype=np.float32)
    src = np.floor((dst + np.float32(0.5)) * s) if half_pixel else np.floor(dst * s)
    return np.minimum(src.astype(np.int64), n_in - 1)


@op("upsample", shape=upsample_shape, float_ok=True, same_grid=True, reads={
        "torchscript": ("aten::upsample_nearest2d", "aten::upsample_bilinear2d", "aten::_upsample_nearest_exact2d"),
        "pt2": ("aten.upsample_bilinear2d.vec", "aten.upsample_nearest2d.vec", "aten._upsample_nearest_exact2d.vec",
                "aten.upsample_bilinear2d.default", "aten.upsample_nearest2d.default")},
    attrs="mode (\"nearest\" | \"nearest_exact\" | \"bilinear\"), size[2] or None, scales[2] or None, "
          "align_corners",
    circle="nearest: RESIZE_NEAREST_NEIGHBOR; GATHER on H and W for other scales, and always with `--profile "
           "onert`; bilinear: RESIZE_BILINEAR (align_corners / half_pixel_centers as PyTorch)",
    conditions="bilinear: 1/scale = in/out", onert="onert profile (GATHER)")
def lower_upsample(ctx, op):
    src, out = op.inputs[0], op.outputs[0]
    a = op.attrs
    x = ctx.value(src)
    n_in = [src.shape[2], src.shape[3]]
    n_out = [out.shape[2], out.shape[3]]
    scales = a.get("scales") if not a.get("size") else None
    scales = list(scales) if scales else [None, None]
    size = ctx.const(op.name + "/size", np.array(n_out, np.int32))
    y = ctx.like(out, qparams=x.qparams)
    mode = a["mode"]
    if mode in ("nearest", "nearest_exact"):
        exact = mode == "nearest_exact"
        tables = [torch_nearest_index(n_in[i], n_out[i], scales[i], exact) for i in range(2)]
        # the onert profile always takes the GATHERs: onert 0.1.0 has no RESIZE_NEAREST_NEIGHBOR
        # and luci-interpreter's uint8 one ignores half-pixel centres (119 LSB on nearest-exact)
        if ctx.options.profile == "luci" and \
                all(np.array_equal(tables[i], circle_nearest_index(n_in[i], n_out[i], exact)) for i in range(2)):
            ctx.emit("RESIZE_NEAREST_NEIGHBOR", [x, size], [y],
                     {"alignCorners": False, "halfPixelCenters": exact}, op.name)
        else:
            _gather_resize(ctx, op, x, tables, y)
    elif mode == "bilinear":
        align = bool(a.get("align_corners"))
        if not align:
            for i in range(2):
                if _torch_scale(n_in[i], n_out[i], scales[i]) != np.float32(n_in[i]) / np.float32(n_out[i]):
                    raise ConversionError(
                        "%s: bilinear interpolate with scale factor %s maps %d -> %d pixels with 1/%s, "
                        "which circle's RESIZE_BILINEAR (in/out) cannot express; give size= or "
                        "recompute_scale_factor=True" % (op.name, scales[i], n_in[i], n_out[i], scales[i]))
        ctx.emit("RESIZE_BILINEAR", [x, size], [y], {"alignCorners": align, "halfPixelCenters": not align}, op.name)
    else:
        raise ConversionError("%s: interpolate mode %s is not supported" % (op.name, mode))
    ctx.define(out, y)


def _gather_resize(ctx, op, x, tables, y):
    """Nearest resize as GATHER along H, then along W, with PyTorch's own index tables."""
    n, h, w, c = x.shape
    mid = ctx.like(op.outputs[0], name=op.name + "/rows", shape=(n, len(tables[0]), w, c), qparams=x.qparams)
    ctx.emit("GATHER", [x, ctx.const(op.name + "/row_index", tables[0].astype(np.int32))], [mid],
             {"axis": 1, "batchDims": 0}, op.name + "/rows")
    ctx.emit("GATHER", [mid, ctx.const(op.name + "/col_index", tables[1].astype(np.int32))], [y],
             {"axis": 2, "batchDims": 0}, op.name)
