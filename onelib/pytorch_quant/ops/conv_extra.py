"""conv_transpose2d, conv1d and a standalone batch_norm2d.

conv1d and batch_norm2d are expressed with the conv2d lowering (ops/conv.py), so they get the
same weight and bias rules (uint8 weights by the exact +128 shift, bias scale in*w in float32).
"""
import numpy as np

from ..errors import ConversionError
from ..circle.vocab import ACT, INT_RANGE, VALID
from ..ir import Op, QParams, Tensor
from .conv import conv_out, lower_conv2d
from .declare import op, same_shape
from .quant import model_weight, quantize_bias


# ------------------------------------------------------------------------------- conv1d
def conv1d_shape(op):
    x, w = op.inputs[0], op.inputs[1]
    a = op.attrs
    if len(x.shape) != 3:
        raise ConversionError("conv1d %s: input of rank %d (expected [N, C, L])" % (op.name, len(x.shape)))
    n_out = conv_out(x.shape[2], w.shape[3], a["stride"][1], a["padding"][1], a["dilation"][1])
    return (x.shape[0], w.shape[0], n_out)


@op("conv1d", shape=conv1d_shape, reads={
        "torchscript": ("quantized::conv1d", "quantized::conv1d_relu"), "pt2": ("aten.conv1d.default",)},
    inputs="x [N, C, L], weight [O, I/g, 1, k] (PyTorch packs conv1d as 2-D), bias",
    attrs="stride, padding, dilation as PyTorch packs them ([1, s], [0, p], [1, d]), groups, act",
    circle="TRANSPOSE → RESHAPE → CONV_2D / DEPTHWISE_CONV_2D → RESHAPE → TRANSPOSE")
def lower_conv1d(ctx, op):
    """conv1d as a conv2d over a map of height 1, which is how PyTorch packs it: [N, C, L] ->
    TRANSPOSE [N, L, C] -> RESHAPE [N, 1, L, C] (NHWC) -> CONV_2D -> RESHAPE/TRANSPOSE back."""
    src, w, b = op.inputs
    out = op.outputs[0]
    n, c, length = src.shape
    x = ctx.value(src)
    x_nlc = ctx.transpose(x, (0, 2, 1), op.name + "/nlc")
    x4 = ctx.reshape(x_nlc, (n, 1, length, c), op.name + "/as_2d")
    src4 = Tensor(src.name + "/2d", (n, c, 1, length), src.dtype, src.qparams)
    ctx.define(src4, x4)
    o, lout = out.shape[1], out.shape[2]
    out4 = Tensor(op.name + "/2d", (n, o, 1, lout), out.dtype, out.qparams.copy() if out.qparams is not None else None)
    lower_conv2d(ctx, Op("conv2d", [src4, w, b], [out4], dict(op.attrs), op.name))
    y4 = ctx.value(out4)     # NHWC [N, 1, Lout, O]
    y_nlc = ctx.reshape(y4, (n, lout, o), op.name + "/nlc_out")
    ctx.define(out, ctx.transpose(y_nlc, (0, 2, 1), op.name))


# ------------------------------------------------------------------------------- conv_transpose2d
def conv_transpose2d_shape(op):
    x, w = op.inputs[0], op.inputs[1]
    a = op.attrs
    hw = [(x.shape[2 + i] - 1) * a["stride"][i] - 2 * a["padding"][i] + a["dilation"][i] * (w.shape[2 + i] - 1)
          + a["output_padding"][i] + 1 for i in range(2)]
    return (x.shape[0], w.shape[1] * a["groups"], hw[0], hw[1])


@op("conv_transpose2d", shape=conv_transpose2d_shape, reads={"torchscript": ("quantized::conv_transpose2d",)},
    inputs="x, weight ([I, O/g, kh, kw] as PyTorch stores it), bias",
    attrs="stride, padding, output_padding, dilation, groups, act",
    circle="TRANSPOSE_CONV (+ SLICE crop); groups: SPLIT → TRANSPOSE_CONV per group → CONCATENATION; dilation: "
           "the kernel spread with the weight zero point; output_padding > padding: zero-point PAD after the input",
    onert="**no** (TICO)")
