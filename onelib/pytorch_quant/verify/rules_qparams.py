"""luci's qparam rules: granularity and completeness, bias scale, shared and fixed qparams."""

from .model import (
    BIAS_DTYPE, ERROR, INT16, INT32, INT64, INT8, MODEL_Q, QUANT_INT,
    UINT8, WARNING, _conv_operands, _is_island, _producer, dtype_name, issue, rule)


# --------------------------------------------------------------------------------------------
# qparam shape rules (luci VerifyQuantizedNodeGranularity, CircleReader, §5.4, §5.8)

# ops whose constant operands are activations to luci too (must be per-tensor)
_ELEMENTWISE = {"ADD", "SUB", "MUL", "DIV", "POW", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE",
                "CONCATENATION", "PACK"}


@rule("per_tensor_activation", ERROR)
def per_tensor_activation(m):
    """Every activation has exactly one scale and one zero point (luci is_lwq)."""
    seen = set()
    for t in m.tensors():
        if not t.const and t.quantized and not t.per_tensor:
            seen.add(id(t))
            where = _producer(t) or (t.consumers[0][0] if t.consumers else None)
            yield issue(where, t, "activation has %d scales and %d zero points; luci needs exactly one "
                        "of each (per-tensor)" % (len(t.scale), len(t.zp)))
    for op in m.ops():
        if op.name in _ELEMENTWISE:
            for t in op.inputs:
                if t is not None and t.const and t.quantized and not t.per_tensor and id(t) not in seen:
                    seen.add(id(t))
                    yield issue(op, t, "constant operand of %s has %d scales; it is an activation to "
                                "luci and must be per-tensor" % (op.name, len(t.scale)))


@rule("qparam_complete", ERROR)
def qparam_complete(m):
    """Every quantized-integer tensor (and every int32/int64 bias) has both scale and zero_point of
    the same length; luci drops a quantization that has scale but no zero_point."""
    biases = set()
    for op in m.ops():
        operands = _conv_operands(op)
        if operands and operands[2] is not None:
            biases.add(id(operands[2]))
    for t in m.tensors():
        needs = t.dtype in QUANT_INT or (t.dtype in (INT32, INT64) and id(t) in biases)
        where = _producer(t) or (t.consumers[0][0] if t.consumers else None)
        kind = "%s%s tensor" % (dtype_name(t.dtype), " bias" if id(t) in biases else "")
        if not t.scale and not t.zp:
            if needs:
                yield issue(where, t, "%s has no quantization parameters (scale and zero_point)" % kind)
            continue
        if not t.zp:
            yield issue(where, t, "%s has a scale but no zero_point; luci drops its quantization" % kind)
            continue
        if not t.scale:
            yield issue(where, t, "%s has a zero_point but no scale" % kind)
            continue
        if len(t.scale) != len(t.zp):
            yield issue(where, t, "%s has %d scales but %d zero points" % (kind, len(t.scale), len(t.zp)))
            continue
        for name, values in (("min", t.min), ("max", t.max)):
            if values and len(values) != len(t.scale):
                yield issue(where, t, "%s has %d %s values for %d scales; leave min/max empty or make "
                            "them the same length" % (kind, len(values), name, len(t.scale)))
        bad = [s for s in t.scale if not (s > 0 and s < float("inf"))]
        if bad:
            yield issue(where, t, "%s has a scale that is not finite and positive: %r" % (kind, bad[0]))
        lo, hi = {UINT8: (0, 255), INT8: (-128, 127), INT16: (0, 0)}.get(t.dtype, (None, None))
        if lo is not None:
            out = [z for z in t.zp if not lo <= z <= hi]
            if out:
                rng = "0 (INT16 is symmetric in luci)" if t.dtype == INT16 else "in [%d, %d]" % (lo, hi)
                yield issue(where, t, "%s has zero_point %d; it must be %s" % (kind, out[0], rng))


