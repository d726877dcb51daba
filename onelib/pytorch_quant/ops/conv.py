"""conv2d (ordinary, depthwise, grouped) and linear."""
import numpy as np

from ..circle.vocab import ACT, SAME, VALID
from ..errors import ConversionError
from ..ir import QParams, Tensor
from .declare import op
from .quant import fit_bias_of_dead_channels, model_weight, quantize_bias


def conv_out(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def conv2d_shape(op):
    x, w = op.inputs[0], op.inputs[1]
    a = op.attrs
    hw = [conv_out(x.shape[2 + i], w.shape[2 + i], a["stride"][i], a["padding"][i], a["dilation"][i])
          for i in range(2)]
    return (x.shape[0], w.shape[0], hw[0], hw[1])


def window_padding(ctx, x, src_name, kernel, stride, padding, dilation, fill="zero_point", extra_end=(0, 0),
                   allow_same=True):
    """Express PyTorch's symmetric padding the circle way.

    SAME when TFLite's SAME gives the same windows (same output size and same leading pad), VALID
    when there is none, otherwise an explicit PAD (quantized PAD fills with the zero point, i.e. a
    real 0) or, for another fill code (max pooling pads with the lowest code), ``pad_with``; then VALID.
    ``allow_same=False`` always pads explicitly: SAME average pooling leaves the padding out of
    its count, so count_include_pad needs the padded zeros as real elements.
    Returns (tensor to feed, padding enum).
    """
    n = ctx_hw(x)
    if padding == [0, 0] and extra_end == (0, 0):
        return x, VALID
    same = allow_same
    for i in range(2):
        eff = dilation[i] * (kernel[i] - 1) + 1
        t_out = (n[i] + 2 * padding[i] + extra_end[i] - eff) // stride[i] + 1
        s_out = -(-n[i] // stride[i])
        total = max((s_out - 1) * stride[i] + eff - n[i], 0)
        if t_out != s_out or total // 2 != padding[i]:
            same = False
    if same:
        return x, SAME
    pads = np.array([[0, 0], [padding[0], padding[0] + extra_end[0]],
                     [padding[1], padding[1] + extra_end[1]], [0, 0]], np.int32)
    shape = (x.shape[0], x.shape[1] + pads[1].sum(), x.shape[2] + pads[2].sum(), x.shape[3])
    return pad_with(ctx, x, pads, fill, src_name + "/pad"), VALID


def pad_with(ctx, x, pads, fill, name):
    """``x`` padded by ``pads`` ([rank, 2] before/after) with ``fill``: "zero_point" (a real 0), or
    one code of a quantized ``x`` (or a float for a float ``x``).

    A quantized PAD fills with the zero point. Any other code is written as CONCATENATION with
    constant blocks of that code on ``x``'s grid, not PADV2: luci's fake quantization and
    circle2circle's O1 passes refuse a uint8 PADV2 (docs/one-tools-measured.md), and a
    concatenation on one grid moves codes unchanged. A float PADV2 is what luci substitutes itself.
    """
    pads = np.asarray(pads, np.int32)
    shape = tuple(int(d) + int(p.sum()) for d, p in zip(x.shape, pads))
    q = x.qparams
    if fill == "zero_point" or (q is not None and int(fill) == int(q.zero_point[0])):
        out = Tensor(name, shape, x.dtype, q.copy() if q is not None else None)
        ctx.emit("PAD", [x, ctx.const(name + "/paddings", pads)], [out], {}, name)
        return out
    if q is None:
        out = Tensor(name, shape, x.dtype, None)
        fillv = ctx.const(name + "/pad_value", np.array([fill], dtype=x.dtype))
        ctx.emit("PADV2", [x, ctx.const(name + "/paddings", pads), fillv], [out], {}, name)
        return out
    cur = x
    for axis in range(len(x.shape)):
        before, after = int(pads[axis][0]), int(pads[axis][1])
        if before == 0 and after == 0:
            continue
        parts = []
        for tag, n in (("before", before), ("after", after)):
            if n:
                block = list(cur.shape)
                block[axis] = n
                parts.append((tag, ctx.const("%s/fill_%d_%s" % (name, axis, tag),
                                             np.full(block, int(fill), x.dtype), q.copy())))
        ins = [p for t, p in parts if t == "before"] + [cur] + [p for t, p in parts if t == "after"]
        oshape = list(cur.shape)
        oshape[axis] += before + after
        last = axis == max(a for a in range(len(x.shape)) if pads[a].any())
        out = Tensor(name if last else "%s/axis%d" % (name, axis), oshape, x.dtype, q.copy())
        ctx.emit("CONCATENATION", ins, [out], {"axis": axis, "fusedActivationFunction": 0},
                 name if last else "%s/axis%d" % (name, axis))
        cur = out
    return cur


def ctx_hw(x):
    return [x.shape[1], x.shape[2]]


def float_weight(w):
    """The real values of a quantized weight, for ops a partly quantized graph keeps in float."""
    if w.qparams is None:
        return w.data.astype(np.float32)
    q = w.qparams
    shape = [1] * w.data.ndim
    shape[q.axis if not q.per_tensor else 0] = -1
    scale = q.scale.astype(np.float32).reshape(shape)
    zp = q.zero_point.reshape(shape)
    return ((w.data.astype(np.int64) - zp).astype(np.float32) * scale).astype(np.float32)


def float_bias(b, n_out, name):
    if b is None:
        return Tensor(name, (n_out,), "float32", None, np.zeros(n_out, np.float32))
    data = float_weight(b) if b.qparams is not None else b.data.astype(np.float32)
    return Tensor(name, data.shape, "float32", None, data)


def _float_conv_inputs(op, w, b):
    """Weight and bias of a conv/linear that stays float: dequantized PyTorch integers, no qparams."""
    wf = float_weight(w)
    return (Tensor(op.name + ".weight", wf.shape, "float32", None, wf),
            float_bias(b, w.shape[0], op.name + ".bias"))


@op("conv2d", shape=conv2d_shape, float_ok=True, reads={
        "torchscript": ("quantized::conv2d", "quantized::conv2d_relu"),
        "pt2": ("aten.conv2d.default", "aten.convolution.default")},
    inputs="x, weight (int8/uint8 OIHW, QParams axis 0 or per-tensor), bias (float32 [O] const, int32 const "
           "with qparams, or None)",
    attrs="stride[2], padding[2], dilation[2], groups, act (None | \"relu\")",
    circle="CONV_2D; DEPTHWISE_CONV_2D when groups = in channels; grouped: SPLIT → CONV_2D per group → "
           "CONCATENATION",
    conditions="padding: SAME/VALID or PAD")
def lower_conv2d(ctx, op):
    src_x, w, b = op.inputs[0], op.inputs[1], op.inputs[2]
    a = op.attrs
    x = ctx.value(src_x)
    out_src = op.outputs[0]
    groups = a["groups"]
    in_ch, out_ch = x.shape[3], w.shape[0]
    x, pad = window_padding(ctx, x, op.name, [w.shape[2], w.shape[3]], a["stride"], a["padding"], a["dilation"])
    act_dtype = src_x.dtype
    if src_x.qparams is None:
        weight, fbias = _float_conv_inputs(op, w, b)
        b = fbias
    elif w.qparams is None:
        raise ConversionError("%s: conv2d weight is not quantized but its input is" % op.name)
    else:
        w = fit_bias_of_dead_channels(w, b, src_x.qparams, act_dtype)
        weight = model_weight(w, act_dtype, op.name + ".weight")
    common = {"padding": pad, "strideW": a["stride"][1], "strideH": a["stride"][0],
              "dilationWFactor": a["dilation"][1], "dilationHFactor": a["dilation"][0],
              "fusedActivationFunction": ACT[a.get("act")]}
    y = ctx.like(out_src)
    if groups == 1:
        wt = ctx.const(weight.name, weight.data.transpose(0, 2, 3, 1), weight.qparams)   # OIHW -> OHWI
        bias = _bias(b, src_x, w, out_ch, op.name + ".bias")
        ctx.emit("CONV_2D", [x, wt, bias], [y], common, op.name)
    elif groups == in_ch:
        # depthwise: torch [C*m, 1, kh, kw] -> circle [1, kh, kw, C*m], channel axis 3
        q = weight.qparams.copy(axis=3) if weight.qparams is not None else None
        wt = ctx.const(weight.name, weight.data.transpose(1, 2, 3, 0), q)
        bias = _bias(b, src_x, w, out_ch, op.name + ".bias")
        attrs = dict(common, depthMultiplier=out_ch // in_ch)
        ctx.emit("DEPTHWISE_CONV_2D", [x, wt, bias], [y], attrs, op.name)
    else:
        _grouped_conv(ctx, op, x, weight, b, src_x, common, y, groups)
    ctx.define(out_src, y)


def _bias(b, src_x, w, n_out, name):
    if src_x.qparams is None:
        return b  # already the float bias
    return quantize_bias(b, src_x.qparams, w.qparams, src_x.dtype, n_out, name)


def _grouped_conv(ctx, op, x, weight, b, src_x, common, y, groups):
    """Grouped conv as SPLIT -> one CONV_2D per group -> CONCATENATION.

    Every group's conv writes the conv's own output qparams, so the concatenation moves bytes only.
    """
    in_ch, out_ch = x.shape[3], weight.shape[0]
    gi, go = in_ch // groups, out_ch // groups
    parts = [Tensor("%s/group%d/in" % (op.name, g), x.shape[:3] + (gi,), x.dtype,
                    x.qparams.copy() if x.qparams is not None else None) for g in range(groups)]
    ctx.emit("SPLIT", [ctx.const(op.name + "/split_axis", np.array(3, np.int32)), x], parts,
             {"numSplits": groups}, op.name + "/split")
    outs = []
    wq = weight.qparams
    for g in range(groups):
        sl = slice(g * go, (g + 1) * go)
        if wq is None or wq.per_tensor:
            q = wq.copy() if wq is not None else None
        else:
            q = QParams(wq.scale[sl], wq.zero_point[sl], 0)
        wt = ctx.const("%s.weight/group%d" % (op.name, g), weight.data[sl].transpose(0, 2, 3, 1), q)
        bg = None
        if b is not None:
            bg = Tensor(b.name, (go,), b.dtype, b.qparams, b.data[sl])
        if src_x.qparams is None:
            bias = bg
        else:
            bias = quantize_bias(bg, src_x.qparams, q, src_x.dtype, go, "%s.bias/group%d" % (op.name, g))
        yg = Tensor("%s/group%d" % (op.name, g), y.shape[:3] + (go,), y.dtype,
                    y.qparams.copy() if y.qparams is not None else None)
        ctx.emit("CONV_2D", [parts[g], wt, bias], [yg], common, "%s/group%d" % (op.name, g))
        outs.append(yg)
    ctx.emit("CONCATENATION", outs, [y], {"axis": 3, "fusedActivationFunction": 0}, op.name)


def linear_shape(op):
    x, w = op.inputs[0], op.inputs[1]
    if x.shape[-1] != w.shape[1]:
        raise ConversionError("linear %s: input has %d features, weight expects %d" % (op.name, x.shape[-1], w.shape[1]))
    return tuple(x.shape[:-1]) + (w.shape[0],)


@op("linear", shape=linear_shape, float_ok=True, reads={
        "torchscript": ("quantized::linear", "quantized::linear_relu", "aten::linear"),
        "pt2": ("aten.linear.default",)},
    inputs="x, weight [O, I], bias", attrs="act",
    circle="FULLY_CONNECTED; `--profile onert`: RESHAPE + CONV_2D + RESHAPE (per-channel weights); 3-D input: "
           "+ RESHAPE",
    onert="yes (per-channel: with `--profile onert`)")
def lower_linear(ctx, op):
    src_x, w, b = op.inputs[0], op.inputs[1], op.inputs[2]
    x = ctx.value(src_x)
    if len(src_x.shape) == 4:
        x = ctx.nchw(src_x)  # linear acts on PyTorch's last dim
    out_src = op.outputs[0]
    act_dtype = src_x.dtype
    if src_x.qparams is None:
        weight, bias = _float_conv_inputs(op, w, b)
        wt = ctx.const(weight.name, weight.data)
    else:
        w = fit_bias_of_dead_channels(w, b, src_x.qparams, act_dtype)
        weight = model_weight(w, act_dtype, op.name + ".weight")
        wt = ctx.const(weight.name, weight.data, weight.qparams.copy(axis=0))
        bias = quantize_bias(b, src_x.qparams, w.qparams, act_dtype, w.shape[0], op.name + ".bias")
    y = ctx.like(out_src, shape=tuple(out_src.shape)) if len(out_src.shape) == 4 else ctx.like(out_src)
    fc_attrs = {"fusedActivationFunction": ACT[op.attrs.get("act")], "keepNumDims": False}
    if len(src_x.shape) > 2:
        # a 3-D+ input: FULLY_CONNECTED on the [rows, I] view, then RESHAPE to [..., O]. Not
        # keepNumDims: onert 0.1.0 ignores it and returns [rows, O] for a 3-D input (measured).
        rows = int(np.prod(out_src.shape[:-1]))
        flat = ctx.like(out_src, name=op.name + "/2d", shape=(rows, out_src.shape[-1]))
        ctx.emit("FULLY_CONNECTED", [x, wt, bias], [flat], fc_attrs, op.name + "/2d")
        ctx.reshape(flat, out_src.shape, op.name, out=y)
    else:
        ctx.emit("FULLY_CONNECTED", [x, wt, bias], [y], fc_attrs, op.name)
    ctx.from_nchw(out_src, y) if len(out_src.shape) == 4 else ctx.define(out_src, y)