def lower_conv_transpose2d(ctx, op):
    """TRANSPOSE_CONV with VALID padding gives the full output ((in - 1) * stride + k); PyTorch's
    output is the window [padding, padding + out) of it, taken with SLICE (which keeps the grid).

    The weight [I, O, kh, kw] becomes circle's [O, kh, kw, I]; per-channel weights (on PyTorch's
    output-channel axis 1) keep one scale per output channel, on circle axis 0. The bias is the
    op's 4th input, int32 on scale in * w, as luci requires for TransposeConv.

    What TRANSPOSE_CONV has no attribute for is expressed exactly:
    * dilation: the kernel spread out with the weight zero point (a real 0) between the taps;
    * output_padding beyond padding: rows and columns past the full output, where PyTorch adds
      only the bias, come from zero-point rows padded after the input (they contribute 0);
    * groups: SPLIT of the input channels, one TRANSPOSE_CONV per group, CONCATENATION (every
      group writes the op's output grid, so the concatenation moves codes only).
    """
    src, w, b = op.inputs
    a = op.attrs
    out = op.outputs[0]
    x = ctx.value(src)
    if src.qparams is None or w.qparams is None:
        raise ConversionError("%s: conv_transpose2d needs quantized input and weight" % op.name)
    wq = w.qparams
    if not wq.per_tensor and wq.axis != 1:
        raise ConversionError("%s: conv_transpose2d weight quantized per channel on axis %d (circle needs the "
                              "output-channel axis)" % (op.name, wq.axis))
    w = _dilated_weight(w, a["dilation"])
    groups = a["groups"]
    stride, pad = a["stride"], a["padding"]
    k = [w.shape[2], w.shape[3]]
    # zero-point rows after the input so the full output reaches PyTorch's last row
    extra = [max(0, -(-(a["output_padding"][i] - pad[i]) // stride[i])) for i in range(2)]
    if extra != [0, 0]:
        pads = np.array([[0, 0], [0, extra[0]], [0, extra[1]], [0, 0]], np.int32)
        padded = Tensor(op.name + "/pad", (x.shape[0], x.shape[1] + extra[0], x.shape[2] + extra[1], x.shape[3]),
                        x.dtype, x.qparams.copy())
        ctx.emit("PAD", [x, ctx.const(op.name + "/paddings", pads)], [padded], {}, op.name + "/pad")
        x = padded
    n, h, wd, c_in = x.shape
    full = [(h - 1) * stride[0] + k[0], (wd - 1) * stride[1] + k[1]]
    final_hw = [out.shape[2], out.shape[3]]
    n_out = out.shape[1]
    crop = full != final_hw
    y = ctx.like(out)
    yt = y if not crop else ctx.like(out, name=op.name + "/full", shape=(n, full[0], full[1], n_out))
    attrs = {"padding": VALID, "strideW": stride[1], "strideH": stride[0], "fusedActivationFunction": ACT[a.get("act")]}
    if groups == 1:
        _transpose_conv(ctx, op.name if not crop else op.name + "/full", x, w, b, src, yt, attrs)
    else:
        gi, go = c_in // groups, n_out // groups
        parts = [Tensor("%s/group%d/in" % (op.name, g), (n, h, wd, gi), x.dtype, x.qparams.copy())
                 for g in range(groups)]
        ctx.emit("SPLIT", [ctx.const(op.name + "/split_axis", np.array(3, np.int32)), x], parts,
                 {"numSplits": groups}, op.name + "/split")
        outs = []
        for g in range(groups):
            wg_q = wq if wq.per_tensor or wq.scale.size == go else \
                QParams(wq.scale[g * go:(g + 1) * go], wq.zero_point[g * go:(g + 1) * go], 1)
            wg = Tensor("%s.weight/group%d" % (op.name, g), (gi,) + tuple(w.shape[1:]), w.dtype, wg_q,
                        w.data[g * gi:(g + 1) * gi])
            bg = None if b is None else Tensor("%s.bias/group%d" % (op.name, g), (go,), b.dtype, b.qparams,
                                               b.data[g * go:(g + 1) * go])
            yg = Tensor("%s/group%d" % (op.name, g), (n, full[0], full[1], go), yt.dtype, yt.qparams.copy())
            _transpose_conv(ctx, "%s/group%d" % (op.name, g), parts[g], wg, bg, src, yg, attrs)
            outs.append(yg)
        ctx.emit("CONCATENATION", outs, [yt], {"axis": 3, "fusedActivationFunction": 0},
                 op.name if not crop else op.name + "/full")
    if crop:
        begin = ctx.const(op.name + "/begin", np.array([0, pad[0], pad[1], 0], np.int32))
        size = ctx.const(op.name + "/size", np.array([n, final_hw[0], final_hw[1], n_out], np.int32))
        ctx.emit("SLICE", [yt, begin, size], [y], {}, op.name)
    ctx.define(out, y)


def _transpose_conv(ctx, name, x, w, b, src, y, attrs):
    """One TRANSPOSE_CONV of source weight ``w`` [I, O, kh, kw] (int8/uint8 with qparams) into ``y``."""
    wq = w.qparams
    weight = model_weight(w, src.dtype, name + ".weight")
    wt = ctx.const(weight.name, weight.data.transpose(1, 2, 3, 0), weight.qparams.copy(axis=0))
    n_out = w.shape[1]
    bias = quantize_bias(b, src.qparams, QParams(wq.scale, wq.zero_point, 0), src.dtype, n_out, name + ".bias")
    out_shape = ctx.const(name + "/output_shape", np.array(y.shape, np.int32))
    ctx.emit("TRANSPOSE_CONV", [out_shape, wt, x, bias], [y], attrs, name)


def _dilated_weight(w, dilation):
    """The kernel of a dilated transposed conv as an undilated one: taps d apart, the weight's
    zero point (a real 0) between them."""
    if list(dilation) == [1, 1]:
        return w
    kh, kw = w.shape[2], w.shape[3]
    big = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    q = w.qparams
    data = np.empty(tuple(w.shape[:2]) + big, w.data.dtype)
    if q.per_tensor:
        data[...] = q.zero_point[0]
    else:
        shape = [1, 1, 1, 1]
        shape[q.axis] = -1
        data[...] = q.zero_point.reshape(shape)
    data[:, :, ::dilation[0], ::dilation[1]] = w.data
    return Tensor(w.name, data.shape, w.dtype, q, data)


# ------------------------------------------------------------------------------- batch_norm2d
@op("batch_norm2d", shape=same_shape,
    reads={"torchscript": ("quantized::batch_norm2d", "quantized::batch_norm2d_relu")},
    inputs="x, weight, bias, running_mean, running_var (float32 [C] consts)", attrs="eps, act",
    circle="1×1 DEPTHWISE_CONV_2D", conditions="bias fits int32")
def lower_batch_norm2d(ctx, op):
    """A standalone quantized BatchNorm2d as a 1x1 DEPTHWISE_CONV_2D that computes it exactly.

    PyTorch computes, in float32, alpha[c] = weight[c] / sqrt(var[c] + eps) and
    beta[c] = bias[c] - mean[c] * alpha[c], then y = round((s_in * (x - zp_in) * alpha + beta) / s_out)
    + zp_out. A depthwise conv with weight code +-127 on scale |alpha[c]| / 127 (so the real weight
    is alpha[c] to float32 precision) and bias beta[c] on scale s_in * |alpha[c]| / 127 computes the
    same expression; the only extra error is the int32 rounding of the bias, at most
    0.5 * (s_in * |alpha| / s_out) / 127 of an output step. The result is within 1 LSB of PyTorch
    (rounding ties) and runs on onert's per-channel uint8 depthwise kernel.
    """
    src = op.inputs[0]
    weight, bias, mean, var = [t.data.astype(np.float32) for t in op.inputs[1:5]]
    eps = np.float32(op.attrs["eps"])
    if src.qparams is None:
        raise ConversionError("%s: batch_norm2d on a float tensor is not supported" % op.name)
    c = src.shape[1]
    inv_sigma = (np.float32(1.0) / np.sqrt(var + eps)).astype(np.float32)
    alpha = (weight * inv_sigma).astype(np.float32)
    beta = (bias - mean * alpha).astype(np.float32)
    mag = np.abs(alpha)
    scale = np.where(mag > 0, mag / np.float32(127.0), np.float32(1.0)).astype(np.float32)
    codes = np.where(alpha > 0, 127, np.where(alpha < 0, -127, 0)).astype(np.int8)
    wq = QParams(scale, np.zeros(c, np.int64), 0)
    w = Tensor(op.name + ".weight", (c, 1, 1, 1), "int8", wq, codes.reshape(c, 1, 1, 1))
    b = Tensor(op.name + ".bias", (c,), "float32", None, beta)
    bias_step = np.float64(np.float32(src.qparams.scale[0])) * scale.astype(np.float64)
    hi = INT_RANGE["int32"][1]
    if np.any(np.abs(np.round(beta.astype(np.float64) / bias_step)) > hi):
        raise ConversionError("%s: batch_norm2d bias does not fit an int32 on scale s_in * |gamma / sigma| / 127 "
                              "(a channel with a near-zero gamma and a large beta)" % op.name)
    attrs = {"stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": c, "act": op.attrs.get("act")}
    lower_conv2d(ctx, Op("conv2d", [src, w, b], list(op.outputs), attrs, op.name))