@rule("channel_granularity", ERROR)
def channel_granularity(m):
    """Per-channel weights use luci's channel axis (0 for CONV_2D/TRANSPOSE_CONV/FULLY_CONNECTED,
    3 for DEPTHWISE_CONV_2D) with one (scale, zp) per channel; the bias has as many scales as the
    weights. PRELU alpha and INSTANCE_NORM gamma/beta are per-channel on the last axis."""
    for op in m.ops():
        operands = _conv_operands(op)
        if operands is not None:
            _, w, bias, dim = operands
            if w is None or not w.quantized:
                continue
            n = len(w.scale)
            if n > 1:
                if w.qdim != dim:
                    yield issue(op, w, "per-channel weights have quantized_dimension %d; luci needs %d for "
                                "%s" % (w.qdim, dim, op.name))
                elif len(w.shape) <= dim or w.shape[dim] != n:
                    yield issue(op, w, "%d scales but dimension %d of shape %s has %s channels"
                                % (n, dim, w.shape, w.shape[dim] if len(w.shape) > dim else "no"))
            if bias is not None and bias.quantized:
                nb = len(bias.scale)
                if nb != n:
                    yield issue(op, bias, "bias has %d scales but the weights have %d" % (nb, n))
                elif nb > 1 and (bias.qdim != len(bias.shape) - 1 or bias.shape[-1] != nb):
                    yield issue(op, bias, "per-channel bias needs quantized_dimension %d (its last axis) "
                                "of size %d; it has quantized_dimension %d and shape %s"
                                % (len(bias.shape) - 1, nb, bias.qdim, bias.shape))
        elif op.name in ("PRELU", "INSTANCE_NORM"):
            for k in ((1,) if op.name == "PRELU" else (1, 2)):
                t = op.inp(k)
                if t is None or not t.quantized or len(t.scale) == 1:
                    continue
                last = len(t.shape) - 1
                if t.qdim != last or not t.shape or t.shape[-1] != len(t.scale):
                    yield issue(op, t, "per-channel %s operand needs quantized_dimension %d (the last axis) "
                                "with %d channels; it has quantized_dimension %d and shape %s"
                                % (op.name, last, len(t.scale), t.qdim, t.shape))


def weight_granularity(m):
    """'layer', 'channel', or None (no quantized weights) when every weighted op agrees; else
    'mixed'. luci's QuantizedModelVerifier is run in one granularity for a whole model."""
    kinds = set()
    for op in m.ops():
        operands = _conv_operands(op)
        if operands is not None and operands[1] is not None and operands[1].quantized:
            kinds.add("layer" if len(operands[1].scale) == 1 else "channel")
    return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else None)


@rule("one_granularity", ERROR)
def one_granularity(m):
    """Every weight per-tensor (luci's layer granularity) or every weight per-channel (channel
    granularity): luci verifies a model in one mode, so a mix fails either way."""
    if weight_granularity(m) != "mixed":
        return
    per_channel = [op for op in m.ops() if _conv_operands(op) is not None and _conv_operands(op)[1] is not None
                   and _conv_operands(op)[1].quantized and len(_conv_operands(op)[1].scale) > 1]
    per_tensor = [op for op in m.ops() if _conv_operands(op) is not None and _conv_operands(op)[1] is not None
                  and _conv_operands(op)[1].quantized and len(_conv_operands(op)[1].scale) == 1]
    few = per_tensor if len(per_tensor) <= len(per_channel) else per_channel
    yield issue(few[0], _conv_operands(few[0])[1],
                "%d weight(s) are per-channel and %d per-tensor; luci verifies one granularity for the "
                "whole model (write per-tensor weights per-channel with repeated qparams)"
                % (len(per_channel), len(per_tensor)))


# --------------------------------------------------------------------------------------------
# bias, shared and fixed qparams (§5.5, §5.6, §5.3)

@rule("bias_scale", ERROR)
def bias_scale(m):
    """Conv-like bias: dtype S32 (U8 model) / S64 (S16), zero points 0, one consumer, and
    |bias_scale[i] - float32(input_scale) * float32(weight_scale[i])| < 1e-10, the product taken in
    float32 as luci computes it (VerifyQuantizedBiasScale)."""
    import numpy as np

    for op in m.ops():
        operands = _conv_operands(op)
        if operands is None or _is_island(op):
            continue
        inp, w, bias, _ = operands
        if bias is None or not bias.const:
            continue  # FULLY_CONNECTED may have no bias or a computed one
        q = m.op_q(op)
        want = BIAS_DTYPE.get(q)
        if want is not None and bias.dtype != want:
            yield issue(op, bias, "bias is %s; a %s model needs %s"
                        % (dtype_name(bias.dtype), dtype_name(q), dtype_name(want)))
        users = sorted(set(c.label for c, _ in bias.consumers))
        if len(users) > 1:
            yield issue(op, bias, "bias is shared by %d ops (%s); give each op its own bias tensor"
                        % (len(users), ", ".join(users)))
        if not bias.quantized:
            continue  # qparam_complete
        nonzero = [z for z in bias.zp if z != 0]
        if nonzero:
            yield issue(op, bias, "bias zero_point is %d; it must be 0" % nonzero[0])
        if inp is None or w is None or not inp.quantized or not w.quantized:
            continue
        if not inp.per_tensor or len(w.scale) != len(bias.scale):
            continue  # per_tensor_activation / channel_granularity
        expected = np.float32(inp.scale[0]) * np.asarray(w.scale, dtype=np.float32)  # float32, as luci
        stored = np.asarray(bias.scale, dtype=np.float32)
        diff = np.abs(stored.astype(np.float64) - expected.astype(np.float64))
        bad = np.nonzero(~(diff < 1e-10))[0]
        if bad.size:
            i = int(bad[0])
            yield issue(op, bias, "bias scale[%d] = %.9g but float32(input scale %.9g) * float32(weight "
                        "scale[%d] %.9g) = %.9g (|diff| %.3g >= 1e-10; %d of %d channels)"
                        % (i, stored[i], inp.scale[0], i, w.scale[i], expected[i], diff[i],
                           bad.size, stored.size))


