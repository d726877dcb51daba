"""luci's dtype rules (VerifyQuantizedNodeType): which tensor may have which dtype."""

from .model import (
    BOOL, ERROR, FLOAT32, INT16, INT32, INT64, INT8, MODEL_Q,
    UINT8, WARNING, _CONV_LIKE, _conv_operands, _is_island, _producer, dtype_name, issue,
    rule)


# --------------------------------------------------------------------------------------------
# dtype rules (luci VerifyQuantizedNodeType, one-conventions §5.3)

Q, S32, IDX, BOOLEAN, F32, QANY, F32_OR_QANY = "Q", "S32", "S32|S64", "BOOL", "F32", "U8|S16", "F32|U8|S16"

# the ops luci's VerifyQuantizedNodeType visits (ONE 1.27, VerifyQuantizedNodeType.cpp; the rest
# pass it unchecked), plus LocalResponseNormalization, which one-conventions §5.3 lists from a
# newer luci. `float_op` warns only for these: luci's verifier takes a float ABS or SUB.
LUCI_CHECKED = {
    "ADD", "ARG_MAX", "AVERAGE_POOL_2D", "BATCH_TO_SPACE_ND", "CAST", "CONCATENATION", "CONV_2D",
    "DEPTH_TO_SPACE", "DEPTHWISE_CONV_2D", "DIV", "ELU", "FLOOR", "FLOOR_DIV", "FULLY_CONNECTED", "GELU",
    "GREATER", "GREATER_EQUAL", "INSTANCE_NORM", "LOCAL_RESPONSE_NORMALIZATION", "LOGICAL_OR", "LOGISTIC",
    "MAX_POOL_2D", "MEAN", "MIRROR_PAD", "MUL", "NOT_EQUAL", "ONE_HOT", "PACK", "PAD", "PADV2", "POW",
    "PRELU", "REDUCE_MAX", "RELU", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE",
    "SOFTMAX", "SPACE_TO_BATCH_ND", "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V", "SQRT", "STRIDED_SLICE", "SUM",
    "TANH", "TRANSPOSE", "TRANSPOSE_CONV", "UNPACK",
}

# ops whose inputs and outputs all have dtype Q ("group Q")
_GROUP_Q = {
    "ADD", "SUB", "MUL", "DIV", "POW", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE",
    "AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D", "CONCATENATION", "PACK", "PRELU",
    "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU", "ELU", "HARD_SWISH", "GELU",
    "RSQRT", "SQRT", "ABS", "NEG", "FLOOR", "FLOOR_DIV", "FLOOR_MOD", "CEIL",
    "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "INSTANCE_NORM", "RMS_NORM", "LOCAL_RESPONSE_NORMALIZATION",
    "LOGISTIC", "TANH", "SOFTMAX", "LOG_SOFTMAX", "TILE",
}

# op: ([(operand index, role, kind)], output kind). Conv-like biases: see `bias_scale`.
_OPERANDS = {
    "CONV_2D": ([(0, "input", Q), (1, "filter", Q)], Q),
    "DEPTHWISE_CONV_2D": ([(0, "input", Q), (1, "filter", Q)], Q),
    "FULLY_CONNECTED": ([(0, "input", Q), (1, "weights", Q)], Q),
    "TRANSPOSE_CONV": ([(0, "output_shape", S32), (1, "filter", Q), (2, "outBackprop", Q)], Q),
    "MEAN": ([(0, "input", Q), (1, "reduction_indices", S32)], Q),
    "REDUCE_MAX": ([(0, "input", Q), (1, "reduction_indices", S32)], Q),
    "SUM": ([(0, "input", Q), (1, "reduction_indices", S32)], Q),
    "PAD": ([(0, "input", Q), (1, "paddings", S32)], Q),
    "MIRROR_PAD": ([(0, "input", Q), (1, "paddings", S32)], Q),
    "PADV2": ([(0, "input", Q), (1, "paddings", S32), (2, "constant_values", Q)], Q),
    "RESHAPE": ([(0, "input", Q), (1, "shape", S32)], Q),
    "TRANSPOSE": ([(0, "input", Q), (1, "perm", S32)], Q),
    "SLICE": ([(0, "input", Q), (1, "begin", IDX), (2, "size", IDX)], Q),
    "STRIDED_SLICE": ([(0, "input", Q), (1, "begin", IDX), (2, "end", IDX), (3, "strides", IDX)], Q),
    "SPLIT": ([(0, "axis", S32), (1, "input", Q)], Q),
    "SPLIT_V": ([(0, "input", Q), (1, "size_splits", IDX), (2, "axis", S32)], Q),
    "UNPACK": ([(0, "input", Q)], Q),
    "SQUEEZE": ([(0, "input", Q)], Q),
    "EXPAND_DIMS": ([(0, "input", Q), (1, "axis", IDX)], Q),
    "GATHER": ([(0, "params", Q), (1, "indices", IDX)], Q),
    "BATCH_TO_SPACE_ND": ([(0, "input", Q), (1, "block_shape", S32), (2, "crops", S32)], Q),
    "SPACE_TO_BATCH_ND": ([(0, "input", Q), (1, "block_shape", S32), (2, "paddings", S32)], Q),
    "RESIZE_BILINEAR": ([(0, "input", Q), (1, "size", S32)], Q),
    "RESIZE_NEAREST_NEIGHBOR": ([(0, "input", Q), (1, "size", S32)], Q),
    "ARG_MAX": ([(0, "input", Q), (1, "dimension", IDX)], IDX),
    "ARG_MIN": ([(0, "input", Q), (1, "dimension", IDX)], IDX),
    "GREATER": ([(0, "x", Q), (1, "y", Q)], BOOLEAN),
    "GREATER_EQUAL": ([(0, "x", Q), (1, "y", Q)], BOOLEAN),
    "LESS": ([(0, "x", Q), (1, "y", Q)], BOOLEAN),
    "LESS_EQUAL": ([(0, "x", Q), (1, "y", Q)], BOOLEAN),
    "EQUAL": ([(0, "x", Q), (1, "y", Q)], BOOLEAN),
    "NOT_EQUAL": ([(0, "x", Q), (1, "y", Q)], BOOLEAN),
    "ONE_HOT": ([(0, "indices", IDX), (1, "depth", S32), (2, "on_value", Q), (3, "off_value", Q)], Q),
    # the float I/O boundaries (and U8<->S16 requantization in mixed precision)
    "QUANTIZE": ([(0, "input", F32_OR_QANY)], QANY),
    "DEQUANTIZE": ([(0, "input", QANY)], F32),
}

# ops allowed to have float on one side and a quantized type on the other
_DTYPE_CHANGING = {"QUANTIZE", "DEQUANTIZE", "CAST"}


def _allowed(kind, q):
    return {
        Q: (q,), S32: (INT32,), IDX: (INT32, INT64), BOOLEAN: (BOOL,), F32: (FLOAT32,),
        QANY: MODEL_Q, F32_OR_QANY: (FLOAT32,) + MODEL_Q,
    }[kind]


def _expected_text(kind, q):
    return " or ".join(dtype_name(d) for d in _allowed(kind, q))


def _mixed_weight(op):
    """U8 activations with INT8 weights (PyTorch's fbgemm layout left unshifted)."""
    operands = _conv_operands(op)
    if operands is None:
        return False
    inp, w, _, _ = operands
    return inp is not None and w is not None and inp.dtype == UINT8 and w.dtype == INT8