# output qparams that must equal the input's: op -> operand index of the data input
_SHARED_QPARAMS = {"RESHAPE": 0, "TRANSPOSE": 0, "STRIDED_SLICE": 0, "SPLIT": 1, "SPLIT_V": 0,
                   "GATHER": 0, "SQUEEZE": 0, "UNPACK": 0}


@rule("shared_qparams", ERROR)
def shared_qparams(m):
    """RESHAPE, TRANSPOSE, STRIDED_SLICE, SPLIT/SPLIT_V/UNPACK outputs, GATHER and SQUEEZE move
    values without rescaling, so their outputs carry exactly the input's (scale, zero_point)."""
    import numpy as np

    for op in m.ops():
        k = _SHARED_QPARAMS.get(op.name)
        if k is None:
            continue
        src = op.inp(k)
        if src is None or src.dtype not in QUANT_INT or not src.quantized:
            continue
        for out in op.outputs:
            if out is None or out.dtype not in QUANT_INT or not out.quantized:
                continue
            same = (len(out.scale) == len(src.scale) and out.zp == src.zp
                    and np.array_equal(np.float32(out.scale), np.float32(src.scale)))
            if not same:
                yield issue(op, out, "%s output qparams %s differ from its input '%s' %s; they must be "
                            "identical" % (op.name, out.qparam_text(), src.name, src.qparam_text()))


def _fixed(q, op):
    """[(scale, zp), ...] accepted for op's output in a model of dtype q, or None."""
    name = op.name
    if q == UINT8:
        if name == "LOGISTIC":
            return [(1.0 / 256, 0)]
        if name == "TANH" or op.fused_activation == 4:  # ActivationFunctionType.TANH
            return [(2.0 / 256, 128)]
        if name == "SOFTMAX":
            return [(1.0 / 255, 0), (1.0 / 256, 0)]
    elif q == INT16:
        if name in ("LOGISTIC", "TANH") or op.fused_activation == 4:
            return [(1.0 / 32768, 0)]
        if name == "SOFTMAX":
            return [(1.0 / 32767, 0)]
    return None


@rule("fixed_qparams", ERROR)
def fixed_qparams(m):
    """U8 LOGISTIC (1/256, 0), TANH and fused TANH (2/256, 128), SOFTMAX (1/255, 0) for luci or
    (1/256, 0) as TFLite writes it (a warning); S16 LOGISTIC/TANH (1/32768, 0), SOFTMAX (1/32767, 0);
    FLOOR, FLOOR_DIV, FLOOR_MOD, CEIL an integer scale."""
    import numpy as np

    for op in m.ops():
        out = op.out(0)
        if out is None or out.dtype not in MODEL_Q or not out.quantized or not out.per_tensor:
            continue
        q = out.dtype
        s, z = np.float32(out.scale[0]), out.zp[0]
        if op.name in ("FLOOR", "FLOOR_DIV", "FLOOR_MOD", "CEIL"):
            if float(s) != round(float(s)):
                yield issue(op, out, "%s output scale %.9g must be an integer" % (op.name, s))
            continue
        accepted = _fixed(q, op)
        if accepted is None:
            continue
        matches = [(fs, fz) for fs, fz in accepted if s == np.float32(fs) and z == fz]
        what = op.name if op.name in ("LOGISTIC", "TANH", "SOFTMAX") else op.name + " with fused TANH"
        if not matches:
            want = " or ".join("(%s, %d)" % (_fraction(fs), fz) for fs, fz in accepted)
            yield issue(op, out, "%s %s output has %s; it must be %s"
                        % (dtype_name(q), what, out.qparam_text(), want))
        elif op.name == "SOFTMAX" and q == UINT8 and matches[0][0] == 1.0 / 256:
            yield issue(op, out, "UINT8 SOFTMAX output uses (1/256, 0), the TFLite convention that "
                        "onert accepts; luci's verifier wants (1/255, 0)", WARNING)


def _fraction(scale):
    for den in (255, 256, 32767, 32768):
        for num in (1, 2):
            if abs(scale - float(num) / den) < 1e-12:
                return "%d/%d" % (num, den)
    return "%.9g" % scale