@rule("model_dtype", ERROR)
def model_dtype(m):
    """The model dtype Q, from the activations: luci's verifier accepts only U8 and S16."""
    s8 = [t for t in m.activations() if t.dtype == INT8]
    if s8:
        yield issue(_producer(s8[0]), s8[0],
                    "INT8 activation (%d INT8 activations in all): luci supports only UINT8 and INT16 "
                    "models; shift int8 to uint8 exactly (value + 128, zero_point + 128)" % len(s8))
    elif m.q is None:
        yield issue(None, None, "no UINT8 or INT16 activation: this is not a quantized model")
    dtypes = set(t.dtype for t in m.activations() if t.dtype in MODEL_Q)
    if len(dtypes) > 1:
        other = INT16 if m.q == UINT8 else UINT8
        first = next(t for t in m.activations() if t.dtype == other)
        yield issue(_producer(first), first,
                    "mixed precision: the model is mostly %s but this activation is %s; luci allows it "
                    "only with QUANTIZE ops at the boundaries" % (dtype_name(m.q), dtype_name(other)),
                    WARNING)


@rule("activation_dtype", ERROR)
def activation_dtype(m):
    """Per-op dtype table (luci VerifyQuantizedNodeType): group ops are all Q; conv-like input and
    filter Q; index operands S32; only QUANTIZE/DEQUANTIZE/CAST change between float and quantized.
    Conv-like bias dtype is checked by `bias_scale`, INT8 weights under UINT8 activations by
    `onert_mixed_weight_dtype`."""
    if m.q is None:
        return  # model_dtype already said why
    for op in m.ops():
        if _is_island(op):
            continue
        q = m.op_q(op)
        if q is None:
            continue
        if op.name in _GROUP_Q:
            checks = [(k, "input %d" % k, Q) for k in range(len(op.inputs))]
            out_kind = Q
        elif op.name in _OPERANDS:
            checks, out_kind = _OPERANDS[op.name]
        elif op.name not in _DTYPE_CHANGING:
            floats = [t for t in op.tensors() if t.dtype == FLOAT32]
            if floats:
                yield issue(op, floats[0], "%s mixes FLOAT32 and quantized tensors; only QUANTIZE and "
                            "DEQUANTIZE may change between float and quantized" % op.name)
            continue
        else:
            continue
        for k, role, kind in checks:
            t = op.inp(k)
            if t is None:
                continue
            if _mixed_weight(op) and k == _CONV_LIKE[op.name][1]:
                continue
            if t.dtype not in _allowed(kind, q):
                yield issue(op, t, "%s %s is %s, expected %s"
                            % (op.name, role, dtype_name(t.dtype), _expected_text(kind, q)))
        for t in op.outputs:
            if t is not None and t.dtype not in _allowed(out_kind, q):
                yield issue(op, t, "%s output is %s, expected %s"
                            % (op.name, dtype_name(t.dtype), _expected_text(out_kind, q)))


@rule("float_op", WARNING, luci_only=True)
def float_op(m):
    """luci's VerifyQuantizedNodeType checks every node of a quantized model: an op that reads or
    writes FLOAT32 activations (a float island between DEQUANTIZE and QUANTIZE, a layout TRANSPOSE
    before the input QUANTIZE) fails it, node by node, for the ops in its type table; QUANTIZE and
    DEQUANTIZE are not checked (luci's own --input_type/--output_type float32 form). A warning, for the luci target: the luci profile writes float only where
    PyTorch itself computed in float or no exact quantized form exists (each listed in the
    conversion notes, refused by --strict); the onert profile keeps float islands on purpose."""
    if m.q is None:
        return
    for op in m.ops():
        floats = [t for t in op.tensors() if t is not None and not t.const and t.dtype == FLOAT32]
        if not floats:
            continue
        if op.name in _DTYPE_CHANGING or op.name not in LUCI_CHECKED:
            continue   # luci checks neither QUANTIZE/DEQUANTIZE nor ops outside its type table
        yield issue(op, floats[0], "%s works on FLOAT32 in a quantized model; luci's verifier rejects "
                    "it (VerifyQuantizedNodeType)" % op.name)
